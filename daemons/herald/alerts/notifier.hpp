#pragma once

// The alerts module's I/O layer inside herald: feeds the engine (engine.hpp) from the service's
// I/O thread, ticks it every check interval, and turns its decisions into actions — an `alert`
// event on the bus, a mail (SMTP) and a webhook POST — through one bounded queue per channel.
// Blocking work (libcurl transfers, the state file's atomic write) runs on the service's worker
// pool; the engine is only touched on the I/O thread.
//
// herald drives it through its seam (daemons/herald/alert_seam.hpp): read_settings() at config
// time, make_engine() at start (loads the state file, starts the channel workers), on_event() for
// every committed row, tick() every second (the engine checks every check-interval).
//
// Queues: each channel holds at most its `queue` setting (bus: 1000); when full the oldest
// waiting notice is dropped and counted in herald_alerts_notices_total{channel,result="dropped"}.

#include "engine.hpp"
#include "rules.hpp"

#include <boost/asio/awaitable.hpp>

#include <atomic>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>

namespace bus {
struct event;
namespace http {
class registry;
class counter;
}
namespace runtime {
class service;
}
}  // namespace bus

namespace herald::alerts {

class notifier {
public:
    /// Publishes one event (herald's publisher); true when receipted or spooled.
    using publish_fn = std::function<boost::asio::awaitable<bool>(bus::event)>;

    notifier(bus::runtime::service& svc, settings s, std::filesystem::path state_file, bus::http::registry& metrics,
             publish_fn publish, std::string host);
    ~notifier();
    notifier(const notifier&) = delete;
    notifier& operator=(const notifier&) = delete;

    /// Reads the state file (blocking; at start-up). A missing file is a first start; an
    /// unreadable or malformed one is logged and set aside as `<file>.bad`, and watching starts empty.
    void load_state();
    void start();
    /// Every recorded event, on the I/O thread.
    void on_event(const input& e);
    /// On the I/O thread (often); runs the engine's check every check-interval.
    void tick(time_point now);
    /// Writes the state now if it changed.
    boost::asio::awaitable<void> flush();

    const rule_engine& core() const noexcept { return engine_; }

private:
    struct channel;
    void handle(std::vector<decision> ds);
    boost::asio::awaitable<void> write_state();
    boost::asio::awaitable<void> drain(channel& ch);

    bus::runtime::service& svc_;
    rule_engine engine_;
    time_point next_check_{};
    std::filesystem::path state_file_;
    publish_fn publish_;
    std::string host_;
    std::unique_ptr<channel> bus_, mail_, webhook_;
    bus::http::counter& fired_;
    bus::http::counter& recovered_;
    std::atomic<double> firing_{0};
    std::atomic<double> sources_{0};
    std::atomic<double> untracked_{0};
    bool writing_ = false;
};

/// Writes `data` to `path` atomically (temporary file in the same directory, fsync, rename,
/// fsync of the directory), mode 0600. Throws std::runtime_error naming the path.
void write_atomically(const std::filesystem::path& path, const std::string& data);

} // namespace herald::alerts
