#pragma once

// stomp-ci's decisions, without I/O: which jobs a commit triggers, the job messages on the queue
// (encoding, and validation of everything a message says against the config before anything
// runs), run ids, the run's outcome from its steps, slow-run flags from a duration history, the
// build events (native and jenkins-helper's one-liners), log paths and which run dirs to remove.

#include "config.hpp"

#include "bus/event.hpp"
#include "bus/stomp/frame.hpp"

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stomp_ci {

/// One job for one revision: what a job message on the queue carries.
struct job_request {
    std::string run_id;    ///< 32 hex digits; the same for every delivery and attempt of this run
    std::string repo;
    std::string job;
    std::string ref;
    std::string commit;    ///< 40 or 64 hex digits
    std::string event_id;  ///< the commit (or recheck) event it came from
    std::int64_t queued_ms = 0;  ///< wall clock when dispatched (ms since the epoch)
    bool operator==(const job_request&) const = default;
};

/// The run id of `job` for the event `event_id` on `repo` at `commit`: the first 32 hex digits
/// of SHA-256 over the length-prefixed fields. A redelivered commit event gives the same ids.
std::string make_run_id(std::string_view repo, std::string_view job, std::string_view commit, std::string_view event_id);
bool valid_run_id(std::string_view s) noexcept;

/// JSON body of a job message.
std::string encode_job(const job_request& r);
/// Parses a job message; nullopt and `error` on anything malformed.
std::optional<job_request> decode_job(std::string_view body, std::string& error);

/// Empty when `r` may run under `cfg`: a configured repo and job, a valid ref the job's filter
/// accepts, a full non-zero object id, a valid run id. Otherwise why not.
std::string check_request(const config& cfg, const job_request& r);
/// The job `r` names (after check_request said yes).
const job_config* find_job(const config& cfg, std::string_view repo, std::string_view job);

struct selection {
    std::string refused;               ///< non-empty: the event is refused as a whole (why)
    bool unknown_repo = false;         ///< refused only because no job is configured for the repo
    std::vector<job_request> requests; ///< one per matching job
    std::vector<std::string> skipped;  ///< "job: reason"
};
/// The jobs a commit event triggers (dispatch).
selection select_jobs(const config& cfg, const bus::commit_event& c, std::string_view event_id, std::int64_t now_ms);

/// A recheck request: `{"repo":…, "commit":…, "job":…, "ref":…}` (job optional: every job of the
/// repo whose filter takes the ref; ref optional: refs/heads/master).
selection select_recheck(const config& cfg, std::string_view body, std::string_view event_id, std::int64_t now_ms);

// ---- outcomes --------------------------------------------------------------------------------

enum class step_end { ok, failed, timed_out, cancelled, not_started };
struct step_result {
    std::string name;  ///< argv joined by spaces
    step_end end = step_end::not_started;
    int exit_code = -1;
    double duration_s = 0;
};
/// SUCCESS when every step succeeded; TIMEOUT / ABORTED when a step was ended so; else FAILURE.
std::string run_status(const std::vector<step_result>& steps, bool preparation_failed);
std::vector<bus::build_step> to_build_steps(const std::vector<step_result>& steps);

// ---- slow runs -------------------------------------------------------------------------------

double median(std::vector<double> v);
/// A warning when `duration_s` exceeds `factor` × the median of `history` (at least 3 entries
/// needed) or `absolute_s` (> 0); nullopt otherwise.
std::optional<std::string> slow_warning(const std::vector<double>& history, double duration_s, double factor,
                                        double absolute_s);

/// Durations of successful runs per "repo/job", the newest `keep` of each.
class history {
public:
    explicit history(std::size_t keep = 50) : keep_(keep) {}
    void add(const std::string& key, double duration_s);
    std::vector<double> of(const std::string& key) const;
    std::uint64_t runs(const std::string& key) const;
    std::string to_json() const;
    /// Replaces the contents; false (and unchanged) on malformed text.
    bool from_json(std::string_view text);

private:
    std::size_t keep_;
    std::map<std::string, std::deque<double>> d_;
    std::map<std::string, std::uint64_t> n_;
};

// ---- events ----------------------------------------------------------------------------------

/// `<log_url>/logs/<run_id>.log`
std::string log_link(std::string_view log_url, std::string_view run_id);
/// The run id a log server path names (`/logs/<run_id>.log`), or nullopt: nothing else is served.
std::optional<std::string> log_path_run_id(std::string_view path);

/// `<log_url>/artifacts/<run_id>/<rel>`, `rel` %-encoded but for letters, digits, `-._~/`.
std::string artifact_link(std::string_view log_url, std::string_view run_id, std::string_view rel);
/// The run id and relative file a log server path names (`/artifacts/<run_id>/<rel>`, %-decoded;
/// no empty, `.` or `..` component, no NUL), or nullopt.
std::optional<std::pair<std::string, std::string>> artifact_path(std::string_view path);
/// Whether `rel` (a path relative to the checkout, '/'-separated) is one of the job's artifacts:
/// a glob matches it (fnmatch, `*` within one component), or matches a directory above it.
bool artifact_wanted(const std::vector<std::string>& globs, std::string_view rel);

struct topics {
    std::string report, begin, success, failure, events;
};
topics topics_of(const config& cfg);

/// Frames for one phase of a run: the native build event on `report` (always), and where
/// jenkins-helper sends them the original's Repo/URL/Status message and one-liner (unless the
/// wire format is native only). The completed event's id is derived from the run id, so
/// consumers that dedupe by event id see a rerun's report once.
std::vector<bus::stomp::frame> build_frames(const bus::build_event& b, const topics& t, bus::wire_format fmt,
                                            const std::string& host);
bus::build_event make_build(const job_request& r, bus::build_phase phase, std::int64_t number, std::string url,
                            std::string worker);

/// Of `runs` (name, age order key: larger = newer), the names to delete so `keep` remain.
std::vector<std::string> runs_to_remove(std::vector<std::pair<std::string, std::int64_t>> runs, std::size_t keep);

/// The job's environment: exactly HOME, PATH, LANG, CI_* (repo, job, ref, commit, run id,
/// datasets) and the job's own `env` (which wins).
std::vector<std::string> job_environment(const job_config& j, const job_request& r, const std::string& workdir);

} // namespace stomp_ci
