#include "bus/delivery.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
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

net::awaitable<void> publish_one(client* c, stomp::frame f, milliseconds timeout, std::error_code* out, int* done,
                                 net::steady_timer* wake)
{
    *out = co_await c->publish(std::move(f), timeout);
    ++*done;
    wake->cancel();
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
        auto ec = co_await c.publish(std::move(*frame), left(deadline));
        if (ec) {
            r.error = ec;
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

net::awaitable<std::vector<std::error_code>> publish_all(client& c, const std::vector<stomp::frame>& frames,
                                                        milliseconds timeout)
{
    std::vector<std::error_code> results(frames.size(), make_error_code(errc::receipt_timeout));
    int done = 0;
    net::steady_timer wake(co_await net::this_coro::executor);
    for (std::size_t i = 0; i < frames.size(); ++i)
        net::co_spawn(co_await net::this_coro::executor, publish_one(&c, frames[i], timeout, &results[i], &done, &wake),
                      net::detached);
    while (done < static_cast<int>(frames.size())) {
        wake.expires_at(steady::time_point::max());
        co_await wake.async_wait(net::as_tuple(net::use_awaitable));
    }
    co_return results;
}

net::awaitable<send_report> publish_or_spool(client& c, outbox& box, std::vector<stomp::frame> frames,
                                             net::any_io_executor blocking, steady::time_point deadline)
{
    send_report rep;
    auto spool_all = [&](std::vector<stomp::frame>& fs) -> net::awaitable<void> {
        for (auto& f : fs) {
            co_await offload(blocking, [&] { return box.spool(f); });
            ++rep.spooled;
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
    auto results = co_await publish_all(c, frames, std::max(left(deadline), milliseconds(1)));
    std::vector<stomp::frame> failed;
    for (std::size_t i = 0; i < frames.size(); ++i) {
        if (results[i]) failed.push_back(std::move(frames[i]));
        else ++rep.published;
    }
    co_await spool_all(failed);
    co_return rep;
}

send_report send_once(client_options opts, outbox_options spool, std::vector<stomp::frame> frames,
                      milliseconds budget, spdlog::logger& log)
{
    net::io_context io(1);
    net::thread_pool pool(1);
    outbox box(std::move(spool));
    // Nothing may wait longer than the budget: connect and receipts are bounded by it too.
    opts.connect_timeout = std::min(opts.connect_timeout, budget);
    opts.receipt_timeout = std::min(opts.receipt_timeout, budget);
    client c(io.get_executor(), std::move(opts), log);
    send_report rep;
    std::exception_ptr failure;
    auto deadline = steady::now() + budget;
    net::co_spawn(io, c.run(), [](std::exception_ptr) {});
    net::co_spawn(
        io,
        [&]() -> net::awaitable<void> {
            rep = co_await publish_or_spool(c, box, std::move(frames), pool.get_executor(), deadline);
            c.stop();
        },
        [&](std::exception_ptr e) {
            failure = e;
            c.stop();
        });
    // The loop ends when run() returns after DISCONNECT; bounded in case a broker never answers.
    io.run_for(budget + milliseconds(3000));
    pool.join();
    if (failure) std::rethrow_exception(failure);
    return rep;
}

} // namespace bus
