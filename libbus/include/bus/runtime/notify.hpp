#pragma once

// systemd's notification protocol without libsystemd: one datagram to $NOTIFY_SOCKET (a path,
// or an abstract name starting with '@'). Does nothing when the variable is unset, so daemons
// call it unconditionally. No Asio.

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace bus::runtime {

class notifier {
public:
    /// Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from the environment.
    notifier();
    /// Explicit socket (tests); "" = disabled.
    explicit notifier(std::string socket, std::optional<std::chrono::microseconds> watchdog = std::nullopt);

    bool enabled() const noexcept { return !socket_.empty(); }
    /// Sends `state` ("READY=1\nSTATUS=..."). Returns false when disabled or the send failed.
    bool send(std::string_view state) const;
    bool ready(std::string_view status = {}) const;
    bool stopping() const { return send("STOPPING=1"); }
    bool reloading() const { return send("RELOADING=1"); }
    bool status(std::string_view s) const;
    bool watchdog() const { return send("WATCHDOG=1"); }
    /// How often to send WATCHDOG=1: half of WATCHDOG_USEC (systemd's advice); nullopt when the
    /// watchdog is off or meant for another process (WATCHDOG_PID).
    std::optional<std::chrono::milliseconds> watchdog_interval() const noexcept { return watchdog_; }

private:
    std::string socket_;
    std::optional<std::chrono::milliseconds> watchdog_;
};

} // namespace bus::runtime
