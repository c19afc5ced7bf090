#include "poller.hpp"

#include "fetch_child.hpp"

#include "bus/runtime/spawn.hpp"
#include "bus/text.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <unistd.h>

namespace repo_poller {

namespace {

std::string trim_newlines(std::string s)
{
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
}

bool has_status(const std::string& err, std::string_view what)
{
    return err.find("[GNUPG:] " + std::string(what) + " ") != std::string::npos ||
           err.find("[GNUPG:] " + std::string(what) + "\n") != std::string::npos;
}

// gpgv's first human line (its reason), escaped for the log.
std::string gpgv_reason(const std::string& err)
{
    std::istringstream in(err);
    std::string line, last;
    while (std::getline(in, line)) {
        if (line.starts_with("[GNUPG:]")) continue;
        if (line.find("BAD signature") != std::string::npos || line.find("Can't check") != std::string::npos ||
            line.find("no valid OpenPGP") != std::string::npos || line.find("not found") != std::string::npos)
            return bus::log_escape(line.substr(0, 200));
        if (!line.empty()) last = line;
    }
    return bus::log_escape(last.substr(0, 200));
}

[[noreturn]] void sys_fail(const std::string& what)
{
    throw std::runtime_error(what + ": " + std::strerror(errno));
}

} // namespace

verify_result verify_inrelease(const config& cfg, const std::string& keyring, const std::filesystem::path& home,
                               const std::string& inrelease)
{
    verify_result v;
    if (!is_clearsigned(inrelease)) {
        v.why = "InRelease is not clearsigned";
        return v;
    }
    std::string ours;
    try {
        ours = strip_clearsign(inrelease);
    } catch (const parse_error& e) {
        v.why = e.what();
        return v;
    }
    bus::runtime::spawn_options so;
    so.argv = {cfg.gpgv, "--homedir", home.string(), "--keyring", keyring, "--status-fd", "2", "--output", "-", "-"};
    so.env = {"PATH=/usr/bin:/bin", "LC_ALL=C", "GNUPGHOME=" + home.string()};
    so.input = inrelease;
    so.timeout = cfg.gpgv_timeout;
    so.max_out = cfg.http.max_release_bytes + 1;
    so.kill_on_overflow = true;
    so.die_with_parent = true;
    auto r = bus::runtime::spawn(so);
    if (!r.started || r.timed_out) {
        v.why = "gpgv: " + r.describe();
        return v;
    }
    if (r.exit_code != 0 || !has_status(r.err, "GOODSIG") || !has_status(r.err, "VALIDSIG") ||
        has_status(r.err, "BADSIG") || has_status(r.err, "ERRSIG") || has_status(r.err, "EXPKEYSIG") ||
        has_status(r.err, "REVKEYSIG") || has_status(r.err, "EXPSIG")) {
        v.why = "gpgv refused the signature (" + r.describe() + "): " + gpgv_reason(r.err);
        return v;
    }
    // What gpgv vouches for must be exactly what we would read: no text outside the signature.
    if (trim_newlines(r.out) != trim_newlines(ours)) {
        v.why = "the signed text differs from the InRelease's text (more than one signed block?)";
        return v;
    }
    v.ok = true;
    v.text = std::move(r.out);
    return v;
}

poll_outcome poll_once(const poll_context& ctx, const suite_state& prev)
{
    using k = poll_outcome::kind;
    poll_outcome o;
    const auto& cfg = *ctx.cfg;
    const auto& repo = *ctx.repo;
    const std::string base = repo.url + "/dists/" + ctx.suite + "/";
    fetch_batch release_get{cfg.http, {}};
    release_get.requests.push_back({base + "InRelease", cfg.http.max_release_bytes, prev.baseline ? prev.etag : std::string(),
                                    prev.baseline ? prev.last_modified : std::string()});
    auto rel = child_fetch(ctx.self, cfg.state_dir, release_get, ctx.stop).next();
    if (rel.status == 304) {
        o.what = k::not_modified;
        return o;
    }
    if (rel.status != 200) {
        o.why = rel.status == 0 ? "InRelease: " + rel.error : "InRelease: HTTP " + std::to_string(rel.status);
        return o;
    }
    o.next = prev;
    const auto release_sha = sha256_hex(rel.body);
    if (prev.baseline && release_sha == prev.release_sha256) {
        // A server without validators (or a changed ETag for the same bytes): nothing to read.
        o.what = k::unchanged;
        o.same_release = true;
        auto lm = validator_to_keep(rel.etag, rel.last_modified, rel.date);
        o.save = o.next.etag != rel.etag || o.next.last_modified != lm;
        o.next.etag = rel.etag;
        o.next.last_modified = lm;
        return o;
    }
    std::string text;
    if (!repo.keyring.empty()) {
        auto v = verify_inrelease(cfg, repo.keyring, ctx.gnupg_home, rel.body);
        if (!v.ok) {
            o.what = k::bad_signature;
            o.why = v.why;
            return o;
        }
        text = std::move(v.text);
    } else {
        text = strip_clearsign(rel.body);
    }
    auto r = parse_release(text);
    if (r.suite != ctx.suite && r.codename != ctx.suite)
        throw parse_error("InRelease is for Suite '" + bus::log_escape(r.suite) + "' / Codename '" + bus::log_escape(r.codename) +
                          "', not " + ctx.suite);
    o.codename = r.codename.empty() ? ctx.suite : r.codename;
    auto components = repo.components.empty() ? r.components : repo.components;
    std::vector<std::string> arches;
    for (const auto& a : repo.architectures.empty() ? r.architectures : repo.architectures)
        if (a != "source") arches.push_back(a);
    for (const auto* l : {&components, &arches})
        for (const auto& n : *l)
            if (!valid_dist_name(n)) throw parse_error("InRelease names an unusable component or architecture '" + bus::log_escape(n.substr(0, 100)) + "'");

    std::string interest;
    for (const auto& p : repo.packages) interest += p + "\n";
    if (o.next.interest != interest) {
        // Other packages of interest than last time: record them afresh (no flood of "new" ones).
        o.next.index_hashes.clear();
        o.next.versions.clear();
        o.next.interest = interest;
    }
    // The indices whose hash changed, all read by one fetch child.
    struct to_read {
        std::string comp, arch, key;
        chosen_index idx;
        bool known = false;
    };
    std::set<std::string> seen;
    std::vector<to_read> reads;
    fetch_batch index_gets{cfg.http, {}};
    for (const auto& comp : components)
        for (const auto& arch : arches) {
            const std::string key = comp + "/" + arch;
            auto idx = choose_index(r, comp, arch);
            if (!idx) continue;  // this component has no such architecture
            seen.insert(key);
            auto known = o.next.index_hashes.find(key);
            if (known != o.next.index_hashes.end() && known->second == idx->file.sha256) continue;
            index_gets.requests.push_back({base + idx->file.path, cfg.http.max_index_bytes, {}, {}});
            reads.push_back({comp, arch, key, *idx, known != o.next.index_hashes.end()});
        }
    std::optional<child_fetch> fetched;
    if (!reads.empty()) fetched.emplace(ctx.self, cfg.state_dir, index_gets, ctx.stop);
    for (const auto& rd : reads) {
        const auto& comp = rd.comp;
        const auto& arch = rd.arch;
        const auto* idx = &rd.idx;
        {
            auto got = fetched->next();
            if (got.status != 200)
                throw parse_error(idx->file.path + ": " + (got.status == 0 ? got.error : "HTTP " + std::to_string(got.status)));
            if (got.body.size() != idx->file.size || sha256_hex(got.body) != idx->file.sha256)
                throw parse_error(idx->file.path + ": size or SHA256 differs from the InRelease (repository being updated, "
                                  "or tampered with)");
            auto parsed = parse_packages(decompress(got.body, idx->comp, cfg.http.max_unpacked_bytes));
            o.invalid_stanzas += parsed.invalid;
            ++o.indices_read;
            // libapt-pkg's order for this index's versions of interest and the remembered ones:
            // one helper run (version_helper.hpp). Failing, the poll fails before anything of it is
            // kept; the next one reads the index again.
            auto to_order = versions_to_order(parsed.packages, repo.packages, o.next.versions, comp, arch);
            auto ranks = deploykit::rank_versions(cfg.version_helper, to_order);
            if (!ranks.order)
                throw version_order_error(idx->file.path + ": cannot order its " + std::to_string(to_order.size()) +
                                          " version(s): " + ranks.error);
            auto current = newest_of_interest(parsed.packages, repo.packages, *ranks.order);
            const bool baseline = prev.baseline && rd.known;
            for (auto& c : apply_index(o.next.versions, comp, arch, current, baseline, *ranks.order))
                o.changes.push_back(std::move(c));
            o.next.index_hashes[rd.key] = idx->file.sha256;
        }
    }
    // Indices no longer listed (or configured): forget them and their versions.
    for (auto it = o.next.index_hashes.begin(); it != o.next.index_hashes.end();) {
        if (seen.count(it->first)) {
            ++it;
            continue;
        }
        auto slash = it->first.find('/');
        apply_index(o.next.versions, it->first.substr(0, slash), it->first.substr(slash + 1), {}, false, version_order{});
        it = o.next.index_hashes.erase(it);
    }
    o.next.etag = rel.etag;
    o.next.last_modified = validator_to_keep(rel.etag, rel.last_modified, rel.date);
    o.next.release_sha256 = release_sha;
    o.next.baseline = true;
    o.save = true;
    o.what = !prev.baseline ? k::baseline : o.changes.empty() ? k::unchanged : k::changed;
    return o;
}

suite_state load_state(const std::filesystem::path& path)
{
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT) return {};
        sys_fail("cannot read " + path.string());
    }
    std::string text;
    char buf[65536];
    for (;;) {
        auto n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            ::close(fd);
            sys_fail("cannot read " + path.string());
        }
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
        if (text.size() > (1u << 30)) {
            ::close(fd);
            throw parse_error(path.string() + ": larger than 1 GiB");
        }
    }
    ::close(fd);
    return parse_state(text);
}

void save_state(const std::filesystem::path& path, const suite_state& s)
{
    const auto text = serialize_state(s);
    const auto tmp = path.string() + ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) sys_fail("cannot write " + tmp);
    std::size_t off = 0;
    while (off < text.size()) {
        auto n = ::write(fd, text.data() + off, text.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int e = errno;
            ::close(fd);
            errno = e;
            sys_fail("cannot write " + tmp);
        }
        off += static_cast<std::size_t>(n);
    }
    if (::fsync(fd) != 0) {
        int e = errno;
        ::close(fd);
        errno = e;
        sys_fail("fsync " + tmp);
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path.c_str()) != 0) sys_fail("cannot rename " + tmp);
    int dfd = ::open(path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}

} // namespace repo_poller
