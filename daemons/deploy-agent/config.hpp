#pragma once

// deploy-agent's configuration (/etc/deploy-agent/deploy-agent.yaml, docs/deploy-agent.md) and
// the original gitagent facts file (/etc/facts.d/facts.yaml: repo_/sitedir_/controldir_/sitetype_
// keys), which defines repos too. No Asio.

#include "deploy/protocol.hpp"

#include "bus/config.hpp"
#include "bus/runtime/config_reader.hpp"
#include "bus/runtime/settings.hpp"

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace deploy_agent {

struct repo_config {
    std::string name;
    std::string repo;        ///< the clone stomp-git keeps fetched
    std::string sitedir;     ///< the symlink the web server serves; the agent swaps it
    std::string controldir;  ///< pre-deploy.sh, pre-link.sh, post-deploy.sh
    std::string user;        ///< hooks and checkout run as this user
    std::string sitetype;    ///< the original's dev|stage|live label (in the legacy line)
    int keep = 5;            ///< releases kept on disk (at least 2: the live one and the previous)
    bool allow_branches = false;
    std::string releases() const { return sitedir + ".releases"; }
};

struct command_config {
    std::string name;
    std::vector<std::string> argv;
    std::string user;
    std::string dir = "/";
    std::vector<std::string> env;  ///< K=V, added to the clean environment
    std::chrono::milliseconds timeout{60000};
};

struct config {
    bus::bus_config bus;
    std::string identity;
    std::string facts_file = "/etc/facts.d/facts.yaml";
    std::string classes_file;
    std::map<std::string, std::string> facts;  ///< scalar facts (for heartbeats and discovery)
    std::vector<std::string> classes;
    std::map<std::string, repo_config> repos;
    std::map<std::string, command_config> commands;
    std::vector<deploy::policy_rule> policy;
    std::string default_user = "www-data";  ///< repos from the facts file (the original's)
    std::string request_topic{deploy::default_request_topic};
    std::string request_queue_prefix{deploy::default_request_queue_prefix};
    std::string reply_prefix{deploy::default_reply_prefix};
    std::string agent_topic{deploy::default_agent_topic};
    std::string audit_topic{deploy::default_audit_topic};
    std::string event_topic{deploy::default_event_topic};
    std::string result_topic = "/topic/deploykit.deploy.results";  ///< native deploy.result
    std::chrono::milliseconds agent_interval{30000};
    std::chrono::milliseconds hook_timeout{300000};
    std::chrono::milliseconds checkout_timeout{300000};
    std::size_t max_output = 64 * 1024;
    std::string state_dir = "/var/lib/deploy-agent";
    std::string replay_cache;  ///< default <state-dir>/replay-cache
    bus::runtime::heartbeat_options heartbeat;
    std::optional<bus::http::listen_address> admin_listen;
    std::optional<bus::runtime::config_file> file;
};

/// Loads and checks the config; errors are config_errors naming file, line and key.
config load_config(const std::filesystem::path& path, bus::runtime::notice_fn notice = {});

/// Repos from the gitagent facts (`repo_<name>`, `sitedir_<name>`, `controldir_<name>`,
/// `sitetype_<name>`); a name with a repo_ key but no sitedir_ is an error naming file and key.
/// Pure: `facts` is the file's flat map, in file order.
std::map<std::string, repo_config> repos_from_facts(const std::vector<std::pair<std::string, std::string>>& facts,
                                                    const std::string& file, const std::string& default_user);

} // namespace deploy_agent
