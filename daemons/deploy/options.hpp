#pragma once

// The `deploy` CLI's config (deploy.yaml), its rollout options and one command, without Asio:
// herald's pure form parsing builds a command from these too.

#include "bus/config.hpp"
#include "bus/runtime/config_reader.hpp"

#include <optional>
#include <string>
#include <vector>

namespace deploy::cli {

struct destinations {
    std::string request_topic = "/topic/deploykit.deploy.requests";
    std::string request_queue_prefix = "/queue/deploykit.deploy.node.";
    std::string reply_prefix = "/topic/deploykit.deploy.reply.";
    std::string agent_topic = "/topic/deploykit.deploy.agents";
    std::string job_topic = "/topic/deploykit.deploy.jobs";
};

/// Rollout options: the command line over the config's `defaults:`.
struct rollout_options {
    long canary = 0;
    std::string batch = "100%";
    double batch_sleep = 0;
    int tries = 1;
    double try_sleep = 1;
    std::string max_failures = "0";
    std::string quorum = "100%";
    std::string health_url, health_cmd;
    double health_timeout = 10;
    double timeout = 60;  ///< per node commit (and for a direct request's answers)
    double vote_timeout = 5;
};

struct config {
    bus::bus_config bus;
    destinations dest;
    double discovery_timeout = 2;
    std::string caller;  ///< default: the login name
    rollout_options defaults;
};

/// Reads `path` (a missing default file is not an error: built-in defaults, broker
/// stomp://127.0.0.1:61613). Throws bus::config_error naming file, line and key.
config load_config(const std::string& path, bool explicit_path);

/// The deploy keys of a config section (destinations, discovery-timeout, caller, `defaults:`),
/// without the bus keys: deploy.yaml's root, or herald's `deploy:` section.
void read_deploy_keys(const bus::runtime::section& s, config& c);

/// Throws usage_error unless the options make a rollout: counts and percentages parse, the
/// health command splits, nothing negative, tries 1-100, timeouts positive.
void check_rollout_options(const rollout_options& r);

struct command {
    std::string name;  ///< tags, state, run, rollback, exec; discover (nodes only: herald)
    std::string job_id;  ///< a rollout's job id (valid_id), "" = a random one
    std::string repo, tag, exec_name;
    std::optional<long> tags_count;
    std::vector<std::string> identities, facts, classes, nodes;
    std::optional<double> discovery_timeout;
    bool json = false;
    bool verbose = false;
    rollout_options ro;
};

} // namespace deploy::cli
