#pragma once

// stomp-post-receive's glue around its pure logic (post_receive.hpp): the repository through
// loose objects or `git` as a child, installing the hook, and one call of the hook (publish, then the chained hook).

#include "post_receive.hpp"

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace hook {

/// Installs this binary as hooks/<name> ("post-receive" or "post-commit") of each repository,
/// or of every repository below a directory. Returns the exit status (1 if any failed).
/// With check_only nothing changes: the status is 0 when every repository found already has
/// this binary as its hook, 1 otherwise (Puppet's `unless`, so a second run changes nothing).
int install(const std::vector<std::string>& paths, const std::string& name, bool check_only = false);

/// One call of the hook: reads the updates (stdin for post-receive, HEAD for post-commit),
/// publishes them (spooled when the broker is away), logs one line, then runs the chained hook.
/// Never fails the push: the exit status is the chained hook's (0 without one).
int run(const std::filesystem::path& config, bool post_commit, bool debug, spdlog::logger& log);
/// The program's argv, kept for handing over to the OpenSSL build of the hook (run()).
void set_argv(char** argv) noexcept;

} // namespace hook
