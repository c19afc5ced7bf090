#pragma once

// The blocking half of deploy-agent: hooks, checkout, the symlink switch, the state file and
// whitelisted commands. Every function here runs on the worker pool (never the I/O thread) and
// never throws for a failed step: the outcome says which stage failed and why.

#include "config.hpp"
#include "core.hpp"

#include "deploy/protocol.hpp"

#include <string>
#include <vector>

namespace deploy_agent {

struct outcome {
    deploy::status code = deploy::status::ok;
    std::string message;
    std::vector<deploy::stage> stages;
    nlohmann::json data = nlohmann::json::object();
    std::string failed_stage;  ///< empty on success
    std::string tag;
    std::string commit;
    std::string previous_tag;
};

struct deploy_params {
    const repo_config* repo = nullptr;
    std::string state_dir;
    std::string self_exe;  ///< this program, for the checkout worker
    std::chrono::milliseconds hook_timeout{300000};
    std::chrono::milliseconds checkout_timeout{300000};
    std::size_t max_output = 64 * 1024;
    std::string request_id;
    std::string caller;
};

/// The repo's state (empty record when none yet).
repo_record load_state(const std::string& state_dir, const std::string& repo, std::string* error = nullptr);

/// deploy REPO TAG: pre-deploy, checkout into a new release, pre-link, link, post-deploy, record.
outcome run_deploy(const deploy_params& p, const std::string& tag, const std::string& commit);
/// rollback REPO: the previous release, with the same hooks.
outcome run_rollback(const deploy_params& p);
/// run COMMAND: the configured argv as the configured user.
outcome run_command(const command_config& c, std::size_t max_output);

/// The checkout worker's main (`deploy-agent --checkout-worker CLONE COMMIT DEST`): exit status.
int checkout_worker_main(int argc, char** argv);

} // namespace deploy_agent
