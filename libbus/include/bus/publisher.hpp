#pragma once

// What a long-running daemon uses to publish its events without losing them: every message is
// published with a receipt; what gets none in time goes to the disk outbox, behind anything
// already there, and `run()` delivers the outbox, in order, whenever the broker is reachable.
// (Hooks and command-line producers, which exit at once, use send_once instead.)

#include "bus/client.hpp"
#include "bus/outbox.hpp"
#include "bus/signing.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace bus {

struct publisher_stats {
    std::uint64_t published = 0;       ///< receipted when sent
    std::uint64_t spooled = 0;         ///< written to the outbox
    std::uint64_t delivered = 0;       ///< later delivered from the outbox
    std::uint64_t lost = 0;            ///< neither (no spool configured, or the spool failed)
};

/// What became of a batch handed to spooling_publisher::publish.
enum class publish_outcome {
    published,  ///< every frame receipted
    spooled,    ///< every frame receipted or kept in the outbox (delivered later by run())
    lost,       ///< some were neither: no spool-dir, or the spool is full or unwritable
};

struct publish_report {
    publish_outcome outcome = publish_outcome::published;
    std::size_t published = 0;
    std::size_t spooled = 0;
    std::size_t possibly_sent = 0;  ///< spooled after a write without receipt (marked)
    std::string why;                ///< for `lost`: why not kept
    bool kept() const noexcept { return outcome != publish_outcome::lost; }
};

/// Thread-safety: call publish() and run() on the client's executor. Spool file I/O runs on
/// `blocking`.
class spooling_publisher {
public:
    /// `io`: the client's executor. `spool` empty: messages without a receipt are reported lost
    /// (the daemon has no spool-dir). `signing`: messages are signed before they are sent.
    spooling_publisher(boost::asio::any_io_executor io, client& c, std::optional<outbox_options> spool,
                       std::optional<signing_key> signing, boost::asio::any_io_executor blocking,
                       spdlog::logger& log);
    ~spooling_publisher();

    /// Signs and publishes `frames`, all outstanding at once, waiting up to `timeout` for the
    /// receipts; those without one are spooled. While the outbox holds older messages, new ones
    /// are spooled behind them (order); a frame written without a receipt is spooled marked
    /// possibly sent (outbox.hpp).
    boost::asio::awaitable<publish_report> publish(std::vector<stomp::frame> frames, std::chrono::milliseconds timeout);

    /// Delivers the outbox whenever the client is connected (checked every second, and at once
    /// after something was spooled) until stop().
    boost::asio::awaitable<void> run();
    void stop();

    const publisher_stats& stats() const noexcept { return stats_; }
    bool has_spool() const noexcept { return box_ != nullptr; }

private:
    client& client_;
    std::unique_ptr<outbox> box_;
    std::optional<signing_key> signing_;
    boost::asio::any_io_executor blocking_;
    spdlog::logger& log_;
    std::mutex spool_mutex_;  // outbox::spool is not thread-safe
    boost::asio::steady_timer kick_;
    bool backlog_ = true;  // the outbox holds messages (from an earlier run, too)
    std::uint64_t generation_ = 0;  // bumped whenever something is spooled
    bool stopping_ = false;
    publisher_stats stats_;
};

} // namespace bus
