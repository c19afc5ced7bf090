#pragma once

// stomp-git as a service on the runtime (bus/runtime/service.hpp): reads the config, starts the
// bus client, the outbox, the heartbeat and the admin endpoint, runs a worker (worker.hpp) per
// fetch on the service's worker pool, and runs until SIGTERM.

#include "bus/runtime/program.hpp"

namespace stomp_git {

/// The body of main() under bus::runtime::run_main. Returns the exit status.
int run(const bus::runtime::common_options& opts, spdlog::logger& log);

} // namespace stomp_git
