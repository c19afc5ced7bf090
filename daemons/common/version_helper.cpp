#include "version_helper.hpp"

#include "bus/runtime/spawn.hpp"

#include <algorithm>
#include <charconv>
#include <chrono>
#include <stdexcept>

namespace deploykit {

std::optional<version_order> version_order::parse(const std::vector<std::string>& versions, std::string_view out,
                                                  std::string& why)
{
    version_order o;
    std::size_t i = 0;
    while (!out.empty()) {
        auto nl = out.find('\n');
        if (nl == std::string_view::npos) {
            why = "answer not ended by a newline";
            return std::nullopt;
        }
        auto line = out.substr(0, nl);
        out.remove_prefix(nl + 1);
        if (i >= versions.size()) {
            why = "more ranks than the " + std::to_string(versions.size()) + " versions asked";
            return std::nullopt;
        }
        unsigned r = 0;
        auto [end, ec] = std::from_chars(line.data(), line.data() + line.size(), r);
        if (line.empty() || ec != std::errc{} || end != line.data() + line.size()) {
            why = "line " + std::to_string(i + 1) + " is not a rank";
            return std::nullopt;
        }
        auto [it, fresh] = o.rank_.try_emplace(versions[i], r);
        if (!fresh && it->second != r) {
            why = "two ranks for version " + versions[i];
            return std::nullopt;
        }
        ++i;
    }
    if (i != versions.size()) {
        why = std::to_string(i) + " ranks for " + std::to_string(versions.size()) + " versions";
        return std::nullopt;
    }
    return o;
}

int version_order::compare(std::string_view a, std::string_view b) const
{
    if (a == b) return 0;
    auto x = rank_.find(a), y = rank_.find(b);
    if (x == rank_.end() || y == rank_.end())
        throw std::out_of_range("version order: '" + std::string(x == rank_.end() ? a : b) + "' was not ranked");
    return x->second < y->second ? -1 : x->second > y->second ? 1 : 0;
}

std::string vercmp_input(const std::vector<std::string>& versions)
{
    std::string s;
    for (const auto& v : versions) {
        s += v;
        s += '\n';
    }
    return s;
}

ranked rank_versions(const std::string& helper, const std::vector<std::string>& versions)
{
    if (versions.empty()) return {version_order{}, {}};
    if (versions.size() > max_versions_per_run)
        return {std::nullopt, helper + ": " + std::to_string(versions.size()) + " versions to order, more than the " +
                                  std::to_string(max_versions_per_run) + " of one run"};
    bus::runtime::spawn_options so;
    so.argv.push_back(helper);
    so.env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"};
    so.input = vercmp_input(versions);
    so.cwd = "/";
    so.timeout = std::chrono::milliseconds(10000);
    so.kill_grace = std::chrono::milliseconds(1000);
    so.die_with_parent = true;
    so.max_out = 12 * versions.size() + 64;  // a rank is at most 10 digits and a newline
    so.kill_on_overflow = true;
    auto r = bus::runtime::spawn(so);
    if (!r.ok() || r.out_truncated) {
        auto e = r.err.substr(0, std::min<std::size_t>(r.err.find('\n'), 300));
        std::string what = r.out_truncated ? std::string("answered too much") : r.describe();
        return {std::nullopt, helper + " " + what + (e.empty() ? "" : ": " + e)};
    }
    std::string why;
    auto o = version_order::parse(versions, r.out, why);
    if (!o) return {std::nullopt, helper + ": unreadable answer: " + why};
    return {std::move(o), {}};
}

std::string check_version_helper(const std::string& helper)
{
    const std::vector<std::string> v{"1.0~rc1", "1.0", "1:0.9", "1.0-1", "0:1.0"};
    auto r = rank_versions(helper, v);
    if (!r.order) return r.error;
    const auto& o = *r.order;
    if (!(o.compare("1.0~rc1", "1.0") < 0 && o.compare("1.0", "0:1.0") == 0 && o.compare("1.0", "1.0-1") < 0 &&
          o.compare("1.0-1", "1:0.9") < 0))
        return helper + ": a wrong order for 1.0~rc1 < 1.0 = 0:1.0 < 1.0-1 < 1:0.9";
    return {};
}

} // namespace deploykit
