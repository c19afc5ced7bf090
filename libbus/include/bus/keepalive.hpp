#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

namespace bus {

/// Heart-beat intervals as negotiated by CONNECT/CONNECTED (STOMP 1.1 §Heart-beating).
struct heartbeat {
    std::chrono::milliseconds send{0};     ///< we must send something at least this often
    std::chrono::milliseconds receive{0};  ///< the broker promised traffic at least this often
};

/// Parses a `heart-beat:cx,cy` value; nullopt-like zeroes on malformed input.
bool parse_heartbeat_header(std::string_view value, std::chrono::milliseconds& x,
                            std::chrono::milliseconds& y) noexcept;

/// Combines our CONNECT request (cx, cy) with the broker's CONNECTED answer (sx, sy).
heartbeat negotiate_heartbeat(std::chrono::milliseconds cx, std::chrono::milliseconds cy,
                              std::chrono::milliseconds sx, std::chrono::milliseconds sy) noexcept;

/// What the liveness policy wants done.
enum class keepalive_action {
    none,
    send_heartbeat,  ///< write one EOL (a heart-beat, or a synthetic keepalive on 1.0)
    send_probe,      ///< write a frame that the broker must answer (a receipt request)
    dead,            ///< the connection is dead: close it and reconnect
};

std::string_view to_string(keepalive_action a) noexcept;

/// Liveness settings for one connection.
struct keepalive_config {
    /// Write an EOL when nothing was written for this long (negotiated heart-beat, or the
    /// synthetic keepalive that keeps idle-dropping firewalls open). 0 = never.
    std::chrono::milliseconds send_every{0};
    /// The broker promised traffic this often; silence for `expect_every * grace` is death.
    /// 0 = no promise (STOMP 1.0 or heart-beats declined). ActiveMQ checks its write side once
    /// per period, so its heart-beats can be almost two periods apart: 3 leaves a margin
    /// (and matches what RabbitMQ and ActiveMQ themselves allow a silent client).
    std::chrono::milliseconds expect_every{0};
    double grace = 3.0;
    /// Without a promise: after this much silence, probe the broker with a request that needs
    /// an answer; 0 = never probe.
    std::chrono::milliseconds probe_after{0};
    /// A probe unanswered for this long means the connection is dead.
    std::chrono::milliseconds probe_timeout{10000};
};

/// Pure liveness policy for one connection (the mosquitto/AMQP-CPP split: the core decides
/// *what*, the I/O loop decides *when* by calling `on_tick` at `next_deadline()`).
/// Time is injected, so tests drive it with a fake clock.
class keepalive {
public:
    using clock = std::chrono::steady_clock;
    using time_point = clock::time_point;

    keepalive(keepalive_config cfg, time_point now) noexcept;

    /// Bytes arrived (any: frame, heart-beat, receipt).
    void on_rx(time_point now) noexcept;
    /// Bytes were written.
    void on_tx(time_point now) noexcept;
    /// Reading is paused by local back-pressure: silence is then not the broker's fault.
    void set_paused(bool paused, time_point now) noexcept;

    /// Decides the next action. `send_probe` is returned once per silence; the caller sends
    /// it and calls `on_tx`. `send_heartbeat` repeats until `on_tx` is called.
    keepalive_action on_tick(time_point now) noexcept;
    /// The earliest time `on_tick` could return something other than `none`.
    time_point next_deadline() const noexcept;

    const keepalive_config& config() const noexcept { return cfg_; }

private:
    keepalive_config cfg_;
    time_point last_rx_;
    time_point last_tx_;
    time_point probe_sent_{};
    bool probing_ = false;
    bool paused_ = false;
};

} // namespace bus
