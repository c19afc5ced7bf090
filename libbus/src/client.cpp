#include "bus/client.hpp"

#include "bus/backoff.hpp"
#include "bus/detail/race.hpp"
#include "bus/stomp_stream.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <random>

namespace bus {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using namespace net::experimental::awaitable_operators;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

client_options options_from_url(std::string_view rserver, std::string_view stomp_options)
{
    client_options o;
    o.url = parse_broker_url(rserver, stomp_options);
    return o;
}

// ---- helpers --------------------------------------------------------------------------------

namespace {

constexpr auto tuple_awaitable = net::as_tuple(net::use_awaitable);

/// Waiters for a broadcast condition. Each waiter owns its timer; notify cancels them all.
struct waiters {
    std::vector<net::steady_timer*> list;
    void notify_all()
    {
        for (auto* t : list) t->cancel();
    }
};

/// Waits until `pred()` or `timeout`; returns `pred()`.
template <class Pred>
net::awaitable<bool> wait_until(waiters& w, milliseconds timeout, Pred pred)
{
    auto deadline = steady::now() + timeout;
    while (!pred()) {
        if (steady::now() >= deadline) co_return false;
        // Raced with `||` (connect, connection) and lost: end without an exception. Awaiting the
        // timer of a cancelled coroutine throws operation_aborted, and that one exception per
        // connect made the unwinder read the executable's .eh_frame and .gcc_except_table: up to
        // 0.5 MiB of every idle daemon's RSS (bench/results/perf-5-*.md).
        auto cs = co_await net::this_coro::cancellation_state;
        if (cs.cancelled() != net::cancellation_type::none) co_return false;
        net::steady_timer t(co_await net::this_coro::executor);
        t.expires_at(deadline);
        w.list.push_back(&t);
        struct unregister {
            waiters& w;
            net::steady_timer* t;
            ~unregister() { std::erase(w.list, t); }
        } guard{w, &t};
        auto [ec] = co_await t.async_wait(tuple_awaitable);
        (void)ec;
    }
    co_return true;
}

using detail::capture;

} // namespace

// ---- state ----------------------------------------------------------------------------------

namespace {

/// A subscription's consumer: delivered messages wait here for its handler, in order.
struct consumer_state {
    consumer_state(const net::any_io_executor& ex) : ready(ex), space(ex) {}
    std::string destination;
    message_handler handler;
    std::deque<message> queue;
    std::size_t queued_bytes = 0;
    net::steady_timer ready;  // consumer waits here for messages
    net::steady_timer space;  // reader waits here while the queue is full
    bool closed = false;
};

/// A publish awaiting its outcome.
struct publish_waiter {
    explicit publish_waiter(const net::any_io_executor& ex) : timer(ex) {}
    net::steady_timer timer;
    std::optional<publish_result> result;
};

} // namespace

// The protocol state is bus::session (sans-IO); this is the bytes and coroutines around it: one
// stomp_stream per connection, a reader, a writer, a timer for the session's ticks, and the
// consumers that run the handlers.
struct client::impl : std::enable_shared_from_this<client::impl> {
    impl(net::any_io_executor ex, client_options o, spdlog::logger& l)
        : exec(std::move(ex)), sess(std::move(o)), opts(sess.options()), log(l)
    {
        for (auto& n : opts.url.notes) log.info("stomp: {}", n);
        any_tls = std::any_of(opts.url.endpoints.begin(), opts.url.endpoints.end(),
                              [](const endpoint& e) { return e.tls; });
        if (any_tls) setup_tls();
    }

    net::any_io_executor exec;
    session sess;
    const client_options& opts;
    spdlog::logger& log;
    // Made only for a TLS endpoint: an SSL_CTX initialises OpenSSL (config file, providers),
    // a cost a plain-TCP one-shot producer (the git hook) should not pay.
    std::shared_ptr<ssl::context> tls_ctx;
    bool any_tls = false;

    std::shared_ptr<stomp_stream> stream;  // the connection being set up or in use
    bool stopping = false;
    bool aborting = false;
    bool running = false;
    waiters stop_waiters;
    waiters connect_waiters;
    waiters subscribe_waiters;
    waiters disconnect_waiters;
    bool disconnect_receipted = false;

    std::map<std::uint64_t, publish_waiter*> publishes;
    std::map<std::string, std::shared_ptr<consumer_state>> consumers;

    void setup_tls()
    {
        tls_ctx = detail::tls_client_context(opts.tls);
    }

    // ---- carrying out the session's actions -------------------------------------------------

    /// Carries out what the session asked for, except deliveries and closing, which the caller
    /// (the reader, the watchdog) handles; returns the actions.
    session_actions apply()
    {
        auto a = sess.take();
        for (auto& n : a.notices) {
            switch (n.lvl) {
            case session_notice::level::debug: log.debug("{}", n.text); break;
            case session_notice::level::info: log.info("{}", n.text); break;
            case session_notice::level::warn: log.warn("{}", n.text); break;
            case session_notice::level::error: log.error("{}", n.text); break;
            }
        }
        if (stream)
            for (auto& w : a.writes)
                if (!stream->enqueue(std::move(w))) stream->fail("send queue full");
        for (auto& r : a.receipts)
            if (auto it = publishes.find(r.seq); it != publishes.end()) {
                it->second->result = r.result;
                it->second->timer.cancel();
            }
        if (a.subscriptions_changed) subscribe_waiters.notify_all();
        if (a.disconnect_receipted) {
            disconnect_receipted = true;
            disconnect_waiters.notify_all();
        }
        return a;
    }

    /// apply() outside the reader: a close the session asks for ends the writer.
    void apply_now()
    {
        auto a = apply();
        if (a.close && stream) stream->fail(a.close_reason);
    }

    // ---- public operations ------------------------------------------------------------------

    net::awaitable<publish_result> publish(stomp::frame f, milliseconds timeout)
    {
        if (timeout.count() <= 0) timeout = opts.receipt_timeout;
        auto t = sess.publish(std::move(f), stopping);
        if (t.result) co_return *t.result;
        publish_waiter w(exec);
        publishes.emplace(t.seq, &w);
        struct unregister {
            std::map<std::uint64_t, publish_waiter*>& m;
            std::uint64_t seq;
            ~unregister() { m.erase(seq); }
        } guard{publishes, t.seq};
        apply_now();
        if (!w.result) {
            w.timer.expires_after(timeout);
            co_await w.timer.async_wait(tuple_awaitable);
        }
        if (w.result) co_return *w.result;
        co_return sess.expire(t.seq);
    }

    std::string subscribe(subscription_options o, message_handler h)
    {
        if (stopping && !running) throw std::logic_error("bus::client::subscribe after the client stopped");
        auto c = std::make_shared<consumer_state>(exec);
        c->destination = o.destination;
        c->handler = std::move(h);
        auto id = sess.subscribe(std::move(o), steady::now());
        consumers[id] = c;
        apply_now();
        net::co_spawn(exec, consume(shared_from_this(), c), net::detached);
        return id;
    }

    void unsubscribe(const std::string& id)
    {
        if (!sess.unsubscribe(id)) return;
        apply_now();
        if (auto it = consumers.find(id); it != consumers.end()) {
            close_consumer(*it->second);
            consumers.erase(it);
        }
    }

    void acknowledge(const message& m, disposition d)
    {
        sess.acknowledge(m, d);
        apply_now();
    }

    static void close_consumer(consumer_state& c)
    {
        c.closed = true;
        c.ready.cancel();
        c.space.cancel();
    }

    void abort()
    {
        aborting = true;
        if (stream) stream->close();
        stop();
    }

    void stop()
    {
        if (stopping) return;
        stopping = true;
        stop_waiters.notify_all();
        if (!running) finish();
    }

    // Fails what is left once the client no longer runs.
    void finish(errc why = errc::stopped)
    {
        stopping = true;
        sess.fail_all(why);
        apply();
        for (auto& [_, c] : consumers) close_consumer(*c);
        connect_waiters.notify_all();
        subscribe_waiters.notify_all();
    }

    // ---- consumer ---------------------------------------------------------------------------

    static net::awaitable<void> consume(std::shared_ptr<impl> self, std::shared_ptr<consumer_state> s)
    {
        while (!s->closed) {
            if (s->queue.empty()) {
                s->ready.expires_at(steady::time_point::max());
                co_await s->ready.async_wait(tuple_awaitable);
                continue;
            }
            message m = std::move(s->queue.front());
            s->queue.pop_front();
            s->queued_bytes -= std::min(s->queued_bytes, m.frame.body.size());
            s->space.cancel();
            disposition d = disposition::nack;
            if (m.keepalive) {
                // The original's "\n" keepalive: acknowledged here, in delivery order, so a
                // cumulative (client-mode) ACK never covers a message not yet handled.
                d = disposition::ack;
            } else {
                try {
                    d = co_await s->handler(m);
                } catch (const std::exception& e) {
                    self->log.error("stomp: handler for {} failed on message {}: {}", s->destination, m.id(),
                                    e.what());
                } catch (...) {
                    self->log.error("stomp: handler for {} failed on message {}", s->destination, m.id());
                }
            }
            // The session sends nothing for an unsubscribed message (RabbitMQ would answer an
            // ACK with ERROR; the broker redelivers it when the connection ends).
            if (!s->closed) self->acknowledge(m, d);
        }
    }

    // Hands a message to its consumer; while that one's buffer is full, reading stops (and the
    // liveness check with it: the silence is ours).
    net::awaitable<void> deliver(message m)
    {
        auto it = consumers.find(m.subscription);
        if (it == consumers.end()) co_return;
        auto s = it->second;
        while ((s->queue.size() >= opts.subscription_buffer ||
                s->queued_bytes >= opts.subscription_buffer_bytes) && !s->closed) {
            sess.set_paused(true, steady::now());
            s->space.expires_at(steady::time_point::max());
            co_await s->space.async_wait(tuple_awaitable);
        }
        sess.set_paused(false, steady::now());
        if (s->closed) co_return;
        s->queued_bytes += m.frame.body.size();
        s->queue.push_back(std::move(m));
        s->ready.cancel();
    }

    // ---- connection -------------------------------------------------------------------------

    // TCP (+ TLS), CONNECT, and frames until CONNECTED, all before the connect deadline.
    net::awaitable<void> connect(const endpoint& ep)
    {
        auto deadline = steady::now() + opts.connect_timeout;
        auto st = std::make_shared<stomp_stream>(exec, opts.limits, opts.max_queued_bytes);
        stream = st;
        // 64 KiB per read: a burst of messages arrives in few syscalls (the buffer is freed
        // whenever the connection goes idle, so a quiet subscriber holds none).
        st->set_read_size(64 * 1024);
        co_await st->connect(ep, tls_ctx.get(), opts.tls.verify, deadline);
        co_await st->write(sess.begin(ep, steady::now()), deadline);
        while (!sess.connected()) {
            auto item = co_await st->read(deadline, [this] { sess.on_rx(steady::now()); });
            if (item.heartbeat) continue;
            sess.on_frame(std::move(item.frame), steady::now());
            if (auto a = apply(); a.close) throw std::runtime_error(a.close_reason);
        }
        st->set_version(sess.version());
    }

    net::awaitable<void> connection(std::shared_ptr<stomp_stream> st)
    {
        connect_waiters.notify_all();
        auto r = co_await (capture(reader(st)) || capture(writer(st)) || capture(watchdog()) ||
                           capture(stopper()));
        std::visit([](std::exception_ptr& e) { if (e) std::rethrow_exception(e); }, r);
    }

    net::awaitable<void> reader(std::shared_ptr<stomp_stream> st)
    {
        for (;;) {
            // Frames as views into the stream's read buffer: a RECEIPT costs no copy; what the
            // session keeps (a MESSAGE for delivery) is copied once, out of the read buffer.
            stomp_stream::view_item item;
            try {
                item = co_await st->read_view(steady::time_point::max(), [this] { sess.on_rx(steady::now()); });
            } catch (const stream_protocol_error&) {
                ++sess.stats().protocol_errors;
                throw;
            }
            if (item.heartbeat) {
                sess.on_heartbeat(steady::now());
                continue;
            }
            sess.on_frame(item.frame, steady::now());
            auto a = apply();
            for (auto& m : a.deliveries) co_await deliver(std::move(m));
            if (a.close) throw std::runtime_error(a.close_reason);
        }
    }

    net::awaitable<void> writer(std::shared_ptr<stomp_stream> st)
    {
        co_await st->run_writer(opts.write_timeout, [this](std::size_t n) {
            sess.on_written(n, steady::now());
            apply_now();
        });
    }

    net::awaitable<void> watchdog()
    {
        net::steady_timer t(exec);
        for (;;) {
            t.expires_at(sess.next_deadline(steady::now()));
            co_await t.async_wait(tuple_awaitable);
            sess.on_tick(steady::now());
            if (auto a = apply(); a.close) throw std::runtime_error(a.close_reason);
        }
    }

    net::awaitable<void> stopper()
    {
        co_await wait_until(stop_waiters, milliseconds(365LL * 24 * 3600 * 1000),
                            [this] { return stopping; });
        if (aborting) co_return;
        disconnect_receipted = false;
        sess.disconnect();
        apply_now();
        if (!co_await wait_until(disconnect_waiters, milliseconds(2000),
                                 [this] { return disconnect_receipted; }))
            log.warn("stomp: no receipt for DISCONNECT from {}", stream_name);
    }
    std::string stream_name;

    net::awaitable<void> run()
    {
        if (running) throw std::logic_error("bus::client::run called twice");
        running = true;
        auto self = shared_from_this();
        std::random_device rd;
        backoff bo(opts.url.reconnect, opts.url.endpoints.size(),
                   (static_cast<std::uint64_t>(rd()) << 32) | rd());
        const milliseconds forever(365LL * 24 * 3600 * 1000);
        // Endpoints that refused the TCP connection since the last other outcome.
        std::vector<bool> refused(opts.url.endpoints.size(), false);
        while (!stopping) {
            const endpoint& ep = opts.url.endpoints[bo.endpoint()];
            stream_name = ep.display();
            std::string reason;
            bool up = false;
            bool was_refused = false;
            auto started = steady::now();
            try {
                auto r = co_await (capture(connect(ep)) ||
                                   wait_until(stop_waiters, forever, [this] { return stopping; }));
                if (r.index() == 0) {
                    if (auto error = std::get<0>(r)) std::rethrow_exception(error);
                    up = true;
                    started = steady::now();
                    co_await connection(stream);
                }
            } catch (const boost::system::system_error& e) {
                reason = e.code().message();  // what() carries Boost's source location
                was_refused = !up && e.code() == net::error::connection_refused;
            } catch (const std::exception& e) {
                reason = e.what();
            }
            if (stream) {
                stream->close();
                stream.reset();
            }
            bool sub_refused = sess.on_closed();
            if (stopping) break;
            if (up && sub_refused) {
                // The broker closes the connection after ERROR; reconnect at once (same broker,
                // no backoff): the refused subscription stays parked until its own retry time.
                bo.reset();
                log.info("stomp: reconnecting to {} without the refused subscription", ep.display());
                co_await wait_until(stop_waiters, milliseconds(50), [this] { return stopping; });
                continue;
            }
            if (up) {
                log.warn("stomp: connection to {} lost: {}", ep.display(), reason);
                // Only a connection that stayed up resets the backoff: a broker that accepts
                // and then refuses at once (ERROR on SUBSCRIBE, say) must not be hammered.
                if (steady::now() - started >= std::chrono::seconds(2)) bo.reset();
            } else {
                ++sess.stats().connect_failures;
                log.warn("stomp: cannot connect to {}: {}", ep.display(), reason);
            }
            const std::size_t index = bo.endpoint();
            if (was_refused) refused[index] = true;
            else std::fill(refused.begin(), refused.end(), false);
            bool all_refused =
                opts.give_up_when_refused && std::all_of(refused.begin(), refused.end(), [](bool b) { return b; });
            auto delay = bo.failed();
            if (all_refused) {
                running = false;
                log.warn("stomp: every broker refused the connection; giving up");
                finish(errc::attempts_exhausted);
                throw std::system_error(make_error_code(errc::attempts_exhausted));
            }
            if (bo.exhausted()) {
                running = false;
                log.error("stomp: giving up after {} failed attempts", bo.failures());
                finish(errc::attempts_exhausted);
                throw std::system_error(make_error_code(errc::attempts_exhausted));
            }
            // A one-shot producer asks the next broker at once after a refusal: only the answer
            // of every one of them decides.
            if (opts.give_up_when_refused && was_refused) delay = milliseconds(0);
            log.debug("stomp: next attempt in {} ms", delay.count());
            co_await wait_until(stop_waiters, delay, [this] { return stopping; });
        }
        running = false;
        finish();
        log.info("stomp: stopped");
    }
};

// ---- client ---------------------------------------------------------------------------------

client::client(net::any_io_executor ex, client_options opts, spdlog::logger& log)
    : impl_(std::make_shared<impl>(std::move(ex), std::move(opts), log))
{
}

client::~client()
{
    impl_->stopping = true;
    impl_->finish();
    if (impl_->stream) impl_->stream->close();
    impl_->stop_waiters.notify_all();
}

// The wrappers take the shared state eagerly, as coroutine parameters: a coroutine body runs
// only when first resumed, and the client object may be gone by then.
net::awaitable<void> client::run()
{
    return [](std::shared_ptr<impl> self) -> net::awaitable<void> { co_await self->run(); }(impl_);
}
void client::stop() { impl_->stop(); }
void client::abort() { impl_->abort(); }

net::awaitable<bool> client::wait_connected(milliseconds timeout)
{
    return [](std::shared_ptr<impl> self, milliseconds t) -> net::awaitable<bool> {
        co_return co_await wait_until(self->connect_waiters, t,
                                      [&] { return self->sess.connected() || self->stopping; }) &&
            self->sess.connected();
    }(impl_, timeout);
}

bool client::connected() const noexcept { return impl_->sess.connected(); }

stomp::version client::version() const noexcept
{
    return impl_->sess.connected() ? impl_->sess.version() : stomp::version::v1_0;
}

net::awaitable<publish_result> client::send(stomp::frame f, milliseconds timeout)
{
    return [](std::shared_ptr<impl> self, stomp::frame fr, milliseconds t) -> net::awaitable<publish_result> {
        co_return co_await self->publish(std::move(fr), t);
    }(impl_, std::move(f), timeout);
}

net::awaitable<std::error_code> client::publish(stomp::frame f, milliseconds timeout)
{
    return [](std::shared_ptr<impl> self, stomp::frame fr, milliseconds t) -> net::awaitable<std::error_code> {
        co_return (co_await self->publish(std::move(fr), t)).error;
    }(impl_, std::move(f), timeout);
}

net::awaitable<std::error_code> client::publish(std::string destination, std::string body,
                                                std::vector<std::pair<std::string, std::string>> headers,
                                                milliseconds timeout)
{
    stomp::frame f("SEND");
    f.add("destination", destination);
    for (auto& [k, v] : headers) f.add(k, v);
    f.body = std::move(body);
    return publish(std::move(f), timeout);
}

std::string client::subscribe(subscription_options opts, message_handler handler)
{
    return impl_->subscribe(std::move(opts), std::move(handler));
}

void client::unsubscribe(const std::string& id) { impl_->unsubscribe(id); }

void client::acknowledge(const message& m, disposition d) { impl_->acknowledge(m, d); }

net::awaitable<bool> client::wait_subscribed(std::string id, milliseconds timeout)
{
    return [](std::shared_ptr<impl> self, std::string sid, milliseconds t) -> net::awaitable<bool> {
        co_return co_await wait_until(self->subscribe_waiters, t,
                                      [&] { return self->sess.subscribed(sid) || self->sess.hopeless(sid) ||
                                                   self->stopping; }) &&
            self->sess.subscribed(sid);
    }(impl_, std::move(id), timeout);
}

subscription_status client::subscription(const std::string& id) const { return impl_->sess.subscription(id); }

std::string client::last_error() const { return impl_->sess.last_error(); }
const client_stats& client::stats() const noexcept { return impl_->sess.stats(); }

} // namespace bus
