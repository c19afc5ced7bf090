#pragma once

// The seam between herald and its alert engine (daemons/herald/alerts/, the `herald_alerts`
// library, built by its own owner). herald knows only this header:
//
//   - config: herald's config keeps the `alerts:` key; load_config() hands its section, untouched,
//     to alerts::read_settings() (errors through the section: file, line and key), and keeps the
//     result opaque. Absent or null `alerts:` → read_settings is not called (no engine).
//   - service: make_engine() once at start; then on the I/O thread, on_event() for every event
//     after its transaction committed (duplicates are never passed twice; at start, the last
//     heartbeat of each (daemon, host) in the database is passed first, so a restart does not
//     forget a source), and tick(now) once a second.
//   - actions: the engine publishes its alert events through ctx.out (spooled when the broker is
//     away; herald records them when they come back through its subscription to
//     `deploykit.alerts`), runs blocking sends (SMTP, webhooks) on ctx.svc->workers() /
//     svc->blocking(), spawns its coroutines with ctx.svc->spawn(), and may add metrics to
//     ctx.metrics.
//
// Until daemons/herald/alerts/CMakeLists.txt exists, herald links alerts_none.cpp (no alerts).

#include "record.hpp"

#include <chrono>
#include <memory>
#include <string>

namespace bus {
class client;
class spooling_publisher;
struct bus_config;
namespace http {
class registry;
}
namespace runtime {
class section;
class service;
} // namespace runtime
} // namespace bus

namespace herald::alerts {

struct settings;  ///< the alert module's parsed `alerts:` section (opaque to herald)

/// Reads and validates `alerts:` (called from load_config; s.fail() for errors).
std::shared_ptr<const settings> read_settings(const bus::runtime::section& s);

struct context {
    bus::runtime::service* svc = nullptr;      ///< executor, workers, spawn, log, stopping()
    bus::client* client = nullptr;            ///< connected()
    bus::spooling_publisher* out = nullptr;   ///< publish alert events
    const bus::bus_config* bus = nullptr;     ///< wire format, signing
    bus::http::registry* metrics = nullptr;   ///< prefix herald_
    std::string host;                         ///< this host's name
    std::string alert_topic = "deploykit.alerts";
    std::string state_file;                   ///< default of alerts.state-file: beside the database
};

class engine {
public:
    virtual ~engine() = default;
    /// A recorded event (committed). On the I/O thread; must not block.
    virtual void on_event(const recorded_event& e) = 0;
    /// Once a second, on the I/O thread; must not block.
    virtual void tick(std::chrono::system_clock::time_point now) = 0;
};

/// The engine for `s` (never null when s is not null).
std::unique_ptr<engine> make_engine(std::shared_ptr<const settings> s, context ctx);

} // namespace herald::alerts
