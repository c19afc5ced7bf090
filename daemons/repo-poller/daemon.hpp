#pragma once

// repo-poller as a service on the runtime (bus/runtime/service.hpp): reads the config, starts
// the bus client, the outbox, the heartbeat and one poll loop per (repository, suite), and runs
// until SIGTERM.

#include "bus/runtime/program.hpp"

namespace repo_poller {

/// The body of main() under bus::runtime::run_main. Returns the exit status.
int run(const bus::runtime::common_options& opts, spdlog::logger& log);

} // namespace repo_poller
