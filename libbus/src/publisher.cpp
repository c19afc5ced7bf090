#include "bus/publisher.hpp"

#include "bus/delivery.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

namespace bus {

namespace net = boost::asio;
using steady = std::chrono::steady_clock;

spooling_publisher::spooling_publisher(net::any_io_executor io, client& c, std::optional<outbox_options> spool,
                                       std::optional<signing_key> signing, net::any_io_executor blocking,
                                       spdlog::logger& log)
    : client_(c), box_(spool ? std::make_unique<outbox>(std::move(*spool)) : nullptr), signing_(std::move(signing)),
      blocking_(std::move(blocking)), log_(log), kick_(std::move(io))
{
    // Messages left by an earlier run go first (order): until run() has delivered them, new ones
    // queue behind. An empty outbox holds nothing to overtake, so publishing is direct from the
    // first message; otherwise a daemon started under load spools everything it gets in its first
    // second, and keeps spooling (each message re-reading the spool directory) while load lasts.
    backlog_ = box_ != nullptr && !box_->pending().empty();
}

spooling_publisher::~spooling_publisher() = default;

net::awaitable<publish_report> spooling_publisher::publish(std::vector<stomp::frame> frames,
                                                        std::chrono::milliseconds timeout)
{
    if (signing_) {
        auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
        for (auto& f : frames) sign(f, *signing_, now);
    }
    publish_report rep;
    std::vector<stomp::frame> later;
    if (client_.connected() && !backlog_ && timeout.count() > 0) {
        auto results = co_await publish_all(client_, frames, timeout);
        for (std::size_t i = 0; i < frames.size(); ++i) {
            if (results[i]) {
                ++stats_.published;
                ++rep.published;
                continue;
            }
            if (results[i].status == publish_status::unknown) {
                mark_possibly_sent(frames[i]);
                ++rep.possibly_sent;
            }
            later.push_back(std::move(frames[i]));
        }
    } else {
        later = std::move(frames);
    }
    if (later.empty()) co_return rep;
    if (!box_) {
        stats_.lost += later.size();
        rep.outcome = publish_outcome::lost;
        rep.why = "no receipt from the broker, and no spool-dir to keep the message in";
        co_return rep;
    }
    // From now until run() has emptied the outbox, new messages queue behind these.
    backlog_ = true;
    ++generation_;
    // Pointer captures only: GCC 12 mis-destroys by-value captures of coroutine lambdas that
    // co_spawn runs on another thread.
    const std::vector<stomp::frame>* pending = &later;
    spooling_publisher* self = this;
    auto why = co_await net::co_spawn(
        blocking_,
        [self, pending]() -> net::awaitable<std::string> {
            try {
                std::lock_guard lock(self->spool_mutex_);
                for (const auto& f : *pending) self->box_->spool(f);
                co_return std::string();
            } catch (const std::exception& e) {
                co_return std::string(e.what());
            }
        },
        net::use_awaitable);
    if (!why.empty()) {
        stats_.lost += later.size();
        rep.outcome = publish_outcome::lost;
        rep.why = why;
        co_return rep;
    }
    stats_.spooled += later.size();
    rep.spooled = later.size();
    rep.outcome = publish_outcome::spooled;
    kick_.cancel();
    co_return rep;
}

net::awaitable<void> spooling_publisher::run()
{
    if (!box_) co_return;
    for (;;) {
        kick_.expires_after(std::chrono::seconds(1));
        co_await kick_.async_wait(net::as_tuple(net::use_awaitable));
        if (stopping_) co_return;
        if (!client_.connected()) continue;
        auto generation = generation_;
        auto r = co_await drain(client_, *box_, blocking_, steady::now() + std::chrono::seconds(10));
        stats_.delivered += r.delivered;
        if (r.delivered) log_.info("delivered {} spooled message(s), {} left", r.delivered, r.remaining);
        if (r.error && r.remaining) log_.warn("spool delivery stopped: {}", r.error.message());
        // Only a drain that saw every spooled message lets new messages bypass the outbox.
        backlog_ = r.remaining > 0 || r.locked_out || r.error || generation != generation_;
    }
}

void spooling_publisher::stop()
{
    stopping_ = true;
    kick_.cancel();
}

} // namespace bus
