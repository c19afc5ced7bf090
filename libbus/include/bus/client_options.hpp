#pragma once

// The settings of a bus::client and its subscriptions, without Asio: config readers and hooks
// include this, not client.hpp (which brings Asio's coroutine headers into every TU).

#include "bus/stomp/parser.hpp"
#include "bus/url.hpp"

#include <chrono>
#include <cstddef>
#include <string>
#include <utility>
#include <vector>

namespace bus {

/// Extra STOMP headers, in order (e.g. `x-queue-type: quorum`).
using header_list = std::vector<std::pair<std::string, std::string>>;

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
    /// With negotiated heart-beats: silence from the broker for this many of its promised
    /// intervals is a dead link (RabbitMQ and ActiveMQ allow a silent client about 2-3).
    double dead_link_grace = 3.0;
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
    /// Added to every SUBSCRIBE (a subscription's own header of the same name wins) and every
    /// SEND (a header the frame already has wins): e.g. `x-queue-type: quorum`, which
    /// RabbitMQ's STOMP plugin applies when it declares the queue.
    header_list subscribe_headers;
    header_list publish_headers;
    /// A SUBSCRIBE the broker refused with ERROR after a good CONNECT is retried on its own
    /// schedule: `subscribe_retry_initial`, doubling up to `subscribe_retry_max`; the other
    /// subscriptions and the connection's reconnect backoff are not affected.
    std::chrono::milliseconds subscribe_retry_initial{1000};
    std::chrono::milliseconds subscribe_retry_max{5000};
    /// One-shot producers (hooks): when every broker of the URL has refused the TCP connection
    /// (ECONNREFUSED: a definite "nobody listens here", unlike a timeout) in one pass, stop at
    /// once, as if the reconnect attempts were exhausted, so the caller spools without waiting
    /// out its budget. Daemons keep the default and back off.
    bool give_up_when_refused = false;
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
    header_list headers;       ///< extra SUBSCRIBE headers
    /// Deliver the original's "\n" keepalive messages to the handler (normally dropped).
    bool deliver_keepalives = false;
};

} // namespace bus
