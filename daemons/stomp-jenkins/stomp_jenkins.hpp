#pragma once

// stomp-jenkins' decisions, without I/O: which jobs a commit event triggers, the HTTP requests
// that trigger them (URLs, folders, form bodies, the CSRF crumb exchange), what Jenkins' answers
// mean, retry and polling delays, per-job coalescing of bursts, and the report texts.

#include "config.hpp"
#include "refs.hpp"

#include "bus/event.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_set>
#include <utility>
#include <vector>

namespace stomp_jenkins {

// ---- which jobs ----------------------------------------------------------------------------------

struct selection {
    bool known_repo = false;
    std::vector<const job_config*> jobs;  ///< point into the projects map passed in
    std::vector<std::string> skipped;     ///< "job: reason", for the log
};

/// The jobs `c` triggers: the repo's entry (nested entries by the SVN `Project:`; a message
/// without one is a skip, not a crash), minus jobs whose `ignore_refs` matches the ref (missing
/// or empty `ignore_refs` = no filter), whose `branches` do not match, and deleted refs.
selection select_jobs(const projects_map& projects, const bus::commit_event& c);

/// True when `name` matches the glob `pattern` (the shared ref filters, daemons/common/refs.hpp).
using deploykit::refs::glob_match;

// ---- what goes into a request ------------------------------------------------------------------

/// What one commit event contributes to a trigger.
struct trigger_data {
    std::string repo;
    std::string ref;        ///< full ref; empty for SVN
    std::string branch;     ///< refs/heads/x → x; other refs as they are; SVN: empty
    std::string commit;     ///< new revision
    std::string old_rev;
    std::string author;
    std::string project;    ///< SVN Project
    std::string event_id;
    std::string subject;    ///< the original's subject line (`[repo] ref rev`)
    bool operator==(const trigger_data&) const = default;
};
trigger_data make_trigger_data(const bus::commit_event& c, std::string_view event_id);

/// Placeholders: {repo} {ref} {branch} {commit} {old_rev} {author} {project} {event_id}
/// {subject}. Unknown names are left alone (config validation refuses them).
std::string expand(std::string_view tmpl, const trigger_data& t);
/// The first `{name}` in `tmpl` that is not a known placeholder, or "".
std::string unknown_placeholder(std::string_view tmpl);

/// The parameters sent when a job has `with_parameters` but no `parameters:` of its own.
/// Jenkins drops the ones a job does not define, so these cost nothing.
const std::vector<std::pair<std::string, std::string>>& default_parameters();
/// The default `cause=` note.
inline constexpr std::string_view default_cause = "deploykit: {subject} (event {event_id})";

// ---- URLs and bodies --------------------------------------------------------------------------

/// RFC 3986 percent-encoding of everything but unreserved characters (UTF-8 bytes).
std::string percent_encode(std::string_view s);
/// Decodes %XX; nullopt on a malformed escape.
std::optional<std::string> percent_decode(std::string_view s);
/// application/x-www-form-urlencoded (spaces as %20, which every decoder accepts).
std::string form_encode(const std::vector<std::pair<std::string, std::string>>& fields);
/// A Jenkins item name: non-empty, not `.`/`..`, none of `?*/\%!@#$^&|<>[]:;` (Jenkins'
/// checkGoodName), no control characters.
bool valid_job_segment(std::string_view s) noexcept;
/// `a/b/c` → `/job/a/job/b/job/c/`, each segment percent-encoded.
std::string job_path(std::string_view full_name);

struct http_request {
    std::string method = "POST";
    std::string url;    ///< never carries a secret: tokens travel in the body
    std::string body;   ///< form-encoded
    std::string content_type = "application/x-www-form-urlencoded";
    std::vector<std::pair<std::string, std::string>> headers;
    bool wants_crumb = false;  ///< a POST Jenkins' CSRF filter checks
    /// "POST http://…/job/a/build" for logs.
    std::string describe() const { return method + " " + url; }
};

/// The request that triggers `j` for `t` on the Jenkins at `base` (no trailing '/').
http_request trigger_request(std::string_view base, const job_config& j, const trigger_data& t);
/// GET <base>/crumbIssuer/api/json
http_request crumb_request(std::string_view base);
/// GET of a queue item's JSON.
http_request get_request(std::string url);

struct http_response {
    long status = 0;           ///< 0: no HTTP answer (connection, timeout): see `error`
    std::string error;
    std::string location;
    std::string retry_after;
    std::string jenkins;       ///< X-Jenkins
    std::string body;          ///< at most the first 64 KiB
    bool crumb_issuer = false; ///< the answer is the crumb issuer's, not the trigger's (an error)
};

// ---- the CSRF crumb ---------------------------------------------------------------------------

/// Per HTTP session (one curl handle with its cookie jar): the crumb is bound to that session's
/// JSESSIONID cookie and to the user, so it lives and dies with the handle.
struct crumb_cache {
    enum class state { unknown, have, disabled };
    state st = state::unknown;
    std::string field;  ///< crumbRequestField (Jenkins-Crumb)
    std::string value;
};

/// `{"crumb":…,"crumbRequestField":…}` → (field, crumb).
std::optional<std::pair<std::string, std::string>> parse_crumb(std::string_view json);

/// One trigger attempt, sans-IO: fetch a crumb when the session has none (404 = CSRF off,
/// remembered), POST with it, and on a 403 fetch a fresh crumb once and POST again. The caller
/// performs each `next()` request and feeds the answer to `on_response()`.
class exchange {
public:
    exchange(http_request trigger, std::string_view base, crumb_cache& cache, bool crumbs);
    /// The next request to perform; nullopt when the exchange is over (see `result()`).
    std::optional<http_request> next();
    void on_response(http_response r);
    const http_response& result() const noexcept { return result_; }
    bool refetched() const noexcept { return refetched_; }
    unsigned requests() const noexcept { return requests_; }

private:
    enum class phase { start, crumb, post, done };
    http_request trigger_;
    std::string crumb_url_;
    crumb_cache& cache_;
    bool crumbs_;
    phase phase_ = phase::start;
    bool refetched_ = false;
    bool skip_crumb_ = false;  ///< the crumb issuer refused us (403): POST without one
    unsigned requests_ = 0;
    http_response result_;
};

// ---- what an answer means ------------------------------------------------------------------------

enum class verdict {
    accepted,   ///< Jenkins took the request: acknowledge
    transient,  ///< try again later, with backoff (connection, timeout, 5xx, 429, anything unexpected)
    held,       ///< needs the operator (401/403, a login redirect): retried at retry-max until
                ///< accepted or the configuration is reloaded (SIGHUP)
    permanent,  ///< will not get better by retrying (400, 404, 405, 410, not parameterized):
                ///< acknowledged with a failure notice
};

struct classification {
    verdict v = verdict::transient;
    std::string reason;                 ///< for logs and the failure notice
    std::optional<std::string> queue;   ///< queue item JSON URL to follow (201 + Location)
    std::vector<std::string> notified;  ///< notifyCommit: "Scheduled polling of X" lines
};
/// Only these count as acceptance: 201; 302 with no Location (JENKINS-23235) or one naming a
/// queue item or a page under `base` + the job's path (`job_name`); 303 for buildByToken; 200
/// for notifyCommit. Everything else is not, and says why.
classification classify(trigger_mode mode, const http_response& r, std::string_view base,
                        std::string_view job_name = {});

/// The short text of a Jenkins error page (`<title>Error 404 Not Found</title>`), one line.
std::string error_text(const http_response& r);

/// `<base>/queue/item/<n>/api/json` for a Location naming a queue item (on whatever host: the
/// configured base is used, so a misconfigured Jenkins root URL sends nothing elsewhere).
std::optional<std::string> queue_api_url(std::string_view base, std::string_view location);

struct queue_state {
    enum class kind { waiting, started, cancelled, invalid };
    kind what = kind::invalid;
    std::int64_t number = 0;
    std::string url;
    std::string why;
};
queue_state parse_queue_item(std::string_view json);

// ---- timing ---------------------------------------------------------------------------------------

/// Wait before attempt `attempt` (1 = the first retry): initial·2^(attempt-1), capped, minus
/// up to 20 % jitter (`jitter01` in [0,1)); a Retry-After (seconds) raises it, within the cap.
std::chrono::milliseconds retry_delay(const http_settings& h, unsigned attempt, double jitter01,
                                      std::string_view retry_after = {});
/// Queue polling: 500 ms growing by half each time, at most 5 s.
std::chrono::milliseconds poll_delay(unsigned attempt);

// ---- reports --------------------------------------------------------------------------------------

/// The original's one-liner: `Requested Jenkins build: <subject> / <project with %20→_>`.
std::string report_line(const trigger_data& t, const job_config& j);
/// `Jenkins build request failed: <subject> / <job>: <reason>`.
std::string failure_line(const trigger_data& t, const job_config& j, std::string_view reason);

// ---- coalescing -----------------------------------------------------------------------------------

/// Requests for the same key are merged while one waits for its window or another is in flight.
/// Jobs that take the event's data as parameters (or notifyCommit's branch) are keyed per
/// repo and ref, so a burst on two branches still builds both.
std::string coalesce_key(const job_config& j, const trigger_data& t);

/// Per-job quiet windows, one request in flight per key, and which messages each request
/// covers. Pure: the caller passes the clock. Not thread-safe (the daemon's I/O thread owns it).
class scheduler {
public:
    using clock = std::chrono::steady_clock;

    explicit scheduler(std::size_t remember = 10000);

    struct trigger {
        job_config job;
        trigger_data data;
    };
    /// Registers message `token` (one event, `event_id`) asking for `triggers`. A trigger opens
    /// its key's window (now + job.quiet) or joins the one open. Triggers this event already
    /// got accepted (a redelivery) are dropped. Returns how many requests the message waits for;
    /// 0 = nothing left to do (acknowledge it now).
    std::size_t submit(std::uint64_t token, std::string_view event_id, std::vector<trigger> triggers,
                       clock::time_point now);

    struct batch {
        std::string key;
        job_config job;
        trigger_data data;  ///< the latest event's
        std::vector<std::uint64_t> tokens;
        std::vector<std::string> event_ids;
        std::size_t requests = 0;  ///< events coalesced into this one request
        unsigned attempts = 0;     ///< requests already made for it (retries: see requeue())
        bool held = false;         ///< waiting for the operator (401/403): kick_held() hurries it
        bool noticed = false;      ///< a failure notice was published for it already
    };
    /// Batches whose window has passed and whose key has nothing in flight; they are in flight
    /// until `complete()`.
    std::vector<batch> take_due(clock::time_point now);
    /// When the next window closes (or nothing pending).
    std::optional<clock::time_point> next_due() const;

    enum class outcome { accepted, rejected, gave_up };
    struct resolution {
        std::uint64_t token;
        bool ack;  ///< false: nack (a request gave up; the broker redelivers)
    };
    /// Ends a batch; returns the messages now fully answered.
    std::vector<resolution> complete(const batch& b, outcome o);

    /// Puts a batch that failed back in the queue, due at `due` (its key stays one batch:
    /// events that arrived meanwhile join it and get the same request). Its messages stay
    /// unacknowledged. `held`: waiting for the operator (see kick_held).
    void requeue(batch b, clock::time_point due, bool held);
    /// Makes held batches due at `now` (new credentials). Returns how many.
    std::size_t kick_held(clock::time_point now);

    /// A message with this event id is being worked on.
    bool in_progress(std::string_view event_id) const;
    /// Another copy of an event in progress (a redelivery after a reconnect, or the second
    /// wire format): message `token` is answered together with the first copy, ack or nack.
    /// False when the event is not in progress (submit it instead).
    bool attach(std::string_view event_id, std::uint64_t token);
    std::size_t messages() const noexcept { return messages_.size(); }
    std::size_t pending() const noexcept { return pending_.size(); }
    std::size_t in_flight() const noexcept { return in_flight_.size(); }

private:
    struct message_state {
        std::size_t remaining = 0;
        bool gave_up = false;
        std::string event_id;
        std::vector<std::uint64_t> copies;  ///< other messages carrying the same event
    };
    struct pending_batch {
        batch b;
        clock::time_point due;
    };
    void remember(const std::string& done_key);

    std::size_t remember_;
    std::map<std::uint64_t, message_state> messages_;
    std::map<std::string, std::uint64_t, std::less<>> events_;  ///< event id → its message in progress
    std::map<std::string, pending_batch, std::less<>> pending_;
    std::set<std::string, std::less<>> in_flight_;
    std::deque<std::string> done_order_;
    std::unordered_set<std::string> done_;  ///< event id + key already accepted
};

} // namespace stomp_jenkins
