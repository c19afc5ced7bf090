#pragma once

// The `deploy` CLI's pure core: node selection (MCollective's -I/-F/-C filters and a static
// list), counts and percentages, batch planning, quorum and failure threshold, the job and node
// state machines of docs/deploy-protocol.md, the summary, exit codes and the tags intersection.
// No sockets, no clock, no Asio: the I/O shell (shell.cpp) feeds it what the bus said.

#include <nlohmann/json.hpp>

#include <map>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace deploy::cli {

/// A usage or configuration error (exit status 2).
struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

// ---- nodes as heartbeats and ping replies describe them ----

struct repo_state {
    std::string name, tag, commit;
};

struct node_info {
    std::string identity;
    std::map<std::string, std::string> facts;
    std::vector<std::string> classes;
    std::vector<repo_state> repos;
};

// ---- selection ----

/// One `/regex/` or exact value (MCollective: a value in slashes is a regular expression,
/// searched, not anchored; anything else compares exactly).
class matcher {
public:
    /// Throws usage_error for a malformed regex.
    explicit matcher(const std::string& spec);
    bool operator()(const std::string& s) const;
    const std::string& spec() const noexcept { return spec_; }

private:
    std::string spec_;
    std::optional<std::regex> re_;
};

/// `-F key=value`, `key=/re/`, `key=~re`, `key==v`, `key!=v`, `key<v`, `key>v`, `key<=v`,
/// `key>=v`. Comparisons are numeric when both sides are numbers, else lexical (MCollective).
class fact_filter {
public:
    /// Throws usage_error.
    explicit fact_filter(const std::string& spec);
    bool operator()(const std::map<std::string, std::string>& facts) const;

private:
    enum class op { eq, ne, lt, gt, le, ge, re };
    std::string key_, value_;
    op op_ = op::eq;
    std::optional<std::regex> re_;
};

struct selection_args {
    std::vector<std::string> identities;  ///< -I, any one matches (OR, as MCollective)
    std::vector<std::string> facts;       ///< -F, all must match
    std::vector<std::string> classes;     ///< -C, all must match
    std::vector<std::string> nodes;       ///< --nodes A,B (split on commas), the node must be listed
};

class selector {
public:
    /// Throws usage_error for a bad regex, fact expression or identity in --nodes.
    explicit selector(const selection_args& a);
    bool matches(const node_info& n) const;
    /// The selected identities, sorted: discovered nodes that pass every filter, plus the
    /// --nodes entries never discovered (they are targeted and end as no reply, so a person
    /// sees the node they named did not answer). Those need no other filter, which cannot be
    /// checked without facts: with -F or -C they are left out.
    std::vector<std::string> select(const std::vector<node_info>& discovered) const;

private:
    std::vector<matcher> identities_, classes_;
    std::vector<fact_filter> facts_;
    std::vector<std::string> nodes_;
};

/// `[A-Za-z0-9][A-Za-z0-9._-]{0,63}` (docs/deploy-protocol.md).
bool valid_identity(std::string_view s) noexcept;

// ---- counts ----

/// `N` or `N%` (0..100 for a percentage).
struct amount {
    long value = 0;
    bool percent = false;
    /// Throws usage_error naming `what`.
    static amount parse(std::string_view s, std::string_view what);
    /// N, or N% of `total` rounded up (so 1% of 5 is 1, 0% is 0).
    long of(long total) const noexcept;
    std::string str() const;
};

// ---- rollout plan ----

/// Canary nodes (the first `canary` of `nodes`) form batch 0, the rest go in batches of
/// `batch` (N or N% of all nodes, at least 1). Node order is kept.
std::vector<std::vector<std::string>> plan_batches(const std::vector<std::string>& nodes, long canary, amount batch);

/// Quorum: `ready` of `selected` nodes voted ready; met if ready >= quorum.of(selected) and
/// ready > 0.
bool quorum_met(long ready, long selected, amount quorum) noexcept;

/// The failure threshold: the rollout stops once failures exceed max.of(selected).
bool past_threshold(long failures, long selected, amount max) noexcept;

// ---- state machines (docs/deploy-protocol.md) ----

enum class job_state { new_, voting, running, complete, quorum_failed, aborted, timed_out };
enum class node_state { ready, running, succeeded, failed, unavailable, nacked, timed_out };

std::string_view to_string(job_state s) noexcept;
std::string_view to_string(node_state s) noexcept;
bool terminal(job_state s) noexcept;
/// Whether the job may move from `a` to `b`.
bool allowed(job_state a, job_state b) noexcept;
/// Whether a node may move from `a` (nullopt: not voted yet) to `b`; a retry goes from failed
/// or timed_out back to running.
bool allowed(std::optional<node_state> a, node_state b) noexcept;

/// One node's outcome in the summary.
struct node_result {
    std::string identity;
    std::optional<node_state> state;  ///< nullopt: never voted (not asked)
    int status = -1;                  ///< agent status of the last reply, -1 none
    std::string message;
    int tries = 0;
    bool replied = false;  ///< answered anything (vote or commit)
    nlohmann::json detail;  ///< the last reply's data and stages
};

/// A job: its state, its nodes' states, guarded transitions. Each transition is an event for
/// the job topic; the shell publishes `to_json()` after each.
class job {
public:
    job(std::string id, std::string action, std::vector<std::string> nodes);
    const std::string& id() const noexcept { return id_; }
    job_state state() const noexcept { return state_; }
    /// Throws std::logic_error for a transition the machine does not allow.
    void set(job_state s);
    void set(const std::string& node, node_state s);
    std::optional<node_state> state_of(const std::string& node) const;
    const std::vector<std::string>& nodes() const noexcept { return order_; }
    std::vector<std::string> in_state(node_state s) const;
    long count(node_state s) const;
    /// failed + timed_out.
    long failures() const;

    // Per-node notes for the summary.
    void note_reply(const std::string& node, int status, std::string message, nlohmann::json detail = {});
    void note_try(const std::string& node);
    const node_result& result(const std::string& node) const;

    int batch = 0, batches = 0;
    std::string repo, tag, caller, stop_reason;
    nlohmann::json options = nlohmann::json::object();

private:
    std::string id_, action_;
    job_state state_ = job_state::new_;
    std::vector<std::string> order_;
    std::map<std::string, node_result> nodes_;
};

// ---- summary and exit code ----

struct summary {
    long discovered = 0;  ///< nodes selected
    long responded = 0;   ///< answered anything
    long ok = 0;
    long failed = 0;                    ///< failed + nacked + timed_out
    std::vector<std::string> no_reply;  ///< never answered, or no answer to the commit
    double duration_s = 0;
};

summary summarize(const job& j, double duration_s);
nlohmann::json to_json(const summary& s);
/// seed 001's line: `done deploy#run [discovered=5 responses=5 failcount=0 okcount=5
/// totaltime=1.234]`, then `no reply: a, b` when some did not answer.
std::string to_text(const summary& s, std::string_view what);

/// 0 complete and every node succeeded; 1 ran and stopped, or some node failed or did not
/// answer; 3 refused before running (quorum_failed, or never started).
int exit_code(const job& j) noexcept;

inline constexpr int exit_ok = 0, exit_failed = 1, exit_usage = 2, exit_refused = 3;

/// A job event (`deploy.job` data) for the job topic.
nlohmann::json job_event(const job& j, const summary* s);

// ---- tags ----

struct tag_row {
    std::string name;
    std::string time;                  ///< newest seen
    std::vector<std::string> missing;  ///< selected nodes that do not have it
};

/// Every tag any node has, newest first (by time, then name descending); `missing` lists the
/// answering nodes without it. A tag is on every node when `missing` is empty.
std::vector<tag_row> intersect_tags(const std::map<std::string, std::vector<std::pair<std::string, std::string>>>& by_node);

// ---- health command ----

/// `--health-cmd`: a JSON list (`["curl","-fsS","http://x/"]`) is taken as argv; anything else is
/// split on runs of spaces (no quoting, no shell). Throws usage_error for an empty command or a
/// malformed list.
std::vector<std::string> parse_argv(const std::string& s);

} // namespace deploy::cli
