#pragma once

#include "bus/client_options.hpp"
#include "bus/errc.hpp"
#include "bus/keepalive.hpp"
#include "bus/session.hpp"
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

using message_handler = std::function<boost::asio::awaitable<disposition>(const message&)>;

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
