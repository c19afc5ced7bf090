#pragma once

#include "bus/client_options.hpp"
#include "bus/errc.hpp"
#include "bus/keepalive.hpp"
#include "bus/stomp/frame.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace bus {

/// What became of one publish: callers branch on this, not on strings.
enum class publish_status {
    receipted,  ///< the broker's RECEIPT arrived: it has the message
    not_sent,   ///< never written to a broker (not connected, stopped first, too many pending):
                ///< certainly not delivered, safe to spool or send again
    unknown,    ///< written but no RECEIPT before the deadline: the broker may have it, so a
                ///< copy sent later must be marked possibly sent (consumers drop it by event id)
    refused,    ///< the broker answered ERROR for it, or it cannot be encoded
};
std::string_view to_string(publish_status s) noexcept;

struct publish_result {
    publish_status status = publish_status::not_sent;
    std::error_code error;  ///< empty when receipted; else why (errc)
    explicit operator bool() const noexcept { return status == publish_status::receipted; }
};

/// A delivered MESSAGE.
struct message {
    stomp::frame frame;
    std::string subscription;
    bool redelivered = false;
    bool keepalive = false;        ///< the original's "\n" keepalive (never shown to handlers)
    std::uint64_t connection = 0;  ///< connection generation it arrived on

    std::string_view destination() const noexcept { return frame.get("destination"); }
    std::string_view id() const noexcept { return frame.get("message-id"); }
    const std::string& body() const noexcept { return frame.body; }
};

/// What a handler decided; the client sends ACK/NACK accordingly (nothing in auto mode).
enum class disposition {
    ack,
    nack,
    leave,  ///< neither: the broker redelivers it once this connection ends (client-individual;
            ///< in cumulative client mode a later ACK covers it)
};

using message_handler = std::function<boost::asio::awaitable<disposition>(const message&)>;

/// Where a subscription stands (client::subscription).
struct subscription_status {
    bool confirmed = false;  ///< receipted on the current connection
    int refusals = 0;        ///< SUBSCRIBEs refused by ERROR in a row (0 once one is confirmed)
    std::string refused;     ///< the broker's last reason
    bool permanent = false;  ///< the reason will not change by waiting (is_permanent_refusal)
};

struct client_stats {
    std::uint64_t connects = 0;
    std::uint64_t connect_failures = 0;
    std::uint64_t published = 0;        ///< receipts received for publishes
    std::uint64_t publish_timeouts = 0;
    std::uint64_t resent = 0;           ///< publishes resent after a reconnect
    std::uint64_t messages = 0;         ///< MESSAGE frames received
    std::uint64_t keepalives_dropped = 0;
    std::uint64_t heartbeats_in = 0;
    std::uint64_t heartbeats_out = 0;
    std::uint64_t probes = 0;
    std::uint64_t dead_connections = 0;
    std::uint64_t broker_errors = 0;
    std::uint64_t protocol_errors = 0;
};

/// A STOMP client on Asio coroutines that keeps one connection to one of the configured
/// brokers alive: failover with capped, jittered backoff; heart-beats on 1.1/1.2 and synthetic
/// keepalives and liveness probes on 1.0; resubscribe and resend-unreceipted after reconnect.
///
/// Thread-safety: every member function must be called on the client's executor (a
/// single-threaded io_context, or a strand). Blocking work belongs in handlers' own pools.
class client {
public:
    client(boost::asio::any_io_executor ex, client_options opts, spdlog::logger& log);
    ~client();
    client(const client&) = delete;
    client& operator=(const client&) = delete;

    /// Connects and stays connected until `stop()`. Completes after a graceful DISCONNECT,
    /// or throws std::system_error(errc::attempts_exhausted) when the reconnect policy gives up.
    boost::asio::awaitable<void> run();

    /// Begins a graceful stop: unreceipted publishes fail with errc::stopped, a DISCONNECT with
    /// receipt is sent (waited for up to 2 s) and `run()` returns.
    void stop();
    /// Drops the connection at once, with no DISCONNECT, as a crash would (the broker then
    /// redelivers unacknowledged messages), and ends `run()`.
    void abort();

    /// Waits until connected (CONNECTED received), up to `timeout`. Returns whether connected.
    boost::asio::awaitable<bool> wait_connected(std::chrono::milliseconds timeout);
    bool connected() const noexcept;
    /// Negotiated version of the current connection.
    stomp::version version() const noexcept;

    /// Sends `f` (a SEND frame; `destination` set) with a receipt request and completes when the
    /// RECEIPT arrives (success), or with errc::receipt_timeout when `timeout` passes
    /// (default: client_options::receipt_timeout). Publishes are pipelined: many may be
    /// outstanding; while disconnected they wait and are sent, in order, after reconnecting.
    boost::asio::awaitable<std::error_code> publish(stomp::frame f,
                                                    std::chrono::milliseconds timeout = {});
    /// The same, saying whether an unreceipted frame was ever written (publish_status).
    boost::asio::awaitable<publish_result> send(stomp::frame f, std::chrono::milliseconds timeout = {});
    boost::asio::awaitable<std::error_code> publish(
        std::string destination, std::string body,
        std::vector<std::pair<std::string, std::string>> headers = {},
        std::chrono::milliseconds timeout = {});

    /// Registers a subscription, sent now if connected and again after every reconnect.
    /// `handler` runs for each message, one at a time per subscription, in order; the client
    /// acknowledges after it returns (ack modes client/client-individual). A handler that
    /// throws counts as `nack`. Returns the subscription id.
    std::string subscribe(subscription_options opts, message_handler handler);
    /// Acknowledges a message later than its handler's return (the handler returned `leave`):
    /// for work that outlives the handler. A message from a connection that has since been
    /// replaced is not acknowledged (the broker redelivers it).
    void acknowledge(const message& m, disposition d);
    /// Removes a subscription (UNSUBSCRIBE when connected).
    void unsubscribe(const std::string& id);
    /// Waits until the broker confirmed (by RECEIPT) subscription `id` on the current
    /// connection, up to `timeout`; returns false early when the broker refused it for a
    /// reason that waiting will not change (see subscription()).
    boost::asio::awaitable<bool> wait_subscribed(std::string id, std::chrono::milliseconds timeout);
    /// A refused SUBSCRIBE is retried on its own schedule (client_options::subscribe_retry_*)
    /// and the connection reconnects at once without it; this says where `id` stands.
    subscription_status subscription(const std::string& id) const;

    /// The last ERROR frame's `message` header and body, for diagnostics.
    std::string last_error() const;
    const client_stats& stats() const noexcept;

    struct impl;

private:
    std::shared_ptr<impl> impl_;
};

/// Builds client options from the original configs' `rserver` and `stomp-options` values.
client_options options_from_url(std::string_view rserver, std::string_view stomp_options = {});

} // namespace bus
