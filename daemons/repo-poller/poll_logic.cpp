#include "poll_logic.hpp"

#include "bus/crypto.hpp"

#include <lzma.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include <algorithm>
#include <set>
#include <cctype>
#include <fnmatch.h>
#include <memory>

namespace repo_poller {

namespace {

constexpr std::string_view begin_signed = "-----BEGIN PGP SIGNED MESSAGE-----";
constexpr std::string_view begin_sig = "-----BEGIN PGP SIGNATURE-----";
constexpr std::string_view end_sig = "-----END PGP SIGNATURE-----";

// Splits off the next line (without its '\n' and a trailing '\r'); false at the end.
bool next_line(std::string_view& in, std::string_view& line)
{
    if (in.empty()) return false;
    auto nl = in.find('\n');
    line = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return true;
}

std::string_view trim(std::string_view s)
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
    return s;
}

std::vector<std::string> words(std::string_view s)
{
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
        auto j = i;
        while (j < s.size() && s[j] != ' ' && s[j] != '\t') ++j;
        if (j > i) out.emplace_back(s.substr(i, j - i));
        i = j;
    }
    return out;
}

bool hex64(std::string_view s)
{
    return s.size() == 64 && std::all_of(s.begin(), s.end(), [](char c) {
               return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
           });
}

std::string lower(std::string s)
{
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

} // namespace

bool is_clearsigned(std::string_view in) noexcept
{
    while (!in.empty() && (in.front() == '\n' || in.front() == '\r' || in.front() == ' ' || in.front() == '\t'))
        in.remove_prefix(1);
    return in.starts_with(begin_signed);
}

std::string strip_clearsign(std::string_view in)
{
    if (!is_clearsigned(in)) return std::string(in);
    std::string_view line;
    // Leading blank lines, then the header line.
    while (next_line(in, line) && trim(line).empty()) {
    }
    if (trim(line) != begin_signed) throw parse_error("InRelease: malformed clearsigned header");
    // Armor headers ("Hash: SHA512") up to the blank line.
    bool blank = false;
    while (next_line(in, line)) {
        if (trim(line).empty()) {
            blank = true;
            break;
        }
        if (line.find(": ") == std::string_view::npos) throw parse_error("InRelease: malformed armor header");
    }
    if (!blank) throw parse_error("InRelease: no blank line after the clearsigned header");
    std::string text;
    bool sig = false;
    while (next_line(in, line)) {
        if (line == begin_sig) {
            sig = true;
            break;
        }
        if (line.starts_with("- ")) line.remove_prefix(2);
        else if (line.starts_with("-")) throw parse_error("InRelease: unescaped '-' line in the signed text");
        text.append(line).push_back('\n');
    }
    if (!sig) throw parse_error("InRelease: no signature block");
    bool end = false;
    while (next_line(in, line))
        if (line == end_sig) {
            end = true;
            break;
        }
    if (!end) throw parse_error("InRelease: signature block not terminated");
    while (next_line(in, line))
        if (!trim(line).empty()) throw parse_error("InRelease: data after the signature");
    return text;
}

release_info parse_release(std::string_view text)
{
    release_info r;
    std::string_view line;
    std::string field;
    bool any = false;
    auto set = [&](std::string_view key, std::string_view value) {
        auto v = std::string(trim(value));
        if (key == "Origin") r.origin = v;
        else if (key == "Label") r.label = v;
        else if (key == "Suite") r.suite = v;
        else if (key == "Codename") r.codename = v;
        else if (key == "Date") r.date = v;
        else if (key == "Components") r.components = words(v);
        else if (key == "Architectures") r.architectures = words(v);
    };
    bool has_sha256 = false;
    while (next_line(text, line)) {
        if (trim(line).empty()) {
            if (any) break;  // the first paragraph only
            continue;
        }
        any = true;
        if (line.front() == ' ' || line.front() == '\t') {
            if (field.empty()) throw parse_error("Release: continuation line before any field");
            if (field != "SHA256") continue;
            auto w = words(line);
            if (w.size() != 3 || !hex64(w[0]))
                throw parse_error("Release: malformed SHA256 line '" + std::string(trim(line)).substr(0, 120) + "'");
            index_file f;
            f.sha256 = lower(w[0]);
            try {
                std::size_t used = 0;
                f.size = std::stoull(w[1], &used);
                if (used != w[1].size()) throw std::invalid_argument("size");
            } catch (const std::exception&) {
                throw parse_error("Release: malformed size in SHA256 line for " + w[2]);
            }
            f.path = w[2];
            r.sha256[f.path] = std::move(f);
            continue;
        }
        if (line.starts_with("#")) continue;
        auto colon = line.find(':');
        if (colon == std::string_view::npos || colon == 0)
            throw parse_error("Release: malformed line '" + std::string(line).substr(0, 120) + "'");
        field = std::string(line.substr(0, colon));
        if (field == "SHA256") has_sha256 = true;
        set(field, line.substr(colon + 1));
    }
    if (!any) throw parse_error("Release: empty");
    if (!has_sha256) throw parse_error("Release: no SHA256 field (MD5Sum/SHA1-only repositories are refused)");
    return r;
}

packages_parse parse_packages(std::string_view text, std::size_t max_packages)
{
    packages_parse out;
    binary_package cur;
    bool in_stanza = false;
    auto flush = [&] {
        if (!in_stanza) return;
        in_stanza = false;
        if (!valid_package_name(cur.name) || !valid_version(cur.version)) {
            ++out.invalid;
        } else {
            if (out.packages.size() >= max_packages)
                throw parse_error("Packages: more than " + std::to_string(max_packages) + " packages");
            out.packages.push_back(std::move(cur));
        }
        cur = {};
    };
    std::string_view line;
    while (next_line(text, line)) {
        if (trim(line).empty()) {
            flush();
            continue;
        }
        in_stanza = true;
        if (line.front() == ' ' || line.front() == '\t' || line.front() == '#') continue;
        auto colon = line.find(':');
        if (colon == std::string_view::npos) continue;  // tolerated, as apt does for unknown junk
        auto key = line.substr(0, colon);
        auto value = trim(line.substr(colon + 1));
        if (key == "Package") cur.name = value;
        else if (key == "Version") cur.version = value;
        else if (key == "Architecture") cur.architecture = value;
        else if (key == "Filename") cur.filename = value;
    }
    flush();
    return out;
}

std::string sha256_hex(std::string_view data)
{
    // Nettle's (bus/crypto.hpp), not OpenSSL's: the state files' names are hashed at start, and
    // an idle repo-poller maps no libcrypto for it.
    return bus::crypto::sha256_hex(data);
}

std::optional<chosen_index> choose_index(const release_info& r, std::string_view component, std::string_view arch)
{
    std::string base = std::string(component) + "/binary-" + std::string(arch) + "/Packages";
    for (auto [suffix, c] : {std::pair{".xz", compression::xz}, std::pair{".gz", compression::gzip},
                             std::pair{"", compression::none}}) {
        auto it = r.sha256.find(base + suffix);
        if (it != r.sha256.end()) return chosen_index{it->second, c};
    }
    return std::nullopt;
}

std::string decompress(std::string_view data, compression c, std::size_t max_out)
{
    if (c == compression::none) {
        if (data.size() > max_out) throw parse_error("index larger than " + std::to_string(max_out) + " bytes");
        return std::string(data);
    }
    std::string out;
    char buf[65536];
    if (c == compression::gzip) {
        z_stream z{};
        if (inflateInit2(&z, 15 + 32) != Z_OK) throw parse_error("gzip: cannot initialise zlib");
        std::unique_ptr<z_stream, void (*)(z_stream*)> guard(&z, [](z_stream* p) { inflateEnd(p); });
        z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
        z.avail_in = static_cast<uInt>(data.size());
        if (data.size() > 0xffffffffu) throw parse_error("gzip: input too large");
        for (;;) {
            z.next_out = reinterpret_cast<Bytef*>(buf);
            z.avail_out = sizeof buf;
            int rc = inflate(&z, Z_NO_FLUSH);
            out.append(buf, sizeof buf - z.avail_out);
            if (out.size() > max_out) throw parse_error("index larger than " + std::to_string(max_out) + " bytes");
            if (rc == Z_STREAM_END) {
                if (z.avail_in == 0) break;
                if (inflateReset(&z) != Z_OK) throw parse_error("gzip: cannot continue with the next member");
                continue;  // concatenated members
            }
            if (rc == Z_BUF_ERROR && z.avail_in == 0) throw parse_error("gzip: truncated");
            if (rc != Z_OK) throw parse_error(std::string("gzip: ") + (z.msg ? z.msg : "corrupt data"));
        }
        return out;
    }
    lzma_stream s = LZMA_STREAM_INIT;
    if (lzma_stream_decoder(&s, 256u << 20, LZMA_CONCATENATED) != LZMA_OK) throw parse_error("xz: cannot initialise liblzma");
    std::unique_ptr<lzma_stream, void (*)(lzma_stream*)> guard(&s, [](lzma_stream* p) { lzma_end(p); });
    s.next_in = reinterpret_cast<const uint8_t*>(data.data());
    s.avail_in = data.size();
    for (;;) {
        s.next_out = reinterpret_cast<uint8_t*>(buf);
        s.avail_out = sizeof buf;
        auto rc = lzma_code(&s, s.avail_in == 0 ? LZMA_FINISH : LZMA_RUN);
        out.append(buf, sizeof buf - s.avail_out);
        if (out.size() > max_out) throw parse_error("index larger than " + std::to_string(max_out) + " bytes");
        if (rc == LZMA_STREAM_END) break;
        if (rc == LZMA_BUF_ERROR) throw parse_error("xz: truncated");
        if (rc != LZMA_OK) throw parse_error("xz: corrupt data (liblzma error " + std::to_string(static_cast<int>(rc)) + ")");
    }
    return out;
}

bool valid_package_name(std::string_view s) noexcept
{
    if (s.size() < 2 || s.size() > 200) return false;
    auto ok0 = [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); };
    if (!ok0(s[0])) return false;
    return std::all_of(s.begin(), s.end(), [&](char c) { return ok0(c) || c == '+' || c == '.' || c == '-'; });
}

bool valid_version(std::string_view s) noexcept
{
    if (s.empty() || s.size() > 200 || !(s[0] >= '0' && s[0] <= '9')) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '+' || c == '~' || c == ':' || c == '-';
    });
}

bool valid_dist_name(std::string_view s) noexcept
{
    if (s.empty() || s.size() > 100) return false;
    std::size_t start = 0;
    for (;;) {
        auto slash = s.find('/', start);
        auto seg = s.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
        if (seg.empty() || seg == "." || seg == "..") return false;
        for (char c : seg)
            if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '+' || c == '-')) return false;
        if (slash == std::string_view::npos) return true;
        start = slash + 1;
    }
}

bool name_matches(const std::vector<std::string>& patterns, std::string_view name)
{
    if (patterns.empty()) return true;
    std::string n(name);
    for (const auto& p : patterns)
        if (p == n || ::fnmatch(p.c_str(), n.c_str(), 0) == 0) return true;
    return false;
}

std::string serialize_state(const suite_state& s)
{
    nlohmann::json j;
    j["format"] = "repo-poller-state-1";
    j["etag"] = s.etag;
    j["last_modified"] = s.last_modified;
    j["release_sha256"] = s.release_sha256;
    j["baseline"] = s.baseline;
    j["interest"] = s.interest;
    j["indices"] = s.index_hashes;
    j["versions"] = s.versions;
    return j.dump(1) + "\n";
}

suite_state parse_state(std::string_view text)
{
    try {
        auto j = nlohmann::json::parse(text);
        if (!j.is_object() || j.value("format", "") != "repo-poller-state-1") throw parse_error("not a repo-poller state file");
        suite_state s;
        s.etag = j.at("etag").get<std::string>();
        s.last_modified = j.at("last_modified").get<std::string>();
        s.release_sha256 = j.at("release_sha256").get<std::string>();
        s.baseline = j.at("baseline").get<bool>();
        s.interest = j.value("interest", "");
        s.index_hashes = j.at("indices").get<std::map<std::string, std::string>>();
        s.versions = j.at("versions").get<std::map<std::string, std::string>>();
        return s;
    } catch (const nlohmann::json::exception& e) {
        throw parse_error(std::string("state file: ") + e.what());
    }
}

std::string state_file_name(std::string_view url, std::string_view suite)
{
    std::string key(url);
    key.push_back('\n');
    key.append(suite);
    return sha256_hex(key).substr(0, 32) + ".json";
}

std::vector<std::string> versions_to_order(const std::vector<binary_package>& pkgs, const std::vector<std::string>& patterns,
                                           const std::map<std::string, std::string>& versions, std::string_view component,
                                           std::string_view arch)
{
    std::vector<std::string> out;
    std::set<std::string_view> seen;
    auto add = [&](const std::string& v) {
        if (seen.insert(v).second) out.push_back(v);
    };
    for (const auto& p : pkgs)
        if (name_matches(patterns, p.name)) add(p.version);
    const std::string prefix = std::string(component) + "/" + std::string(arch) + "/";
    // A remembered string that is not a version (a state file edited by hand) is not sent: the
    // helper would refuse the whole run. apply_index then takes it as unknown (a change).
    for (auto it = versions.lower_bound(prefix); it != versions.end() && it->first.starts_with(prefix); ++it)
        if (valid_version(it->second)) add(it->second);
    return out;
}

std::map<std::string, binary_package> newest_of_interest(const std::vector<binary_package>& pkgs,
                                                         const std::vector<std::string>& patterns,
                                                         const version_order& order)
{
    std::map<std::string, binary_package> out;
    for (const auto& p : pkgs) {
        if (!name_matches(patterns, p.name)) continue;
        auto it = out.find(p.name);
        if (it == out.end()) out.emplace(p.name, p);
        else if (order.compare(p.version, it->second.version) > 0) it->second = p;
    }
    return out;
}

std::vector<change> apply_index(std::map<std::string, std::string>& versions, std::string_view component,
                                std::string_view arch, const std::map<std::string, binary_package>& current,
                                bool baseline, const version_order& order)
{
    const std::string prefix = std::string(component) + "/" + std::string(arch) + "/";
    std::map<std::string, std::string> old;
    for (auto it = versions.lower_bound(prefix); it != versions.end() && it->first.starts_with(prefix);) {
        old.emplace(it->first.substr(prefix.size()), it->second);
        it = versions.erase(it);
    }
    std::vector<change> out;
    for (const auto& [name, p] : current) {
        versions[prefix + name] = p.version;
        if (!baseline) continue;
        auto o = old.find(name);
        if (o != old.end() && (p.version == o->second || (order.knows(o->second) && order.compare(p.version, o->second) <= 0)))
            continue;
        auto file = p.filename;
        if (auto slash = file.rfind('/'); slash != std::string::npos) file.erase(0, slash + 1);
        out.push_back(change{std::string(component), std::string(arch), name, o == old.end() ? std::string() : o->second,
                             p.version, file});
    }
    return out;
}

std::chrono::milliseconds next_delay(const schedule& s, unsigned failures, double r)
{
    r = std::clamp(r, 0.0, 1.0);
    if (failures == 0)
        return s.interval + std::chrono::milliseconds(static_cast<std::int64_t>(static_cast<double>(s.jitter.count()) * r));
    auto d = s.retry_initial;
    for (unsigned i = 1; i < failures && d < s.retry_max; ++i) d *= 2;
    d = std::min(d, s.retry_max);
    auto half = d / 2;
    return half + std::chrono::milliseconds(static_cast<std::int64_t>(static_cast<double>((d - half).count()) * r));
}

std::string validator_to_keep(const std::string& etag, const std::string& last_modified, const std::string& date)
{
    if (etag.empty() && !last_modified.empty() && last_modified == date) return {};
    return last_modified;
}

std::string redact_url(std::string_view url)
{
    auto scheme = url.find("://");
    if (scheme == std::string_view::npos) return std::string(url);
    auto host_start = scheme + 3;
    auto path = url.find('/', host_start);
    auto at = url.rfind('@', path == std::string_view::npos ? url.size() : path);
    if (at == std::string_view::npos || at < host_start) return std::string(url);
    return std::string(url.substr(0, host_start)) + std::string(url.substr(at + 1));
}

} // namespace repo_poller
