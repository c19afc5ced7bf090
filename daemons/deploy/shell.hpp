#pragma once

// The `deploy` CLI's I/O shell: its config, its command line, and the bus session that runs one
// command (discovery, votes, commits, health gate, job events). The decisions are core.hpp's.

#include "bus/config.hpp"

#include <chrono>
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

struct command {
    std::string name;  ///< tags, state, run, rollback, exec
    std::string repo, tag, exec_name;
    std::optional<long> tags_count;
    std::vector<std::string> identities, facts, classes, nodes;
    std::optional<double> discovery_timeout;
    bool json = false;
    bool verbose = false;
    rollout_options ro;
};

/// Runs one command on the bus; returns the exit status (core.hpp's exit_*).
int run_command(const config& cfg, const command& cmd);

} // namespace deploy::cli
