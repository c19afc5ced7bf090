#pragma once

// stomp-broker as a service on the runtime (bus/runtime/service.hpp): reads the config, starts
// the listeners and the journal (server.hpp), the admin endpoint and the heartbeat, and runs
// until SIGTERM.

#include "bus/runtime/program.hpp"

#include <string>

namespace broker {

/// What the broker's own command-line options set (over the config file's values).
struct cli_options {
    std::string listen;    ///< --listen ADDRESS:PORT
    std::string admin;     ///< --admin ADDRESS:PORT (as `admin-listen`)
    std::string data_dir;  ///< --data-dir DIR
    bool hash_password = false;
};

/// The body of main() under bus::runtime::run_main. Returns the exit status.
int run(const bus::runtime::common_options& opts, const cli_options& cli, spdlog::logger& log);

} // namespace broker
