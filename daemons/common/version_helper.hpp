// libapt-pkg's Debian version order, out of the daemon's process: stomp-repo-vercmp (the one
// deploykit program linked with libapt-pkg, daemons/stomp-repo/vercmp_main.cpp, package
// deploykit-vercmp) reads versions one a line and answers each one's dense rank. stomp-repo runs
// it once per event or update that needs an order, repo-poller once per changed Packages index;
// both stay lean-linked and idle without libapt-pkg or the shared C++ runtime mapped
// (bench/results/perf-4-repo4.md, perf-4-poller4.md).
#pragma once

#include <cstddef>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace deploykit {

/// Where the packages install the helper (the daemons' `version-helper` default).
inline constexpr const char* default_version_helper = "/usr/lib/deploykit/stomp-repo-vercmp";
/// The most versions the helper ranks in one run (it refuses more: exit 2).
inline constexpr std::size_t max_versions_per_run = 100'000;

/// The Debian order of a set of versions, as libapt-pkg's debVS gave it.
class version_order {
public:
    /// Reads the helper's answer for `versions` (the helper's input, in order): exactly one
    /// decimal rank a line. nullopt, with `why`, for anything else (a short or long answer, a
    /// non-number, two ranks for one version string).
    static std::optional<version_order> parse(const std::vector<std::string>& versions, std::string_view out,
                                              std::string& why);
    /// Orders a version the helper ranked; for tests and the one-version case.
    void set(std::string version, unsigned rank) { rank_[std::move(version)] = rank; }
    bool knows(std::string_view v) const { return rank_.find(v) != rank_.end(); }
    /// <0, 0, >0. Equal strings are equal without a rank; any other version must have been ranked
    /// (std::out_of_range otherwise: the caller asked the helper for the wrong set).
    int compare(std::string_view a, std::string_view b) const;
    std::size_t size() const noexcept { return rank_.size(); }

private:
    std::map<std::string, unsigned, std::less<>> rank_;
};

/// The helper's stdin for `versions`: one a line.
std::string vercmp_input(const std::vector<std::string>& versions);

struct ranked {
    std::optional<version_order> order;  ///< nullopt: the helper failed (`error` says why)
    std::string error;
};

/// Runs the helper for `versions` (distinct, at most max_versions_per_run) and reads its ranks.
/// Blocking: a worker thread, or main at start. bus::runtime::spawn: argv, environment `PATH
/// LC_ALL=C`, cwd `/`, a 10 s deadline, output bounded to 12 bytes a version, dies with the
/// daemon. No versions: an empty order without a run.
ranked rank_versions(const std::string& helper, const std::vector<std::string>& versions);

/// At start and for --check-config: the helper runs and orders as libapt-pkg does (epochs, `~`,
/// revisions, `0:` = no epoch). Empty when fine, else why not, naming the helper.
std::string check_version_helper(const std::string& helper);

} // namespace deploykit
