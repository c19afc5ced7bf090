#pragma once

// The connection settings every daemon and hook reads from its YAML config, with the original's
// keys (`rserver`, `stomp-options`) working unchanged, plus deploykit's optional ones. Errors
// name the file, the line and the key.

#include "bus/client_options.hpp"
#include "bus/outbox.hpp"
#include "bus/signing.hpp"
#include "bus/wire.hpp"

#include <filesystem>
#include <optional>
#include <string>

namespace YAML {
class Node;
}

namespace bus {

struct bus_config {
    client_options client;
    std::optional<outbox_options> spool;     ///< `spool-dir`
    std::optional<signing_key> signing;      ///< `signing-key-file` + `signing-key-id`
    keyring verify_keys;                     ///< `verify-key-file`
    bool require_signatures = false;         ///< `require-signatures`
    wire_format format = wire_format::legacy;  ///< `wire-format`: what producers send
};

/// Reads the connection keys of an already-parsed config file:
///  - `rserver` (required) and `stomp-options`, exactly as the original configs write them;
///  - `passcode-file` (a 0600 file; overrides the URL's password), `vhost`, `client-id`,
///    `tls-ca-file`;
///  - liveness (docs/brokers.md, "Keepalive tuning"): `heartbeat-ms` (both directions, or
///    `heartbeat-send-ms`/`heartbeat-receive-ms`), `keepalive-ms` (STOMP 1.0 EOL keepalive),
///    `probe-ms`, `probe-timeout-ms` (STOMP 1.0 liveness probe), `dead-link-grace`;
///  - `legacy-keepalive` (the original stomp-keepalive cron job's replacement):
///    `{topics: [name, ...] or {name: {type: topic|queue}}, interval: SECONDS}`;
///  - `subscribe-headers`, `publish-headers`: maps of extra STOMP headers;
///  - `spool-dir`, `wire-format` (legacy, native, both), `signing-key-file`/`signing-key-id`,
///    `verify-key-file`, `require-signatures`.
bus_config read_bus_config(const YAML::Node& root, const std::string& file);

/// Loads a YAML file; a syntax error becomes config_error with file and line.
YAML::Node load_yaml(const std::filesystem::path& path);

/// Reads a secret (password, token, webhook secret) from a file that group and others cannot
/// access; trailing newlines are dropped. Throws config_error naming `what` and the path.
std::string read_secret_file(const std::string& path, const std::string& what);

/// `file:LINE: key: message` for a node.
std::string config_where(const std::string& file, const YAML::Node& n, std::string_view key);

} // namespace bus
