#pragma once

// libapt-pkg's Debian version order, for stomp-repo-vercmp (the helper stomp-repo runs once per
// event) and the tests. Only this code and the helper link libapt-pkg: stomp-repo itself stays
// lean-linked (no shared C++ runtime, no libapt-pkg mapped while it idles).

#include <string>
#include <string_view>
#include <vector>

namespace stomp_repo {

/// Debian version ordering (epochs, `~`, revisions) by libapt-pkg's debVS: <0, 0, >0.
int apt_compare_versions(std::string_view a, std::string_view b);

/// Dense ranks of `versions` in libapt-pkg's order: the lowest is 0, equal versions (`1.0` and
/// `0:1.0`) share a rank, rank i+1 is the next higher version.
std::vector<unsigned> apt_version_ranks(const std::vector<std::string>& versions);

} // namespace stomp_repo
