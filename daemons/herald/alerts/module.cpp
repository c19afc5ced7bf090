// The alert module behind herald's seam (daemons/herald/alert_seam.hpp): settings from herald's
// `alerts:` section, and the engine herald drives — the rule engine plus its actions.

#include "../alert_seam.hpp"

#include "notifier.hpp"

#include "bus/config.hpp"
#include "bus/event.hpp"
#include "bus/publisher.hpp"
#include "bus/runtime/service.hpp"
#include "bus/wire.hpp"

#include <spdlog/spdlog.h>

namespace herald::alerts {

std::shared_ptr<const settings> read_settings(const bus::runtime::section& s)
{
    return std::make_shared<const settings>(parse_settings(s));
}

namespace {

input input_of(const recorded_event& r)
{
    input in;
    in.id = r.id;
    in.type = r.type;
    in.host = r.host;
    in.daemon = r.daemon;
    in.level = r.level;
    in.message = r.message;
    in.data = r.data.empty() ? "{}" : r.data;
    if (r.received_ms > 0) in.seen = time_point(std::chrono::milliseconds(r.received_ms));
    return in;
}

class module final : public engine {
public:
    module(const settings& s, context ctx)
        : ctx_(std::move(ctx)),
          n_(*ctx_.svc, s, state_path(s, ctx_), *ctx_.metrics, [this](bus::event e) { return publish(std::move(e)); },
             ctx_.host)
    {
        n_.load_state();
        n_.start();
        auto& log = ctx_.svc->log();
        log.info("alerts: {} heartbeat rule(s), {} pattern rule(s), mail {}, webhook {}; alert events on {}",
                 s.heartbeat.size(), s.patterns.size(), s.mail.enabled() ? "on" : "off", s.webhook.enabled() ? "on" : "off",
                 s.topic);
    }

    void on_event(const recorded_event& e) override { n_.on_event(input_of(e)); }
    void tick(std::chrono::system_clock::time_point now) override { n_.tick(now); }

private:
    static std::filesystem::path state_path(const settings& s, const context& ctx)
    {
        if (!s.state_file.empty()) return s.state_file;
        return ctx.state_file;
    }

    boost::asio::awaitable<bool> publish(bus::event e)
    {
        auto frames = bus::encode(e, "/topic/" + n_.core().config().topic, bus::wire_format::native);
        auto sent = co_await ctx_.out->publish(std::move(frames), std::chrono::milliseconds(5000));
        if (!sent.kept()) ctx_.svc->log().warn("alerts: alert event not kept: {}", sent.why);
        co_return sent.kept();
    }

    context ctx_;
    notifier n_;
};

}  // namespace

std::unique_ptr<engine> make_engine(std::shared_ptr<const settings> s, context ctx)
{
    if (!s) return nullptr;
    return std::make_unique<module>(*s, std::move(ctx));
}

} // namespace herald::alerts
