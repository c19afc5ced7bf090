#pragma once

// The settings every long-running daemon reads the same way (no Asio):
//   heartbeat-topic     default deploykit.heartbeats
//   heartbeat-interval  default 60 (seconds; 30s, 5m; 0 = off)
//   admin-listen        ADDRESS:PORT for /metrics /livez /readyz; off when absent

#include "bus/http/address.hpp"
#include "bus/runtime/config_reader.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace bus::runtime {

struct heartbeat_options {
    std::string topic = "deploykit.heartbeats";
    std::chrono::milliseconds interval{60000};  ///< 0 = off
};

struct daemon_settings {
    heartbeat_options heartbeat;
    std::optional<http::listen_address> admin_listen;
};

/// Reads `heartbeat-topic` and `heartbeat-interval` from `s`.
heartbeat_options read_heartbeat_options(const section& s);
/// `admin-listen: ADDRESS:PORT` (off when absent or "").
std::optional<http::listen_address> read_admin_listen(const section& s);
/// Both.
daemon_settings read_daemon_settings(const section& s);

/// `durable-name`: absent or null gives `<daemon>-<hostname>` (characters other than letters,
/// digits, '-', '_' and '.' become '_'); `""` turns durable subscriptions off.
std::string read_durable_name(const section& s, std::string_view daemon);

} // namespace bus::runtime
