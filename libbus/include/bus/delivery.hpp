#pragma once

// Producers that never lose an event: publish with receipts and spool to the disk outbox what
// does not get one in time; deliver the spool, in order, when a broker is reachable again.

#include "bus/client.hpp"
#include "bus/outbox.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstddef>
#include <string_view>
#include <system_error>
#include <vector>

namespace bus {

struct drain_result {
    std::size_t delivered = 0;
    std::size_t remaining = 0;
    std::size_t quarantined = 0;  ///< corrupt spool files moved aside during this drain
    bool locked_out = false;      ///< another process was draining the spool
    std::error_code error;        ///< why delivery stopped early, if it did
};

/// Delivers spooled messages oldest first; each file is removed only after its RECEIPT. Stops
/// at the first failure (so order is kept) or at `deadline`. File I/O runs on `blocking`.
boost::asio::awaitable<drain_result> drain(client& c, outbox& box, boost::asio::any_io_executor blocking,
                                           std::chrono::steady_clock::time_point deadline);

/// Publishes `frames` in order, pipelined with at most `window` awaiting receipts at once (0 =
/// all), and waits for every RECEIPT or the end of `timeout`; one result per frame. After the
/// first failure no further frame is written (those are `not_sent`), so a broker lost
/// mid-stream leaves at most `window` frames whose outcome is `unknown`. Runs on the client's
/// executor.
boost::asio::awaitable<std::vector<publish_result>> publish_all(client& c, const std::vector<stomp::frame>& frames,
                                                                std::chrono::milliseconds timeout,
                                                                std::size_t window = 0);

/// Marks a copy whose earlier attempt was written but never receipted (possibly_sent_header).
void mark_possibly_sent(stomp::frame& f);

struct send_report {
    std::size_t published = 0;  ///< receipted now
    std::size_t spooled = 0;    ///< written to the outbox for later delivery
    std::size_t possibly_sent = 0;  ///< of those, written once without a receipt (marked)
    drain_result drained;       ///< older spooled messages delivered first
};

/// The producer path. Messages already in the spool go first; then `frames` are published with
/// receipts, at most `window` (0 = all) awaiting receipts at once; whatever is not receipted by
/// `deadline` (no broker, slow broker, spool not empty) is spooled, in order — a frame that was
/// written without a receipt marked `possibly_sent_header`. Throws outbox_error only when the
/// spool is full or unwritable.
boost::asio::awaitable<send_report> publish_or_spool(client& c, outbox& box, std::vector<stomp::frame> frames,
                                                     boost::asio::any_io_executor blocking,
                                                     std::chrono::steady_clock::time_point deadline,
                                                     std::size_t window = 0);

/// One-shot form for hooks and command-line producers: runs its own event loop, connects,
/// sends within `budget` (about a second for a git hook), spools the rest, and disconnects. The
/// broker gets the budget but a tenth (at most 100 ms), kept for the spool, so the call as a whole
/// returns within about the budget even when the broker's host drops every packet.
send_report send_once(client_options opts, outbox_options spool, std::vector<stomp::frame> frames,
                      std::chrono::milliseconds budget, spdlog::logger& log);

} // namespace bus
