#pragma once

// The broker's I/O: TCP (and TLS) listeners, one reader, one writer with a bounded send queue
// and one heart-beat watchdog (bus::keepalive) per connection, and the journal. All broker logic
// lives in broker_core; the process around it (config, signals, the admin endpoint on the
// shared bus_http module, heartbeats) is daemon.cpp on the runtime.

#include "auth.hpp"
#include "broker.hpp"
#include "journal.hpp"

#include "bus/stomp/parser.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

namespace spdlog {
class logger;
}
namespace bus::http {
class registry;
}

namespace broker {

struct server_options {
    std::string listen = "127.0.0.1:61613";
    std::string tls_listen;  ///< empty = no TLS listener
    std::string tls_cert;
    std::string tls_key;
    std::filesystem::path data_dir;    ///< empty = in memory only
    fsync_policy fsync = fsync_policy::always;
    std::size_t max_connections = 10000;
    std::size_t send_queue_bytes = 8 * 1024 * 1024;  ///< per connection; beyond: congested
    std::chrono::milliseconds connect_timeout{10000};   ///< CONNECT must arrive within
    /// Until CONNECTED a connection may send only a CONNECT of this many bytes (RabbitMQ
    /// likewise caps frames before authentication)...
    std::size_t max_connect_frame = 8192;
    /// ...and at most this many connections may be unauthenticated at once: together they
    /// bound the memory a peer can make the broker hold before it has logged in.
    std::size_t max_unauthenticated = 1000;
    /// TCP keepalive on every accepted socket (RabbitMQ's tcp_listen_options): a peer that
    /// vanished without a FIN (idle-dropping firewall, dead host) is noticed after
    /// idle + interval × count seconds even on STOMP 1.0 without heart-beats. idle 0 = off.
    std::chrono::seconds tcp_keepalive_idle{60};
    std::chrono::seconds tcp_keepalive_interval{10};
    int tcp_keepalive_count = 3;
    /// A client silent for `heartbeat_grace` × its promised heart-beat interval is dead
    /// (RabbitMQ and ActiveMQ allow two intervals).
    double heartbeat_grace = 2.0;
    /// Password checks run on this many worker threads, never on the I/O thread.
    unsigned auth_workers = 2;
    /// Failed logins per source address: a bucket of `auth_fail_burst`, refilled at
    /// `auth_fail_rate` per second; while it is empty, CONNECTs from there are refused unchecked.
    std::size_t auth_fail_burst = 10;
    double auth_fail_rate = 1.0;
    /// A failing journal write is retried this long before the broker gives up (exit 1).
    std::chrono::seconds journal_retry{300};
    std::uint64_t compact_after_bytes = 64 * 1024 * 1024;
    bus::stomp::limits limits;
    core_options core;
};

class server {
public:
    server(boost::asio::io_context& io, server_options opts, access_policy policy, spdlog::logger& log);
    ~server();

    /// Loads the journal and binds the listeners; throws on failure (port in use, bad TLS files).
    void start();
    /// Stops accepting, closes every connection after its queued frames, flushes the journal.
    void stop();
    /// Swaps in a new users/permissions policy (SIGHUP).
    void reload(access_policy policy);

    std::uint16_t port() const;
    std::uint16_t tls_port() const;
    /// Registers the broker's metrics (connections, destinations, queued messages and bytes,
    /// auth failures, per-queue depths...) in `r` (prefix stomp_broker). Read on the I/O thread.
    void register_metrics(bus::http::registry& r) const;
    /// Why the broker cannot do its job (not listening, the journal failing), for /readyz;
    /// nullopt when it can.
    std::optional<std::string> not_ready() const;
    /// Key counters for the heartbeat event.
    std::map<std::string, std::uint64_t> counters() const;
    /// Routes a SEND frame published by the broker itself (its heartbeat), as from a logged-in
    /// client that may write to exactly `destination`. False when it was not taken (stopping,
    /// memory alarm).
    bool publish(bus::stomp::frame f);
    /// Completes once every connection has closed after stop() (at once when there is none).
    boost::asio::awaitable<void> closed();
    /// True once the broker stopped because it could not do its job (the journal gave up):
    /// the process exits non-zero so a supervisor restarts it.
    bool failed() const;
    /// Runs on the I/O thread when the broker stops by itself (the journal gave up), so the
    /// caller can release what keeps its io_context running (signal sets).
    void on_fatal(std::function<void()> fn);

    struct impl;

private:
    std::shared_ptr<impl> impl_;
};

} // namespace broker
