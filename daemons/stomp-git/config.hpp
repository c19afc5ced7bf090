#pragma once

// stomp-git's configuration: the original /etc/stomp-git/stomp-git.yaml loads unchanged
// (`rserver`, `stomp-options`, `listen-topic`, `report-topic`, `repo-list` entries
// `{user, repo, target, mode}` and the older flat `name: path` form), plus deploykit's keys.

#include "bus/config.hpp"
#include "bus/runtime/config_reader.hpp"
#include "bus/runtime/settings.hpp"

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace stomp_git {

enum class mode { normal, trusting, dangerous, puppetmaster, atomic };
std::string_view to_string(mode m) noexcept;

struct repo_entry {
    std::string name;
    std::string user;                  ///< empty: the daemon's own user
    std::filesystem::path path;        ///< the clone stomp-git fetches
    std::filesystem::path target;      ///< where trusting/puppetmaster/atomic publish
    mode how = mode::normal;
    std::string branch = "master";     ///< trusting/dangerous/atomic publish origin/<branch>
    unsigned keep = 5;                 ///< atomic: releases kept
};

struct config {
    bus::bus_config bus;
    std::string listen_topic = "future.git.commits";
    std::string report_topic = "future.events.stomp-git";
    std::map<std::string, repo_entry, std::less<>> repos;
    unsigned workers = 4;
    std::chrono::seconds fetch_timeout{300};
    std::chrono::seconds safety_fetch{3600};  ///< periodic fetch of every repo; 0 = off
    std::vector<std::string> post_fetch;      ///< argv run after a successful fetch (no shell)
    std::string ssh_key;                      ///< private key for ssh remotes (not group/world readable)
    std::string known_hosts;                  ///< strict host-key checking against this file; empty: ~/.ssh/known_hosts
    std::string credentials_file;             ///< https: "user:token" and/or https://user:token@host lines (0600)
    std::string https_ca_file;                ///< CA bundle trusted for https remotes instead of the system's
    std::chrono::seconds post_fetch_timeout{120};
    /// Root-owned directory for per-clone locks and post-fetch state (never writable by repo users).
    std::filesystem::path state_dir = "/var/lib/stomp-git";
    /// Durable subscription name (kept while stopped or reconnecting); empty: a plain subscription.
    std::string durable_name;
    /// Processed event ids kept on disk (bus/replay_cache.hpp), so a replayed signed event is
    /// refused after a restart too; empty: in memory only.
    std::filesystem::path replay_cache;
    bus::runtime::heartbeat_options heartbeat;              ///< heartbeat-topic, heartbeat-interval
    std::optional<bus::http::listen_address> admin_listen;  ///< /metrics /livez /readyz; off when absent
    std::optional<bus::runtime::config_file> file;          ///< what SIGHUP compares
};

/// Loads and validates the file (the runtime's reader): every error names the file, line, key
/// and what was expected; an unknown key is an error naming the nearest known one. `notice`
/// receives notices (the original's keys that are accepted and ignored).
config load_config(const std::filesystem::path& path, bus::runtime::notice_fn notice = {});

/// The top-level settings that changed between `running` and `fresh` and that only a restart
/// applies (the connection, topics, workers, admin-listen...). What the daemon re-reads on SIGHUP
/// (repositories, fetch-timeout, safety-fetch-interval) and what every worker reads from the
/// file anyway (post-fetch-command, ssh-key, credentials...) is not named.
std::vector<std::string> needs_restart(const config& running, const config& fresh);

} // namespace stomp_git
