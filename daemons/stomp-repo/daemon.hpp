#pragma once

// stomp-repo as a service on the runtime (bus/runtime/service.hpp): reads the config, starts the
// bus client, the dispatcher of apt updates, the outbox and the heartbeat, and runs until SIGTERM.

#include "bus/runtime/program.hpp"

namespace stomp_repo {

/// The body of main() under bus::runtime::run_main. Returns the exit status.
int run(const bus::runtime::common_options& opts, spdlog::logger& log);

} // namespace stomp_repo
