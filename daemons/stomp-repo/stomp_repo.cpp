#include "stomp_repo.hpp"
#include "bus/numeric.hpp"

#include <fnmatch.h>

#include <algorithm>
#include <charconv>
#include <stdexcept>
#include <cmath>

namespace stomp_repo {

namespace {

bool lower_or_digit(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool alnum(char c) noexcept { return lower_or_digit(c) || (c >= 'A' && c <= 'Z'); }
bool has_control(std::string_view s) noexcept
{
    return std::any_of(s.begin(), s.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u < 0x20 || u == 0x7f;
    });
}

std::string cut(std::string_view s, std::size_t n = 80) { return std::string(s.substr(0, n)) + (s.size() > n ? "…" : ""); }

} // namespace

bool valid_package_name(std::string_view s) noexcept
{
    if (s.size() < 2 || s.size() > 255 || !lower_or_digit(s[0])) return false;
    return std::all_of(s.begin(), s.end(), [](char c) { return lower_or_digit(c) || c == '+' || c == '-' || c == '.'; });
}

bool valid_version(std::string_view s) noexcept
{
    if (s.empty() || s.size() > 255) return false;
    bool has_epoch = false;
    if (auto colon = s.find(':'); colon != std::string_view::npos) {
        auto epoch = s.substr(0, colon);
        if (epoch.empty() || epoch.size() > 9 ||
            !std::all_of(epoch.begin(), epoch.end(), [](char c) { return c >= '0' && c <= '9'; }))
            return false;
        has_epoch = true;
        s.remove_prefix(colon + 1);
    }
    std::string_view upstream = s, revision;
    if (auto dash = s.rfind('-'); dash != std::string_view::npos) {
        upstream = s.substr(0, dash);
        revision = s.substr(dash + 1);
        if (revision.empty()) return false;
    }
    if (upstream.empty() || !(upstream[0] >= '0' && upstream[0] <= '9')) return false;
    bool up_ok = std::all_of(upstream.begin(), upstream.end(), [&](char c) {
        return alnum(c) || c == '.' || c == '+' || c == '~' || c == '-' || (c == ':' && has_epoch);
    });
    bool rev_ok = std::all_of(revision.begin(), revision.end(),
                              [](char c) { return alnum(c) || c == '.' || c == '+' || c == '~'; });
    return up_ok && rev_ok;
}

bool valid_codename(std::string_view s) noexcept
{
    if (s.empty() || s.size() > 100 || !alnum(s[0])) return false;
    return std::all_of(s.begin(), s.end(), [](char c) { return alnum(c) || c == '.' || c == '_' || c == '+' || c == '-'; });
}

bool valid_component(std::string_view s) noexcept
{
    if (s.empty() || s.size() > 100) return false;
    std::size_t start = 0;
    for (;;) {
        auto slash = s.find('/', start);
        if (!valid_codename(s.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start)))
            return false;
        if (slash == std::string_view::npos) return true;
        start = slash + 1;
    }
}

bool valid_architecture(std::string_view s) noexcept
{
    if (s.empty() || s.size() > 32 || !lower_or_digit(s[0])) return false;
    return std::all_of(s.begin(), s.end(), [](char c) { return lower_or_digit(c) || c == '-'; });
}

std::vector<std::string> versions_to_rank(const std::vector<std::pair<std::string, std::string>>& pairs)
{
    std::vector<std::string> out;
    auto add = [&](const std::string& v) {
        if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
    };
    for (const auto& [a, b] : pairs)
        if (a != b) {
            add(a);
            add(b);
        }
    return out;
}

bool valid_pattern(std::string_view p) noexcept { return !p.empty() && p.size() <= 255 && !has_control(p); }

const watch* match(const std::vector<watch>& watches, const bus::package_event& p)
{
    auto fits = [](const std::string& pattern, const std::string& value) {
        if (pattern.empty()) return true;
        return ::fnmatch(pattern.c_str(), value.c_str(), 0) == 0;
    };
    for (const auto& w : watches)
        if (fits(w.package, p.name) && fits(w.codename, p.codename) && fits(w.component, p.component) &&
            fits(w.architecture, p.architecture))
            return &w;
    return nullptr;
}

std::string_view to_string(verdict v) noexcept
{
    switch (v) {
    case verdict::update: return "update";
    case verdict::invalid: return "invalid";
    case verdict::removal: return "removal";
    case verdict::unwatched: return "unwatched";
    case verdict::not_newer: return "not_newer";
    }
    return "invalid";
}

std::string validate(const bus::package_event& p)
{
    if (!valid_package_name(p.name)) return "name '" + cut(p.name) + "' is not a Debian package name";
    if (!p.new_version.empty() && !valid_version(p.new_version))
        return "new_version '" + cut(p.new_version) + "' is not a Debian version";
    if (!p.old_version.empty() && !valid_version(p.old_version))
        return "old_version '" + cut(p.old_version) + "' is not a Debian version";
    if (!p.codename.empty() && !valid_codename(p.codename)) return "codename '" + cut(p.codename) + "' refused";
    if (!p.component.empty() && !valid_component(p.component)) return "component '" + cut(p.component) + "' refused";
    if (!p.architecture.empty() && !valid_architecture(p.architecture))
        return "architecture '" + cut(p.architecture) + "' refused";
    if (p.file.size() > 1024 || has_control(p.file)) return "file name refused";
    return {};
}

decision decide(const std::vector<watch>& watches, const bus::package_event& p, const std::optional<std::string>& candidate,
                const version_order& order)
{
    if (auto why = validate(p); !why.empty()) return {verdict::invalid, why};
    if (p.new_version.empty()) return {verdict::removal, "no new version (a removal)"};
    if (!match(watches, p)) return {verdict::unwatched, {}};
    if (candidate && !candidate->empty() && order.compare(p.new_version, *candidate) <= 0)
        return {verdict::not_newer, "candidate " + *candidate + " is not older than " + p.new_version};
    return {verdict::update, {}};
}

void coalescer::add(item it, clock::time_point now)
{
    if (items_.empty()) first_ = now;
    last_ = now;
    items_.push_back(std::move(it));
}

std::optional<coalescer::clock::time_point> coalescer::due() const
{
    if (items_.empty()) return std::nullopt;
    return std::min(last_ + quiet_, first_ + max_wait_);
}

std::optional<coalescer::batch> coalescer::take(clock::time_point now)
{
    auto d = due();
    if (!d || now < *d) return std::nullopt;
    batch b;
    b.items = std::move(items_);
    items_.clear();
    return b;
}

std::vector<std::pair<std::string, std::string>> batch_pairs(const std::vector<coalescer::item>& items)
{
    std::map<std::string, std::string> first;
    std::vector<std::pair<std::string, std::string>> pairs;
    for (const auto& i : items) {
        auto [it, fresh] = first.try_emplace(i.pkg.name, i.pkg.new_version);
        if (!fresh && it->second != i.pkg.new_version) pairs.emplace_back(it->second, i.pkg.new_version);
    }
    return pairs;
}

std::map<std::string, std::string> highest_versions(const std::vector<coalescer::item>& items, const version_order& order)
{
    std::map<std::string, std::string> wanted;
    for (const auto& i : items) {
        auto [it, fresh] = wanted.try_emplace(i.pkg.name, i.pkg.new_version);
        if (!fresh && order.compare(i.pkg.new_version, it->second) > 0) it->second = i.pkg.new_version;
    }
    return wanted;
}

std::optional<std::chrono::milliseconds> retry_delay(const retry_policy& p, unsigned attempt, double jitter01)
{
    if (attempt == 0 || attempt > p.retries) return std::nullopt;
    double base = static_cast<double>(p.initial.count()) * bus::pow_int(2.0, std::min(attempt - 1, 30u));
    base = std::min(base, static_cast<double>(p.max.count()));
    jitter01 = std::clamp(jitter01, 0.0, 1.0);
    return std::chrono::milliseconds(static_cast<std::int64_t>(base * (0.5 + 0.5 * jitter01)));
}

bool valid_apt_option(std::string_view o) noexcept
{
    auto eq = o.find('=');
    if (eq == 0 || eq == std::string_view::npos || o.size() > 4096 || has_control(o)) return false;
    auto key = o.substr(0, eq);
    return std::all_of(key.begin(), key.end(), [](char c) { return alnum(c) || c == ':' || c == '_' || c == '-' || c == '.'; });
}

namespace {

void add_options(std::vector<std::string>& argv, const apt_settings& s)
{
    for (const auto& o : s.options) {
        argv.emplace_back("-o");
        argv.push_back(o);
    }
}

} // namespace

std::vector<std::string> update_argv(const apt_settings& s)
{
    std::vector<std::string> argv{s.apt_get, "-q"};
    add_options(argv, s);
    if (!s.sources_list.empty()) {
        argv.insert(argv.end(), {"-o", "Dir::Etc::sourcelist=" + s.sources_list, "-o", "Dir::Etc::sourceparts=-"});
    }
    argv.insert(argv.end(), {"-o", "APT::Get::List-Cleanup=0", "-o",
                             "DPkg::Lock::Timeout=" + std::to_string(std::max<std::int64_t>(
                                                          0, std::chrono::duration_cast<std::chrono::seconds>(s.lock_timeout).count())),
                             "update"});
    return argv;
}

std::vector<std::string> policy_argv(const apt_settings& s, const std::vector<std::string>& names)
{
    std::vector<std::string> argv{s.apt_cache, "-q"};
    add_options(argv, s);
    if (!s.sources_list.empty())
        argv.insert(argv.end(), {"-o", "Dir::Etc::sourcelist=" + s.sources_list, "-o", "Dir::Etc::sourceparts=-"});
    argv.emplace_back("policy");
    for (const auto& n : names)
        if (valid_package_name(n)) argv.push_back(n);
    return argv;
}

std::vector<std::string> apt_env(const apt_settings& s)
{
    std::vector<std::string> env{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C", "DEBIAN_FRONTEND=noninteractive"};
    if (!s.apt_config.empty()) env.push_back("APT_CONFIG=" + s.apt_config);
    return env;
}

update_outcome classify_update(int exit_code, std::string_view out, std::string_view err)
{
    auto has = [&](std::string_view what) {
        return out.find(what) != std::string_view::npos || err.find(what) != std::string_view::npos;
    };
    if (has("Could not get lock") || has("Unable to lock directory") || has("Unable to acquire the dpkg frontend lock"))
        return update_outcome::lock_busy;
    if (exit_code != 0) return update_outcome::failed;
    if (has("W: Failed to fetch") || has("E: ") || has("W: Some index files failed to download")) return update_outcome::failed;
    return update_outcome::ok;
}

std::string first_error(std::string_view out, std::string_view err)
{
    for (std::string_view text : {err, out}) {
        std::size_t pos = 0;
        while (pos < text.size()) {
            auto nl = text.find('\n', pos);
            auto line = text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
            if (line.starts_with("E: ") || line.starts_with("W: ") || line.starts_with("Err:"))
                return std::string(line.substr(0, 400));
            if (nl == std::string_view::npos) break;
            pos = nl + 1;
        }
    }
    return {};
}

std::map<std::string, policy_entry> parse_policy(std::string_view out)
{
    std::map<std::string, policy_entry> r;
    policy_entry* cur = nullptr;
    std::size_t pos = 0;
    auto value = [](std::string_view line, std::string_view key) -> std::optional<std::string> {
        auto t = line.find_first_not_of(' ');
        if (t == std::string_view::npos || t == 0) return std::nullopt;
        line.remove_prefix(t);
        if (!line.starts_with(key)) return std::nullopt;
        line.remove_prefix(key.size());
        while (!line.empty() && line.front() == ' ') line.remove_prefix(1);
        while (!line.empty() && (line.back() == ' ' || line.back() == '\r')) line.remove_suffix(1);
        if (line == "(none)") return std::string();
        return std::string(line);
    };
    while (pos < out.size()) {
        auto nl = out.find('\n', pos);
        auto line = out.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
        pos = nl == std::string_view::npos ? out.size() : nl + 1;
        if (line.empty()) continue;
        if (line[0] != ' ' && line.back() == ':') {
            cur = &r[std::string(line.substr(0, line.size() - 1))];
            continue;
        }
        if (!cur) continue;
        if (auto v = value(line, "Installed:")) cur->installed = *v;
        else if (auto c = value(line, "Candidate:")) cur->candidate = *c;
    }
    return r;
}

} // namespace stomp_repo
