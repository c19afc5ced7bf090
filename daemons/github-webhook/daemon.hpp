#pragma once

// github-webhook as a service on the runtime (bus/runtime/service.hpp): reads the config, starts
// the HTTP listener, the bus client, the outbox and the heartbeat, and runs until SIGTERM.

#include "bus/runtime/program.hpp"

namespace webhook {

/// The body of main() under bus::runtime::run_main. Returns the exit status.
int run(const bus::runtime::common_options& opts, spdlog::logger& log);

} // namespace webhook
