#pragma once

// Events on the wire: which STOMP frames a producer sends for an event (native JSON, the
// original's legacy form, or both), and what a consumer makes of a received frame. Every daemon
// goes through here; none parses bodies by itself. Pure.

#include "bus/event.hpp"
#include "bus/stomp/frame.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bus {

/// Per destination: what the consumers there understand.
enum class wire_format {
    native,  ///< JSON (deploykit consumers)
    legacy,  ///< the original's bodies (Ruby consumers, eventbot)
    both,    ///< one frame of each, same event id; our consumers dedupe the second
};

std::optional<wire_format> parse_wire_format(std::string_view s) noexcept;

/// Headers deploykit adds; routing data lives in headers and JSON, never in free text.
namespace header {
inline constexpr std::string_view event_id = "dk-event-id";
inline constexpr std::string_view event_type = "dk-event-type";
inline constexpr std::string_view repo = "dk-repo";
} // namespace header

/// SEND frames for `e` to `destination`. Types with no legacy form (heartbeat) are sent native
/// whatever `fmt` says. Frames carry `dk-event-id`, `dk-event-type` (and `dk-repo` where there is
/// one), and `persistent:true`.
std::vector<stomp::frame> encode(const event& e, std::string_view destination, wire_format fmt);

/// What a received MESSAGE is.
struct inbound {
    enum class kind {
        event,      ///< `ev` holds a valid event
        keepalive,  ///< the original's "\n" keepalive: ignore
        invalid,    ///< malformed or unrecognised: `reason` says why; ack and drop
    };
    kind what = kind::invalid;
    std::optional<event> ev;
    bool legacy = false;
    /// `ev->id` names the broker message, not the event (a legacy frame without `dk-event-id`):
    /// only a redelivery (`redelivered:true`) of it may be dropped as a duplicate.
    bool broker_id = false;
    std::string reason;  ///< safe to log: event data in it is escaped
};

/// Decodes a MESSAGE (native or legacy), cleaning free text (`sanitize`) and refusing control
/// characters in routing fields. Legacy messages without `dk-event-id` carry no identity: a later
/// byte-identical message (a push back to an earlier revision, a repeated one-liner) is a new
/// event. They get an id derived from the destination and the broker's `message-id`, which stays
/// the same across a redelivery of that message, or a fresh one if there is no `message-id`.
inbound decode(const stomp::frame& f);

} // namespace bus
