#pragma once

// herald's deploy page, pure: the deploy form read into the deploy CLI's command (the same
// validation as `deploy run`: tag, repo, identities, filters, counts), past deploys from the
// recorded deploy.job events, and the HTML of the deploy and job pages. No sockets, no Asio.

#include "record.hpp"
#include "web.hpp"

#include "options.hpp"  // deploy::cli::command, rollout_options

#include <nlohmann/json.hpp>

#include <string>
#include <utility>
#include <vector>

namespace herald {

using form_fields = std::vector<std::pair<std::string, std::string>>;

/// The deploy form (`repo`, `tag`, `node` repeated, `identity`, `fact`, `class` (each: one per
/// line), `canary`, `batch`, `max_failures`, `quorum`, `tries`, `health_url`, `timeout`) over
/// `defaults`. `error` is set, and nothing else may be used, when anything is invalid: a tag the
/// agents would refuse (deploy::valid_tag: no shell metacharacters, git's ref rules), a repo
/// name, a node identity, a filter, a count, a non-http(s) health URL, or no node chosen.
struct deploy_form {
    deploy::cli::command cmd;  ///< name "run"
    std::string error;
};
deploy_form parse_deploy_form(const form_fields& fields, const deploy::cli::rollout_options& defaults);

/// One rollout as the past-deploys list shows it (its newest deploy.job event).
struct job_row {
    std::string job_id, repo, tag, caller, state, action, time;
    std::int64_t seq = 0;
    nlohmann::json summary;  ///< null until the job ended
};
/// deploy.job events (newest first, as the store returns them) grouped by job id, newest job
/// first, at most `max`.
std::vector<job_row> past_jobs(const std::vector<recorded_event>& job_events, std::size_t max);

/// What the deploy page shows.
struct deploy_view {
    std::string repo;           ///< the chosen repo ("" = pick one)
    std::vector<std::string> repos;  ///< repos the agents have
    nlohmann::json answer;      ///< the discovery or `tags` answer (run_session's on_result)
    std::string discovery_error;
    std::vector<std::string> running;  ///< job ids of rollouts running from this herald
    std::vector<job_row> past;
    deploy::cli::rollout_options defaults;
    std::string error;          ///< a refused form
};
std::string deploy_page(const page_context& ctx, const deploy_view& v);

/// A job: its newest state (`job`: the job as the session reports it, or a recorded deploy.job
/// event's data), per-node stages with their output (`nodes_detail`, when known), progress
/// lines, and the agents' audit records of it.
struct job_view {
    std::string job_id;
    nlohmann::json job;
    std::string progress;
    std::vector<recorded_event> audits;
    bool running = false;     ///< a rollout of this herald, still running
    std::string stopped_by;   ///< who asked it to stop after the current batch
};
/// The live part of the job page (replaced by the live feed).
std::string job_fragment(const job_view& v);
std::string job_page(const page_context& ctx, const job_view& v);

} // namespace herald
