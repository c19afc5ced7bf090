#include "bus/client.hpp"

#include "bus/backoff.hpp"
#include "bus/detail/files.hpp"
#include "bus/detail/race.hpp"
#include "bus/stomp/serializer.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <deque>
#include <map>
#include <optional>
#include <random>

namespace bus {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;
using namespace net::experimental::awaitable_operators;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

// ---- errors ---------------------------------------------------------------------------------

namespace {
class bus_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "bus"; }
    std::string message(int ev) const override
    {
        switch (static_cast<errc>(ev)) {
        case errc::receipt_timeout: return "no receipt before the deadline";
        case errc::broker_error: return "broker answered with ERROR";
        case errc::stopped: return "client stopped";
        case errc::too_many_pending: return "too many publishes awaiting receipts";
        case errc::unencodable: return "header cannot be encoded in this STOMP version";
        case errc::attempts_exhausted: return "reconnect attempts exhausted";
        case errc::not_connected: return "not connected";
        }
        return "unknown bus error";
    }
};
} // namespace

const std::error_category& bus_category() noexcept
{
    static const bus_category_impl cat;
    return cat;
}

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

template <class T>
net::awaitable<T> timed(net::awaitable<T> op, steady::time_point deadline, const char* what)
{
    net::steady_timer t(co_await net::this_coro::executor);
    t.expires_at(deadline);
    auto r = co_await (capture(std::move(op)) || t.async_wait(net::use_awaitable));
    if (r.index() == 1) throw std::runtime_error(std::string(what) + " timed out");
    auto [value, error] = std::get<0>(std::move(r));
    if (error) std::rethrow_exception(error);
    co_return std::move(*value);
}

net::awaitable<void> timed(net::awaitable<void> op, steady::time_point deadline, const char* what)
{
    net::steady_timer t(co_await net::this_coro::executor);
    t.expires_at(deadline);
    auto r = co_await (capture(std::move(op)) || t.async_wait(net::use_awaitable));
    if (r.index() == 1) throw std::runtime_error(std::string(what) + " timed out");
    if (auto error = std::get<0>(r)) std::rethrow_exception(error);
}

std::string_view ack_mode_name(ack_mode m)
{
    switch (m) {
    case ack_mode::automatic: return "auto";
    case ack_mode::client: return "client";
    case ack_mode::client_individual: return "client-individual";
    }
    return "auto";
}

std::string ms_string(milliseconds a, milliseconds b)
{
    return std::to_string(a.count()) + "," + std::to_string(b.count());
}

} // namespace

// ---- state ----------------------------------------------------------------------------------

namespace {

struct pending_publish {
    explicit pending_publish(const net::any_io_executor& ex) : timer(ex) {}
    std::uint64_t seq = 0;
    stomp::frame frame;
    net::steady_timer timer;
    bool done = false;
    bool sent = false;
    bool waiting = false;       // not yet written: the send queue's byte budget was full
    std::uint64_t sent_on = 0;  // connection generation it was last written on
    std::uint64_t sent_seq = 0; // frame order on that connection (ERROR attribution)
    int error_strikes = 0;      // connections that died by ERROR with this publish the oldest
    std::error_code result;
};

struct subscription_state {
    subscription_state(const net::any_io_executor& ex) : ready(ex), space(ex) {}
    subscription_options opts;
    message_handler handler;
    std::deque<message> queue;
    std::size_t queued_bytes = 0;
    net::steady_timer ready;   // consumer waits here for messages
    net::steady_timer space;   // reader waits here while the queue is full
    bool closed = false;
    std::uint64_t confirmed_on = 0;  // connection generation whose SUBSCRIBE was receipted
    std::uint64_t sent_on = 0;       // connection generation its SUBSCRIBE was last written on
    std::uint64_t sent_seq = 0;      // frame order on that connection (ERROR attribution)
    int refusals = 0;                // SUBSCRIBEs refused by ERROR in a row
    steady::time_point retry_at{};   // parked until then after a refusal
    std::string refused;             // the broker's last reason
    bool permanent = false;          // ...and it will not change by waiting
};

/// One TCP (optionally TLS) connection and its protocol state.
struct connection {
    connection(const net::any_io_executor& ex, stomp::limits lim)
        : socket(ex), writer_signal(ex), parser(lim), ka({}, steady::now())
    {
    }

    tcp::socket socket;
    std::optional<ssl::stream<tcp::socket&>> tls;
    net::steady_timer writer_signal;
    std::deque<std::string> queue;
    std::size_t queued_bytes = 0;
    std::string broken;  // set when the connection must be dropped; the writer throws it
    bool disconnecting = false;
    stomp::parser parser;
    std::string rbuf;
    std::size_t rstart = 0;
    keepalive ka;
    stomp::version version = stomp::version::v1_0;
    std::uint64_t generation = 0;
    std::uint64_t frames_out = 0;  // frames enqueued, numbering sent_seq
    std::string server;

    template <class Buffers>
    net::awaitable<std::size_t> write(const Buffers& b)
    {
        if (tls) co_return co_await net::async_write(*tls, b, net::use_awaitable);
        co_return co_await net::async_write(socket, b, net::use_awaitable);
    }
    net::awaitable<std::size_t> read_some(net::mutable_buffer b)
    {
        if (tls) co_return co_await tls->async_read_some(b, net::use_awaitable);
        co_return co_await socket.async_read_some(b, net::use_awaitable);
    }
    void close()
    {
        boost::system::error_code ignored;
        socket.shutdown(tcp::socket::shutdown_both, ignored);
        socket.close(ignored);
        writer_signal.cancel();
    }
};

} // namespace

struct client::impl : std::enable_shared_from_this<client::impl> {
    impl(net::any_io_executor ex, client_options o, spdlog::logger& l)
        : exec(std::move(ex)), opts(std::move(o)), log(l), tls_ctx(ssl::context::tls_client)
    {
        if (opts.url.endpoints.empty()) throw config_error("no broker configured");
        for (auto& k : opts.legacy_keepalives)
            if (k.every < milliseconds(10)) throw config_error("legacy keepalive interval must be at least 10 ms");
        for (auto& n : opts.url.notes) log.info("stomp: {}", n);
        bool any_tls = std::any_of(opts.url.endpoints.begin(), opts.url.endpoints.end(),
                                   [](const endpoint& e) { return e.tls; });
        if (any_tls) setup_tls();
    }

    net::any_io_executor exec;
    client_options opts;
    spdlog::logger& log;
    ssl::context tls_ctx;
    client_stats stats;

    std::shared_ptr<connection> current;
    std::uint64_t generation = 0;
    bool stopping = false;
    bool aborting = false;
    bool running = false;
    waiters stop_waiters;
    waiters connect_waiters;
    waiters subscribe_waiters;
    waiters disconnect_waiters;
    bool disconnect_receipted = false;
    bool sub_refused = false;  // the last connection ended because a SUBSCRIBE was refused
    std::string last_error;

    std::uint64_t seq = 0;
    std::map<std::uint64_t, std::shared_ptr<pending_publish>> pending;
    std::size_t waiting_publishes = 0;
    std::map<std::string, std::shared_ptr<subscription_state>> subs;
    std::uint64_t sub_counter = 0;
    std::uint64_t probe_counter = 0;

    void setup_tls()
    {
        tls_ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                            ssl::context::no_sslv3 | ssl::context::no_tlsv1 |
                            ssl::context::no_tlsv1_1);
        if (opts.tls.ca_file.empty()) tls_ctx.set_default_verify_paths();
        else tls_ctx.load_verify_file(opts.tls.ca_file);
        if (!opts.tls.cert_file.empty())
            tls_ctx.use_certificate_chain_file(opts.tls.cert_file);
        if (!opts.tls.key_file.empty())
            tls_ctx.use_private_key_file(opts.tls.key_file, ssl::context::pem);
        tls_ctx.set_verify_mode(opts.tls.verify ? ssl::verify_peer : ssl::verify_none);
    }

    // ---- sending ----------------------------------------------------------------------------

    void enqueue(connection& c, std::string bytes)
    {
        if (!c.broken.empty() || c.disconnecting) return;  // nothing may follow DISCONNECT
        if (c.queued_bytes + bytes.size() > opts.max_queued_bytes) {
            c.broken = "send queue over " + std::to_string(opts.max_queued_bytes) + " bytes";
            c.writer_signal.cancel();
            return;
        }
        c.queued_bytes += bytes.size();
        c.queue.push_back(std::move(bytes));
        c.writer_signal.cancel();
    }

    std::error_code enqueue_frame(connection& c, const stomp::frame& f)
    {
        std::string out;
        std::error_code ec;
        stomp::serialize(out, f, c.version, ec);
        if (ec) return make_error_code(errc::unencodable);
        enqueue(c, std::move(out));
        return {};
    }

    // Publishes are flow-controlled by the send queue's byte budget: one that does not fit waits
    // (in order) and is written when the queue drains, instead of overflowing the connection.
    void send_pending(connection& c, pending_publish& p)
    {
        std::size_t need = p.frame.body.size() + 256;
        if (waiting_publishes > 0 || (c.queued_bytes > 0 && c.queued_bytes + need > opts.max_queued_bytes)) {
            if (!p.waiting) {
                p.waiting = true;
                ++waiting_publishes;
            }
            return;
        }
        write_pending(c, p);
    }

    void write_pending(connection& c, pending_publish& p)
    {
        if (enqueue_frame(c, p.frame)) {
            complete(p, errc::unencodable);
            return;
        }
        if (p.sent) ++stats.resent;
        p.sent = true;
        p.sent_on = c.generation;
        p.sent_seq = ++c.frames_out;
    }

    // Writes waiting publishes, oldest first, while they fit.
    void feed_waiting(connection& c)
    {
        for (auto& [_, p] : pending) {
            if (waiting_publishes == 0) break;
            if (!p->waiting || p->done) continue;
            std::size_t need = p->frame.body.size() + 256;
            if (c.queued_bytes > 0 && c.queued_bytes + need > opts.max_queued_bytes) break;
            p->waiting = false;
            --waiting_publishes;
            write_pending(c, *p);
        }
    }

    void complete(pending_publish& p, std::error_code ec)
    {
        if (p.done) return;
        if (p.waiting) {
            p.waiting = false;
            --waiting_publishes;
        }
        p.done = true;
        p.result = ec;
        p.timer.cancel();
    }

    stomp::frame subscribe_frame(const std::string& id, const subscription_options& o)
    {
        stomp::frame s("SUBSCRIBE");
        s.add("destination", o.destination);
        s.add("id", id);
        // A broker that knows only 1.0 has no client-individual; cumulative client acks are then
        // the closest (and the consumer loop acks in order).
        s.add("ack", opts.protocol == protocol_mode::v1_0 && o.ack == ack_mode::client_individual
                         ? std::string_view("client")
                         : ack_mode_name(o.ack));
        if (!o.durable_name.empty()) {
            if (o.durable == durable_style::rabbitmq || o.durable == durable_style::both) {
                s.add("durable", "true");
                s.add("auto-delete", "false");
                s.add("persistent", "true");
            }
            if (o.durable == durable_style::activemq || o.durable == durable_style::both)
                s.add("activemq.subscriptionName", o.durable_name);
        }
        if (o.prefetch > 0) {
            s.add("prefetch-count", std::to_string(o.prefetch));
            s.add("activemq.prefetchSize", std::to_string(o.prefetch));
        }
        for (auto& [k, v] : o.headers) s.add(k, v);
        for (auto& [k, v] : opts.subscribe_headers)
            if (!s.find(k)) s.add(k, v);
        s.add("receipt", "s-" + std::to_string(generation) + "-" + id);
        return s;
    }

    // Writes SUBSCRIBE for `s` on `c` unless it is parked after a refusal (the watchdog sends it
    // when its retry time comes).
    void send_subscribe(connection& c, const std::string& id, subscription_state& s)
    {
        if (s.closed || s.sent_on == c.generation || steady::now() < s.retry_at) return;
        enqueue_frame(c, subscribe_frame(id, s.opts));
        s.sent_on = c.generation;
        s.sent_seq = ++c.frames_out;
    }

    // The subscription an ERROR without a receipt-id is about, if any: brokers handle frames in
    // order, so the culprit is the oldest frame still unconfirmed on this connection; that is
    // a SUBSCRIBE when no older publish awaits its receipt.
    std::pair<std::string, std::shared_ptr<subscription_state>> refused_subscription(const connection& c,
                                                                                     std::string_view rid)
    {
        if (rid.starts_with("s-")) {
            auto rest = rid.substr(2);
            auto dash = rest.find('-');
            if (dash == std::string_view::npos) return {};
            auto it = subs.find(std::string(rest.substr(dash + 1)));
            if (it == subs.end()) return {};
            return *it;
        }
        if (!rid.empty()) return {};
        std::pair<std::string, std::shared_ptr<subscription_state>> best;
        for (auto& [id, st] : subs)
            if (st->sent_on == c.generation && st->confirmed_on != c.generation &&
                (!best.second || st->sent_seq < best.second->sent_seq))
                best = {id, st};
        if (!best.second) return {};
        for (auto& [_, p] : pending)
            if (!p->done && p->sent_on == c.generation && p->sent_seq < best.second->sent_seq) return {};
        return best;
    }

    void send_ack(const subscription_state& s, const message& m, disposition d)
    {
        if (!current || m.connection != current->generation) {
            // The broker redelivers unacknowledged messages of a dead connection itself.
            log.debug("stomp: not acking message {} from an old connection", m.id());
            return;
        }
        auto& c = *current;
        if (d == disposition::nack && c.version == stomp::version::v1_0) {
            log.warn("stomp: message {} on {} failed; STOMP 1.0 has no NACK, it stays unacked "
                     "until the connection is renewed", m.id(), s.opts.destination);
            return;
        }
        stomp::frame a(d == disposition::ack ? "ACK" : "NACK");
        if (c.version == stomp::version::v1_2) {
            a.add("id", m.frame.get("ack", m.id()));
        } else {
            a.add("message-id", m.id());
            a.add("subscription", m.subscription);
        }
        enqueue_frame(c, a);
    }

    // ---- public operations ------------------------------------------------------------------

    static publish_result not_sent(errc e) { return {publish_status::not_sent, make_error_code(e)}; }

    net::awaitable<publish_result> publish(stomp::frame f, milliseconds timeout)
    {
        if (stopping) co_return not_sent(errc::stopped);
        if (pending.size() >= opts.max_pending) co_return not_sent(errc::too_many_pending);
        if (timeout.count() <= 0) timeout = opts.receipt_timeout;
        if (f.command.empty()) f.command = "SEND";
        for (auto& [k, v] : opts.publish_headers)
            if (!f.find(k)) f.add(k, v);
        auto p = std::make_shared<pending_publish>(exec);
        p->seq = ++seq;
        f.set("receipt", "p-" + std::to_string(p->seq));
        p->frame = std::move(f);
        {
            // Refuse at once what could never be sent (checked for the strictest version).
            std::string probe;
            std::error_code ec;
            stomp::serialize(probe, p->frame,
                             current ? current->version : stomp::version::v1_2, ec);
            if (ec) co_return publish_result{publish_status::refused, make_error_code(errc::unencodable)};
        }
        pending.emplace(p->seq, p);
        if (current) send_pending(*current, *p);
        p->timer.expires_after(timeout);
        if (!p->done) co_await p->timer.async_wait(tuple_awaitable);
        pending.erase(p->seq);
        if (!p->done) {
            ++stats.publish_timeouts;
            p->result = errc::receipt_timeout;
        }
        if (!p->result) co_return publish_result{publish_status::receipted, {}};
        if (p->result == errc::broker_error || p->result == errc::unencodable)
            co_return publish_result{publish_status::refused, p->result};
        // Written at least once and never receipted: the broker may have it.
        co_return publish_result{p->sent ? publish_status::unknown : publish_status::not_sent, p->result};
    }

    std::string subscribe(subscription_options o, message_handler h)
    {
        std::string id = !o.id.empty() ? o.id
                         : !o.durable_name.empty() ? o.durable_name
                                                   : "sub-" + std::to_string(++sub_counter);
        if (subs.count(id)) throw std::invalid_argument("subscription id '" + id + "' in use");
        if (stopping && !running) throw std::logic_error("bus::client::subscribe after the client stopped");
        // In the client ack modes the broker's window bounds what it sends before our acks, so
        // the local buffer never fills and never stops the reader (which carries receipts too).
        if (o.ack != ack_mode::automatic && o.prefetch == 0)
            o.prefetch = static_cast<unsigned>(opts.subscription_buffer);
        auto s = std::make_shared<subscription_state>(exec);
        s->opts = std::move(o);
        s->handler = std::move(h);
        subs.emplace(id, s);
        if (current) send_subscribe(*current, id, *s);
        net::co_spawn(exec, consume(shared_from_this(), id, s), net::detached);
        return id;
    }

    void unsubscribe(const std::string& id)
    {
        auto it = subs.find(id);
        if (it == subs.end()) return;
        auto s = it->second;
        subs.erase(it);
        s->closed = true;
        s->ready.cancel();
        s->space.cancel();
        if (current) {
            stomp::frame u("UNSUBSCRIBE");
            u.add("id", id);
            if (current->version == stomp::version::v1_0) u.add("destination", s->opts.destination);
            enqueue_frame(*current, u);
        }
    }

    void abort()
    {
        aborting = true;
        if (current) current->close();
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
        for (auto& [_, p] : pending) complete(*p, why);
        for (auto& [_, s] : subs) {
            s->closed = true;
            s->ready.cancel();
            s->space.cancel();
        }
        connect_waiters.notify_all();
        subscribe_waiters.notify_all();
    }

    // ---- consumer ---------------------------------------------------------------------------

    static net::awaitable<void> consume(std::shared_ptr<impl> self, std::string id,
                                        std::shared_ptr<subscription_state> s)
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
                    self->log.error("stomp: handler for {} failed on message {}: {}", s->opts.destination, m.id(),
                                    e.what());
                } catch (...) {
                    self->log.error("stomp: handler for {} failed on message {}", s->opts.destination, m.id());
                }
            }
            // After UNSUBSCRIBE an ACK would be an error on RabbitMQ: an unsubscribed message
            // stays unacknowledged and the broker redelivers it when the connection ends.
            if (s->opts.ack != ack_mode::automatic && d != disposition::leave && !s->closed)
                self->send_ack(*s, m, d);
        }
        (void)id;
    }

    // ---- connection -------------------------------------------------------------------------

    net::awaitable<std::shared_ptr<connection>> connect(const endpoint& ep)
    {
        auto deadline = steady::now() + opts.connect_timeout;
        auto c = std::make_shared<connection>(exec, opts.limits);
        c->server = ep.display();
        tcp::resolver resolver(exec);
        auto results = co_await timed(
            resolver.async_resolve(ep.host, std::to_string(ep.port), net::use_awaitable),
            deadline, "resolve");
        // Each address in turn, on a socket made close-on-exec before it connects: Asio (1.81)
        // opens sockets without SOCK_CLOEXEC, and a child a daemon spawns must never inherit
        // the authenticated broker connection.
        co_await timed(
            [](tcp::socket& s, tcp::resolver::results_type r) -> net::awaitable<void> {
                boost::system::error_code last = net::error::host_not_found;
                for (const auto& e : r) {
                    boost::system::error_code ec;
                    if (s.is_open()) s.close(ec);
                    s.open(e.endpoint().protocol());
                    detail::set_cloexec(s.native_handle());
                    std::tie(ec) = co_await s.async_connect(e.endpoint(), tuple_awaitable);
                    if (!ec) co_return;
                    last = ec;
                }
                throw boost::system::system_error(last);
            }(c->socket, results),
            deadline, "TCP connect");
        c->socket.set_option(tcp::no_delay(true));
        c->socket.set_option(net::socket_base::keep_alive(true));
        if (ep.tls) {
            c->tls.emplace(c->socket, tls_ctx);
            if (!SSL_set_tlsext_host_name(c->tls->native_handle(), ep.host.c_str()))
                throw std::runtime_error("TLS: cannot set SNI host name");
            if (opts.tls.verify) c->tls->set_verify_callback(ssl::host_name_verification(ep.host));
            co_await timed(c->tls->async_handshake(ssl::stream_base::client, net::use_awaitable),
                           deadline, "TLS handshake");
        }

        stomp::frame f("CONNECT");
        if (opts.protocol == protocol_mode::negotiate) {
            f.add("accept-version", "1.0,1.1,1.2");
            // STOMP 1.1+ requires `host`; RabbitMQ reads it as the virtual host, so the default
            // is its default vhost "/" (ActiveMQ and stomp-broker ignore it).
            f.add("host", opts.vhost.empty() ? std::string("/") : opts.vhost);
            f.add("heart-beat", ms_string(opts.heartbeat_send, opts.heartbeat_receive));
        }
        if (!ep.login.empty()) f.add("login", ep.login);
        if (!ep.passcode.empty()) f.add("passcode", ep.passcode);
        if (!opts.client_id.empty()) f.add("client-id", opts.client_id);
        if (opts.protocol == protocol_mode::v1_0) {
            // Exactly what the Ruby gem sent, for brokers that know nothing newer.
            f.add("content-length", "0");
            f.add("content-type", "text/plain; charset=UTF-8");
        }
        std::string bytes;
        std::error_code sec;
        stomp::serialize(bytes, f, stomp::version::v1_0, sec);
        if (sec) throw std::runtime_error("CONNECT: credentials contain CR, LF or backslash");
        co_await timed(c->write(net::buffer(bytes)), deadline, "CONNECT write");

        // Read until CONNECTED (or ERROR), keeping any bytes that follow it.
        std::array<char, 4096> tmp;
        for (;;) {
            std::size_t n = co_await timed(c->read_some(net::buffer(tmp)), deadline, "CONNECTED wait");
            c->rbuf.append(tmp.data(), n);
            std::error_code ec;
            for (;;) {
                std::string_view view(c->rbuf.data() + c->rstart, c->rbuf.size() - c->rstart);
                std::size_t used = c->parser.put(view, ec);
                if (ec == stomp::error::need_more) break;
                if (ec) throw std::runtime_error("bad frame from broker: " + ec.message());
                c->rstart += used;
                if (c->rstart == c->rbuf.size()) {
                    c->rbuf.clear();
                    c->rstart = 0;
                }
                if (c->parser.got() != stomp::parser::item::frame) continue;
                stomp::frame r = c->parser.release();
                if (r.command == "ERROR") {
                    last_error = std::string(r.get("message")) + (r.body.empty() ? "" : ": " + r.body);
                    ++stats.broker_errors;
                    throw std::runtime_error("broker refused CONNECT: " + last_error);
                }
                if (r.command != "CONNECTED")
                    throw std::runtime_error("expected CONNECTED, got " + r.command);
                on_connected(*c, r);
                co_return c;
            }
        }
    }

    void on_connected(connection& c, const stomp::frame& r)
    {
        c.version = stomp::parse_version(r.get("version", "1.0")).value_or(stomp::version::v1_0);
        c.parser.set_version(c.version);
        milliseconds sx{0}, sy{0};
        if (auto hb = r.find("heart-beat"); hb && opts.protocol == protocol_mode::negotiate)
            parse_heartbeat_header(*hb, sx, sy);
        heartbeat hb = negotiate_heartbeat(opts.heartbeat_send, opts.heartbeat_receive, sx, sy);
        keepalive_config kc;
        if (hb.send.count() > 0) {
            // Send a little early: timers fire late, and brokers measure from their side.
            kc.send_every = hb.send - std::min(hb.send / 10, milliseconds(1000));
        } else {
            kc.send_every = opts.synthetic_keepalive;
        }
        kc.expect_every = hb.receive;
        kc.grace = opts.dead_link_grace;
        if (hb.receive.count() == 0) {
            kc.probe_after = opts.liveness_probe;
            kc.probe_timeout = opts.probe_timeout;
        }
        c.ka = keepalive(kc, steady::now());
        c.generation = ++generation;
        log.info("stomp: connected to {} (STOMP {}, server {}, heart-beat out {}ms in {}ms{})",
                 c.server, stomp::to_string(c.version), r.get("server", "?"), hb.send.count(),
                 hb.receive.count(),
                 hb.receive.count() == 0 && kc.probe_after.count() > 0 ? ", probing silence" : "");
    }

    net::awaitable<void> session(std::shared_ptr<connection> c)
    {
        current = c;
        ++stats.connects;
        sub_refused = false;
        for (auto& [id, s] : subs) send_subscribe(*c, id, *s);
        for (auto& [_, p] : pending)
            if (p->waiting) {
                p->waiting = false;
                --waiting_publishes;
            }
        for (auto& [_, p] : pending)
            if (!p->done) send_pending(*c, *p);
        connect_waiters.notify_all();
        auto r = co_await (capture(reader(c)) || capture(writer(c)) || capture(watchdog(c)) ||
                           capture(stopper(c)));
        std::visit([](std::exception_ptr& e) { if (e) std::rethrow_exception(e); }, r);
    }

    net::awaitable<void> reader(std::shared_ptr<connection> c)
    {
        std::vector<char> tmp(64 * 1024);
        for (;;) {
            std::error_code ec;
            for (;;) {
                std::string_view view(c->rbuf.data() + c->rstart, c->rbuf.size() - c->rstart);
                std::size_t used = c->parser.put(view, ec);
                if (ec == stomp::error::need_more) break;
                if (ec) {
                    ++stats.protocol_errors;
                    throw std::runtime_error("bad frame from broker: " + ec.message());
                }
                c->rstart += used;
                if (c->parser.got() == stomp::parser::item::heartbeat) {
                    ++stats.heartbeats_in;
                    continue;
                }
                co_await dispatch(c, c->parser.release());
            }
            if (c->rstart == c->rbuf.size()) {
                c->rbuf.clear();
                c->rstart = 0;
            } else if (c->rstart > 64 * 1024) {
                c->rbuf.erase(0, c->rstart);
                c->rstart = 0;
            }
            auto [rec, n] = co_await [&]() -> net::awaitable<std::tuple<boost::system::error_code, std::size_t>> {
                try {
                    std::size_t got = co_await c->read_some(net::buffer(tmp));
                    co_return std::tuple{boost::system::error_code{}, got};
                } catch (const boost::system::system_error& e) {
                    co_return std::tuple{e.code(), std::size_t{0}};
                }
            }();
            if (rec) {
                if (rec == net::error::eof || rec == ssl::error::stream_truncated)
                    throw std::runtime_error("broker closed the connection");
                throw std::runtime_error("read: " + rec.message());
            }
            c->ka.on_rx(steady::now());
            c->rbuf.append(tmp.data(), n);
        }
    }

    net::awaitable<void> dispatch(std::shared_ptr<connection> c, stomp::frame f)
    {
        if (f.command == "RECEIPT") {
            std::string_view id = f.get("receipt-id");
            if (id.starts_with("p-")) {
                std::uint64_t n = 0;
                std::from_chars(id.data() + 2, id.data() + id.size(), n);
                if (auto it = pending.find(n); it != pending.end()) {
                    ++stats.published;
                    complete(*it->second, {});
                }
            } else if (id.starts_with("s-")) {
                auto rest = id.substr(2);
                auto dash = rest.find('-');
                if (dash != std::string_view::npos) {
                    if (auto it = subs.find(std::string(rest.substr(dash + 1))); it != subs.end()) {
                        it->second->confirmed_on = c->generation;
                        it->second->refusals = 0;
                        it->second->permanent = false;
                        log.info("stomp: subscribed to {} (id {}) on {}", it->second->opts.destination,
                                 it->first, c->server);
                    }
                    subscribe_waiters.notify_all();
                }
            } else if (id.starts_with("d-")) {
                disconnect_receipted = true;
                disconnect_waiters.notify_all();
            }
            co_return;
        }
        if (f.command == "MESSAGE") {
            ++stats.messages;
            std::string sub_id(f.get("subscription"));
            auto it = subs.find(sub_id);
            if (it == subs.end() && f.find("subscription")) {
                // A subscription we already removed: the broker redelivers it if unacked.
                log.debug("stomp: MESSAGE {} for removed subscription '{}' dropped", f.get("message-id"), sub_id);
                co_return;
            }
            if (it == subs.end()) {
                // 1.0 brokers may omit `subscription`: match by destination when unambiguous.
                auto dest = f.get("destination");
                int matches = 0;
                for (auto s = subs.begin(); s != subs.end(); ++s)
                    if (s->second->opts.destination == dest) {
                        it = s;
                        ++matches;
                    }
                if (matches != 1) {
                    log.warn("stomp: MESSAGE {} for unknown subscription '{}' dropped",
                             f.get("message-id"), sub_id);
                    co_return;
                }
                sub_id = it->first;
            }
            auto s = it->second;
            message m;
            m.subscription = sub_id;
            m.redelivered = f.get("redelivered") == "true";
            m.connection = c->generation;
            m.frame = std::move(f);
            if (stomp::is_legacy_keepalive(m.frame) && !s->opts.deliver_keepalives) {
                ++stats.keepalives_dropped;
                if (s->opts.ack == ack_mode::automatic) co_return;
                m.keepalive = true;  // acked by the consumer, in order
            }
            while ((s->queue.size() >= opts.subscription_buffer ||
                    s->queued_bytes >= opts.subscription_buffer_bytes) && !s->closed) {
                c->ka.set_paused(true, steady::now());
                s->space.expires_at(steady::time_point::max());
                co_await s->space.async_wait(tuple_awaitable);
            }
            c->ka.set_paused(false, steady::now());
            if (s->closed) co_return;
            s->queued_bytes += m.frame.body.size();
            s->queue.push_back(std::move(m));
            s->ready.cancel();
            co_return;
        }
        if (f.command == "ERROR") {
            ++stats.broker_errors;
            last_error = std::string(f.get("message")) + (f.body.empty() ? "" : ": " + f.body);
            while (!last_error.empty() && (last_error.back() == '\n' || last_error.back() == '\0'))
                last_error.pop_back();
            std::string_view rid = f.get("receipt-id");
            if (auto [sid, s] = refused_subscription(*c, rid); s) {
                // Not a dead broker: the connection was good. This subscription waits on its own
                // short schedule; the others resubscribe at once on the next connection.
                ++s->refusals;
                s->refused = last_error;
                s->permanent = is_permanent_refusal(last_error);
                auto delay = subscription_retry_delay(opts.subscribe_retry_initial, opts.subscribe_retry_max,
                                                      s->refusals);
                if (s->permanent) delay = std::max(delay, milliseconds(60000));
                s->retry_at = steady::now() + delay;
                sub_refused = true;
                subscribe_waiters.notify_all();
                log.warn("stomp: {} refused the subscription to {} (id {}): {}; {} it in {} ms, the connection "
                         "itself is fine", c->server, s->opts.destination, sid, last_error,
                         s->permanent ? "this will not change by waiting; retrying" : "retrying", delay.count());
                throw std::runtime_error("broker refused SUBSCRIBE to " + s->opts.destination);
            }
            log.error("stomp: ERROR from {}: {}{}", c->server, last_error,
                      rid.empty() ? "" : " (receipt " + std::string(rid) + ")");
            if (rid.starts_with("p-")) {
                std::uint64_t n = 0;
                std::from_chars(rid.data() + 2, rid.data() + rid.size(), n);
                if (auto it = pending.find(n); it != pending.end())
                    complete(*it->second, errc::broker_error);
            } else if (rid.empty()) {
                // RabbitMQ names no receipt (e.g. an invalid destination). It handles frames in
                // order and receipts arrive in order, so the oldest unreceipted publish on this
                // connection is the likely culprit; the second time that holds, fail it rather
                // than resend a poison message forever.
                for (auto& [_, p] : pending) {
                    if (p->done || p->sent_on != c->generation) continue;
                    if (++p->error_strikes >= 2) complete(*p, errc::broker_error);
                    break;
                }
            }
            // Brokers close the connection after ERROR (STOMP 1.2 §ERROR).
            throw std::runtime_error("broker sent ERROR: " + last_error);
        }
        ++stats.protocol_errors;
        throw std::runtime_error("unexpected " + f.command + " frame from broker");
    }

    net::awaitable<void> writer(std::shared_ptr<connection> c)
    {
        std::vector<std::string> batch;
        std::vector<net::const_buffer> bufs;
        for (;;) {
            if (!c->broken.empty()) throw std::runtime_error(c->broken);
            if (c->queue.empty()) {
                c->writer_signal.expires_at(steady::time_point::max());
                co_await c->writer_signal.async_wait(tuple_awaitable);
                continue;
            }
            batch.clear();
            bufs.clear();
            std::size_t bytes = 0;
            while (!c->queue.empty() && batch.size() < 256 && bytes < 512 * 1024) {
                bytes += c->queue.front().size();
                batch.push_back(std::move(c->queue.front()));
                c->queue.pop_front();
            }
            for (auto& b : batch) bufs.push_back(net::buffer(b));
            // The deadline allows a slow link ~64 KiB/s on top of the base timeout, so one large
            // message is not cut off forever; a stalled peer still trips it.
            auto allowance = milliseconds(static_cast<std::int64_t>(bytes / 64));
            co_await timed(c->write(bufs), steady::now() + opts.write_timeout + allowance, "write");
            c->queued_bytes -= bytes;
            c->ka.on_tx(steady::now());
            if (waiting_publishes > 0) feed_waiting(*c);
        }
    }

    net::awaitable<void> watchdog(std::shared_ptr<connection> c)
    {
        net::steady_timer t(exec);
        std::vector<steady::time_point> legacy_due;
        for (auto& l : opts.legacy_keepalives) legacy_due.push_back(steady::now() + l.every);
        for (;;) {
            // Capped: un-pausing the liveness check does not wake this timer.
            auto next = std::min(c->ka.next_deadline(), steady::now() + milliseconds(1000));
            for (auto d : legacy_due) next = std::min(next, d);
            for (auto& [_, s] : subs)
                if (s->sent_on != c->generation && !s->closed) next = std::min(next, std::max(s->retry_at, steady::now()));
            t.expires_at(next);
            co_await t.async_wait(tuple_awaitable);
            auto now = steady::now();
            switch (c->ka.on_tick(now)) {
            case keepalive_action::dead:
                ++stats.dead_connections;
                throw std::runtime_error("no traffic from broker within the liveness deadline");
            case keepalive_action::send_heartbeat:
                if (c->queue.empty()) {
                    enqueue(*c, "\n");
                    ++stats.heartbeats_out;
                }
                c->ka.on_tx(now);
                break;
            case keepalive_action::send_probe: {
                // STOMP 1.0 has no heart-beats: ask for a receipt the broker must answer.
                auto tx = "ka-" + std::to_string(++probe_counter);
                stomp::frame b("BEGIN");
                b.add("transaction", tx);
                b.add("receipt", tx);
                stomp::frame a("ABORT");
                a.add("transaction", tx);
                enqueue_frame(*c, b);
                enqueue_frame(*c, a);
                ++stats.probes;
                c->ka.on_tx(now);
                break;
            }
            case keepalive_action::none: break;
            }
            for (auto& [id, s] : subs)
                if (s->sent_on != c->generation && s->retry_at <= now) {
                    log.info("stomp: subscribing to {} (id {}) again after {} refusal(s)", s->opts.destination, id,
                             s->refusals);
                    send_subscribe(*c, id, *s);
                }
            for (std::size_t i = 0; i < legacy_due.size(); ++i) {
                if (legacy_due[i] > now) continue;
                stomp::frame k("SEND");
                k.add("destination", opts.legacy_keepalives[i].destination);
                k.add("content-type", "text/plain; charset=UTF-8");
                k.body = "\n";
                enqueue_frame(*c, k);
                legacy_due[i] = now + opts.legacy_keepalives[i].every;
            }
        }
    }

    net::awaitable<void> stopper(std::shared_ptr<connection> c)
    {
        co_await wait_until(stop_waiters, milliseconds(365LL * 24 * 3600 * 1000),
                            [this] { return stopping; });
        if (aborting) co_return;
        disconnect_receipted = false;
        stomp::frame d("DISCONNECT");
        d.add("receipt", "d-" + std::to_string(c->generation));
        enqueue_frame(*c, d);
        c->disconnecting = true;
        if (!co_await wait_until(disconnect_waiters, milliseconds(2000),
                                 [this] { return disconnect_receipted; }))
            log.warn("stomp: no receipt for DISCONNECT from {}", c->server);
    }

    net::awaitable<void> run()
    {
        if (running) throw std::logic_error("bus::client::run called twice");
        running = true;
        auto self = shared_from_this();
        std::random_device rd;
        backoff bo(opts.url.reconnect, opts.url.endpoints.size(),
                   (static_cast<std::uint64_t>(rd()) << 32) | rd());
        const milliseconds forever(365LL * 24 * 3600 * 1000);
        while (!stopping) {
            const endpoint& ep = opts.url.endpoints[bo.endpoint()];
            std::string reason;
            bool up = false;
            auto started = steady::now();
            try {
                auto r = co_await (capture(connect(ep)) ||
                                   wait_until(stop_waiters, forever, [this] { return stopping; }));
                if (r.index() == 0) {
                    auto [conn, error] = std::get<0>(std::move(r));
                    if (error) std::rethrow_exception(error);
                    up = true;
                    started = steady::now();
                    co_await session(std::move(*conn));
                }
            } catch (const boost::system::system_error& e) {
                reason = e.code().message();  // what() carries Boost's source location
            } catch (const std::exception& e) {
                reason = e.what();
            }
            if (current) {
                current->close();
                current.reset();
            }
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
                ++stats.connect_failures;
                log.warn("stomp: cannot connect to {}: {}", ep.display(), reason);
            }
            auto delay = bo.failed();
            if (bo.exhausted()) {
                running = false;
                log.error("stomp: giving up after {} failed attempts", bo.failures());
                finish(errc::attempts_exhausted);
                throw std::system_error(make_error_code(errc::attempts_exhausted));
            }
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
    if (impl_->current) impl_->current->close();
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
                                      [&] { return self->current != nullptr || self->stopping; }) &&
            self->current != nullptr;
    }(impl_, timeout);
}

bool client::connected() const noexcept { return impl_->current != nullptr; }

stomp::version client::version() const noexcept
{
    return impl_->current ? impl_->current->version : stomp::version::v1_0;
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

std::string_view to_string(publish_status s) noexcept
{
    switch (s) {
    case publish_status::receipted: return "receipted";
    case publish_status::not_sent: return "not sent";
    case publish_status::unknown: return "sent, no receipt";
    case publish_status::refused: return "refused";
    }
    return "?";
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

void client::acknowledge(const message& m, disposition d)
{
    auto it = impl_->subs.find(m.subscription);
    if (it == impl_->subs.end() || it->second->opts.ack == ack_mode::automatic || d == disposition::leave) return;
    impl_->send_ack(*it->second, m, d);
}

net::awaitable<bool> client::wait_subscribed(std::string id, milliseconds timeout)
{
    return [](std::shared_ptr<impl> self, std::string sid, milliseconds t) -> net::awaitable<bool> {
        auto confirmed = [&] {
            auto it = self->subs.find(sid);
            return it != self->subs.end() && self->current &&
                   it->second->confirmed_on == self->current->generation;
        };
        auto hopeless = [&] {
            auto it = self->subs.find(sid);
            return it == self->subs.end() || it->second->permanent;
        };
        co_return co_await wait_until(self->subscribe_waiters, t,
                                      [&] { return confirmed() || hopeless() || self->stopping; }) &&
            confirmed();
    }(impl_, std::move(id), timeout);
}

subscription_status client::subscription(const std::string& id) const
{
    subscription_status st;
    auto it = impl_->subs.find(id);
    if (it == impl_->subs.end()) return st;
    auto& s = *it->second;
    st.confirmed = impl_->current && s.confirmed_on == impl_->current->generation;
    st.refusals = s.refusals;
    st.refused = s.refused;
    st.permanent = s.permanent;
    return st;
}

std::string client::last_error() const { return impl_->last_error; }
const client_stats& client::stats() const noexcept { return impl_->stats; }

} // namespace bus
