#pragma once

// What every consumer does with a received MESSAGE before acting on it: decode (native or
// legacy), check the signature when required, drop redeliveries and replays of events already
// processed (remembered on disk with `replay_cache`, so a restart does not reopen the window).

#include "bus/dedupe.hpp"
#include "bus/replay_cache.hpp"
#include "bus/signing.hpp"
#include "bus/wire.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace bus {

struct intake_options {
    bool require_signatures = false;
    std::chrono::seconds signature_window{300};
    std::size_t dedupe_capacity = 100000;
    /// How long processed ids are remembered; at least twice the signature window (a signature
    /// stamped up to one window in the future stays fresh up to one window in the past), so a
    /// replay of a still-fresh signed message is always recognised.
    std::chrono::seconds dedupe_ttl{3600};
    /// File that keeps processed ids across restarts (config key `replay-cache`, proposed default
    /// `<state-dir>/replay-cache`, e.g. /var/lib/stomp-git/replay-cache). Empty = none: ids are
    /// kept in memory only, and a replay of a fresh signed event is accepted again after a
    /// restart.
    std::filesystem::path replay_cache;
};

/// What `intake::accept` decided about a frame.
enum class intake_decision {
    process,    ///< a valid event, not seen before: act on it, then call `processed(id)`
    keepalive,  ///< the original's "\n" keepalive: ignore, nothing to log
    invalid,    ///< malformed, unrecognised or refused content: `reason` says why
    duplicate,  ///< a redelivery or replay of an event already processed
    signature,  ///< refused by the signature check: `signature` says why
};
std::string_view to_string(intake_decision d) noexcept;

struct intake_counters {
    std::uint64_t accepted = 0;
    std::uint64_t keepalives = 0;
    std::uint64_t invalid = 0;
    std::uint64_t duplicates = 0;
    std::uint64_t unsigned_dropped = 0;
    std::uint64_t unknown_key = 0;
    std::uint64_t forged = 0;
    std::uint64_t stale = 0;
    std::uint64_t old_scheme = 0;  ///< signed with an unsupported (v1) scheme
};

class intake {
public:
    /// Throws config_error if `opts.replay_cache` cannot be opened (naming the path and why).
    intake(intake_options opts, keyring keys = {});

    struct result {
        intake_decision decision = intake_decision::invalid;
        /// With `require_signatures`: the check's verdict (`ok` for every processed event).
        signature_verdict signature = signature_verdict::unsigned_message;
        /// True only if a v2 signature was verified; events are never "signed" otherwise.
        bool authenticated = false;
        std::optional<event> ev;
        bool legacy = false;
        std::string reason;  ///< why it was dropped, for the log (event data escaped)

        bool process() const noexcept { return decision == intake_decision::process; }
    };

    /// Decides about one frame. Dropped frames should still be acknowledged.
    result accept(const stomp::frame& f, std::chrono::system_clock::time_point now);
    /// Marks an event as done, so a redelivery or replay of it is dropped (also after a restart,
    /// with a replay cache).
    void processed(std::string_view id, std::chrono::system_clock::time_point now);
    /// Flushes the replay cache to disk (it is also flushed in batches and at destruction).
    void sync();

    const intake_counters& counters() const noexcept { return counters_; }

private:
    intake_options opts_;
    keyring keys_;
    dedupe_window seen_;
    dedupe_window broker_ids_;  // legacy frames' broker message ids: memory only
    std::unique_ptr<replay_cache> cache_;
    intake_counters counters_;
};

} // namespace bus
