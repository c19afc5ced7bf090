#include "bus/runtime/config_reader.hpp"
#include "bus/numeric.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fcntl.h>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

namespace bus::runtime {

namespace {

struct tracked_map {
    YAML::Node node;
    std::string path;
    std::set<std::string, std::less<>> known;
    bool any = false;
};

std::string alias_of(std::string_view key)
{
    std::string a(key);
    for (auto& c : a) {
        if (c == '-') c = '_';
        else if (c == '_') c = '-';
    }
    return a;
}

std::string describe(const YAML::Node& n)
{
    if (n.IsScalar()) return "'" + n.Scalar() + "'";
    if (n.IsSequence()) return "a list";
    if (n.IsMap()) return "a map";
    return "nothing";
}

} // namespace

struct reader_state {
    std::string file;
    YAML::Node root;
    notice_fn notice;
    std::vector<tracked_map> maps;

    std::size_t track(const YAML::Node& n, const std::string& path)
    {
        for (std::size_t i = 0; i < maps.size(); ++i)
            if (maps[i].node.is(n)) return i;
        maps.push_back(tracked_map{n, path, {}, false});
        return maps.size() - 1;
    }
    void note(const std::string& s) const
    {
        if (notice) notice(s);
    }
    std::string at(const YAML::Node& n) const { return file + ":" + std::to_string(n.Mark().line + 1) + ": "; }
};

// ---- section ----

section::section(std::shared_ptr<reader_state> st, std::shared_ptr<const YAML::Node> node, std::string path)
    : st_(std::move(st)), node_(std::move(node)), path_(std::move(path))
{
    id_ = st_->track(*node_, path_);
}

const YAML::Node& section::node() const { return *node_; }

std::string section::key_path(std::string_view key) const
{
    if (path_.empty()) return std::string(key);
    return path_ + "." + std::string(key);
}

namespace {
// The key node (for its line), if present.
std::optional<YAML::Node> key_node(const YAML::Node& map, std::string_view key)
{
    for (const auto& kv : map)
        if (kv.first.IsScalar() && kv.first.Scalar() == key) return kv.first;
    return std::nullopt;
}
} // namespace

std::string section::where(std::string_view key) const
{
    const YAML::Node& m = *node_;
    auto k = key_node(m, key);
    if (!k) k = key_node(m, alias_of(key));
    return st_->at(k ? *k : m) + key_path(key);
}

void section::fail(std::string_view key, std::string_view what) const
{
    throw config_error(where(key) + ": " + std::string(what));
}

std::shared_ptr<const YAML::Node> section::find(std::string_view key) const
{
    const YAML::Node& m = *node_;
    auto& known = st_->maps[id_].known;
    known.insert(std::string(key));
    auto alt = alias_of(key);
    known.insert(alt);
    auto a = m[std::string(key)];
    std::optional<YAML::Node> b;
    if (alt != key)
        if (auto n = m[alt]) b = n;
    if (a && b)
        throw config_error(where(key) + ": given twice (as `" + std::string(key) + "` and `" + alt + "`); keep one");
    if (a) return std::make_shared<const YAML::Node>(a);
    if (b) return std::make_shared<const YAML::Node>(*b);
    return nullptr;
}

bool section::has(std::string_view key) const { return find(key) != nullptr; }

section::kind section::kind_of(std::string_view key) const
{
    auto v = find(key);
    if (!v) return kind::absent;
    if (v->IsNull()) return kind::null;
    if (v->IsScalar()) return kind::scalar;
    if (v->IsSequence()) return kind::list;
    return kind::map;
}

std::vector<std::string> section::keys() const
{
    std::vector<std::string> out;
    for (const auto& kv : *node_)
        if (kv.first.IsScalar()) out.push_back(kv.first.Scalar());
    return out;
}

std::optional<std::string> section::str(std::string_view key) const
{
    auto v = find(key);
    if (!v || v->IsNull()) return std::nullopt;
    if (!v->IsScalar()) fail(key, "expected a single value (a string), not " + describe(*v));
    return v->Scalar();
}

std::string section::required(std::string_view key) const
{
    if (auto v = str(key); v && !v->empty()) return *v;
    std::string msg = st_->file + ": " + key_path(key) + ": missing";
    for (const auto& kv : *node_) {
        if (!kv.first.IsScalar()) continue;
        const auto& k = kv.first.Scalar();
        if (k == key || k == alias_of(key)) continue;
        if (nearest_key(k, {std::string(key)}) == key) {
            msg += "; `" + k + "` on line " + std::to_string(kv.first.Mark().line + 1) + " looks like a typo of it";
            break;
        }
    }
    throw config_error(msg);
}

std::string section::str(std::string_view key, std::string dflt) const { return str(key).value_or(std::move(dflt)); }

double section::number(std::string_view key, double dflt, double min, double max) const
{
    auto v = find(key);
    if (!v || v->IsNull()) return dflt;
    double d = 0;
    bool ok = v->IsScalar();
    if (ok) {
        const std::string& s = v->Scalar();
        char* end = nullptr;
        errno = 0;
        d = std::strtod(s.c_str(), &end);
        ok = !s.empty() && end == s.c_str() + s.size() && errno == 0 && std::isfinite(d);
    }
    if (!ok) fail(key, "expected a number, not " + describe(*v));
    if (d < min || d > max) {
        auto fmt = [](double x) {
            std::string s = std::to_string(x);
            s.erase(s.find_last_not_of('0') + 1);
            if (!s.empty() && s.back() == '.') s.pop_back();
            return s;
        };
        fail(key, "expected a number from " + fmt(min) + " to " + fmt(max) + ", not " + v->Scalar());
    }
    return d;
}

std::int64_t section::integer(std::string_view key, std::int64_t dflt, std::int64_t min, std::int64_t max) const
{
    auto v = find(key);
    if (!v || v->IsNull()) return dflt;
    std::int64_t n = 0;
    bool ok = v->IsScalar();
    if (ok) {
        const std::string& s = v->Scalar();
        char* end = nullptr;
        errno = 0;
        long long x = std::strtoll(s.c_str(), &end, 10);
        ok = !s.empty() && end == s.c_str() + s.size() && errno == 0;
        n = x;
    }
    if (!ok) fail(key, "expected a whole number, not " + describe(*v));
    if (n < min || n > max)
        fail(key, "expected a whole number from " + std::to_string(min) + " to " + std::to_string(max) + ", not " +
                      std::to_string(n));
    return n;
}

bool section::flag(std::string_view key, bool dflt) const
{
    auto v = find(key);
    if (!v || v->IsNull()) return dflt;
    bool b = false;
    if (!v->IsScalar() || !YAML::convert<bool>::decode(*v, b)) fail(key, "expected true or false, not " + describe(*v));
    return b;
}

std::chrono::milliseconds section::duration(std::string_view key, std::chrono::milliseconds dflt,
                                            std::chrono::milliseconds min, std::chrono::milliseconds max,
                                            std::chrono::milliseconds unit) const
{
    auto v = find(key);
    if (!v || v->IsNull()) return dflt;
    bool ok = v->IsScalar();
    double ms = 0;
    if (ok) {
        const std::string& s = v->Scalar();
        char* end = nullptr;
        errno = 0;
        double d = std::strtod(s.c_str(), &end);
        std::string_view suffix(end);
        double scale = static_cast<double>(unit.count());
        if (suffix == "ms") scale = 1;
        else if (suffix == "s") scale = 1000;
        else if (suffix == "m" || suffix == "min") scale = 60000;
        else if (suffix == "h") scale = 3600000;
        else if (!suffix.empty()) ok = false;
        ok = ok && end != s.c_str() && errno == 0 && std::isfinite(d) && d >= 0;
        ms = d * scale;
    }
    if (!ok) fail(key, "expected a duration (a number, or with ms, s, m, h: 30s), not " + describe(*v));
    auto r = std::chrono::milliseconds(bus::round_to_int64(ms));
    if (r < min || r > max)
        fail(key, "expected a duration from " + std::to_string(min.count()) + " ms to " + std::to_string(max.count()) +
                      " ms, not " + v->Scalar());
    return r;
}

std::vector<std::string> section::list(std::string_view key) const
{
    std::vector<std::string> out;
    auto v = find(key);
    if (!v || v->IsNull()) return out;
    if (v->IsScalar()) return {v->Scalar()};
    if (!v->IsSequence()) fail(key, "expected a list of values, not " + describe(*v));
    std::size_t i = 0;
    for (const auto& e : *v) {
        if (!e.IsScalar())
            throw config_error(st_->at(e) + key_path(key) + "[" + std::to_string(i) + "]: expected a single value, not " +
                               describe(e));
        out.push_back(e.Scalar());
        ++i;
    }
    return out;
}

std::vector<std::pair<std::string, std::string>> section::string_map(std::string_view key) const
{
    std::vector<std::pair<std::string, std::string>> out;
    auto v = find(key);
    if (!v || v->IsNull()) return out;
    if (!v->IsMap()) fail(key, "expected a map of name: value, not " + describe(*v));
    for (const auto& kv : *v) {
        auto name = kv.first.IsScalar() ? kv.first.Scalar() : std::string("?");
        if (!kv.second.IsScalar() && !kv.second.IsNull())
            throw config_error(st_->at(kv.first) + key_path(key) + "." + name + ": expected a single value, not " +
                               describe(kv.second));
        out.emplace_back(name, kv.second.IsNull() ? std::string() : kv.second.Scalar());
    }
    return out;
}

std::optional<section> section::sub(std::string_view key) const
{
    auto v = find(key);
    if (!v || v->IsNull()) return std::nullopt;
    if (!v->IsMap()) fail(key, "expected a map of settings, not " + describe(*v));
    return section(st_, v, key_path(key));
}

std::vector<section> section::sections(std::string_view key) const
{
    std::vector<section> out;
    auto v = find(key);
    if (!v || v->IsNull()) return out;
    if (!v->IsSequence()) fail(key, "expected a list of maps, not " + describe(*v));
    std::size_t i = 0;
    for (const auto& e : *v) {
        std::string p = key_path(key) + "[" + std::to_string(i++) + "]";
        if (!e.IsMap()) throw config_error(st_->at(e) + p + ": expected a map of settings, not " + describe(e));
        out.emplace_back(st_, std::make_shared<const YAML::Node>(e), p);
    }
    return out;
}

std::vector<std::pair<std::string, section>> section::named(std::string_view key) const
{
    std::vector<std::pair<std::string, section>> out;
    auto v = find(key);
    if (!v || v->IsNull()) return out;
    if (!v->IsMap()) fail(key, "expected a map of names, not " + describe(*v));
    section whole(st_, v, key_path(key));
    whole.any_keys();
    for (const auto& kv : *v) {
        auto name = kv.first.IsScalar() ? kv.first.Scalar() : std::string("?");
        if (kv.second.IsMap()) out.emplace_back(name, section(st_, std::make_shared<const YAML::Node>(kv.second), whole.key_path(name)));
    }
    return out;
}

void section::known(std::initializer_list<std::string_view> keys) const
{
    for (auto k : keys) {
        st_->maps[id_].known.insert(std::string(k));
        st_->maps[id_].known.insert(alias_of(k));
    }
}

void section::known(const std::vector<std::string>& keys) const
{
    for (const auto& k : keys) {
        st_->maps[id_].known.insert(k);
        st_->maps[id_].known.insert(alias_of(k));
    }
}

void section::ignored(std::initializer_list<std::string_view> keys, std::string_view why) const
{
    for (auto k : keys)
        if (find(k)) st_->note(where(k) + ": ignored (" + std::string(why) + ")");
}

void section::any_keys() const { st_->maps[id_].any = true; }

// ---- config_file ----

config_file::config_file(std::shared_ptr<reader_state> st) : st_(std::move(st)) {}

config_file config_file::load(const std::filesystem::path& path, notice_fn notice)
{
    auto st = std::make_shared<reader_state>();
    st->file = path.string();
    st->notice = std::move(notice);
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) throw config_error(st->file + ": cannot read: Is a directory");
    if (::access(st->file.c_str(), R_OK) != 0)
        throw config_error(st->file + ": cannot read: " + std::strerror(errno));
    try {
        st->root = YAML::LoadFile(st->file);
    } catch (const YAML::BadFile&) {
        throw config_error(st->file + ": cannot read");
    } catch (const YAML::Exception& e) {
        throw config_error(st->file + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
    }
    if (!st->root.IsMap()) throw config_error(st->file + ": expected a map of settings (key: value lines)");
    return config_file(std::move(st));
}

config_file config_file::parse(std::string_view text, std::string name, notice_fn notice)
{
    auto st = std::make_shared<reader_state>();
    st->file = std::move(name);
    st->notice = std::move(notice);
    try {
        st->root = YAML::Load(std::string(text));
    } catch (const YAML::Exception& e) {
        throw config_error(st->file + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
    }
    if (!st->root.IsMap()) throw config_error(st->file + ": expected a map of settings (key: value lines)");
    return config_file(std::move(st));
}

section config_file::root() const { return section(st_, std::make_shared<const YAML::Node>(st_->root), ""); }

const std::string& config_file::file() const noexcept { return st_->file; }

std::vector<std::string> config_file::unknown_keys() const
{
    std::vector<std::string> out;
    for (const auto& m : st_->maps) {
        if (m.any) continue;
        std::vector<std::string> known(m.known.begin(), m.known.end());
        for (const auto& kv : m.node) {
            std::string k = kv.first.IsScalar() ? kv.first.Scalar() : std::string("?");
            if (m.known.count(k)) continue;
            std::string msg = st_->at(kv.first) + (m.path.empty() ? "" : m.path + ".") + k + ": unknown setting";
            if (auto n = nearest_key(k, known); !n.empty()) msg += "; did you mean `" + n + "`?";
            out.push_back(std::move(msg));
        }
    }
    return out;
}

std::vector<std::string> config_file::changed_keys(const config_file& newer) const
{
    auto canon = [](std::string k) {
        for (auto& c : k)
            if (c == '_') c = '-';
        return k;
    };
    auto values = [&](const YAML::Node& root) {
        std::vector<std::pair<std::string, std::string>> out;
        for (const auto& kv : root) {
            if (!kv.first.IsScalar()) continue;
            YAML::Emitter e;
            e << kv.second;
            out.emplace_back(canon(kv.first.Scalar()), e.c_str());
        }
        return out;
    };
    auto a = values(st_->root), b = values(newer.st_->root);
    auto find = [](const auto& v, const std::string& k) -> const std::string* {
        for (const auto& [key, val] : v)
            if (key == k) return &val;
        return nullptr;
    };
    std::vector<std::string> out;
    for (const auto& [k, v] : b)
        if (auto* old = find(a, k); !old || *old != v) out.push_back(k);
    for (const auto& [k, v] : a)
        if (!find(b, k)) out.push_back(k);
    return out;
}

void config_file::finish() const
{
    auto u = unknown_keys();
    if (!u.empty()) throw config_error(u.front());
}

std::string nearest_key(std::string_view key, const std::vector<std::string>& known)
{
    auto norm = [](std::string_view s) {
        std::string o(s);
        for (auto& c : o) c = c == '_' ? '-' : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return o;
    };
    const std::string a = norm(key);
    std::string best;
    std::size_t best_d = SIZE_MAX;
    for (const auto& k : known) {
        const std::string b = norm(k);
        // Optimal string alignment distance (transpositions count as one edit).
        std::vector<std::vector<std::size_t>> d(a.size() + 1, std::vector<std::size_t>(b.size() + 1));
        for (std::size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
        for (std::size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
        for (std::size_t i = 1; i <= a.size(); ++i)
            for (std::size_t j = 1; j <= b.size(); ++j) {
                std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
                d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
                if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
            }
        std::size_t dist = d[a.size()][b.size()];
        // Prefer the hyphen spelling among equals (known holds both spellings).
        if (dist < best_d || (dist == best_d && k.find('_') == std::string::npos && best.find('_') != std::string::npos)) {
            best_d = dist;
            best = k;
        }
    }
    // Plausible typo: at most a third of the word (at least 1, at most 3 edits).
    std::size_t limit = std::clamp<std::size_t>(a.size() / 3, 1, 3);
    return best_d <= limit ? best : std::string();
}

const std::vector<std::string>& bus_config_keys()
{
    static const std::vector<std::string> keys{
        "rserver",      "stomp-options",   "passcode-file",  "vhost",          "client-id",
        "heartbeat-ms", "keepalive-ms",    "tls-ca-file",    "spool-dir",      "wire-format",
        "signing-key-file", "signing-key-id", "verify-key-file", "require-signatures",
        // libbus liveness, extra headers and the legacy keepalive (bus/config.cpp)
        "heartbeat-send-ms", "heartbeat-receive-ms", "probe-ms", "probe-timeout-ms", "dead-link-grace",
        "subscribe-headers", "publish-headers", "legacy-keepalive"};
    return keys;
}

std::string read_secret_file(const std::string& path, std::string_view what)
{
    const std::string pre = what.empty() ? std::string() : std::string(what) + ": ";
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) throw config_error(pre + "cannot read " + path + ": " + std::strerror(errno));
    struct closer {
        int fd;
        ~closer() { ::close(fd); }
    } c{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0) throw config_error(pre + "cannot read " + path + ": " + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) throw config_error(pre + path + " is not a regular file");
    // OpenSSH (sshkey_perm_ok): owned by us or root, nothing for group and others.
    if (st.st_uid != ::geteuid() && st.st_uid != 0)
        throw config_error(pre + path + " is owned by uid " + std::to_string(st.st_uid) + ", not by uid " +
                           std::to_string(::geteuid()) + " (this daemon's user) or root");
    if (st.st_mode & 077) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        throw config_error(pre + path + " has mode " + mode +
                           ": it must not be accessible by group or others (chmod 600)");
    }
    if (st.st_size > 1024 * 1024) throw config_error(pre + path + " is larger than 1 MiB; not a secret");
    std::string s;
    char buf[4096];
    for (;;) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw config_error(pre + "cannot read " + path + ": " + std::strerror(errno));
        }
        if (n == 0) break;
        s.append(buf, static_cast<std::size_t>(n));
        if (s.size() > 1024 * 1024) throw config_error(pre + path + " is larger than 1 MiB; not a secret");
    }
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
}

std::vector<std::string> restart_needed(const std::optional<config_file>& running,
                                        const std::optional<config_file>& fresh,
                                        const std::function<bool(const std::string&)>& applied)
{
    std::vector<std::string> out;
    if (!running || !fresh) return out;
    for (auto& k : running->changed_keys(*fresh))
        if (!applied(k)) out.push_back(k);
    return out;
}

} // namespace bus::runtime
