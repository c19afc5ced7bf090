#pragma once

// stomp-ci as a service on the runtime: the dispatcher (commit and recheck events → job
// messages), the worker (job queue → runs → build events), the log server and /status.

#include "bus/runtime/program.hpp"

namespace stomp_ci {

int run(const bus::runtime::common_options& opts, spdlog::logger& log);

} // namespace stomp_ci
