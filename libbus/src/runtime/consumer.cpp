#include "bus/runtime/consumer.hpp"

#include "bus/runtime/program.hpp"
#include "bus/text.hpp"
#include "bus/runtime/service.hpp"

#include <spdlog/spdlog.h>

#include <cctype>

namespace bus::runtime {


subscription_options consumer_subscription(const std::string& topic, const std::string& durable_name,
                                           const std::string& client_id, unsigned prefetch, spdlog::logger& log,
                                           std::string_view daemon)
{
    subscription_options so;
    so.destination = "/topic/" + topic;
    so.ack = ack_mode::client_individual;
    if (prefetch) so.prefetch = prefetch;
    if (!durable_name.empty()) {
        so.durable_name = durable_name;
        so.durable = durable_style::both;
        log.info("{}: durable subscription '{}' (client-id '{}'): messages are kept while stopped and redelivered "
                 "after a reconnect",
                 daemon, durable_name, client_id);
    } else {
        log.warn("{}: durable-name is empty: a plain subscription; messages published while stopped or "
                 "unacknowledged at a reconnect may be lost",
                 daemon);
    }
    return so;
}

boost::asio::awaitable<void> ready_when_subscribed(service* svc, client* c, std::string id, std::string status)
{
    bool subscribed = false;
    while (!subscribed && !svc->stopping()) {
        // Named first: GCC 12 miscompiles a co_await inside an if condition here (SIGILL).
        bool ok = co_await c->wait_subscribed(id, std::chrono::seconds(1));
        subscribed = ok;
    }
    if (subscribed) svc->ready(status);
}

void register_consumer_metrics(http::registry& r, http::daemon_metrics& common, const client& c,
                               const spooling_publisher& out, std::function<double()> pending)
{
    r.add_collector([&common, &c] { common.broker_connected.set(c.connected() ? 1 : 0); });
    r.add_callback("pending_messages", "messages held until their work is done", "gauge", std::move(pending));
    r.add_callback("spooled_total", "reports written to the outbox", "counter",
                   [&out] { return static_cast<double>(out.stats().spooled); });
}

std::optional<std::string> consumer_not_ready(const client& c, const std::string& id, const std::string& topic)
{
    if (!c.connected()) return std::string("broker unreachable");
    if (auto s = c.subscription(id); !s.confirmed)
        return "not subscribed to /topic/" + topic + (s.refused.empty() ? std::string(" yet") : ": " + s.refused);
    return std::nullopt;
}

bool screen(const intake::result& r, std::string_view message_id, http::daemon_metrics& common, spdlog::logger& log,
            std::string_view daemon)
{
    if (r.process()) return true;
    if (r.decision == intake_decision::duplicate) {
        common.dropped("duplicate").inc();
        log.debug("{}: {}", daemon, r.reason);
    } else if (r.decision != intake_decision::keepalive) {
        common.dropped(r.decision == intake_decision::signature ? "signature" : "invalid").inc();
        log.warn("{}: dropped message {}: {}", daemon, log_escape(message_id), r.reason);
    }
    return false;
}

} // namespace bus::runtime
