#pragma once

// stomp-repo's configuration, /etc/stomp-repo/stomp-repo.yaml in the original's style (`rserver`,
// `stomp-options`, `listen-topic`, `report-topic`) plus `watch:`, `sources-list:`, `apt-options:`
// and the timing keys (docs/stomp-repo.md). Errors name file, line and key.

#include "stomp_repo.hpp"

#include "bus/config.hpp"
#include "bus/runtime/config_reader.hpp"
#include "bus/runtime/settings.hpp"

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace stomp_repo {

struct config {
    bus::bus_config bus;
    std::string listen_topic = "future.package.updates";
    std::string report_topic = "future.events.stomp-repo";  ///< the original-style one-liner
    std::string result_topic = "future.package.results";    ///< native package.result events
    std::string durable_name;
    std::vector<watch> watches;
    apt_settings apt;
    /// stomp-repo-vercmp: libapt-pkg's version order, run once per event that needs one.
    std::string version_helper = "/usr/lib/deploykit/stomp-repo-vercmp";
    retry_policy retry;
    std::chrono::milliseconds coalesce{500};
    std::chrono::milliseconds coalesce_max{5000};
    std::vector<std::string> post_update_command;  ///< argv; empty = none
    std::chrono::milliseconds post_update_timeout{60000};
    std::size_t max_pending = 1000;
    std::filesystem::path replay_cache;
    bus::runtime::heartbeat_options heartbeat;
    std::optional<bus::http::listen_address> admin_listen;
    std::optional<bus::runtime::config_file> file;
};

config load_config(const std::filesystem::path& path, bus::runtime::notice_fn notice = {});

/// Top-level keys changed between two loads that a SIGHUP does not apply (all but `watch`).
std::vector<std::string> needs_restart(const config& running, const config& fresh);

} // namespace stomp_repo
