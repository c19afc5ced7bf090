#pragma once

// repo-poller's configuration (/etc/repo-poller/repo-poller.yaml), in the style of the other
// daemons: `rserver`/`stomp-options` and the other connection keys (bus/config.hpp), `topic`,
// `wire-format`, `state-dir`, `repositories:` (docs/repo-poller.md). Errors name file, line and
// key, unknown keys the nearest known one.

#include "poll_logic.hpp"

#include "version_helper.hpp"

#include "bus/config.hpp"
#include "bus/runtime/config_reader.hpp"
#include "bus/runtime/settings.hpp"

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace repo_poller {

/// One `repositories:` entry.
struct repository {
    std::string url;                         ///< the repository root (holds dists/), no trailing '/'
    std::vector<std::string> suites;         ///< dists/<suite>
    std::vector<std::string> components;     ///< empty: the InRelease's Components
    std::vector<std::string> architectures;  ///< empty: the InRelease's Architectures (not "source")
    std::vector<std::string> packages;       ///< names or globs of interest; empty: every package
    std::string keyring;                     ///< absolute path; empty: signatures not checked
    schedule when;                           ///< interval, jitter, backoff
    std::string where;                       ///< "file:LINE: repositories[i]" for messages
};

struct http_limits {
    std::chrono::milliseconds connect_timeout{10'000};
    std::chrono::milliseconds request_timeout{120'000};
    std::size_t max_release_bytes = 16u << 20;   ///< InRelease
    std::size_t max_index_bytes = 256u << 20;    ///< one Packages index, compressed
    std::size_t max_unpacked_bytes = 1u << 30;   ///< one Packages index, decompressed
    std::string ca_file;
};

struct config {
    bus::bus_config bus;
    std::string topic = "future.package.updates";
    std::filesystem::path state_dir = "/var/lib/repo-poller";
    std::vector<repository> repositories;
    http_limits http;
    std::string gpgv = "/usr/bin/gpgv";
    std::chrono::milliseconds gpgv_timeout{30'000};
    /// stomp-repo-vercmp (package deploykit-vercmp): libapt-pkg's version order, one run per
    /// changed Packages index (daemons/common/version_helper.hpp).
    std::string version_helper = deploykit::default_version_helper;
    unsigned workers = 2;
    bus::runtime::heartbeat_options heartbeat;
    std::optional<bus::http::listen_address> admin_listen;
};

/// Loads and validates the file. `notice` receives notices (ignored keys).
config load_config(const std::filesystem::path& path, bus::runtime::notice_fn notice = {});
/// The same from text (tests); `name` stands for the file in messages.
config parse_config(std::string_view text, const std::string& name);

} // namespace repo_poller
