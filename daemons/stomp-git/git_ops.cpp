#include "git_ops.hpp"

#include "bus/crypto.hpp"
#include "bus/url.hpp"

#include <fcntl.h>
#include <git2.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <system_error>

namespace stomp_git {

namespace fs = std::filesystem;

namespace {

std::string last_error(std::string_view what)
{
    const git_error* e = git_error_last();
    return std::string(what) + ": " + (e && e->message ? e->message : "unknown libgit2 error");
}

template <class T, void (*Free)(T*)>
struct handle {
    T* p = nullptr;
    ~handle()
    {
        if (p) Free(p);
    }
    T** out() { return &p; }
    T* get() const { return p; }
};

using repo_h = handle<git_repository, git_repository_free>;
using remote_h = handle<git_remote, git_remote_free>;
using ref_h = handle<git_reference, git_reference_free>;
using commit_h = handle<git_commit, git_commit_free>;
using index_h = handle<git_index, git_index_free>;
using tree_h = handle<git_tree, git_tree_free>;
using object_h = handle<git_object, git_object_free>;

std::string oid_str(const git_oid* oid)
{
    char buf[GIT_OID_HEXSZ + 1];
    git_oid_tostr(buf, sizeof buf, oid);
    return buf;
}

std::string rev_of(git_repository* r, const std::string& ref)
{
    git_oid oid;
    if (git_reference_name_to_id(&oid, r, ref.c_str()) != 0) return std::string(40, '0');
    return oid_str(&oid);
}

// Writes the tree of `commit` into the empty directory `dir` (no index shared with anything).
bool export_tree(git_repository* r, git_commit* commit, const fs::path& dir, std::string& error)
{
    tree_h tree;
    if (git_commit_tree(tree.out(), commit) != 0) {
        error = last_error("reading the commit's tree");
        return false;
    }
    index_h empty;
    git_index_new(empty.out());
    git_checkout_options opts;
    git_checkout_options_init(&opts, GIT_CHECKOUT_OPTIONS_VERSION);
    opts.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_RECREATE_MISSING | GIT_CHECKOUT_DONT_UPDATE_INDEX;
    std::string target = dir.string();
    opts.target_directory = target.c_str();
    opts.baseline_index = empty.get();
    if (git_checkout_tree(r, reinterpret_cast<git_object*>(tree.get()), &opts) != 0) {
        error = last_error("checking out into " + target);
        return false;
    }
    return true;
}

bool lookup_commit(git_repository* r, const std::string& ref, commit_h& out, std::string& error)
{
    git_oid oid;
    if (git_reference_name_to_id(&oid, r, ref.c_str()) != 0) {
        error = ref + " does not exist after the fetch";
        return false;
    }
    if (git_commit_lookup(out.out(), r, &oid) != 0) {
        error = last_error("looking up " + ref);
        return false;
    }
    return true;
}

std::string stamp()
{
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::system_clock::now().time_since_epoch()).count());
}

// Replaces `target` (a directory) with a fresh export: written beside it, then swapped in with
// renames, so readers never see a half-written tree.
// `marker` (puppetmaster): a file written into the fresh tree, see write_marker().
bool write_marker(const fs::path& dir, std::string_view content, std::string& error);

bool publish_dir(git_repository* r, git_commit* c, const fs::path& target, std::string& error,
                 std::string_view marker = {})
{
    // Staging names are short and fixed-length (not the target's name plus a suffix, which a long
    // branch name would push past NAME_MAX).
    static unsigned seq = 0;
    std::string tag = stamp() + "-" + std::to_string(::getpid()) + "-" + std::to_string(++seq);
    fs::path fresh = target.parent_path() / (".deploykit-new-" + tag);
    fs::path old = target.parent_path() / (".deploykit-old-" + tag);
    std::error_code ec;
    fs::create_directories(fresh, ec);
    if (ec) {
        error = fresh.string() + ": " + ec.message();
        return false;
    }
    if (!export_tree(r, c, fresh, error) || (!marker.empty() && !write_marker(fresh, marker, error))) {
        fs::remove_all(fresh, ec);
        return false;
    }
    bool had = fs::exists(target);
    if (had) fs::rename(target, old, ec);
    if (!ec) fs::rename(fresh, target, ec);
    if (ec) {
        error = target.string() + ": " + ec.message();
        if (had && !fs::exists(target)) fs::rename(old, target, ec);
        fs::remove_all(fresh, ec);
        return false;
    }
    if (had) fs::remove_all(old, ec);
    return true;
}

// Writes `.deploykit-environment` into a directory stomp-git just filled from pushed content:
// relative to the directory's descriptor, never following a symlink. Whatever the pushed tree put
// under that name (a symlink to a file elsewhere, say) is removed first; the marker is ours.
bool write_marker(const fs::path& dir, std::string_view content, std::string& error)
{
    constexpr const char* name = ".deploykit-environment";
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0) {
        error = dir.string() + ": " + std::strerror(errno);
        return false;
    }
    bool ok = false;
    if (::unlinkat(dfd, name, 0) != 0 && errno != ENOENT) {
        error = (dir / name).string() + ": the pushed tree has it as a directory (" + std::strerror(errno) + ")";
    } else {
        int fd = ::openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0) {
            error = (dir / name).string() + ": " + std::strerror(errno);
        } else {
            ok = ::write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size());
            if (!ok) error = (dir / name).string() + ": " + std::strerror(errno);
            ::close(fd);
        }
    }
    ::close(dfd);
    return ok;
}

// Every remote-tracking branch and tag with its target: compared before and after a fetch.
std::map<std::string, std::string> ref_snapshot(git_repository* r)
{
    std::map<std::string, std::string> out;
    git_reference_iterator* it = nullptr;
    if (git_reference_iterator_new(&it, r) != 0) return out;
    git_reference* ref = nullptr;
    while (git_reference_next(&ref, it) == 0) {
        std::string name = git_reference_name(ref);
        if (name.starts_with("refs/remotes/origin/") || name.starts_with("refs/tags/")) {
            if (const git_oid* oid = git_reference_target(ref))
                out[name] = oid_str(oid);
            else if (const char* sym = git_reference_symbolic_target(ref))
                out[name] = sym;
        }
        git_reference_free(ref);
    }
    git_reference_iterator_free(it);
    return out;
}

} // namespace

// ---- remote URLs, secrets ----------------------------------------------------------------------

namespace {

std::string lower(std::string_view s)
{
    std::string out(s);
    for (auto& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    return out;
}

bool is_scheme_char(char ch)
{
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '+' || ch == '-' || ch == '.';
}

std::optional<unsigned> parse_port(std::string_view s)
{
    if (s.empty() || s.size() > 5) return std::nullopt;
    unsigned p = 0;
    for (char ch : s) {
        if (ch < '0' || ch > '9') return std::nullopt;
        p = p * 10 + static_cast<unsigned>(ch - '0');
    }
    if (p == 0 || p > 65535) return std::nullopt;
    return p;
}

unsigned default_port(std::string_view scheme)
{
    if (scheme == "https") return 443;
    if (scheme == "http") return 80;
    if (scheme == "git") return 9418;
    return 22;  // ssh, ssh+git, git+ssh
}

bool ssh_scheme(std::string_view scheme)
{
    return scheme.find("ssh") != std::string_view::npos;
}

// As git: a %-escape that does not decode leaves the text as it is.
std::string percent_decode(std::string_view s) { return bus::percent_decode(s).value_or(std::string(s)); }

std::string_view trim(std::string_view s)
{
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}

// host[:port] or [v6][:port] -> host, port (0 when absent); nullopt when malformed.
std::optional<std::pair<std::string, unsigned>> split_host_port(std::string_view hp)
{
    std::string_view host, port;
    if (hp.starts_with('[')) {
        auto close = hp.find(']');
        if (close == std::string_view::npos) return std::nullopt;
        host = hp.substr(1, close - 1);
        auto rest = hp.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') return std::nullopt;
            port = rest.substr(1);
        }
    } else {
        auto colon = hp.rfind(':');
        host = hp.substr(0, colon);
        if (colon != std::string_view::npos) port = hp.substr(colon + 1);
    }
    if (host.empty()) return std::nullopt;
    unsigned p = 0;
    if (!port.empty()) {
        auto pp = parse_port(port);
        if (!pp) return std::nullopt;
        p = *pp;
    }
    return std::pair{lower(host), p};
}

} // namespace

std::optional<remote_url> parse_remote_url(std::string_view url)
{
    auto sep = url.find("://");
    if (sep != std::string_view::npos) {
        std::string scheme = lower(url.substr(0, sep));
        if (scheme.empty() || !std::all_of(scheme.begin(), scheme.end(), is_scheme_char) || scheme == "file")
            return std::nullopt;
        auto rest = url.substr(sep + 3);
        auto auth = rest.substr(0, rest.find_first_of("/?#"));
        remote_url r;
        r.scheme = scheme;
        if (auto at = auth.rfind('@'); at != std::string_view::npos) {
            auto ui = auth.substr(0, at);
            r.user = percent_decode(ui.substr(0, ui.find(':')));
            auth = auth.substr(at + 1);
        }
        auto hp = split_host_port(auth);
        if (!hp) return std::nullopt;
        r.host = hp->first;
        r.port = hp->second ? hp->second : default_port(scheme);
        return r;
    }
    // scp-like [user@]host:path; a ':' after the first '/' is a local path.
    auto colon = url.find(':');
    auto slash = url.find('/');
    if (colon == std::string_view::npos || colon == 0 || (slash != std::string_view::npos && slash < colon))
        return std::nullopt;
    auto auth = url.substr(0, colon);
    remote_url r;
    r.scheme = "ssh";
    r.port = 22;
    if (auto at = auth.rfind('@'); at != std::string_view::npos) {
        r.user = std::string(auth.substr(0, at));
        auth = auth.substr(at + 1);
    }
    if (auth.starts_with('[') && auth.ends_with(']')) auth = auth.substr(1, auth.size() - 2);
    if (auth.empty()) return std::nullopt;
    r.host = lower(auth);
    return r;
}

std::string redact(std::string text, const std::vector<std::string>& secrets)
{
    for (const auto& s : secrets) {
        if (s.empty()) continue;
        for (auto pos = text.find(s); pos != std::string::npos; pos = text.find(s, pos + 3))
            text.replace(pos, s.size(), "***");
    }
    std::size_t from = 0;
    for (auto sep = text.find("://", from); sep != std::string::npos; sep = text.find("://", from)) {
        std::size_t begin = sep;
        while (begin > 0 && is_scheme_char(text[begin - 1])) --begin;
        std::string scheme = lower(std::string_view(text).substr(begin, sep - begin));
        std::size_t auth = sep + 3;
        std::size_t end = auth;
        while (end < text.size() && !std::isspace(static_cast<unsigned char>(text[end])) &&
               std::string_view("/?#'\"<>`").find(text[end]) == std::string_view::npos)
            ++end;
        auto at = std::string_view(text).substr(auth, end - auth).rfind('@');
        if (at != std::string_view::npos) {
            auto ui = std::string_view(text).substr(auth, at);
            bool keep = ssh_scheme(scheme) && ui.find(':') == std::string_view::npos;
            if (!keep) {
                text.erase(auth, at + 1);
                end -= at + 1;
            }
        }
        from = end > sep ? end : sep + 3;
    }
    return text;
}

std::vector<https_credential> parse_credentials(std::string_view text, std::string_view file)
{
    std::vector<https_credential> out;
    bool have_default = false;
    std::size_t lineno = 0;
    while (!text.empty()) {
        auto nl = text.find('\n');
        auto line = trim(text.substr(0, nl));
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        ++lineno;
        if (line.empty() || line.front() == '#') continue;
        std::string where = std::string(file) + ":" + std::to_string(lineno);
        https_credential c;
        if (auto sep = line.find("://"); sep != std::string_view::npos) {
            std::string scheme = lower(line.substr(0, sep));
            auto rest = line.substr(sep + 3);
            auto auth = rest.substr(0, rest.find_first_of("/?#"));
            auto at = auth.rfind('@');
            if (scheme != "https" || at == std::string_view::npos)
                throw std::runtime_error(where + ": expected https://user:token@host[:port]");
            auto ui = auth.substr(0, at);
            auto colon = ui.find(':');
            auto hp = split_host_port(auth.substr(at + 1));
            if (colon == std::string_view::npos || colon == 0 || !hp)
                throw std::runtime_error(where + ": expected https://user:token@host[:port]");
            c.user = percent_decode(ui.substr(0, colon));
            c.token = percent_decode(ui.substr(colon + 1));
            c.host = hp->first;
            c.port = hp->second;
        } else {
            auto colon = line.find(':');
            if (colon == std::string_view::npos || colon == 0)
                throw std::runtime_error(where + ": expected user:token or https://user:token@host[:port]");
            if (have_default)
                throw std::runtime_error(where + ": a second user:token line; name the host of each with "
                                                 "https://user:token@host[:port]");
            have_default = true;
            c.user = std::string(line.substr(0, colon));
            c.token = std::string(line.substr(colon + 1));
        }
        if (c.token.empty()) throw std::runtime_error(where + ": the token is empty");
        out.push_back(std::move(c));
    }
    if (out.empty()) throw std::runtime_error(std::string(file) + ": no credentials in it (expected user:token)");
    return out;
}

const https_credential* find_credential(const std::vector<https_credential>& all, std::string_view host, unsigned port)
{
    const https_credential* any_port = nullptr;
    const https_credential* any_host = nullptr;
    std::string h = lower(host);
    for (const auto& c : all) {
        if (c.host.empty()) {
            if (!any_host) any_host = &c;
        } else if (c.host == h) {
            if (c.port == port) return &c;
            if (c.port == 0 && !any_port) any_port = &c;
        }
    }
    return any_port ? any_port : any_host;
}

std::string secret_file_problem(std::string_view file, unsigned mode, unsigned owner, unsigned self, bool owner_rule)
{
    char oct[8];
    std::snprintf(oct, sizeof oct, "%04o", mode & 07777);
    if ((mode & S_IFMT) != S_IFREG) return std::string(file) + " is not a regular file";
    if (mode & 077)
        return std::string(file) + " is accessible to group or others (mode " + oct + "); it must be 0600: chmod 600 " +
               std::string(file);
    if (owner_rule && owner != 0 && owner != self)
        return std::string(file) + " belongs to uid " + std::to_string(owner) +
               "; it must belong to root or the user stomp-git runs as (uid " + std::to_string(self) + ")";
    return {};
}

// ---- ssh host keys ------------------------------------------------------------------------------

namespace {

// OpenSSH's match_pattern: '*' any run, '?' one character.
bool glob(std::string_view s, std::string_view p)
{
    while (!p.empty()) {
        if (p.front() == '*') {
            p.remove_prefix(1);
            if (p.empty()) return true;
            for (std::size_t i = 0; i <= s.size(); ++i)
                if (glob(s.substr(i), p)) return true;
            return false;
        }
        if (s.empty() || (p.front() != '?' && p.front() != s.front())) return false;
        s.remove_prefix(1);
        p.remove_prefix(1);
    }
    return s.empty();
}

std::string normal_key_type(std::string_view t)
{
    if (t == "rsa-sha2-256" || t == "rsa-sha2-512") return "ssh-rsa";
    return std::string(t);
}

} // namespace

// Strict (bus/crypto.hpp): the standard alphabet only, padding optional (known_hosts files carry
// both forms).
std::optional<std::string> base64_decode(std::string_view in) { return bus::crypto::base64_decode(in); }

std::string ssh_key_type(std::string_view blob)
{
    if (blob.size() < 4) return {};
    std::uint32_t n = static_cast<std::uint32_t>(static_cast<unsigned char>(blob[0])) << 24 |
                      static_cast<std::uint32_t>(static_cast<unsigned char>(blob[1])) << 16 |
                      static_cast<std::uint32_t>(static_cast<unsigned char>(blob[2])) << 8 |
                      static_cast<std::uint32_t>(static_cast<unsigned char>(blob[3]));
    if (n == 0 || n > 64 || n > blob.size() - 4) return {};
    std::string t(blob.substr(4, n));
    for (char ch : t)
        if (!std::isgraph(static_cast<unsigned char>(ch))) return {};
    return t;
}

std::string sha256_fingerprint(std::string_view blob)
{
    const auto d = bus::crypto::sha256(blob);
    return "SHA256:" + bus::crypto::base64_encode({reinterpret_cast<const char*>(d.data()), d.size()}, false);
}

std::string known_hosts_name(std::string_view host, unsigned port)
{
    std::string h = lower(host);
    if (port == 0 || port == 22) return h;
    return "[" + h + "]:" + std::to_string(port);
}

bool known_hosts_field_matches(std::string_view field, std::string_view name)
{
    std::string n = lower(name);
    if (field.starts_with("|1|")) {
        auto rest = field.substr(3);
        auto bar = rest.find('|');
        if (bar == std::string_view::npos) return false;
        auto salt = base64_decode(rest.substr(0, bar));
        auto hash = base64_decode(rest.substr(bar + 1));
        if (!salt || !hash || hash->size() != 20) return false;
        const auto md = bus::crypto::hmac_sha1(*salt, n);
        return bus::crypto::equal_constant_time({reinterpret_cast<const char*>(md.data()), md.size()}, *hash);
    }
    bool matched = false;
    while (!field.empty()) {
        auto comma = field.find(',');
        auto pat = field.substr(0, comma);
        field = comma == std::string_view::npos ? std::string_view() : field.substr(comma + 1);
        bool negate = pat.starts_with('!');
        if (negate) pat.remove_prefix(1);
        if (pat.empty() || !glob(n, lower(pat))) continue;
        if (negate) return false;  // a negated match overrides any positive one
        matched = true;
    }
    return matched;
}

host_key_verdict check_known_hosts(std::string_view text, std::string_view file, std::string_view host, unsigned port,
                                   std::string_view key)
{
    const std::string name = known_hosts_name(host, port);
    const std::string type = ssh_key_type(key);
    const std::string fp = sha256_fingerprint(key);
    const std::string offered = (type.empty() ? std::string("a") : type) + " key " + fp;
    std::size_t lineno = 0, match_line = 0, same_type_line = 0, revoked_line = 0;
    std::string same_type;
    std::set<std::string> other_types;
    bool cert_authority = false;
    while (!text.empty()) {
        auto nl = text.find('\n');
        auto line = trim(text.substr(0, nl));
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        ++lineno;
        if (line.empty() || line.front() == '#') continue;
        std::vector<std::string_view> f;
        while (!line.empty() && f.size() < 4) {
            auto sp = line.find_first_of(" \t");
            f.push_back(line.substr(0, sp));
            line = sp == std::string_view::npos ? std::string_view() : trim(line.substr(sp));
        }
        std::string_view marker;
        if (!f.empty() && f.front().starts_with('@')) {
            marker = f.front();
            f.erase(f.begin());
            if (marker != "@revoked" && marker != "@cert-authority") continue;  // unknown marker: as OpenSSH, skip
        }
        if (f.size() < 3 || !known_hosts_field_matches(f[0], name)) continue;
        if (marker == "@cert-authority") {
            cert_authority = true;
            continue;
        }
        auto blob = base64_decode(f[2]);
        if (!blob) continue;  // a malformed line is ignored, as OpenSSH does
        std::string line_type = normal_key_type(f[1]);
        bool same_key = *blob == key;
        if (marker == "@revoked") {
            if (same_key && !revoked_line) revoked_line = lineno;
            continue;
        }
        if (same_key && line_type == normal_key_type(type)) {
            if (!match_line) match_line = lineno;
        } else if (line_type == normal_key_type(type)) {
            if (!same_type_line) {
                same_type_line = lineno;
                same_type = std::string(f[1]);
            }
        } else {
            other_types.insert(std::string(f[1]));
        }
    }
    const std::string where = std::string(file);
    host_key_verdict v;
    if (revoked_line) {
        v.status = host_key_status::revoked;
        v.message = "host key verification failed for " + name + ": the server offered " + offered +
                    ", which " + where + ":" + std::to_string(revoked_line) + " marks @revoked; refusing to connect";
    } else if (match_line) {
        v.status = host_key_status::match;
    } else if (same_type_line) {
        v.status = host_key_status::mismatch;
        v.message = "REMOTE HOST IDENTIFICATION HAS CHANGED for " + name + ": " + where + ":" +
                    std::to_string(same_type_line) + " expects a different " + same_type +
                    " key, but the server offered " + offered +
                    ". Someone could be intercepting the connection (man-in-the-middle), or the host key was "
                    "replaced; refusing to fetch. If the new key is expected, replace line " +
                    std::to_string(same_type_line) + " of " + where;
    } else if (!other_types.empty()) {
        std::string known;
        for (const auto& t : other_types) known += (known.empty() ? "" : ", ") + t;
        v.status = host_key_status::other_type;
        v.message = "host key verification failed for " + name + ": " + where + " knows it only with " + known +
                    " key(s), but the server offered " + offered + "; add the host's " +
                    (type.empty() ? std::string("offered") : type) + " key to " + where +
                    " after checking its fingerprint";
    } else if (cert_authority) {
        v.status = host_key_status::cert_authority_only;
        v.message = "host key verification failed for " + name + ": " + where +
                    " names it only in @cert-authority lines, and stomp-git (libgit2) cannot check host certificates; "
                    "add the host's plain key (offered: " + offered + ")";
    } else {
        v.status = host_key_status::unknown;
        v.message = "host key verification failed: " + name + " is not in " + where + " (the server offered " +
                    offered + "); stomp-git never trusts a host on first use: add its key to " + where +
                    " (e.g. ssh-keyscan" + (port && port != 22 ? " -p " + std::to_string(port) : std::string()) + " " +
                    lower(host) + ", after checking the fingerprint)";
    }
    return v;
}

std::string known_hosts_for(std::string_view text, std::string_view host, unsigned port)
{
    const std::string name = known_hosts_name(host, port);
    std::string out;
    while (!text.empty()) {
        auto nl = text.find('\n');
        auto line = trim(text.substr(0, nl));
        text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
        if (line.empty() || line.front() == '#' || line.front() == '@') continue;
        std::string_view f[3];
        int n = 0;
        while (!line.empty() && n < 3) {
            auto sp = line.find_first_of(" \t");
            f[n++] = line.substr(0, sp);
            line = sp == std::string_view::npos ? std::string_view() : trim(line.substr(sp));
        }
        if (n < 3 || !known_hosts_field_matches(f[0], name) || !base64_decode(f[2])) continue;
        out += name + " " + std::string(f[1]) + " " + std::string(f[2]) + "\n";
    }
    return out;
}

// ---- secrets, read before the worker drops privileges --------------------------------------------

namespace {

// Reads a small file that must not be accessible to others; "" error = ok.
std::string read_secret(const std::string& file, bool owner_rule, std::string& out)
{
    int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    if (fd < 0) return "cannot open " + file + ": " + std::strerror(errno);
    struct fd_closer {
        int fd;
        ~fd_closer() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) return "cannot stat " + file + ": " + std::strerror(errno);
    if (auto why = secret_file_problem(file, st.st_mode, st.st_uid, ::geteuid(), owner_rule); !why.empty()) return why;
    if (st.st_size > 1024 * 1024) return file + " is larger than 1 MiB";
    char buf[8192];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return "cannot read " + file + ": " + std::strerror(errno);
        if (n == 0) break;
        out.append(buf, static_cast<std::size_t>(n));
        if (out.size() > 1024 * 1024) return file + " is larger than 1 MiB";
    }
    return {};
}

} // namespace

credentials load_credentials(const config& cfg)
{
    credentials c;
    c.ssh_key = cfg.ssh_key;
    c.known_hosts = cfg.known_hosts;
    c.credentials_file = cfg.credentials_file;
    c.https_ca_file = cfg.https_ca_file;
    if (!cfg.ssh_key.empty()) {
        if (auto why = read_secret(cfg.ssh_key, false, c.ssh_key_data); !why.empty())
            throw std::runtime_error("ssh-key: " + why);
    }
    if (!cfg.credentials_file.empty()) {
        std::string text;
        if (auto why = read_secret(cfg.credentials_file, true, text); !why.empty())
            throw std::runtime_error("credentials-file: " + why);
        c.https = parse_credentials(text, cfg.credentials_file);
    }
    if (!cfg.known_hosts.empty()) {
        // Public data, read now so the repository users need no access to it; a failure only
        // matters to ssh remotes, so it is reported when one is reached.
        std::ifstream in(cfg.known_hosts, std::ios::binary);
        if (in) {
            c.known_hosts_text = std::string(std::istreambuf_iterator<char>(in), {});
        } else {
            c.known_hosts_error = "cannot read known-hosts " + cfg.known_hosts + ": " + std::strerror(errno);
        }
    }
    return c;
}

// ---- transport callbacks ----------------------------------------------------------------------

namespace {

std::string current_user(std::string* home = nullptr)
{
    struct passwd* pw = ::getpwuid(::geteuid());
    if (!pw) return "uid " + std::to_string(::geteuid());
    if (home) *home = pw->pw_dir;
    return pw->pw_name;
}

// Everything the callbacks of one fetch share; `problem` holds our own explanation of a refusal,
// which is clearer than libgit2's.
struct transport {
    const credentials* creds = nullptr;
    std::optional<remote_url> url;
    std::string problem;
    std::string kh_file;                 ///< the known_hosts file ssh host keys are checked against
    std::optional<std::string> kh_text;  ///< its contents
    std::string kh_error;                ///< why there are none
    int ssh_key_tries = 0;
    int https_tries = 0;
    const https_credential* https_used = nullptr;
    bool tls_untrusted = false;

    int fail(int code, std::string why)
    {
        problem = std::move(why);
        git_error_set_str(GIT_ERROR_NET, problem.c_str());
        return code;
    }
};

int certificate_cb(git_cert* cert, int valid, const char* host, void* payload)
{
    auto* t = static_cast<transport*>(payload);
    if (cert->cert_type != GIT_CERT_HOSTKEY_LIBSSH2) {
        // TLS: libgit2's own verification against the CA bundle decides.
        if (!valid) t->tls_untrusted = true;
        return GIT_PASSTHROUGH;
    }
    // SSH: we decide, never GIT_PASSTHROUGH. (libgit2 1.5.0 would then trust any host; 1.5.1
    // falls back to $HOME/.ssh/known_hosts without hashed entries, markers or our messages.)
    const auto* hk = reinterpret_cast<const git_cert_hostkey*>(cert);
    std::string h = host ? host : (t->url ? t->url->host : "");
    unsigned port = t->url ? t->url->port : 22;
    if (!(hk->type & GIT_CERT_SSH_RAW) || !hk->hostkey || hk->hostkey_len == 0)
        return t->fail(GIT_ECERTIFICATE, "host key verification failed for " + known_hosts_name(h, port) +
                                             ": libgit2 did not pass the server's raw host key");
    if (!t->kh_text)
        return t->fail(GIT_ECERTIFICATE,
                       "host key verification failed for " + known_hosts_name(h, port) + ": " + t->kh_error);
    auto v = check_known_hosts(*t->kh_text, t->kh_file, h, port, std::string_view(hk->hostkey, hk->hostkey_len));
    if (v.status == host_key_status::match) return 0;
    return t->fail(GIT_ECERTIFICATE, v.message);
}

// The configured known_hosts, or the fetching user's ~/.ssh/known_hosts.
void resolve_known_hosts(transport& t)
{
    if (!t.creds->known_hosts.empty()) {
        t.kh_file = t.creds->known_hosts;
        t.kh_text = t.creds->known_hosts_text;
        t.kh_error = t.creds->known_hosts_error;
        return;
    }
    std::string home;
    std::string user = current_user(&home);
    t.kh_file = (std::filesystem::path(home) / ".ssh" / "known_hosts").string();
    std::ifstream in(t.kh_file, std::ios::binary);
    if (in) {
        t.kh_text = std::string(std::istreambuf_iterator<char>(in), {});
    } else {
        t.kh_error = "no known-hosts is configured and " + t.kh_file + " (user " + user + ") cannot be read (" +
                     std::strerror(errno) +
                     "); stomp-git never trusts an ssh host on first use: set known-hosts or create that file";
    }
}

// libgit2 1.5.1 also loads ~/.ssh/known_hosts itself, from the home directory it finds in $HOME
// when it is initialised: it picks the host key type libssh2 asks for from it, and fails the whole
// fetch when libssh2 cannot parse it (@cert-authority or @revoked lines, say). So for an ssh fetch
// libgit2 runs with HOME set to a private directory whose .ssh/known_hosts holds just the checked
// file's lines for this host: the key type negotiated is one that file knows (as OpenSSH does),
// and our callback still decides. ~/.gitconfig and ~/.config are linked in, so git's global
// configuration still applies.
struct private_ssh_home {
    std::filesystem::path dir;
    std::optional<std::string> old_home;
    explicit private_ssh_home(const transport& t)
    {
        if (!t.url || !t.kh_text) return;
        char tmpl[] = "/tmp/stomp-git-ssh.XXXXXX";
        if (!::mkdtemp(tmpl)) return;  // then libgit2 reads the real one: only the key type preference differs
        dir = tmpl;
        namespace fs = std::filesystem;
        std::error_code ec;
        fs::create_directory(dir / ".ssh", ec);
        std::ofstream(dir / ".ssh" / "known_hosts") << known_hosts_for(*t.kh_text, t.url->host, t.url->port);
        std::string home;
        current_user(&home);
        for (const char* keep : {".gitconfig", ".config"})
            if (fs::exists(fs::path(home) / keep, ec)) fs::create_symlink(fs::path(home) / keep, dir / keep, ec);
        if (const char* h = ::getenv("HOME")) old_home = h;
        ::setenv("HOME", dir.c_str(), 1);
    }
    ~private_ssh_home()
    {
        if (dir.empty()) return;
        if (old_home)
            ::setenv("HOME", old_home->c_str(), 1);
        else
            ::unsetenv("HOME");
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    private_ssh_home(const private_ssh_home&) = delete;
    private_ssh_home& operator=(const private_ssh_home&) = delete;
};

// The origin's URL, read in a libgit2 session of its own (libgit2 reads $HOME when initialised).
std::optional<remote_url> peek_origin(const std::filesystem::path& path)
{
    git_libgit2_init();
    git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
    std::optional<remote_url> u;
    {
        repo_h repo;
        remote_h remote;
        if (git_repository_open(repo.out(), path.c_str()) == 0 &&
            git_remote_lookup(remote.out(), repo.get(), "origin") == 0)
            if (const char* url = git_remote_url(remote.get())) u = parse_remote_url(url);
    }
    git_libgit2_shutdown();
    return u;
}

int credentials_cb(git_credential** out, const char* url, const char* user, unsigned int allowed, void* payload)
{
    auto* t = static_cast<transport*>(payload);
    const credentials& c = *t->creds;
    std::string where = redact(url ? url : "");
    if (allowed & (GIT_CREDENTIAL_SSH_KEY | GIT_CREDENTIAL_SSH_MEMORY)) {
        std::string login = user && *user ? user : current_user();
        if (c.ssh_key.empty())
            return t->fail(GIT_EAUTH, where + " asks for an ssh key and no ssh-key is configured");
        if (t->ssh_key_tries++ > 0)
            return t->fail(GIT_EAUTH, where + " refused the ssh key " + c.ssh_key + " for user " + login);
        if ((allowed & GIT_CREDENTIAL_SSH_MEMORY) && !c.ssh_key_data.empty())
            return git_credential_ssh_key_memory_new(out, login.c_str(), nullptr, c.ssh_key_data.c_str(), nullptr);
        std::string pub = c.ssh_key + ".pub";
        return git_credential_ssh_key_new(out, login.c_str(), std::filesystem::exists(pub) ? pub.c_str() : nullptr,
                                          c.ssh_key.c_str(), nullptr);
    }
    if (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) {
        auto u = parse_remote_url(url ? url : "");
        if (u && u->scheme != "https")
            return t->fail(GIT_EAUTH, where + " asks for credentials over " + u->scheme +
                                          "; stomp-git sends tokens over https only");
        const https_credential* hc = u ? find_credential(c.https, u->host, u->port) : nullptr;
        if (!hc)
            return t->fail(GIT_EAUTH, where + " asks for credentials and " +
                                          (c.credentials_file.empty() ? std::string("no credentials-file is configured")
                                                                      : c.credentials_file + " has none for " +
                                                                            (u ? u->host : std::string("it"))));
        if (t->https_tries++ > 0)
            return t->fail(GIT_EAUTH, "authentication failed: " + where + " refused user '" + hc->user +
                                          "' with the token from " + c.credentials_file);
        t->https_used = hc;
        return git_credential_userpass_plaintext_new(out, hc->user.c_str(), hc->token.c_str());
    }
    if (allowed & GIT_CREDENTIAL_USERNAME) {
        std::string login = user && *user ? user : current_user();
        return git_credential_username_new(out, login.c_str());
    }
    return t->fail(GIT_EAUTH, where + " asks for a kind of credentials stomp-git does not have");
}

} // namespace

std::string environment_name(std::string_view branch)
{
    // r10k's rule: keep the name (case included); map only what an environment directory cannot
    // hold to '_'. Distinct branches that still meet are refused by environment_plan().
    std::string out;
    for (char ch : branch) {
        bool word = std::isalnum(static_cast<unsigned char>(ch)) || ch == '_';
        out.push_back(word ? ch : '_');
    }
    return out;
}

environment_plan plan_environments(const std::vector<std::string>& branches, std::size_t max_name)
{
    environment_plan plan;
    std::map<std::string, std::vector<std::string>> by_env;
    for (const auto& b : branches) by_env[environment_name(b)].push_back(b);
    for (auto& [env, names] : by_env) {
        if (env.size() > max_name) {
            for (const auto& b : names)
                plan.refused.push_back({b, env, "the environment name is longer than " + std::to_string(max_name) +
                                                    " characters"});
            continue;
        }
        if (names.size() > 1) {
            std::string all;
            for (const auto& b : names) all += (all.empty() ? "'" : ", '") + b + "'";
            for (const auto& b : names)
                plan.refused.push_back({b, env, "branches " + all + " would all publish to environment '" + env +
                                                    "'; none is published until only one remains"});
            continue;
        }
        plan.publish.push_back({names.front(), env});
    }
    return plan;
}

namespace {

outcome fetch_and_publish_unredacted(const repo_entry& e, transport& t)
{
    const credentials& creds = *t.creds;
    outcome o;
    git_libgit2_init();
    // The paths come from the administrator's config and the worker already runs as the
    // repository's owner; a local origin owned by someone else (the central bare repository)
    // must still be fetchable.
    git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
    struct shutdown {
        ~shutdown() { git_libgit2_shutdown(); }
    } at_exit;
    repo_h repo;
    if (git_repository_open(repo.out(), e.path.c_str()) != 0) {
        o.error = last_error("opening " + e.path.string());
        return o;
    }
    o.ref = "refs/remotes/origin/" + e.branch;
    o.old_rev = rev_of(repo.get(), o.ref);

    const auto before = ref_snapshot(repo.get());
    remote_h remote;
    if (git_remote_lookup(remote.out(), repo.get(), "origin") != 0) {
        o.error = last_error("remote 'origin' of " + e.path.string());
        return o;
    }
    if (!creds.https_ca_file.empty() &&
        git_libgit2_opts(GIT_OPT_SET_SSL_CERT_LOCATIONS, creds.https_ca_file.c_str(), nullptr) != 0) {
        o.error = last_error("https-ca-file " + creds.https_ca_file);
        return o;
    }
    const char* url = git_remote_url(remote.get());
    git_fetch_options fo;
    git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
    fo.prune = GIT_FETCH_PRUNE;
    fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_ALL;
    fo.callbacks.credentials = credentials_cb;
    fo.callbacks.certificate_check = certificate_cb;
    fo.callbacks.payload = &t;
    if (git_remote_fetch(remote.get(), nullptr, &fo, "stomp-git fetch") != 0) {
        // Our own explanation when a callback refused; no token or URL userinfo either way.
        std::string what = "fetching " + e.name + " from " + (url ? url : "origin");
        o.error = t.problem.empty() ? last_error(what) : what + ": " + t.problem;
        if (t.tls_untrusted)
            o.error += creds.https_ca_file.empty()
                           ? " (the server's TLS certificate is not trusted: set https-ca-file to the CA that "
                             "signed it)"
                           : " (the server's TLS certificate is not signed by a CA in " + creds.https_ca_file + ")";
        return o;
    }
    o.new_rev = rev_of(repo.get(), o.ref);
    o.changed = ref_snapshot(repo.get()) != before;

    switch (e.how) {
    case mode::normal: break;
    case mode::trusting: {
        commit_h c;
        if (!lookup_commit(repo.get(), o.ref, c, o.error) || !publish_dir(repo.get(), c.get(), e.target, o.error))
            return o;
        o.detail = "published origin/" + e.branch + " to " + e.target.string();
        break;
    }
    case mode::dangerous: {
        // The clone's own checkout follows origin/<branch>, on its local branch (the original
        // detached HEAD and never moved the branch).
        commit_h c;
        if (!lookup_commit(repo.get(), o.ref, c, o.error)) return o;
        ref_h branch;
        std::string local = "refs/heads/" + e.branch;
        if (git_reference_create(branch.out(), repo.get(), local.c_str(), git_commit_id(c.get()), 1,
                                 "stomp-git: follow origin") != 0 ||
            git_repository_set_head(repo.get(), local.c_str()) != 0 ||
            git_reset(repo.get(), reinterpret_cast<git_object*>(c.get()), GIT_RESET_HARD, nullptr) != 0) {
            o.error = last_error("updating the checkout of " + e.name);
            return o;
        }
        o.detail = "checked out " + e.branch + " in " + e.path.string();
        break;
    }
    case mode::puppetmaster: {
        // Every remote branch becomes an environment directory; deleted branches' go away. Names
        // map injectively (r10k): two branches that would share a directory are both refused and
        // reported, and one bad branch never stops the others.
        git_branch_iterator* it = nullptr;
        if (git_branch_iterator_new(&it, repo.get(), GIT_BRANCH_REMOTE) != 0) {
            o.error = last_error("listing branches");
            return o;
        }
        std::vector<std::string> branches;
        std::vector<std::string> skipped;
        git_reference* ref = nullptr;
        git_branch_t type;
        const std::string prefix = "refs/remotes/origin/";
        while (git_branch_next(&ref, &type, it) == 0) {
            std::string name = git_reference_name(ref);
            git_reference_free(ref);
            if (!name.starts_with(prefix) || name == prefix + "HEAD") continue;
            std::string branch = name.substr(prefix.size());
            if (!bus::valid_ref_name("refs/heads/" + branch)) {  // never a path from an unsafe name
                skipped.push_back("'" + branch + "': not a safe branch name");
                continue;
            }
            branches.push_back(branch);
        }
        git_branch_iterator_free(it);
        auto plan = plan_environments(branches);
        std::set<std::string> live;
        for (const auto& r : plan.refused) {
            live.insert(r.environment);  // refused: left as it is, not removed as stale
            skipped.push_back("'" + r.branch + "': " + r.reason);
        }
        std::error_code ec;
        fs::create_directories(e.target, ec);
        int published = 0;
        for (const auto& [branch, env] : plan.publish) {
            live.insert(env);
            commit_h c;
            std::string err;
            if (!lookup_commit(repo.get(), prefix + branch, c, err) ||
                !publish_dir(repo.get(), c.get(), e.target / env, err, branch + "\n")) {
                skipped.push_back("'" + branch + "': " + err);
                continue;
            }
            ++published;
        }
        // Stale environments: directories (never symlinks) carrying our marker as a plain file.
        for (auto& d : fs::directory_iterator(e.target, ec)) {
            std::string n = d.path().filename().string();
            if (n.starts_with(".deploykit-")) continue;
            struct stat st{};
            if (::lstat(d.path().c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
            if (::lstat((d.path() / ".deploykit-environment").c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
            if (!live.count(n)) fs::remove_all(d.path(), ec);
        }
        o.detail = "published " + std::to_string(published) + " environment(s) under " + e.target.string();
        if (!skipped.empty()) {
            o.detail += "; skipped " + std::to_string(skipped.size()) + " branch(es):";
            for (const auto& s : skipped) o.detail += " " + s + ";";
        }
        break;
    }
    case mode::atomic: {
        // A fresh release directory, then one rename of a symlink: readers see old or new.
        commit_h c;
        if (!lookup_commit(repo.get(), o.ref, c, o.error)) return o;
        fs::path releases = e.target / "releases";
        std::string id = o.new_rev.substr(0, 12) + "-" + stamp();
        fs::path rel = releases / id;
        std::error_code ec;
        fs::create_directories(rel, ec);
        if (ec) {
            o.error = rel.string() + ": " + ec.message();
            return o;
        }
        if (!export_tree(repo.get(), c.get(), rel, o.error)) {
            fs::remove_all(rel, ec);
            return o;
        }
        fs::path link = e.target / "current";
        fs::path tmp = e.target / (".current-" + id);
        fs::create_directory_symlink(fs::path("releases") / id, tmp, ec);
        if (!ec) fs::rename(tmp, link, ec);
        if (ec) {
            o.error = link.string() + ": " + ec.message();
            return o;
        }
        std::vector<fs::path> all;
        for (auto& d : fs::directory_iterator(releases, ec)) all.push_back(d.path());
        std::sort(all.begin(), all.end(), [](auto& a, auto& b) {
            auto ta = a.filename().string(), tb = b.filename().string();
            return ta.substr(ta.find('-') + 1) < tb.substr(tb.find('-') + 1);
        });
        while (all.size() > e.keep) {
            if (all.front().filename() != id) fs::remove_all(all.front(), ec);
            all.erase(all.begin());
        }
        o.detail = "release " + id + " is current in " + e.target.string();
        break;
    }
    }
    o.ok = true;
    return o;
}

} // namespace

outcome fetch_and_publish(const repo_entry& e, const credentials& creds)
{
    transport t;
    t.creds = &creds;
    t.url = peek_origin(e.path);
    std::optional<private_ssh_home> ssh_home;
    if (t.url && ssh_scheme(t.url->scheme)) {
        resolve_known_hosts(t);
        ssh_home.emplace(t);
    }
    auto o = fetch_and_publish_unredacted(e, t);
    // No token or URL userinfo in anything that is logged or reported.
    std::vector<std::string> secrets;
    for (const auto& h : creds.https) secrets.push_back(h.token);
    o.error = redact(std::move(o.error), secrets);
    o.detail = redact(std::move(o.detail), secrets);
    return o;
}

} // namespace stomp_git
