#pragma once

// stomp-ci's configuration (/etc/stomp-ci/stomp-ci.yaml, docs/stomp-ci.md): the connection
// (`rserver`, `stomp-options` as every daemon), topics and the job queue, where runs happen and
// as whom, their limits, the log server, and `repos:` with each repository's jobs.

#include "bus/config.hpp"
#include "bus/runtime/config_reader.hpp"
#include "bus/runtime/settings.hpp"
#include "refs.hpp"

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace stomp_ci {

struct limits {
    std::uint64_t cpu_seconds = 3600;       ///< RLIMIT_CPU per step
    std::uint64_t memory_bytes = 4ull << 30; ///< RLIMIT_AS
    std::uint64_t processes = 256;          ///< RLIMIT_NPROC (per user: the job user's)
    std::uint64_t file_bytes = 1ull << 30;  ///< RLIMIT_FSIZE (the log file is ours, not limited)
    bool operator==(const limits&) const = default;
};

struct job_config {
    std::string name;
    deploykit::refs::filter refs;
    std::vector<std::string> ref_globs;  ///< `refs:` as written (full refs, e.g. refs/heads/*)
    std::vector<std::vector<std::string>> steps;  ///< argv lists; argv[0] absolute or ./ in the checkout
    std::chrono::milliseconds timeout{3600000};       ///< the whole job
    std::chrono::milliseconds step_timeout{1800000};  ///< each step
    std::vector<std::pair<std::string, std::string>> env;
    std::vector<std::string> datasets;  ///< absolute paths, given to the job read-only (CI_DATASETS)
    std::vector<std::string> artifacts; ///< globs relative to the checkout: files kept after the run
    limits lim;
    double slow_factor = 3.0;                      ///< slow: > factor × median of the history
    std::chrono::milliseconds slow_after{0};       ///< or longer than this (0: no absolute bound)
};

struct repo_config {
    std::string name;
    std::string url;  ///< the origin the mirror fetches
    std::vector<job_config> jobs;
};

struct config {
    bus::bus_config bus;
    std::string listen_topic = "future.git.commits";
    std::string job_queue = "deploykit.ci.jobs";
    std::string recheck_topic = "deploykit.ci.recheck";
    std::string report_topic = "future.jenkins.builds";
    // The original one-liners, where jenkins-helper sends them.
    std::string legacy_begin_topic = "future.jenkins";
    std::string legacy_success_topic = "future.jenkins.success";
    std::string legacy_failure_topic = "future.jenkins.cake";
    std::string events_topic = "future.events.jenkins";
    bool dispatch = false;
    std::filesystem::path work_dir = "/var/lib/stomp-ci/work";
    std::filesystem::path mirror_dir = "/var/lib/stomp-ci/mirrors";
    std::filesystem::path state_dir = "/var/lib/stomp-ci/state";
    unsigned workers = 2;          ///< concurrent runs; 0: dispatch only (no job queue subscription)
    bool serialize_repos = false;  ///< one run per repository at a time
    std::string user = "nobody";
    unsigned keep_runs = 10;       ///< work dirs kept (newest first) on this worker
    unsigned keep_artifacts = 100; ///< runs whose artifacts are kept on this worker
    std::uint64_t artifacts_max_bytes = 100ull << 20;  ///< per run: what a run keeps at most
    std::uint64_t artifacts_max_files = 1000;
    std::chrono::milliseconds stop_grace{20000};
    std::filesystem::path cgroup_root = "/sys/fs/cgroup";  ///< empty: no per-run cgroups  ///< SIGTERM: runs may finish this long, then go back to the queue
    std::chrono::milliseconds fetch_timeout{300000};
    std::optional<bus::http::listen_address> log_listen;
    std::string log_url;           ///< public prefix of log links (no trailing '/')
    std::string durable_name;
    std::map<std::string, repo_config, std::less<>> repos;
    bus::runtime::heartbeat_options heartbeat;
    std::optional<bus::http::listen_address> admin_listen;
    std::optional<bus::runtime::config_file> file;
};

/// Loads and validates the file: every error names the file, line and key.
config load_config(const std::filesystem::path& path, bus::runtime::notice_fn notice = {});
/// From text (tests).
config parse_config(std::string_view text, std::string name);

/// Keys that changed and that only a restart applies (SIGHUP re-reads `repos`).
std::vector<std::string> needs_restart(const config& running, const config& fresh);

} // namespace stomp_ci
