#pragma once

// github-webhook's configuration: the original github-stomp keys (`rserver`, `stomp-options`,
// `trigger-topic`, `report-topic`) plus the listener, limits and one entry per hook path.

#include "webhook.hpp"

#include "bus/config.hpp"
#include "bus/runtime/config_reader.hpp"
#include "bus/runtime/settings.hpp"

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace webhook {

struct config {
    bus::bus_config bus;
    std::string listen_address = "127.0.0.1";
    unsigned short listen_port = 4567;  ///< Sinatra's default, which github-stomp ran on
    std::string tls_cert_file;          ///< both set: HTTPS only
    std::string tls_key_file;
    std::size_t max_body_bytes = 25 * 1024 * 1024;  ///< GitHub caps payloads at 25 MB
    std::size_t max_header_bytes = 16 * 1024;
    std::chrono::seconds first_byte_timeout{5};  ///< a new connection's first byte (at most read_timeout)
    std::chrono::seconds read_timeout{10};  ///< a whole request (headers and body) must arrive within this, from its first byte
    std::chrono::seconds idle_timeout{30};  ///< keep-alive connections idle longer are closed
    std::size_t max_connections = 512;
    std::size_t max_connections_per_source = 64;  ///< per client address (0: none)
    std::size_t max_inflight_body_bytes = 256 * 1024 * 1024;  ///< declared bodies being read, all connections
    std::chrono::milliseconds accept_timeout{2000};  ///< wait this long for the broker's receipt, then spool
    std::vector<cidr> trusted_proxies;
    std::vector<cidr> allow_from;         ///< hook paths; empty = anyone
    std::vector<cidr> health_allow_from;  ///< /livez /readyz /metrics; empty = anyone
    std::optional<bus::http::listen_address> admin_listen;  ///< `admin-listen`: the runtime's /metrics /livez /readyz listener
    bus::runtime::heartbeat_options heartbeat;               ///< `heartbeat-topic`, `heartbeat-interval`
    std::size_t dedupe_entries = 100000;
    std::chrono::seconds dedupe_ttl{7 * 24 * 3600};  ///< GitHub lets you redeliver for days
    bool access_log = true;
    std::vector<hook_config> hooks;
    /// The original github-stomp.yaml (no `hooks:`, no secret): loaded with an unsigned hook at
    /// POST /, which is logged loudly at every start and reload.
    bool legacy_unsigned = false;
    std::optional<bus::runtime::config_file> file;  ///< what it was read from (reload diffs)
};

/// Loads and validates a config file (bus/runtime/config_reader.hpp): errors name the file, line
/// and key; unknown keys, and underscore spellings of ours, are errors naming the key meant.
/// Secrets come from `secret-file` (bus::runtime::read_secret_file's policy) or `secret-env`,
/// never from the YAML itself. `notice` receives notices.
config load_config(const std::filesystem::path& path, bus::runtime::notice_fn notice = {});

/// Settings changed between `running` and `fresh` that a reload cannot apply (the listener, its
/// limits, TLS, the broker connection, the admin endpoint...): logged on SIGHUP.
std::vector<std::string> needs_restart(const config& running, const config& fresh);

/// The hook for a request path, or nullptr.
const hook_config* find_hook(const config& c, std::string_view path);

} // namespace webhook
