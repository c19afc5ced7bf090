#pragma once

// The alert engine (sans-IO): recorded events and the time in, alert decisions out. herald's
// service feeds it every recorded event (`on_event`) and calls `tick` every check interval; the
// I/O layer (notifier.hpp) turns decisions into an alert event, a mail and a webhook POST, and
// writes `snapshot()` to the state file off the I/O thread. Tested on a fake clock
// (tests/unit/alerts_test.cpp).
//
// Heartbeat rules: a source is a (daemon, host) pair seen in a `heartbeat` event. It is lost when
// no heartbeat arrived for more than max-age; the next heartbeat recovers it. Sources already
// known stay watched across a restart (the snapshot); their age counts from the later of the last
// heartbeat and the engine's start, so a restart never raises a burst of stale alarms before the
// durable subscription has replayed what the broker kept.
//
// Pattern rules: an event matching (types, field conditions, text) fires; further matches
// within the cool-down are counted and reported with the next notice; after recover-after
// without a match the rule recovers.
//
// Cool-down: the least time between two fire notices of one rule (and source). A loss that
// happens within it is notified once the cool-down has passed, if still lost; a recovery is
// notified only for a loss that was notified.

#include "rules.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bus {
struct event;
}

namespace herald::alerts {

using time_point = std::chrono::system_clock::time_point;

/// What the engine sees of one recorded event (herald's recorded_event, or a bus::event through
/// `input_of`): the row's columns and its data as a JSON object text.
struct input {
    std::string id;
    std::string type;     ///< commit, fetch, heartbeat, notice, log, ...
    std::string host;     ///< the source host (a heartbeat's or fetch's own host when it has one)
    std::string daemon;   ///< the producing daemon (heartbeats: the daemon field)
    std::string level;    ///< debug ... critical (ingested log records), else ""
    std::string message;  ///< the row's one-line text
    std::string data;     ///< JSON object text
    std::optional<time_point> seen;  ///< when herald received it (default: now)
};

/// The input for a bus event (tests, and callers holding typed events).
input input_of(const bus::event& e);

struct decision {
    enum class what { fire, recover };
    what action = what::fire;
    std::string rule;
    std::string kind;          ///< heartbeat, pattern
    std::string daemon;        ///< heartbeat: the source
    std::string host;          ///< heartbeat: the source; pattern: the matched event's host
    std::string text;          ///< one line for people
    std::string event_id;      ///< pattern: the matched event
    std::string event_type;    ///< pattern: its type
    time_point last_seen{};    ///< heartbeat: the source's last heartbeat
    std::int64_t suppressed = 0;
    unsigned channels = 0;
    std::string state() const { return action == what::fire ? "firing" : "recovered"; }
};

/// RFC 3339 UTC with seconds.
std::string rfc3339(time_point t);

class rule_engine {
public:
    /// `now`: the start (see the header comment on ages after a restart).
    rule_engine(settings s, time_point now);

    /// A recorded event (already validated and deduplicated by herald). Heartbeats refresh their
    /// source (and recover it); any event may match pattern rules.
    std::vector<decision> on_event(const input& e, time_point now);
    /// Ages, pending notices after a cool-down, pattern recoveries, forgotten sources.
    std::vector<decision> tick(time_point now);

    /// The state to persist (JSON), and whether it changed since the last snapshot.
    bool dirty() const noexcept { return dirty_; }
    std::string snapshot();
    /// Restores a snapshot (at start-up, before any event). Returns an error (and keeps nothing)
    /// for a file that is not a snapshot.
    std::string restore(std::string_view json);

    struct source_key {
        std::string daemon;
        std::string host;
        auto operator<=>(const source_key&) const = default;
    };
    /// Every tracked source and its last heartbeat (for /metrics).
    std::vector<std::pair<source_key, time_point>> last_seen() const;
    /// Heartbeat sources not tracked because max-sources was reached.
    std::uint64_t untracked() const noexcept { return untracked_; }
    /// Alerts firing now (heartbeat sources lost plus pattern rules active).
    std::size_t firing() const noexcept;
    const settings& config() const noexcept { return s_; }

private:
    struct notice_state {
        bool firing = false;
        bool notified = false;          ///< the current firing was notified
        std::optional<time_point> last_notice;
        std::int64_t suppressed = 0;
    };
    struct source_state {
        time_point last_seen{};
        std::map<std::string, notice_state> rules;  // by rule name
    };
    struct pattern_state {
        notice_state n;
        time_point last_match{};
        std::string last_event_id, last_event_type, last_host, last_text;
    };

    decision heartbeat_decision(decision::what w, const heartbeat_rule& r, const source_key& k,
                                const source_state& s, time_point now) const;
    // A pattern rule's notice about its last matched event (`event_id`: the event it is about).
    static decision pattern_decision(decision::what w, const pattern_rule& r, const pattern_state& p,
                                     std::string event_id, std::string text);

    settings s_;
    time_point started_;
    std::map<source_key, source_state> sources_;
    std::map<std::string, pattern_state> patterns_;  // by rule name
    std::uint64_t untracked_ = 0;
    bool dirty_ = false;
};

} // namespace herald::alerts
