#pragma once

// The deploy protocol (docs/deploy-protocol.md) between the `deploy` CLI and every
// `deploy-agent`: the messages as structs, their JSON through the bus event model
// (bus::extension_event for agent.request, agent.reply, deploy.job and deploy.audit; the agent
// heartbeat is an ordinary heartbeat event with extra data keys), MCollective's status codes,
// input validation and the action policy. Pure: no I/O, no Asio.

#include "bus/event.hpp"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace deploy {

inline constexpr std::string_view request_type = "agent.request";
inline constexpr std::string_view reply_type = "agent.reply";
inline constexpr std::string_view job_type = "deploy.job";
inline constexpr std::string_view audit_type = "deploy.audit";

/// Default destinations (config keys in docs/deploy-protocol.md).
inline constexpr std::string_view default_request_topic = "/topic/deploykit.deploy.requests";
inline constexpr std::string_view default_request_queue_prefix = "/queue/deploykit.deploy.node.";
inline constexpr std::string_view default_reply_prefix = "/topic/deploykit.deploy.reply.";
inline constexpr std::string_view default_agent_topic = "/topic/deploykit.deploy.agents";
inline constexpr std::string_view default_job_topic = "/topic/deploykit.deploy.jobs";
inline constexpr std::string_view default_audit_topic = "/topic/deploykit.deploy.audit";
inline constexpr std::string_view default_event_topic = "future.events.deploys";

/// MCollective's per-node status table.
enum class status : int { ok = 0, aborted = 1, unknown_action = 2, missing_data = 3, invalid_data = 4, error = 5 };
std::string_view to_string(status s) noexcept;

enum class phase { direct, vote, commit, release };
std::string_view to_string(phase p) noexcept;
std::optional<phase> parse_phase(std::string_view s) noexcept;

/// The actions an agent knows.
inline constexpr std::string_view actions[] = {"ping", "tags", "state", "deploy", "rollback", "run"};
bool known_action(std::string_view a) noexcept;

struct request_args {
    std::string repo;
    std::string tag;
    std::string command;
    std::optional<std::int64_t> count;  ///< tags: how many (a number or a decimal string on the wire)
    bool operator==(const request_args&) const = default;
};

struct request {
    std::string request_id;
    std::string job_id;
    std::string action;
    phase ph = phase::direct;
    request_args args;
    std::string caller;
    std::string deadline;  ///< RFC 3339 UTC
    std::vector<std::string> nodes;
    std::string reply_to;
    bool operator==(const request&) const = default;
};

struct stage {
    std::string name;
    int exit_code = 0;
    std::string output;
    double duration_s = 0;
    bool operator==(const stage&) const = default;
};

struct reply {
    std::string request_id;
    std::string job_id;
    std::string identity;
    std::string action;
    phase ph = phase::direct;
    status code = status::ok;
    std::string message;
    std::string vote;  ///< ready, busy, refusing (phase vote only)
    nlohmann::json data = nlohmann::json::object();
    std::vector<stage> stages;
    double duration_s = 0;
    bool operator==(const reply&) const = default;
};

/// One repo as a heartbeat or ping shows it.
struct repo_state {
    std::string name;
    std::string tag;
    std::string commit;
    bool operator==(const repo_state&) const = default;
};

/// The agent's heartbeat data (and ping's reply data).
struct agent_info {
    std::string identity;
    std::string version;
    std::map<std::string, std::string> facts;
    std::vector<std::string> classes;
    std::vector<repo_state> repos;
    double interval_s = 0;
    bool operator==(const agent_info&) const = default;
};

struct job_summary {
    std::int64_t discovered = 0;
    std::int64_t responded = 0;
    std::int64_t ok = 0;
    std::int64_t failed = 0;
    std::vector<std::string> no_reply;
    double duration_s = 0;
    bool operator==(const job_summary&) const = default;
};

struct job {
    std::string job_id;
    std::string state;  ///< new, voting, running, complete, quorum_failed, aborted, timed_out
    std::string action;
    std::string repo;
    std::string tag;
    std::string caller;
    std::map<std::string, std::string> options;
    std::int64_t batch = 0;
    std::int64_t batches = 0;
    std::map<std::string, std::string> nodes;  ///< identity → node state
    std::optional<job_summary> summary;
    bool operator==(const job&) const = default;
};
inline constexpr std::string_view job_states[] = {"new", "voting", "running", "complete", "quorum_failed", "aborted",
                                                  "timed_out"};
inline constexpr std::string_view node_states[] = {"ready", "running", "succeeded", "failed", "unavailable",
                                                   "nacked", "timed_out"};

struct audit {
    std::string request_id;
    std::string job_id;
    std::string caller;
    bool verified = false;
    std::string action;
    nlohmann::json args = nlohmann::json::object();
    std::string phase;
    status code = status::ok;
    std::string message;
    std::vector<stage> stages;  ///< output is not audited, only name, exit code and duration
    double duration_s = 0;
    bool operator==(const audit&) const = default;
};

// ---- JSON and events ----

template <class T>
using decoded = bus::decoded<T>;

nlohmann::json to_json(const request& r);
nlohmann::json to_json(const reply& r);
nlohmann::json to_json(const agent_info& a);
nlohmann::json to_json(const job& j);
nlohmann::json to_json(const audit& a);
nlohmann::json to_json(const request_args& a);

/// Field errors name the field (`data.args.tag: not a string`). Decoding checks types and sizes;
/// `validate` checks the values.
decoded<request> request_from_json(const nlohmann::json& d);
decoded<reply> reply_from_json(const nlohmann::json& d);
decoded<agent_info> agent_info_from_json(const nlohmann::json& d);
decoded<job> job_from_json(const nlohmann::json& d);
decoded<audit> audit_from_json(const nlohmann::json& d);

/// A fresh event (bus::make_event) carrying the message.
bus::event to_event(const request& r, std::string host = {});
bus::event to_event(const reply& r, std::string host = {});
bus::event to_event(const job& j, std::string host = {});
bus::event to_event(const audit& a, std::string host = {});
/// The ordinary heartbeat event (daemon `deploy-agent`) with the agent's keys in `extra`.
bus::event to_heartbeat(const agent_info& a, std::chrono::duration<double> uptime,
                        std::map<std::string, std::uint64_t> counters, std::string host = {});

/// From a decoded event: an error if the event is of another type or its data is malformed.
decoded<request> request_from(const bus::event& e);
decoded<reply> reply_from(const bus::event& e);
decoded<job> job_from(const bus::event& e);
decoded<audit> audit_from(const bus::event& e);
/// From a heartbeat event with daemon `deploy-agent`.
decoded<agent_info> agent_info_from(const bus::event& e);

/// The audit record of a request and its reply (stage output left out).
audit make_audit(const request& r, const reply& rep, std::string caller, bool verified);

// ---- validation ----

/// `[A-Za-z0-9][A-Za-z0-9._-]{0,63}`.
bool valid_identity(std::string_view s) noexcept;
/// request_id, job_id and command names: `[A-Za-z0-9._-]{1,64}`.
bool valid_id(std::string_view s) noexcept;
/// A tag (or, where allowed, branch) name as the agent accepts it: at most 255 bytes, and
/// `refs/tags/<tag>` passes `git check-ref-format` (bus::valid_ref_name, which also refuses shell
/// metacharacters). Whether it exists, and under refs/tags/, is the agent's check on its clone.
bool valid_tag(std::string_view s) noexcept;
/// `reply_to` starts with `prefix`, followed by `[A-Za-z0-9._-]{1,64}`.
bool valid_reply_to(std::string_view dest, std::string_view prefix) noexcept;

/// The outcome of checking a request before acting on it.
struct verdict {
    status code = status::ok;
    std::string message;
    explicit operator bool() const noexcept { return code == status::ok; }
};

/// Checks a request's fields against the contract: ids, action, phase, deadline present and
/// parseable, reply_to under `reply_prefix`, arguments each action needs (3 when missing, 4 when
/// malformed), `count` 1..1000. Repo, tag existence and command names are checked against the
/// agent's config by the agent.
verdict validate(const request& r, std::string_view reply_prefix = default_reply_prefix);

/// RFC 3339 UTC (`2026-12-04T10:00:00Z`, optional fraction) to a time point.
std::optional<std::chrono::system_clock::time_point> parse_time(std::string_view s) noexcept;
/// A time point as RFC 3339 UTC with seconds.
std::string format_time(std::chrono::system_clock::time_point t);

// ---- policy (MCollective actionpolicy: ordered rules, first match, default deny) ----

struct policy_rule {
    std::string caller = "*";
    std::string action = "*";
    std::string repo = "*";  ///< for `run`: the command name; "*" also matches actions without a repo
    bool allow = false;
    bool operator==(const policy_rule&) const = default;
};

struct policy_decision {
    bool allow = false;
    int rule = -1;  ///< index of the matching rule; -1: no rule matched (default deny)
};

/// `object` is the repo (or, for run, the command name; empty for ping).
policy_decision evaluate(const std::vector<policy_rule>& rules, std::string_view caller, std::string_view action,
                         std::string_view object) noexcept;

/// Bounds captured output: keeps the tail, prefixed with `…[truncated]` when cut.
std::string bound_output(std::string s, std::size_t limit = 64 * 1024);

} // namespace deploy
