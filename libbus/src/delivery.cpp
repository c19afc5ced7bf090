#include "bus/delivery.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

namespace bus {

namespace net = boost::asio;
using steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

// Runs `f` on the blocking executor and resumes on ours.
template <class F>
auto offload(net::any_io_executor blocking, F f) -> net::awaitable<decltype(f())>
{
    co_return co_await net::co_spawn(
        blocking, [f = std::move(f)]() mutable -> net::awaitable<decltype(f())> { co_return f(); },
        net::use_awaitable);
}

milliseconds left(steady::time_point deadline)
{
    auto d = std::chrono::duration_cast<milliseconds>(deadline - steady::now());
    return d.count() > 0 ? d : milliseconds(0);
}

// Shared by publish_all and its in-flight publishes, which may outlive a cancelled caller.
struct window_state {
    explicit window_state(net::any_io_executor ex, std::size_t n) : wake(std::move(ex)), results(n) {}
    net::steady_timer wake;
    std::vector<publish_result> results;
    std::size_t in_flight = 0;
    bool failed = false;
};

net::awaitable<void> publish_one(client* c, stomp::frame f, milliseconds timeout, std::shared_ptr<window_state> st,
                                 std::size_t i)
{
    auto r = co_await c->send(std::move(f), timeout);
    if (!r) st->failed = true;
    st->results[i] = r;
    --st->in_flight;
    st->wake.cancel();
}

} // namespace

net::awaitable<drain_result> drain(client& c, outbox& box, net::any_io_executor blocking, steady::time_point deadline)
{
    drain_result r;
    auto lock = co_await offload(blocking, [&] { return box.try_lock(); });
    if (!lock) {
        r.locked_out = true;
        r.remaining = (co_await offload(blocking, [&] { return box.pending(); })).size();
        co_return r;
    }
    auto files = co_await offload(blocking, [&] { return box.pending(); });
    std::size_t before_q = co_await offload(blocking, [&] { return box.quarantined(); });
    std::size_t i = 0;
    for (; i < files.size(); ++i) {
        if (left(deadline).count() == 0) {
            r.error = make_error_code(errc::receipt_timeout);
            break;
        }
        auto frame = co_await offload(blocking, [&] { return box.load(files[i]); });
        if (!frame) continue;  // quarantined
        auto res = co_await c.send(std::move(*frame), left(deadline));
        if (!res) {
            r.error = res.error;
            if (res.status == publish_status::unknown) {
                // The broker may have it: the copy the next drain sends says so.
                co_await offload(blocking, [&] {
                    box.mark_possibly_sent(files[i]);
                    return 0;
                });
            }
            break;
        }
        co_await offload(blocking, [&] {
            box.remove(files[i]);
            return 0;
        });
        ++r.delivered;
    }
    r.remaining = (co_await offload(blocking, [&] { return box.pending(); })).size();
    r.quarantined = co_await offload(blocking, [&] { return box.quarantined(); }) - before_q;
    co_return r;
}

net::awaitable<std::vector<publish_result>> publish_all(client& c, const std::vector<stomp::frame>& frames,
                                                       milliseconds timeout, std::size_t window)
{
    auto ex = co_await net::this_coro::executor;
    auto st = std::make_shared<window_state>(ex, frames.size());
    auto deadline = steady::now() + timeout;
    if (window == 0) window = frames.size();
    std::size_t next = 0;
    for (;;) {
        // After a failure nothing new is written: what follows stays not_sent, so a broker that
        // went away leaves at most `window` outcomes unknown.
        while (next < frames.size() && st->in_flight < window && !st->failed && left(deadline).count() > 0) {
            ++st->in_flight;
            net::co_spawn(ex, publish_one(&c, frames[next], left(deadline), st, next), net::detached);
            ++next;
        }
        if (st->in_flight == 0) break;
        st->wake.expires_at(steady::time_point::max());
        co_await st->wake.async_wait(net::as_tuple(net::use_awaitable));
    }
    for (std::size_t i = next; i < frames.size(); ++i)
        st->results[i] = {publish_status::not_sent, make_error_code(errc::receipt_timeout)};
    co_return std::move(st->results);
}

void mark_possibly_sent(stomp::frame& f) { f.set(possibly_sent_header, "true"); }

net::awaitable<send_report> publish_or_spool(client& c, outbox& box, std::vector<stomp::frame> frames,
                                             net::any_io_executor blocking, steady::time_point deadline,
                                             std::size_t window)
{
    send_report rep;
    auto spool_all = [&](std::vector<stomp::frame>& fs) -> net::awaitable<void> {
        for (auto& f : fs) {
            co_await offload(blocking, [&] { return box.spool(f); });
            ++rep.spooled;
            if (f.find(possibly_sent_header)) ++rep.possibly_sent;
        }
    };
    if (!co_await c.wait_connected(left(deadline))) {
        co_await spool_all(frames);
        co_return rep;
    }
    // Keep order with what earlier runs spooled: deliver that first, or queue behind it.
    if (!(co_await offload(blocking, [&] { return box.pending(); })).empty()) {
        rep.drained = co_await drain(c, box, blocking, deadline);
        if (rep.drained.remaining > 0) {
            co_await spool_all(frames);
            co_return rep;
        }
    }
    // Pipelined publishes; those without a receipt by the deadline are spooled, in order.
    auto results = co_await publish_all(c, frames, std::max(left(deadline), milliseconds(1)), window);
    std::vector<stomp::frame> failed;
    for (std::size_t i = 0; i < frames.size(); ++i) {
        if (results[i]) {
            ++rep.published;
            continue;
        }
        if (results[i].status == publish_status::unknown) mark_possibly_sent(frames[i]);
        failed.push_back(std::move(frames[i]));
    }
    co_await spool_all(failed);
    co_return rep;
}

send_report send_once(client_options opts, outbox_options spool, std::vector<stomp::frame> frames,
                      milliseconds budget, spdlog::logger& log)
{
    net::io_context io(1);
    outbox box(std::move(spool));
    // The budget covers the whole call, spooling included: the broker gets all of it but a tenth
    // (at most 100 ms), which is kept for writing what it did not take to the spool. So a git push
    // waits at most about the budget even for a broker host that drops every packet.
    auto spool_reserve = std::min(budget / 10, milliseconds(100));
    auto network = std::max(budget - spool_reserve, milliseconds(1));
    opts.connect_timeout = std::min(opts.connect_timeout, network);
    opts.receipt_timeout = std::min(opts.receipt_timeout, network);
    // Refused on every broker is a definite answer: spool now rather than back off for the budget.
    opts.give_up_when_refused = true;
    client c(io.get_executor(), std::move(opts), log);
    send_report rep;
    std::exception_ptr failure;
    auto deadline = steady::now() + network;
    net::co_spawn(io, c.run(), [](std::exception_ptr) {});
    net::co_spawn(
        io,
        [&]() -> net::awaitable<void> {
            // The spool's file I/O runs on the loop itself: a one-shot producer has nothing else
            // to keep responsive, and no thread pool to start (a thread per git push).
            rep = co_await publish_or_spool(c, box, std::move(frames), io.get_executor(), deadline);
            c.stop();
        },
        [&](std::exception_ptr e) {
            failure = e;
            c.stop();
        });
    // The loop ends when run() returns after DISCONNECT; bounded in case a broker never answers.
    io.run_for(budget + milliseconds(3000));
    if (failure) std::rethrow_exception(failure);
    return rep;
}

} // namespace bus
