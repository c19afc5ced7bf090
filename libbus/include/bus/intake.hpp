#pragma once

// What every consumer does with a received MESSAGE before acting on it: decode (native or
// legacy), check the signature when required, drop redeliveries of events already processed.

#include "bus/dedupe.hpp"
#include "bus/signing.hpp"
#include "bus/wire.hpp"

#include <chrono>
#include <cstdint>
#include <string>

namespace bus {

struct intake_options {
    bool require_signatures = false;
    std::chrono::seconds signature_window{300};
    std::size_t dedupe_capacity = 100000;
    /// How long processed ids are remembered; at least the signature window, so a replay of a
    /// still-fresh signed message is always recognised.
    std::chrono::seconds dedupe_ttl{3600};
};

struct intake_counters {
    std::uint64_t accepted = 0;
    std::uint64_t keepalives = 0;
    std::uint64_t invalid = 0;
    std::uint64_t duplicates = 0;
    std::uint64_t unsigned_dropped = 0;
    std::uint64_t unknown_key = 0;
    std::uint64_t forged = 0;
    std::uint64_t stale = 0;
};

class intake {
public:
    intake(intake_options opts, keyring keys = {});

    struct result {
        bool process = false;  ///< act on `ev`, then call `processed(ev->id)`
        std::optional<event> ev;
        bool legacy = false;
        std::string reason;    ///< why it was dropped (for the log)
    };

    /// Decides about one frame. Dropped frames should still be acknowledged.
    result accept(const stomp::frame& f, std::chrono::system_clock::time_point now);
    /// Marks an event as done, so a redelivery or replay of it is dropped.
    void processed(std::string_view id, std::chrono::system_clock::time_point now);

    const intake_counters& counters() const noexcept { return counters_; }

private:
    intake_options opts_;
    keyring keys_;
    dedupe_window seen_;
    intake_counters counters_;
};

} // namespace bus
