#include "bus/http/server.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <spdlog/spdlog.h>

#include <fcntl.h>

#include <array>
#include <list>
#include <map>

namespace bus::http {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;
using steady = std::chrono::steady_clock;

namespace {

constexpr auto tuple_awaitable = net::as_tuple(net::use_awaitable);

std::string lower(std::string_view s)
{
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string_view trim(std::string_view s) noexcept
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// The request line and headers, as the handler sees them.
request head_of(const bhttp::request<bhttp::string_body>& req, const std::string& peer,
                const std::vector<cidr>& trusted_proxies)
{
    request r;
    r.method = std::string(req.method_string());
    r.target = std::string(req.target());
    r.path = r.target.substr(0, r.target.find('?'));
    r.version = req.version();
    r.keep_alive = req.keep_alive();
    r.peer = peer;
    for (const auto& f : req) {
        auto name = lower(f.name_string());
        // Every X-Forwarded-For line, in order: a proxy may add its own line rather than extend
        // the client's (which could then claim anything in the first one).
        auto sep = name == "x-forwarded-for" ? "," : ", ";
        auto [it, fresh] = r.headers.try_emplace(name, std::string(f.value()));
        if (!fresh) it->second += sep + std::string(f.value());
    }
    r.remote = client_address(peer, r.header("x-forwarded-for"), trusted_proxies);
    return r;
}

// RFC 9112 §6: a request body's length must be unambiguous. nullopt when it is.
std::optional<std::string> framing_error(const request& head)
{
    auto te = head.headers.find("transfer-encoding");
    if (te == head.headers.end()) return std::nullopt;
    if (head.version < 11) return "Transfer-Encoding on HTTP/1.0";
    if (head.headers.count("content-length")) return "both Transfer-Encoding and Content-Length";
    // Only `chunked`, alone: `chunked, identity` (chunked not final) leaves the length unknown
    // (§6.3: 400 and close), and no other coding is implemented (nginx answers those too).
    if (lower(trim(te->second)) != "chunked") return "unsupported Transfer-Encoding: " + te->second;
    return std::nullopt;
}

} // namespace

struct server::impl : std::enable_shared_from_this<impl> {
    impl(net::any_io_executor io_, server_options opts_, spdlog::logger& log_, check_fn check_, handle_fn handle_,
         log_fn own_)
        : io(std::move(io_)), opts(std::move(opts_)), log(log_), check(std::move(check_)), handle(std::move(handle_)),
          own(std::move(own_)), acceptor(io)
    {
    }

    // One open connection. `close` is set once its session runs; `idle` while no request is in
    // progress (waiting for a first byte), so it may be closed to make room.
    struct connection {
        std::string peer;
        std::function<void()> close;
        bool idle = false;
        bool evicted = false;
        steady::time_point idle_since = steady::now();
    };
    using conn_iter = std::list<connection>::iterator;

    net::any_io_executor io;
    server_options opts;
    spdlog::logger& log;
    check_fn check;
    handle_fn handle;
    log_fn own;
    tcp::acceptor acceptor;
    std::optional<ssl::context> tls;
    std::list<connection> conns;
    std::map<std::string, std::size_t, std::less<>> per_source;
    std::size_t open = 0;  // counted connections (evicted ones leave the count at once)
    std::size_t inflight = 0;
    server_stats stats;
    bool stopping = false;
    net::steady_timer* drain_waiter = nullptr;

    void count_in(const std::string& peer)
    {
        ++open;
        ++per_source[peer];
    }

    void count_out(const std::string& peer)
    {
        --open;
        if (auto it = per_source.find(peer); it != per_source.end() && --it->second == 0) per_source.erase(it);
    }

    // At a limit: close the connection idle longest (of `peer` only, when `peer` is at its own
    // limit). False when none is idle.
    bool evict(const std::string* peer)
    {
        conn_iter victim = conns.end();
        for (auto it = conns.begin(); it != conns.end(); ++it) {
            if (!it->idle || it->evicted || !it->close || (peer && it->peer != *peer)) continue;
            if (victim == conns.end() || it->idle_since < victim->idle_since) victim = it;
        }
        if (victim == conns.end()) return false;
        victim->evicted = true;
        count_out(victim->peer);
        ++stats.evicted_connections;
        victim->close();
        return true;
    }

    void answer_own(const request& head, const response& res)
    {
        if (res.status != 503) ++stats.bad_requests;
        if (own) own(head, res);
    }

    template <class Stream>
    net::awaitable<void> write(Stream& stream, const response& res, unsigned version, bool keep_alive, bool head)
    {
        bhttp::response<bhttp::string_body> out{static_cast<bhttp::status>(res.status), version};
        out.set(bhttp::field::server, opts.server_name);
        out.set(bhttp::field::content_type, res.content_type);
        for (const auto& [k, v] : res.headers) out.set(k, v);
        out.keep_alive(keep_alive && !res.close && !stopping);
        if (head) {
            out.content_length(res.body.size());  // what GET would send; no body
        } else {
            out.body() = res.body;
            out.prepare_payload();
        }
        beast::get_lowest_layer(stream).expires_after(opts.read_timeout);
        co_await bhttp::async_write(stream, out, net::use_awaitable);
    }

    // Waits for the first byte of the next request; false when none came (closed, timed out,
    // evicted or stopping). The connection is idle, so closable to make room, while waiting.
    template <class Stream>
    net::awaitable<bool> first_byte(Stream& stream, beast::flat_buffer& buf, connection& c,
                                    std::chrono::milliseconds deadline)
    {
        if (buf.size() > 0) co_return true;  // pipelined
        if (stopping) co_return false;
        c.idle = true;
        c.idle_since = steady::now();
        beast::get_lowest_layer(stream).expires_after(deadline);
        auto [ec, n] = co_await stream.async_read_some(buf.prepare(4096), tuple_awaitable);
        c.idle = false;
        if (ec == beast::error::timeout) ++stats.read_timeouts;
        if (ec || n == 0 || c.evicted) co_return false;
        buf.commit(n);
        co_return true;
    }

    template <class Stream>
    net::awaitable<void> session(Stream& stream, connection& c, bool handshaken)
    {
        beast::flat_buffer buf;
        bool first = !handshaken;
        for (;;) {
            if (!co_await first_byte(stream, buf, c, first ? opts.first_byte_timeout : opts.idle_timeout)) co_return;
            first = false;
            bhttp::request_parser<bhttp::string_body> parser;
            parser.header_limit(static_cast<std::uint32_t>(opts.max_header_bytes));
            parser.body_limit(opts.max_body_bytes);
            // One deadline for the whole request, headers and body, from its first byte
            // (slow-loris safe).
            beast::get_lowest_layer(stream).expires_after(opts.read_timeout);
            auto [ec, n] = co_await bhttp::async_read_header(stream, buf, parser, tuple_awaitable);
            request bare;
            bare.peer = c.peer;
            bare.remote = c.peer;
            if (ec == bhttp::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset ||
                ec == net::error::operation_aborted)
                co_return;
            if (ec == beast::error::timeout) {
                ++stats.read_timeouts;
                co_return;
            }
            if (ec) {
                // Beast checks Content-Length against the body limit while parsing the header.
                auto res = ec == bhttp::error::header_limit ? text(431, "headers too large")
                           : ec == bhttp::error::body_limit
                               ? text(413, "body over " + std::to_string(opts.max_body_bytes) + " bytes")
                               : text(400, "bad request: " + ec.message());
                answer_own(bare, res);
                co_await write(stream, res, 11, false, false);
                co_return;
            }
            auto& msg = parser.get();
            request req = head_of(msg, c.peer, opts.trusted_proxies);
            const bool head_method = msg.method() == bhttp::verb::head;
            if (auto why = framing_error(req)) {
                auto res = text(400, "bad request: " + *why);
                res.close = true;
                answer_own(req, res);
                co_await write(stream, res, msg.version(), false, head_method);
                co_return;
            }
            std::optional<response> early = check ? check(req) : std::nullopt;
            std::size_t reserved = 0;
            if (!early && parser.content_length() && inflight + *parser.content_length() > opts.max_inflight_body_bytes) {
                ++stats.busy;
                early = text(503, "busy: too many large requests at once; retry");
                early->headers.emplace_back("Retry-After", "5");
                answer_own(req, *early);
            }
            if (early) {
                // Answer at once; an unread body means the connection cannot be reused.
                bool keep = req.keep_alive && parser.is_done() && !early->close;
                co_await write(stream, *early, msg.version(), keep, head_method);
                if (!keep) co_return;
                continue;
            }
            // Body bytes held are bounded over all connections: the declared length is reserved
            // up front, and whatever arrives beyond it (chunked) is counted as it is read.
            reserved = parser.content_length() ? static_cast<std::size_t>(*parser.content_length()) : 0;
            inflight += reserved;
            struct release {
                std::size_t& total;
                std::size_t& n;
                ~release() { total -= n; }
            } guard{inflight, reserved};
            if (msg.version() >= 11 && lower(msg[bhttp::field::expect]) == "100-continue") {
                bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, msg.version()};
                co_await bhttp::async_write(stream, cont, net::use_awaitable);
            }
            std::optional<response> failed;
            while (!parser.is_done()) {
                auto [bec, bn] = co_await bhttp::async_read_some(stream, buf, parser, tuple_awaitable);
                if (bec == bhttp::error::body_limit) {
                    failed = text(413, "body over " + std::to_string(opts.max_body_bytes) + " bytes");
                    break;
                }
                if (bec == beast::error::timeout) {
                    ++stats.read_timeouts;
                    co_return;
                }
                if (bec) co_return;
                std::size_t held = parser.get().body().size();
                if (held > reserved) {
                    if (inflight + (held - reserved) > opts.max_inflight_body_bytes) {
                        ++stats.busy;
                        failed = text(503, "busy: too many large requests at once; retry");
                        failed->headers.emplace_back("Retry-After", "5");
                        break;
                    }
                    inflight += held - reserved;
                    reserved = held;
                }
            }
            if (failed) {
                answer_own(req, *failed);
                co_await write(stream, *failed, msg.version(), false, head_method);
                co_return;
            }
            req.body = std::move(msg.body());
            auto res = co_await handle(req);
            co_await write(stream, res, msg.version(), req.keep_alive, head_method);
            if (!req.keep_alive || res.close || stopping) co_return;
        }
    }

    // After an early answer the client may still be sending a body; closing with unread bytes
    // makes the kernel send RST, which can destroy the answer before the client reads it. So
    // stop sending, then read and discard for a bounded time and size before closing.
    static net::awaitable<void> linger(beast::tcp_stream& stream)
    {
        boost::system::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
        stream.expires_after(std::chrono::seconds(1));
        std::array<char, 16384> sink;
        std::size_t total = 0;
        while (total < 1024 * 1024) {
            auto [ec, n] = co_await stream.async_read_some(net::buffer(sink), tuple_awaitable);
            if (ec || n == 0) break;
            total += n;
        }
    }

    net::awaitable<void> serve(tcp::socket sock, conn_iter it)
    {
        auto self = shared_from_this();
        connection& c = *it;
        try {
            if (tls) {
                beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(sock)), *tls);
                c.close = [&stream] { beast::get_lowest_layer(stream).close(); };
                // The handshake is the connection's first bytes: the first-byte deadline, and
                // the connection is idle (closable) until it is done.
                c.idle = true;
                beast::get_lowest_layer(stream).expires_after(opts.first_byte_timeout + opts.read_timeout);
                auto [hec] = co_await stream.async_handshake(ssl::stream_base::server, tuple_awaitable);
                c.idle = false;
                if (!hec && !c.evicted) {
                    co_await session(stream, c, true);
                    if (!c.evicted) {
                        beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
                        co_await stream.async_shutdown(tuple_awaitable);
                    }
                }
                c.close = nullptr;
            } else {
                beast::tcp_stream stream(std::move(sock));
                c.close = [&stream] { stream.close(); };
                co_await session(stream, c, false);
                if (!c.evicted && !stopping) co_await linger(stream);
                c.close = nullptr;
            }
        } catch (const std::exception& e) {
            log.debug("{}: connection from {}: {}", opts.log_name, c.peer, e.what());
            c.close = nullptr;
        }
        if (!c.evicted) count_out(c.peer);
        conns.erase(it);
        if (drain_waiter) drain_waiter->cancel();
    }

    net::awaitable<void> accept_loop()
    {
        auto self = shared_from_this();
        bool warned = false;
        for (;;) {
            auto [ec, sock] = co_await acceptor.async_accept(tuple_awaitable);
            if (ec == net::error::operation_aborted || stopping) co_return;
            if (ec) {
                // EMFILE and friends: back off briefly instead of spinning, and say so once.
                if (!warned) log.warn("{}: accept: {} (retrying every 100 ms)", opts.log_name, ec.message());
                warned = true;
                net::steady_timer t(io, std::chrono::milliseconds(100));
                co_await t.async_wait(tuple_awaitable);
                continue;
            }
            warned = false;
            // Asio accepts without SOCK_CLOEXEC: no child a daemon spawns inherits a client.
            ::fcntl(sock.native_handle(), F_SETFD, FD_CLOEXEC);
            boost::system::error_code pec;
            auto ep = sock.remote_endpoint(pec);
            std::string peer = pec ? "?" : ep.address().to_string();
            if (!pec && ep.address().is_v6() && ep.address().to_v6().is_v4_mapped())
                peer = net::ip::make_address_v4(net::ip::v4_mapped, ep.address().to_v6()).to_string();
            bool refuse = false;
            // A direct client outside the allow-list is turned away before it can send anything
            // (clients behind a trusted proxy are checked per request, by the daemon).
            if (!opts.connect_allow.empty() && !in_any(opts.trusted_proxies, peer) && !in_any(opts.connect_allow, peer))
                refuse = true;
            if (!refuse && opts.max_connections_per_source > 0) {
                auto pit = per_source.find(peer);
                if (pit != per_source.end() && pit->second >= opts.max_connections_per_source && !evict(&peer))
                    refuse = true;
            }
            if (!refuse && open >= opts.max_connections && !evict(nullptr)) refuse = true;
            if (refuse) {
                ++stats.refused_connections;
                boost::system::error_code ignored;
                sock.close(ignored);
                continue;
            }
            boost::system::error_code oec;
            sock.set_option(tcp::no_delay(true), oec);
            count_in(peer);  // counted here, so the limits hold however fast connections arrive
            conns.push_back(connection{peer, nullptr, false, false, steady::now()});
            net::co_spawn(io, serve(std::move(sock), std::prev(conns.end())), net::detached);
        }
    }
};

server::server(net::any_io_executor io, server_options opts, spdlog::logger& log, check_fn check, handle_fn handle,
               log_fn on_own_answer)
    : impl_(std::make_shared<impl>(std::move(io), std::move(opts), log, std::move(check), std::move(handle),
                                   std::move(on_own_answer)))
{
}

server::~server()
{
    boost::system::error_code ignored;
    impl_->acceptor.close(ignored);
}

void server::listen()
{
    auto& o = impl_->opts;
    if (!o.tls_cert_file.empty() || !o.tls_key_file.empty()) {
        auto& t = impl_->tls.emplace(ssl::context::tls_server);
        t.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                      ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
        t.use_certificate_chain_file(o.tls_cert_file);
        t.use_private_key_file(o.tls_key_file, ssl::context::pem);
    }
    tcp::endpoint ep(net::ip::make_address(o.address), o.port);
    auto& a = impl_->acceptor;
    a.open(ep.protocol());
    ::fcntl(a.native_handle(), F_SETFD, FD_CLOEXEC);  // Asio opens without SOCK_CLOEXEC
    a.set_option(tcp::acceptor::reuse_address(true));
    a.bind(ep);
    a.listen(net::socket_base::max_listen_connections);
}

unsigned short server::port() const
{
    boost::system::error_code ec;
    auto ep = impl_->acceptor.local_endpoint(ec);
    return ec ? 0 : ep.port();
}

bool server::tls() const noexcept { return impl_->tls.has_value(); }

net::awaitable<void> server::run() { return impl_->accept_loop(); }

void server::stop()
{
    impl_->stopping = true;
    boost::system::error_code ignored;
    impl_->acceptor.close(ignored);
    for (auto& c : impl_->conns)
        if (c.idle && c.close) c.close();
}

net::awaitable<void> server::drain(std::chrono::milliseconds deadline)
{
    auto self = impl_;
    net::steady_timer t(self->io);
    auto end = steady::now() + deadline;
    self->drain_waiter = &t;
    while (!self->conns.empty() && steady::now() < end) {
        t.expires_at(end);
        co_await t.async_wait(tuple_awaitable);  // cancelled whenever a connection closes
    }
    self->drain_waiter = nullptr;
    for (auto& c : self->conns)
        if (c.close) c.close();
}

std::size_t server::connections() const noexcept { return impl_->open; }
std::size_t server::inflight_body_bytes() const noexcept { return impl_->inflight; }
const server_stats& server::stats() const noexcept { return impl_->stats; }
server_options& server::options() noexcept { return impl_->opts; }

server::handle_fn sync_handler(std::function<response(const request&)> f)
{
    return [f = std::move(f)](request& req) -> net::awaitable<response> { co_return f(req); };
}

} // namespace bus::http
