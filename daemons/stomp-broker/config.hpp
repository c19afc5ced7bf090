#pragma once

// stomp-broker's configuration file (`-c stomp-broker.yaml`), read with the runtime's reader
// (bus/runtime/config_reader.hpp): hyphenated keys (`max-frame-size`), the broker's older
// underscore spelling (`max_frame_size`) accepted as an alias; every error names the file, the
// line, the key and what was expected (exit status 2); unknown keys are errors naming the
// nearest known one. docs/brokers.md lists every key.

#include "server.hpp"

#include "bus/http/address.hpp"
#include "bus/runtime/config_reader.hpp"
#include "bus/runtime/settings.hpp"

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace broker {

struct broker_config {
    server_options server;
    std::filesystem::path users_file;  ///< empty: anonymous with full access
    /// `admin-listen` (alias `admin_listen`, `--admin`): /metrics /livez /readyz; off when absent.
    std::optional<bus::http::listen_address> admin_listen;
    /// `heartbeat-topic`, `heartbeat-interval`: the broker's own heartbeat event.
    bus::runtime::heartbeat_options heartbeat;
    /// `drain-timeout`: how long SIGTERM waits for connections to flush before they are cut.
    std::chrono::milliseconds drain_timeout{10000};
    std::optional<bus::runtime::config_file> file;  ///< what it was read from (SIGHUP diffs)
};

/// The settings without a file (anonymous, in memory); `server-name` carries the version.
broker_config default_config();

/// Loads and validates `stomp-broker.yaml`. Throws bus::runtime::config_error. `notice`
/// receives notices (aliases used).
broker_config load_config(const std::filesystem::path& path, bus::runtime::notice_fn notice = {});

/// Checks an `ADDRESS:PORT` (numeric IPv4 or IPv6 address) given as `what` (a key or an option);
/// throws bus::runtime::config_error naming it.
void check_listen(const std::string& value, const std::string& what);

/// Keys changed between two loads that SIGHUP cannot apply (everything but users-file and
/// the heartbeat settings): the broker logs each as needing a restart.
std::vector<std::string> needs_restart(const broker_config& running, const broker_config& fresh);

} // namespace broker
