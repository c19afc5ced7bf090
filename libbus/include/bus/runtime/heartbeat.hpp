#pragma once

// The heartbeat every long-running daemon publishes (bus/event.hpp heartbeat_event, docs/events.md):
// host, daemon, version, uptime and the daemon's key counters, on `heartbeat-topic` (default
// deploykit.heartbeats) every `heartbeat-interval` (default 60 s; 0 = off). Each is published
// with a receipt while connected and never spooled or queued: a missed heartbeat is fine (the
// event log alerts on a run of them), a backlog replayed after an outage is not.

#include "bus/client.hpp"
#include "bus/event.hpp"
#include "bus/runtime/settings.hpp"
#include "bus/signing.hpp"

#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace bus::runtime {

class service;

using counters_fn = std::function<std::map<std::string, std::uint64_t>()>;

/// The heartbeat event (pure): `uptime` since start.
event make_heartbeat(std::string daemon, std::string host, std::chrono::duration<double> uptime,
                     std::map<std::string, std::uint64_t> counters);

/// Publishes until the service stops: the first heartbeat once connected, then every interval.
/// Spawn it on the service (svc.spawn(heartbeat(...))). Returns at once when interval is 0.
boost::asio::awaitable<void> heartbeat(service& svc, client& c, heartbeat_options opts, std::string daemon,
                                       counters_fn counters, std::optional<signing_key> signing = std::nullopt);

} // namespace bus::runtime
