#pragma once

// herald as a service on the runtime: records every event of its topics in SQLite (acked after
// the commit), serves the pages, the JSON API, the live feed and /ingest, and runs the alert
// engine (alert_seam.hpp).

#include "bus/runtime/program.hpp"

namespace herald {

/// The body of main() under bus::runtime::run_main. Returns the exit status.
int run(const bus::runtime::common_options& opts, spdlog::logger& log);

} // namespace herald
