#pragma once

// deploy-agent as a service on the runtime (bus/runtime/service.hpp): the request topic and the
// node's queue, the two-phase protocol, the deploy worker, audit, heartbeats and metrics.

#include "bus/runtime/program.hpp"

namespace deploy_agent {

/// The body of main() under bus::runtime::run_main. Returns the exit status.
int run(const bus::runtime::common_options& opts, spdlog::logger& log);

} // namespace deploy_agent
