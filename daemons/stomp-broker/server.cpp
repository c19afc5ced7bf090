#include "server.hpp"

#include "bus/http/address.hpp"
#include "bus/http/metrics.hpp"
#include "bus/keepalive.hpp"
#include "bus/stomp/serializer.hpp"
#include "bus/stomp_stream.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <charconv>
#include <map>
#include <optional>

namespace broker {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;
using steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

constexpr auto tuple_awaitable = net::as_tuple(net::use_awaitable);

// Descriptors the broker opens are close-on-exec. Asio opens and accepts without
// SOCK_CLOEXEC (socket_ops.ipp calls plain ::socket/::accept), so it is set right after.
void set_cloexec(int fd)
{
    if (fd >= 0) ::fcntl(fd, F_SETFD, ::fcntl(fd, F_GETFD) | FD_CLOEXEC);
}

// A peer-supplied string (a login) made safe for one log line.
std::string printable(std::string_view s)
{
    std::string out;
    for (unsigned char ch : s.substr(0, 64)) {
        if (ch < 0x20 || ch == 0x7f || ch == '\\') {
            static const char* hex = "0123456789abcdef";
            out += "\\x";
            out += hex[ch >> 4];
            out += hex[ch & 15];
        } else {
            out.push_back(static_cast<char>(ch));
        }
    }
    if (s.size() > 64) out += "...";
    return out;
}

bus::stomp::limits pre_auth_limits(bus::stomp::limits l, std::size_t max_connect_frame)
{
    l.max_frame = std::min(l.max_frame, max_connect_frame);
    l.max_body = std::min(l.max_body, max_connect_frame);
    l.max_line = std::min(l.max_line, max_connect_frame);
    l.max_headers = std::min<std::size_t>(l.max_headers, 32);
    return l;
}

net::awaitable<std::string> check_credentials(authorizer a, std::string login, std::string passcode)
{
    co_return a.authenticate ? a.authenticate(login, passcode) : std::string{};
}

// One client: its bytes go through bus::stomp_stream (the client's transport too); the broker
// adds the session's state around it.
struct connection {
    connection(tcp::socket s, bus::stomp::limits lim, std::size_t max_queued_bytes)
        : stream(std::move(s), lim, max_queued_bytes), resume(stream.socket().get_executor()),
          tick(stream.socket().get_executor())
    {
    }
    session_id id = 0;
    bus::stomp_stream stream;
    // The reader waits here: a producer blocked on a full queue, a reader that stopped reading,
    // and serve() for the writer and watchdog to end.
    net::steady_timer resume;
    net::steady_timer tick;  // the watchdog's
    bool blocked = false;
    bool closing = false;
    // The reader, the writer and the watchdog run side by side; the first of them to end ends
    // the connection (`ended`, and why in `failure`), and the others are cancelled.
    bool ended = false;
    int side_tasks = 0;  // writer and watchdog still running
    std::exception_ptr failure;
    bool congested = false;
    bool connected = false;
    bus::stomp::version ver = bus::stomp::version::v1_0;
    steady::time_point opened = steady::now();
    steady::time_point last_rx = steady::now();
    steady::time_point last_tx = steady::now();
    std::string peer;
    std::string address;  // the source address alone, for the per-source login rate

    // Reads nothing more; the writer flushes what is queued (an ERROR, a RECEIPT) and ends.
    void close_after_flush()
    {
        closing = true;
        stream.finish();
    }
};

} // namespace

struct server::impl : std::enable_shared_from_this<server::impl> {
    impl(net::io_context& io_, server_options o, access_policy p, spdlog::logger& l)
        : io(io_), opts(std::move(o)), log(l), auth(p.make_authorizer()),
          core(opts.core, authorizer{[this](std::string_view u, std::string_view pw) { return auth.authenticate(u, pw); },
                                     [this](std::string_view u, std::string_view d, bool w) {
                                         // The broker's own session (heartbeats) only writes.
                                         if (u == self_login) return w;
                                         return auth.permit(u, d, w);
                                     }}),
          plain(io), secure(io), all_closed(io),
          auth_pool(std::max(1u, opts.auth_workers))
    {
    }

    net::io_context& io;
    server_options opts;
    spdlog::logger& log;
    authorizer auth;
    using core_t = broker_core;
    broker_core core;
    std::unique_ptr<journal> jnl;
    std::map<session_id, int> persisting;  // receipts per session still waiting for the journal
    tcp::acceptor plain;
    tcp::acceptor secure;
    // Only with a TLS listener: an SSL_CTX initialises OpenSSL (config, providers), ~2 MB of an
    // idle plain-TCP broker's RSS.
    std::optional<ssl::context> tls_ctx;
    net::steady_timer all_closed;  // cancelled when the last connection closed after stop()
    std::map<session_id, std::shared_ptr<connection>> conns;
    bool stopping = false;
    std::uint64_t connections_total = 0;
    std::uint64_t refused_connections = 0;
    std::uint64_t malformed = 0;
    std::uint64_t heartbeat_timeouts = 0;
    std::uint64_t accept_errors = 0;
    std::uint64_t auth_rate_limited = 0;
    std::uint64_t journal_failures = 0;
    std::size_t unauthenticated = 0;
    bool journal_failed = false;
    std::string journal_reason;
    bool gave_up = false;
    std::function<void()> fatal;
    net::thread_pool auth_pool;
    struct bucket {
        double tokens = 0;
        steady::time_point last;
    };
    std::map<std::string, bucket> login_failures;  // per source address
    actions scratch;
    std::string wire;  // send(): one frame's bytes, reused
    // The broker's own session, for what it publishes itself (heartbeats). Its login holds a
    // NUL, which no STOMP header can carry, so no client can log in as it.
    inline static const std::string self_login{std::string_view("\0stomp-broker", 13)};
    session_id self_session = 0;
    bool self_blocked = false;  // its SEND waits for the memory alarm: publish nothing more

    // ---- sending ----------------------------------------------------------------------------

    void send(session_id id, bus::stomp::frame f)
    {
        auto it = conns.find(id);
        if (it == conns.end()) return;
        auto& c = *it->second;
        if (c.closing && c.stream.queued_bytes() == 0 && f.command == "MESSAGE") return;
        // Serialised into one reused buffer and copied into the connection's queue, where small
        // frames share a buffer: no allocation per delivered frame, one iovec per burst.
        auto& bytes = wire;
        bytes.clear();
        std::error_code ec;
        bus::stomp::serialize(bytes, f, c.ver, ec);
        if (ec) {
            // A 1.0 consumer cannot carry a 1.1/1.2 producer's escaped header: drop that header.
            std::erase_if(f.headers, [](auto& h) {
                return h.second.find_first_of("\r\n\\") != std::string::npos ||
                       h.first.find_first_of("\r\n\\:") != std::string::npos;
            });
            bytes.clear();
            bus::stomp::serialize(bytes, f, c.ver, ec);
            if (ec) return;
        }
        // A big frame keeps its buffer (moved, not copied); the next send() starts a new one.
        if (bytes.size() > 8 * 1024) enqueue(c, bytes.size(), [&] { return c.stream.enqueue(std::move(bytes)); });
        else enqueue(c, bytes);
    }

    void enqueue(connection& c, std::string_view bytes)
    {
        enqueue(c, bytes.size(), [&] { return c.stream.enqueue_copy(bytes); });
    }

    template <class Push>
    void enqueue(connection& c, std::size_t size, Push push)
    {
        // The stream holds up to 4 x send_queue_bytes; past that not even receipts and acked
        // deliveries drain: a stuck client, not a slow one.
        if (!push()) {
            if (c.closing) return;
            log.warn("broker: closing {} (session {}): send queue over {} bytes", c.peer, c.id,
                     c.stream.queued_bytes() + size);
            c.closing = true;
            c.stream.fail("send queue full");
            c.stream.close();
            return;
        }
        if (!c.congested && c.stream.queued_bytes() > opts.send_queue_bytes) {
            c.congested = true;
            core.set_congested(c.id, true);
        }
    }

    // Runs `fn` on the io thread once everything queued to the journal so far is done.
    template <class Fn>
    void after_journal(std::vector<journal_record> records, Fn fn)
    {
        auto self = weak_from_this();
        jnl->append(std::move(records), [self, fn = std::move(fn), &io = io]() mutable {
            net::post(io, [self, fn = std::move(fn)]() mutable {
                if (auto s = self.lock()) fn(*s);
            });
        });
    }

    void apply(actions& a)
    {
        std::vector<actions::send_frame> held;  // receipts/errors behind a session's pending writes
        std::vector<session_id> held_close;
        if (jnl) {
            for (auto& f : a.after_persist) ++persisting[f.to];
            // STOMP: a RECEIPT confirms every earlier frame of the session, so it may not
            // overtake a receipt still waiting for the journal; neither may a close.
            for (auto& f : a.frames) {
                bool control = f.frame.command == "RECEIPT" || f.frame.command == "ERROR";
                if (control && persisting.count(f.to)) held.push_back(std::move(f));
                else send(f.to, std::move(f.frame));
            }
            for (auto id : a.close)
                if (persisting.count(id)) held_close.push_back(id);
            std::erase_if(a.close, [&](session_id id) { return persisting.count(id) > 0; });
        } else {
            for (auto& f : a.frames) send(f.to, std::move(f.frame));
        }
        if (!a.persist.empty() && jnl) {
            after_journal(std::move(a.persist), [later = std::move(a.after_persist)](impl& s) mutable {
                for (auto& f : later) {
                    if (auto it = s.persisting.find(f.to); it != s.persisting.end() && --it->second <= 0)
                        s.persisting.erase(it);
                    s.send(f.to, std::move(f.frame));
                }
            });
            if (!jnl->compaction_pending() && jnl->appended_bytes() > opts.compact_after_bytes)
                jnl->compact(core.snapshot());
        } else {
            for (auto& f : a.after_persist) send(f.to, std::move(f.frame));
        }
        if (!held.empty() || !held_close.empty()) {
            after_journal({}, [held = std::move(held), held_close = std::move(held_close)](impl& s) mutable {
                for (auto& f : held) s.send(f.to, std::move(f.frame));
                for (auto id : held_close)
                    if (auto it = s.conns.find(id); it != s.conns.end()) it->second->close_after_flush();
            });
        }
        for (auto id : a.blocked) {
            if (id == self_session) self_blocked = true;
            if (auto it = conns.find(id); it != conns.end()) it->second->blocked = true;
        }
        for (auto id : a.unblocked)
            if (id == self_session) self_blocked = false;
            else if (auto it = conns.find(id); it != conns.end()) {
                it->second->blocked = false;
                it->second->resume.cancel();
            }
        for (auto id : a.close)
            if (auto it = conns.find(id); it != conns.end()) it->second->close_after_flush();
        a.clear();
    }

    // ---- per connection ---------------------------------------------------------------------

    net::awaitable<void> reader(std::shared_ptr<connection> c)
    {
        // 16 KiB per read once logged in: 1,000 idle clients cost 16 MB, and big frames still
        // arrive in a few reads (the parser resumes without rescanning). Before that, no more
        // than a CONNECT may take, in frame limits and in read size.
        c->stream.set_read_size(std::min<std::size_t>(16 * 1024, opts.max_connect_frame));
        auto on_bytes = [&c = *c] { c.last_rx = steady::now(); };
        while (!c->closing && !c->ended) {
            bus::stomp_stream::item item;
            std::error_code bad;
            try {
                item = co_await c->stream.read(steady::time_point::max(), on_bytes);
            } catch (const bus::stream_protocol_error& e) {
                bad = e.code;
            }
            if (bad) {
                ++malformed;
                log.warn("broker: malformed frame from {} (session {}): {}", c->peer, c->id, bad.message());
                bus::stomp::frame e("ERROR");
                e.add("message", "Malformed frame");
                e.add("content-type", "text/plain");
                e.body = bad.message();
                send(c->id, std::move(e));
                c->close_after_flush();
                break;
            }
            if (item.heartbeat) continue;
            if (!c->connected && (item.frame.command == "CONNECT" || item.frame.command == "STOMP")) {
                co_await verify_connect(c, std::move(item.frame));
                if (!conns.count(c->id) || c->ended) co_return;
            } else {
                core.on_frame(c->id, std::move(item.frame), scratch);
            }
            if (!c->connected) {
                if (auto v = core.version(c->id)) {
                    c->connected = true;
                    --unauthenticated;
                    c->ver = *v;
                    // Logged in: the configured frame limits apply from here on.
                    c->stream.set_limits(opts.limits);
                    c->stream.set_version(*v);
                    c->stream.set_read_size(16 * 1024);
                }
            }
            apply(scratch);
            // Back-pressure: read nothing more from a producer whose SEND waits for room.
            while (c->blocked && !c->closing && !c->ended) {
                c->resume.expires_at(steady::time_point::max());
                co_await c->resume.async_wait(tuple_awaitable);
            }
        }
        // Stop reading; the writer flushes what is queued (an ERROR, a RECEIPT) and ends.
        while (!c->ended) {
            c->resume.expires_at(steady::time_point::max());
            co_await c->resume.async_wait(tuple_awaitable);
        }
    }

    net::awaitable<void> writer(std::shared_ptr<connection> c)
    {
        co_await c->stream.run_writer(std::chrono::seconds(30), [this, &c = *c](std::size_t bytes) {
            c.last_tx = steady::now();
            core.on_written(c.id, bytes, scratch);
            apply(scratch);
            if (c.congested && c.stream.queued_bytes() < opts.send_queue_bytes / 2) {
                c.congested = false;
                core.on_writable(c.id, scratch);
                apply(scratch);
            }
        });
    }

    // True when the connection must end (no CONNECT in time, missed heart-beats); false when
    // there is nothing to watch (no heart-beats agreed: TCP keepalive only), and it just ends.
    net::awaitable<bool> watchdog(std::shared_ptr<connection> c)
    {
        auto& t = c->tick;
        while (!c->connected) {
            if (c->ended) co_return true;
            auto now = steady::now();
            if (now - c->opened >= opts.connect_timeout) {
                log.info("broker: {} sent no CONNECT within {} ms", c->peer, opts.connect_timeout.count());
                co_return true;
            }
            t.expires_at(std::min(now + milliseconds(1000), c->opened + opts.connect_timeout));
            co_await t.async_wait(tuple_awaitable);
        }
        auto hb = core.heartbeat(c->id);
        if (!hb || c->ended) co_return true;
        // libbus's liveness rule (bus::keepalive), from the broker's side: heart-beats as
        // negotiated, a little early (the client measures from its side, and timers fire late);
        // silence for `heartbeat_grace` promised intervals (plus scheduling slack) is death.
        bus::keepalive_config kc;
        if (hb->send_ms > 0) kc.send_every = milliseconds(hb->send_ms - std::min<std::uint32_t>(hb->send_ms / 10, 1000));
        if (hb->expect_ms > 0) {
            kc.expect_every = milliseconds(hb->expect_ms);
            kc.grace = opts.heartbeat_grace + 200.0 / hb->expect_ms;
        }
        // No heart-beats: TCP keepalive only, and no coroutine frame held for an idle client.
        if (kc.send_every.count() == 0 && kc.expect_every.count() == 0) co_return false;
        auto seen_rx = c->last_rx, seen_tx = c->last_tx;
        bus::keepalive ka(kc, steady::now());
        for (;;) {
            if (c->ended) co_return true;
            auto now = steady::now();
            if (c->last_rx != seen_rx) ka.on_rx(seen_rx = c->last_rx);
            if (c->last_tx != seen_tx) ka.on_tx(seen_tx = c->last_tx);
            ka.set_paused(c->blocked, now);  // we stopped reading, not it
            switch (ka.on_tick(now)) {
            case bus::keepalive_action::send_heartbeat:
                // A write in progress is traffic already.
                if (c->stream.queued_bytes() == 0) enqueue(*c, "\n");
                c->last_tx = seen_tx = now;
                ka.on_tx(now);
                break;
            case bus::keepalive_action::dead:
                ++heartbeat_timeouts;
                log.info("broker: {} (session {}) missed heart-beats for {} ms: closing", c->peer, c->id,
                         static_cast<long long>(static_cast<double>(hb->expect_ms) * kc.grace));
                co_return true;
            default: break;
            }
            t.expires_at(std::min(ka.next_deadline(), now + milliseconds(1000)));
            co_await t.async_wait(tuple_awaitable);
        }
    }

    // A CONNECT's credentials are checked on the worker pool: a slow PBKDF2 never stalls the
    // I/O thread. A source with too many recent failures is refused without a check.
    net::awaitable<void> verify_connect(std::shared_ptr<connection> c, bus::stomp::frame f)
    {
        std::string login(f.get("login"));
        std::string why;
        auto now = steady::now();
        auto& b = login_failures.try_emplace(c->address, bucket{static_cast<double>(opts.auth_fail_burst), now}).first->second;
        b.tokens = std::min<double>(static_cast<double>(opts.auth_fail_burst),
                                    b.tokens + std::chrono::duration<double>(now - b.last).count() * opts.auth_fail_rate);
        b.last = now;
        if (b.tokens < 1) {
            ++auth_rate_limited;
            why = "too many failed logins from " + c->address + "; retry later";
        } else {
            why = co_await net::co_spawn(auth_pool, check_credentials(auth, login, std::string(f.get("passcode"))),
                                         net::use_awaitable);
            if (!why.empty()) {
                auto& again = login_failures[c->address];  // the map may have changed meanwhile
                again.tokens = std::max(0.0, again.tokens - 1);
                again.last = std::max(again.last, now);
            }
        }
        if (login_failures.size() > 4096)  // forget sources whose buckets are full again
            std::erase_if(login_failures, [&](auto& kv) {
                return kv.second.tokens + std::chrono::duration<double>(now - kv.second.last).count() * opts.auth_fail_rate >=
                       static_cast<double>(opts.auth_fail_burst);
            });
        if (!conns.count(c->id)) co_return;
        if (!why.empty())
            log.warn("broker: authentication failed for user '{}' from {} (session {}): {}", printable(login), c->peer,
                     c->id, why);
        core.on_connect_verified(c->id, std::move(f), why, scratch);
        if (why.empty() && core.version(c->id))
            log.info("broker: {} (session {}) logged in as '{}'", c->peer, c->id, printable(login));
    }

    // The first of reader, writer and watchdog to end ends the connection: the others are woken
    // (socket closed, timers cancelled) and end too.
    void end_connection(connection& c, std::exception_ptr why)
    {
        if (c.ended) return;
        c.ended = true;
        c.failure = std::move(why);
        c.stream.close();
        c.resume.cancel();
        c.tick.cancel();
    }

    net::awaitable<void> serve(std::shared_ptr<connection> c, bool use_tls)
    {
        auto self = shared_from_this();
        try {
            if (use_tls) co_await c->stream.server_handshake(*tls_ctx, c->opened + opts.connect_timeout);
            // Reader, writer and watchdog side by side as three coroutines with one
            // hand-made "first one ends all" (not awaitable_operators' ||, whose parallel group
            // holds ~3 kB more per connection for as long as it lives).
            c->side_tasks = 2;
            auto side_done = [this, c](std::exception_ptr e, bool end) {
                if (e || end) end_connection(*c, std::move(e));
                --c->side_tasks;
                c->resume.cancel();
            };
            net::co_spawn(io, writer(c), [side_done](std::exception_ptr e) { side_done(std::move(e), true); });
            net::co_spawn(io, watchdog(c), [side_done](std::exception_ptr e, bool end) { side_done(std::move(e), end); });
            std::exception_ptr read_end;
            try {
                co_await reader(c);
            } catch (...) {
                read_end = std::current_exception();
            }
            end_connection(*c, std::move(read_end));
            while (c->side_tasks > 0) {
                c->resume.expires_at(steady::time_point::max());
                co_await c->resume.async_wait(tuple_awaitable);
            }
            if (c->failure) std::rethrow_exception(c->failure);
        } catch (const bus::stream_read_error& e) {
            if (e.code != net::error::eof && e.code != net::error::operation_aborted)
                log.debug("broker: {} (session {}): {}", c->peer, c->id, e.code.message());
        } catch (const boost::system::system_error& e) {
            if (e.code() != net::error::eof && e.code() != net::error::operation_aborted)
                log.debug("broker: {} (session {}): {}", c->peer, c->id, e.code().message());
        } catch (const std::exception& e) {
            log.info("broker: {} (session {}): {}", c->peer, c->id, e.what());
        }
        if (!c->connected) --unauthenticated;
        log.info("broker: {} (session {}) closed", c->peer, c->id);
        conns.erase(c->id);
        persisting.erase(c->id);
        core.close(c->id, scratch);
        apply(scratch);
        c->stream.close();
        if (stopping && conns.empty()) all_closed.cancel();
    }

    net::awaitable<void> accept_loop(tcp::acceptor& acc, bool use_tls)
    {
        auto self = shared_from_this();
        net::steady_timer accept_retry(io);
        milliseconds accept_backoff{100};
        for (;;) {
            auto [ec, sock] = co_await acc.async_accept(tuple_awaitable);
            if (ec) {
                if (stopping || ec == net::error::operation_aborted) co_return;
                // Out of descriptors (EMFILE/ENFILE) or memory: the pending connection stays
                // queued, so retrying at once spins. Back off 100 ms doubling to 1 s, and log
                // once per interval with how often it happened.
                ++accept_errors;
                ++accept_errors_since_log;
                auto now = steady::now();
                if (now - last_accept_log >= std::chrono::seconds(1)) {
                    log.warn("broker: accept: {} ({} times; retrying in {} ms)", ec.message(), accept_errors_since_log,
                             accept_backoff.count());
                    accept_errors_since_log = 0;
                    last_accept_log = now;
                }
                accept_retry.expires_after(accept_backoff);
                co_await accept_retry.async_wait(tuple_awaitable);
                accept_backoff = std::min(accept_backoff * 2, milliseconds(1000));
                continue;
            }
            accept_backoff = milliseconds(100);
            set_cloexec(sock.native_handle());
            if (conns.size() >= opts.max_connections || unauthenticated >= opts.max_unauthenticated) {
                ++refused_connections;
                boost::system::error_code ignored;
                sock.close(ignored);
                continue;
            }
            sock.set_option(tcp::no_delay(true));
            if (opts.tcp_keepalive_idle.count() > 0) {
                int fd = sock.native_handle();
                int on = 1, idle = static_cast<int>(opts.tcp_keepalive_idle.count()),
                    intvl = static_cast<int>(opts.tcp_keepalive_interval.count()), cnt = opts.tcp_keepalive_count;
                ::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
                ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
                ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
                ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
            }
            auto c = std::make_shared<connection>(std::move(sock), pre_auth_limits(opts.limits, opts.max_connect_frame),
                                                  4 * opts.send_queue_bytes);
            boost::system::error_code pec;
            auto ep = c->stream.socket().remote_endpoint(pec);
            c->address = pec ? "?" : ep.address().to_string();
            c->peer = pec ? "?" : c->address + ":" + std::to_string(ep.port());
            c->id = core.open();
            conns.emplace(c->id, c);
            ++connections_total;
            ++unauthenticated;
            log.info("broker: connection from {} (session {}{})", c->peer, c->id, use_tls ? ", TLS" : "");
            net::co_spawn(io, serve(c, use_tls), net::detached);
        }
    }

    // ---- metrics, readiness, the broker's own messages ----------------------------------------

    std::uint64_t accept_errors_since_log = 0;
    steady::time_point last_accept_log{};

    void register_metrics(bus::http::registry& r)
    {
        auto value = [&](std::string_view name, std::string_view type, std::string_view help, auto read) {
            r.add_callback(name, help, type, [this, read] { return static_cast<double>(read(*this)); });
        };
        value("connections", "gauge", "Open client connections.", [](impl& s) { return s.conns.size(); });
        value("connections_total", "counter", "Connections accepted.", [](impl& s) { return s.connections_total; });
        value("connections_refused_total", "counter", "Connections refused at the limit.",
              [](impl& s) { return s.refused_connections; });
        value("connections_unauthenticated", "gauge", "Connections that have not logged in yet.",
              [](impl& s) { return s.unauthenticated; });
        value("destinations", "gauge", "Queues held (named queues and durable subscriptions).",
              [](impl& s) { return s.core.queues().size(); });
        value("queued_messages", "gauge", "Messages waiting in queues.", [](impl& s) {
            std::size_t n = 0;
            for (auto& q : s.core.queues()) n += q.depth;
            return n;
        });
        value("held_bytes", "gauge", "Message bytes held in queues.", [](impl& s) { return s.core.stats().held_bytes; });
        value("send_queue_bytes", "gauge", "Bytes queued for writing to clients.", [](impl& s) {
            std::size_t n = 0;
            for (auto& [_, c] : s.conns) n += c->stream.queued_bytes();
            return n;
        });
        value("messages_in_total", "counter", "Messages published.", [](impl& s) { return s.core.stats().messages_in; });
        value("messages_out_total", "counter", "Messages delivered.", [](impl& s) { return s.core.stats().messages_out; });
        value("redelivered_total", "counter", "Messages delivered again after NACK or connection loss.",
              [](impl& s) { return s.core.stats().redelivered; });
        value("dropped_slow_total", "counter", "Non-persistent topic messages dropped for slow subscribers.",
              [](impl& s) { return s.core.stats().dropped_slow; });
        value("rejected_full_total", "counter", "SENDs refused because a queue was full.",
              [](impl& s) { return s.core.stats().rejected_full; });
        value("blocked_sends_total", "counter", "SENDs that waited for room in a full queue.",
              [](impl& s) { return s.core.stats().blocked_sends; });
        value("auth_failures_total", "counter", "CONNECTs refused for bad credentials.",
              [](impl& s) { return s.core.stats().auth_failures; });
        value("auth_rate_limited_total", "counter",
              "CONNECTs refused unchecked after too many failed logins from their source.",
              [](impl& s) { return s.auth_rate_limited; });
        value("denied_total", "counter", "Frames refused by destination permissions.",
              [](impl& s) { return s.core.stats().denied; });
        value("malformed_frames_total", "counter", "Connections closed for malformed frames.",
              [](impl& s) { return s.malformed; });
        value("heartbeat_timeouts_total", "counter", "Connections closed for missed heart-beats.",
              [](impl& s) { return s.heartbeat_timeouts; });
        value("accept_errors_total", "counter", "Failed accepts (out of descriptors or memory), retried with back-off.",
              [](impl& s) { return s.accept_errors; });
        value("memory_blocked_total", "counter", "SENDs that waited for the broker-wide memory high-water mark.",
              [](impl& s) { return s.core.stats().memory_blocked; });
        value("subscriptions_revoked_total", "counter", "Subscriptions ended by a permission reload.",
              [](impl& s) { return s.core.stats().revoked; });
        value("journal_failed", "gauge", "1 while journal writes fail (nothing persistent is acknowledged).",
              [](impl& s) { return s.journal_failed ? 1 : 0; });
        value("journal_failures_total", "counter", "Times journal writes started failing.",
              [](impl& s) { return s.journal_failures; });
        auto per_queue = [&](std::string_view name, std::string_view help, std::size_t core_t::queue_info::*field) {
            r.add_family_callback(name, help, "gauge", [this, field] {
                std::vector<std::pair<bus::http::labels, double>> out;
                for (auto& q : core.queues()) out.push_back({{{"queue", q.name}}, static_cast<double>(q.*field)});
                return out;
            });
        };
        per_queue("queue_depth", "Messages waiting in a queue.", &core_t::queue_info::depth);
        per_queue("queue_in_flight", "Messages delivered and not yet acknowledged.", &core_t::queue_info::in_flight);
        per_queue("queue_consumers", "Subscribers of a queue.", &core_t::queue_info::consumers);
    }

    std::optional<std::string> not_ready() const
    {
        // Ready = accepting and able to keep what it acknowledges.
        if (!plain.is_open()) return std::string("not listening");
        if (journal_failed) return "journal failed: " + journal_reason;
        return std::nullopt;
    }

    // A SEND from the broker itself, routed as any client's (to subscribers, durable queues, the
    // journal); no socket involved.
    bool publish(bus::stomp::frame f)
    {
        if (stopping || self_blocked) return false;
        if (!self_session) {
            self_session = core.open();
            bus::stomp::frame con("CONNECT");
            con.add("accept-version", "1.2");
            con.add("login", self_login);
            core.on_connect_verified(self_session, std::move(con), "", scratch);
            apply(scratch);  // its CONNECTED goes nowhere: there is no connection
        }
        if (!core.version(self_session)) return false;
        core.on_frame(self_session, std::move(f), scratch);
        apply(scratch);
        return !self_blocked;
    }

    // ---- lifecycle --------------------------------------------------------------------------

    void bind(tcp::acceptor& acc, const std::string& spec, const std::string& key)
    {
        auto where = bus::http::parse_listen(spec);  // checked by the config already
        if (!where) throw std::runtime_error(key + ": '" + spec + "' is not ADDRESS:PORT");
        tcp::endpoint ep(net::ip::make_address(where->address), where->port);
        acc.open(ep.protocol());
        set_cloexec(acc.native_handle());
        acc.set_option(tcp::acceptor::reuse_address(true));
        boost::system::error_code ec;
        acc.bind(ep, ec);
        if (ec) throw std::runtime_error(key + ": cannot listen on " + spec + ": " + ec.message());
        acc.listen(net::socket_base::max_listen_connections);
    }

    void start()
    {
        if (!opts.data_dir.empty()) {
            jnl = std::make_unique<journal>(opts.data_dir, opts.fsync);
            jnl->retry_for(opts.journal_retry);
            jnl->on_state([self = weak_from_this(), &io = io](bool failed, std::string why) {
                net::post(io, [self, failed, why = std::move(why)] {
                    if (auto s = self.lock()) s->journal_state(failed, why);
                });
            });
            auto records = jnl->load();
            for (auto& r : records) core.replay(r);
            // Start from a compact file: only what is still live.
            jnl->start();
            jnl->compact(core.snapshot());
            std::size_t held = 0;
            for (auto& q : core.queues()) held += q.depth;
            log.info("broker: journal {} replayed: {} records, {} messages held", opts.data_dir.string(),
                     records.size(), held);
        }
        bind(plain, opts.listen, "listen");
        net::co_spawn(io, accept_loop(plain, false), net::detached);
        if (!opts.tls_listen.empty()) {
            tls_ctx.emplace(ssl::context::tls_server);
            tls_ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                                 ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
            tls_ctx->use_certificate_chain_file(opts.tls_cert);
            tls_ctx->use_private_key_file(opts.tls_key, ssl::context::pem);
            bind(secure, opts.tls_listen, "tls_listen");
            net::co_spawn(io, accept_loop(secure, true), net::detached);
        }
    }

    void journal_state(bool failed, const std::string& why)
    {
        if (failed && jnl->gave_up()) {
            log.critical("broker: journal {}; stopping (exit status 1)", why);
            gave_up = true;
            stop();
            if (fatal) fatal();
            return;
        }
        if (failed) {
            ++journal_failures;
            log.error("broker: journal write failed: {}; persistent messages are not acknowledged until it "
                      "succeeds (retrying every second for {} s)",
                      why, opts.journal_retry.count());
        } else {
            log.info("broker: journal writable again; persistence resumed");
        }
        journal_failed = failed;
        journal_reason = why;
    }

    void reload(access_policy policy)
    {
        auth = policy.make_authorizer();
        core.recheck_permissions(scratch);
        for (auto& f : scratch.frames)
            if (auto it = conns.find(f.to); it != conns.end())
                log.info("broker: {} (session {}): {}", it->second->peer, f.to, f.frame.body);
        apply(scratch);
    }

    void stop()
    {
        if (stopping) return;
        stopping = true;
        boost::system::error_code ignored;
        plain.close(ignored);
        secure.close(ignored);
        if (conns.empty()) all_closed.cancel();
        for (auto& [_, c] : conns) c->close_after_flush();
    }
};

server::server(net::io_context& io, server_options opts, access_policy policy, spdlog::logger& log)
    : impl_(std::make_shared<impl>(io, std::move(opts), std::move(policy), log))
{
}

server::~server()
{
    impl_->auth_pool.join();
    if (impl_->jnl) impl_->jnl->stop();
}

void server::start() { impl_->start(); }
void server::stop() { impl_->stop(); }
void server::reload(access_policy policy) { impl_->reload(std::move(policy)); }
void server::on_fatal(std::function<void()> fn) { impl_->fatal = std::move(fn); }
bool server::failed() const { return impl_->gave_up || (impl_->jnl && impl_->jnl->failed()); }
std::uint16_t server::port() const { return impl_->plain.local_endpoint().port(); }
std::uint16_t server::tls_port() const { return impl_->secure.is_open() ? impl_->secure.local_endpoint().port() : 0; }
void server::register_metrics(bus::http::registry& r) const { impl_->register_metrics(r); }
std::optional<std::string> server::not_ready() const { return impl_->not_ready(); }
bool server::publish(bus::stomp::frame f) { return impl_->publish(std::move(f)); }

std::map<std::string, std::uint64_t> server::counters() const
{
    const auto& s = impl_->core.stats();
    return {{"connections", impl_->conns.size()},   {"connections_total", impl_->connections_total},
            {"destinations", impl_->core.queues().size()}, {"messages_in", s.messages_in},
            {"messages_out", s.messages_out},       {"held_bytes", s.held_bytes},
            {"auth_failures", s.auth_failures}};
}

net::awaitable<void> server::closed()
{
    auto self = impl_;
    while (!self->conns.empty()) {
        self->all_closed.expires_at(steady::time_point::max());
        co_await self->all_closed.async_wait(tuple_awaitable);
    }
}

} // namespace broker
