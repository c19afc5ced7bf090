#include "bus/runtime/heartbeat.hpp"

#include "bus/runtime/program.hpp"
#include "bus/runtime/service.hpp"
#include "bus/wire.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

namespace bus::runtime {

event make_heartbeat(std::string daemon, std::string host, std::chrono::duration<double> uptime,
                     std::map<std::string, std::uint64_t> counters)
{
    heartbeat_event h;
    h.host = host;
    h.daemon = std::move(daemon);
    h.version = std::string(version());
    h.uptime_s = uptime.count();
    h.counters = std::move(counters);
    return make_event(std::move(h), std::move(host));
}

boost::asio::awaitable<void> heartbeat(service& svc, client& c, heartbeat_options opts, std::string daemon,
                                       counters_fn counters, std::optional<signing_key> signing)
{
    if (opts.interval.count() <= 0) co_return;
    const auto start = std::chrono::steady_clock::now();
    const std::string host = hostname();
    const std::string dest = "/topic/" + opts.topic;
    const auto timeout = std::min<std::chrono::milliseconds>(opts.interval, std::chrono::seconds(10));
    std::uint64_t sent = 0, missed = 0;
    // The first one once connected (checked every second), then one per interval. Every wait
    // ends at once when the service stops.
    bool first = true;
    while (!svc.stopping()) {
        if (first && !c.connected()) {
            if (!co_await svc.sleep_for(std::min<std::chrono::milliseconds>(opts.interval, std::chrono::seconds(1)))) break;
            continue;
        }
        first = false;
        if (c.connected()) {
            auto ev = make_heartbeat(daemon, host, std::chrono::steady_clock::now() - start,
                                     counters ? counters() : std::map<std::string, std::uint64_t>{});
            auto frames = encode(ev, dest, wire_format::native);
            if (signing) {
                auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
                for (auto& f : frames) sign(f, *signing, now);
            }
            for (auto& f : frames) {
                auto ec = co_await c.publish(std::move(f), timeout);
                if (ec) {
                    if (missed++ == 0 || svc.stopping()) svc.log().debug("heartbeat not receipted: {}", ec.message());
                } else {
                    ++sent;
                }
            }
        }
        if (!co_await svc.sleep_for(opts.interval)) break;
    }
    svc.log().debug("heartbeats: {} sent, {} not receipted", sent, missed);
}

} // namespace bus::runtime
