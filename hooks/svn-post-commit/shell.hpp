#pragma once

// svn-stomp's glue around its pure logic (svn_hook.hpp): the config, svnlook (argv, clean
// environment, deadline), installing the hook, and one call of the hook (publish, then the
// chained hook).

#include "bus/runtime/config_reader.hpp"
#include "bus/runtime/hook.hpp"

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace svn_hook {

struct settings {
    bus::runtime::hook_config hook;
    std::filesystem::path svnlook;                 ///< `svnlook`, else found in the fixed PATH
    std::chrono::seconds svnlook_timeout{10};      ///< `svnlook-timeout` (1-600)
};

/// Reads the config (bus::runtime::load_hook_config plus `svnlook` and `svnlook-timeout`).
settings load_settings(const std::filesystem::path& config, bus::runtime::notice_fn notice = {});

/// Writes REPOS/hooks/post-commit for each repository (keeping a foreign hook as
/// post-commit.chained). Returns the exit status (1 if any failed). With check_only nothing
/// changes: 0 when every repository's hook is the one this install would write, 1 otherwise.
int install(const std::vector<std::string>& paths, const std::string& config, bool check_only = false);

/// One call of the hook with svn's `REPOS REV [TXN-NAME]`: checks them (2 when bad: nothing
/// published, nothing run), publishes the revision (spooled when the broker is away), logs one
/// line, then runs the chained hook. Returns 0, or 1 when the event could not be published or
/// spooled, or the chained hook's non-zero status.
int run(const std::filesystem::path& config, const std::vector<std::string>& args, bool debug, spdlog::logger& log);
/// The program's argv, kept for handing over to the OpenSSL build of the hook (run()).
void set_argv(char** argv) noexcept;

} // namespace svn_hook
