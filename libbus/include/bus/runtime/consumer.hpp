#pragma once

// What every daemon that consumes commit events shares (stomp-git, stomp-jenkins and the
// daemons to come): the `durable-name` setting, the subscription it leads to, and readiness
// once the broker confirmed that subscription.

#include "bus/client.hpp"
#include "bus/http/metrics.hpp"
#include "bus/intake.hpp"
#include "bus/publisher.hpp"
#include "bus/runtime/config_reader.hpp"
#include "bus/runtime/settings.hpp"

#include <boost/asio/awaitable.hpp>

#include <functional>
#include <vector>

#include <string>
#include <string_view>
#include <optional>

namespace spdlog {
class logger;
}

namespace bus::runtime {

class service;


/// A client-individual subscription to `/topic/<topic>`. Durable under `durable_name` with both
/// header sets (RabbitMQ's durable queue, ActiveMQ's subscriptionName with the client-id;
/// stomp-broker takes either), so a reconnect gap or a restart loses nothing; with an empty name
/// a plain subscription, and a warning saying so. `prefetch` 0: the broker's default.
subscription_options consumer_subscription(const std::string& topic, const std::string& durable_name,
                                           const std::string& client_id, unsigned prefetch, spdlog::logger& log,
                                           std::string_view daemon);

/// Waits until the broker confirmed subscription `id`, then READY=1 with `status`
/// (svc.ready()). Ends early when the service stops. Spawn it untracked (it waits in 1 s steps).
boost::asio::awaitable<void> ready_when_subscribed(service* svc, client* c, std::string id, std::string status);

/// The metrics a consumer reports beside `common`'s: `broker_connected` (set at every scrape),
/// `pending_messages` (what `pending()` says: messages held until their work is done) and
/// `spooled_total` (reports written to the outbox).
void register_consumer_metrics(http::registry& r, http::daemon_metrics& common, const client& c,
                               const spooling_publisher& out, std::function<double()> pending);

/// For /readyz: why a consumer cannot do its job (nullopt: it can).
std::optional<std::string> consumer_not_ready(const client& c, const std::string& id, const std::string& topic);

/// For a consumer's handler: true when the intake said to act on the message. Otherwise counts
/// and logs why not: a duplicate at debug level, a keepalive not at all, anything else as
/// `dropped{reason="signature"|"invalid"}` with a warning naming the message.
bool screen(const intake::result& r, std::string_view message_id, http::daemon_metrics& common, spdlog::logger& log,
            std::string_view daemon);

} // namespace bus::runtime
