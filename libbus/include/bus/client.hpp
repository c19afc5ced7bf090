#pragma once

#include "bus/errc.hpp"
#include "bus/keepalive.hpp"
#include "bus/stomp/frame.hpp"
#include "bus/stomp/parser.hpp"
#include "bus/url.hpp"

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

/// TLS settings for `stomp+ssl://` endpoints. The broker's certificate is always verified
/// against `ca_file` (or the system store) and its host name.
struct tls_options {
    std::string ca_file;    ///< PEM bundle; empty = system default paths
    std::string cert_file;  ///< client certificate (PEM), optional
    std::string key_file;   ///< its private key (PEM), optional
    bool verify = true;     ///< only for tests against self-signed brokers
};

/// The original's firewall keepalive: a SEND with body "\n" to `destination` every `every`.
struct legacy_keepalive {
    std::string destination;
    std::chrono::milliseconds every{60000};
};

enum class protocol_mode {
    negotiate,  ///< offer 1.0, 1.1 and 1.2 with heart-beats; the broker picks
    v1_0,       ///< exactly the original's STOMP 1.0 CONNECT, for brokers that know nothing else
};

struct client_options {
    broker_url url;
    std::string vhost;      ///< CONNECT `host` (virtual host); empty = "/", RabbitMQ's default
    std::string client_id;  ///< CONNECT `client-id` (ActiveMQ durable subscriptions)
    protocol_mode protocol = protocol_mode::negotiate;
    /// Requested heart-beats (cx, cy). The original's successor used 30500,29500.
    std::chrono::milliseconds heartbeat_send{10000};
    std::chrono::milliseconds heartbeat_receive{10000};
    /// With no negotiated heart-beat (STOMP 1.0): write an EOL whenever nothing was written for
    /// this long, so a firewall that drops idle flows never sees one idle. 0 = off.
    std::chrono::milliseconds synthetic_keepalive{10000};
    /// With no negotiated heart-beat: after this much silence send a receipt-requesting probe;
    /// no answer within `probe_timeout` = dead connection → reconnect. 0 = off.
    std::chrono::milliseconds liveness_probe{30000};
    std::chrono::milliseconds probe_timeout{10000};
    std::chrono::milliseconds connect_timeout{10000};  ///< TCP + TLS + CONNECTED
    std::chrono::milliseconds write_timeout{10000};
    std::chrono::milliseconds receipt_timeout{10000};  ///< default publish deadline
    std::size_t max_pending = 10000;                    ///< publishes awaiting receipts
    std::size_t max_queued_bytes = 64 * 1024 * 1024;    ///< unsent bytes per connection
    std::size_t subscription_buffer = 256;              ///< delivered, not yet handled, per sub
    std::size_t subscription_buffer_bytes = 16 * 1024 * 1024;  ///< the same, in body bytes
    stomp::limits limits;
    tls_options tls;
    std::vector<legacy_keepalive> legacy_keepalives;
};

enum class ack_mode { automatic, client, client_individual };

/// Which broker's durable-subscription headers to send.
enum class durable_style {
    none,      ///< plain subscription
    rabbitmq,  ///< id + durable:true + auto-delete:false (+ persistent:true for old releases)
    activemq,  ///< activemq.subscriptionName (needs client_options::client_id)
    both,      ///< both sets; each broker ignores the other's
};

struct subscription_options {
    std::string destination;
    ack_mode ack = ack_mode::client_individual;
    std::string id;            ///< subscription id; defaults to the durable name or "sub-N"
    std::string durable_name;  ///< non-empty: a durable subscription with this name
    durable_style durable = durable_style::none;
    unsigned prefetch = 0;     ///< broker-side unacked window (RabbitMQ/ActiveMQ headers); 0 = default
    std::vector<std::pair<std::string, std::string>> headers;  ///< extra SUBSCRIBE headers
    /// Deliver the original's "\n" keepalive messages to the handler (normally dropped).
    bool deliver_keepalives = false;
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
    /// connection, up to `timeout`.
    boost::asio::awaitable<bool> wait_subscribed(std::string id, std::chrono::milliseconds timeout);

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
