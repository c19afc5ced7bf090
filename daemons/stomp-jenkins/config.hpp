#pragma once

// stomp-jenkins' configuration: the original /etc/stomp-jenkins/stomp-jenkins.yaml loads unchanged
// (`rserver`, `stomp-options`, `listen-topic`, `report-topic`, `jenkins-url`, `jenkins-projects`
// in the flat git form, the nested SVN-by-Project form and the older `repo: token` form, with
// `project`, `ticket` and `ignore_refs`), plus deploykit's optional keys (docs/stomp-jenkins.md).

#include "bus/config.hpp"
#include "refs.hpp"
#include "bus/runtime/config_reader.hpp"
#include "bus/runtime/settings.hpp"

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stomp_jenkins {

/// How a job is triggered.
enum class trigger_mode {
    build,                  ///< POST /job/…/build (json= parameters when configured), API-token auth
    build_with_parameters,  ///< POST /job/…/buildWithParameters with form fields
    token,                  ///< as build/buildWithParameters plus the job's remote-trigger `token`
    build_by_token,         ///< Build Authorization Token Root: /buildByToken/build[WithParameters]
    notify_commit,          ///< git plugin: /git/notifyCommit?url=&branches=&sha1=&token=
};
std::string_view to_string(trigger_mode m) noexcept;
/// `build`, `buildWithParameters`, `token`, `buildByToken`, `notifyCommit`.
std::optional<trigger_mode> parse_trigger_mode(std::string_view s) noexcept;

/// One Jenkins job that commits to a repository trigger.
struct job_config {
    std::string name;        ///< Jenkins full name, decoded: "folder/sub/name with spaces"
    std::string configured;  ///< `project` as written (the original's `name%20with%20spaces`)
    trigger_mode mode = trigger_mode::build;
    std::string token;       ///< `ticket`/`token`: the job's (or notifyCommit's) token; secret
    std::string ignore_refs;                      ///< regex source; empty = no filter
    std::shared_ptr<const std::regex> ignore_re;  ///< compiled `ignore_refs`
    std::vector<std::string> branches;  ///< glob patterns on the branch name; empty = every ref
    /// Parameter name → template (`{commit}`, `{branch}`, …). Empty with
    /// build_with_parameters/buildByToken-with-parameters = the default set.
    std::vector<std::pair<std::string, std::string>> parameters;
    bool with_parameters = false;  ///< send parameters (buildWithParameters, or `parameters:` set)
    std::chrono::milliseconds quiet{0};  ///< coalescing window for bursts of pushes
    std::optional<std::chrono::seconds> delay;  ///< Jenkins `delay=Nsec` (its own quiet period)
    std::string cause;       ///< template for Jenkins' `cause=` note
    std::string clone_url;   ///< notifyCommit `url=`
    bool notify_sha1 = true; ///< notifyCommit: pass `sha1=` (build that commit) instead of polling

    /// What the logs and reports call this job.
    std::string display() const { return name.empty() ? clone_url : name; }
};

/// One `jenkins-projects` entry (a repository name).
struct project_entry {
    std::string repo;
    std::vector<job_config> jobs;  ///< flat form: every commit to the repo
    /// Nested form: by the SVN message's `Project:` value.
    std::map<std::string, std::vector<job_config>, std::less<>> by_project;
    bool nested = false;
};

using projects_map = std::map<std::string, project_entry, std::less<>>;

struct http_settings {
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::milliseconds request_timeout{30000};
    unsigned retries = 8;                         ///< further attempts after a transient failure
    std::chrono::milliseconds retry_initial{1000};
    std::chrono::milliseconds retry_max{60000};
    unsigned workers = 4;                         ///< HTTP threads (one curl session each)
    bool crumbs = true;                           ///< `crumb: auto` (fetch, reuse, refetch on 403) or `off`
    std::string ca_file;                          ///< `jenkins-ca-file`
    std::chrono::seconds queue_follow{600};       ///< follow queue items this long; 0 = off
};

/// `user:apitoken` from `credentials-file`.
struct credentials {
    std::string user;
    std::string token;
    bool empty() const noexcept { return user.empty(); }
};

struct config {
    bus::bus_config bus;
    std::string listen_topic = "future.git.commits";
    std::string report_topic = "future.events.jenkins";
    std::string build_topic;   ///< native build events; empty = report_topic
    std::string durable_name;  ///< non-empty: durable subscription (RabbitMQ and ActiveMQ headers)
    std::string jenkins_url;   ///< without a trailing '/'
    projects_map projects;
    http_settings http;
    std::string credentials_file;
    credentials creds;
    std::size_t max_pending = 1000;  ///< messages in progress before intake waits
    bus::runtime::heartbeat_options heartbeat;  ///< `heartbeat-topic`, `heartbeat-interval`
    std::optional<bus::http::listen_address> admin_listen;  ///< `admin-listen`: /metrics /livez /readyz
    std::string replay_cache;  ///< `replay-cache`: processed event ids kept on disk (bus/replay_cache.hpp)
    std::optional<bus::runtime::config_file> file;  ///< what it was read from (reload diffs)
};

/// Loads and validates the file; errors name the file, line and key (unknown keys too, with the
/// nearest known one). Reads credentials-file. `notice` receives notices (ignored keys).
config load_config(const std::filesystem::path& path, bus::runtime::notice_fn notice = {});

/// Settings changed between `running` and `fresh` that a reload cannot apply (everything but
/// jenkins-projects, credentials-file and quiet-seconds): the daemon logs them on SIGHUP.
std::vector<std::string> needs_restart(const config& running, const config& fresh);

/// Parses `jenkins-projects` alone (a node of an already loaded file). `default_quiet` applies
/// to jobs without `quiet-seconds`.
projects_map parse_projects(const YAML::Node& node, const std::string& file,
                            std::chrono::milliseconds default_quiet = std::chrono::milliseconds(0));

/// Ruby-only anchors in an `ignore_refs` regex (daemons/common/refs.hpp).
using deploykit::refs::translate_ruby_anchors;

/// Reads `user:apitoken` from a 0600 file.
credentials read_credentials(const std::string& path, const std::string& what);

} // namespace stomp_jenkins
