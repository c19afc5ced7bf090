#pragma once

// stomp-jenkins as a service on the runtime (bus/runtime/service.hpp): reads the config, starts
// the bus client, the dispatcher, the outbox and the heartbeat, and runs until SIGTERM.

#include "bus/runtime/program.hpp"

namespace stomp_jenkins {

/// The body of main() under bus::runtime::run_main. Returns the exit status.
int run(const bus::runtime::common_options& opts, spdlog::logger& log);

} // namespace stomp_jenkins
