// The shared HTTP module (bus/http): the pure parts as values, the server on loopback with raw
// bytes, so framing and limits are tested as an attacker would send them.
#include "bus/http/server.hpp"

#include "bus/http/address.hpp"
#include "bus/http/health.hpp"
#include "bus/http/metrics.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <doctest/doctest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <thread>

using namespace bus::http;
namespace net = boost::asio;

TEST_CASE("http: listen addresses")
{
    auto a = parse_listen("127.0.0.1:9100");
    REQUIRE(a);
    CHECK(a->address == "127.0.0.1");
    CHECK(a->port == 9100);
    a = parse_listen("[::1]:80");
    REQUIRE(a);
    CHECK(a->address == "::1");
    CHECK_FALSE(parse_listen("127.0.0.1"));
    CHECK_FALSE(parse_listen(":80"));
    CHECK_FALSE(parse_listen("host:99999"));
    CHECK_FALSE(parse_listen("host:8o"));
}

TEST_CASE("http: health answers /livez /readyz with the reason and /metrics")
{
    registry m("d");
    m.add_counter("x_total", "x").inc();
    std::optional<std::string> why;
    ready_fn ready = [&] { return why; };
    request req;
    req.method = "GET";
    req.path = "/livez";
    CHECK(health(req, m, ready)->status == 200);
    req.path = "/readyz";
    CHECK(health(req, m, ready)->status == 200);
    why = "broker unreachable and spool full";
    auto r = health(req, m, ready);
    CHECK(r->status == 503);
    CHECK(r->body.find("broker unreachable and spool full") != std::string::npos);
    req.path = "/metrics";
    r = health(req, m, ready);
    CHECK(r->status == 200);
    CHECK(r->body.find("d_x_total 1") != std::string::npos);
    CHECK(r->content_type.starts_with("text/plain; version=0.0.4"));
    req.method = "POST";
    CHECK(health(req, m, ready)->status == 405);
    req.path = "/hook";
    CHECK_FALSE(health(req, m, ready));
}

namespace {

// A server on a free loopback port, run on its own thread; `body_seen` is what the handler got.
struct live_server {
    net::io_context io{1};
    std::shared_ptr<spdlog::logger> log = std::make_shared<spdlog::logger>("t", std::make_shared<spdlog::sinks::null_sink_mt>());
    std::string body_seen;
    int handled = 0;
    server http;
    std::thread thread;

    explicit live_server(server_options o)
        : http(io.get_executor(), std::move(o), *log, nullptr,
               [this](request& r) -> net::awaitable<response> {
                   ++handled;
                   body_seen = r.body;
                   co_return text(200, "handled " + std::to_string(r.body.size()));
               })
    {
        http.listen();
        net::co_spawn(io, http.run(), net::detached);
        thread = std::thread([this] { io.run(); });
    }
    ~live_server()
    {
        net::post(io, [this] { http.stop(); io.stop(); });
        thread.join();
    }
};

// Sends `bytes`, then reads until the server closes (or 5 s pass); returns what it answered.
std::string exchange(unsigned short port, const std::string& bytes)
{
    net::io_context io;
    net::ip::tcp::socket s(io);
    s.connect({net::ip::make_address("127.0.0.1"), port});
    timeval tv{5, 0};
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    boost::system::error_code ec;
    net::write(s, net::buffer(bytes), ec);
    std::string out;
    char buf[4096];
    for (;;) {
        auto n = s.read_some(net::buffer(buf), ec);
        if (ec || n == 0) break;
        out.append(buf, n);
    }
    return out;
}

server_options loopback()
{
    server_options o;
    o.address = "127.0.0.1";
    o.port = 0;
    o.max_body_bytes = 1 << 20;
    o.read_timeout = std::chrono::seconds(3);
    o.first_byte_timeout = std::chrono::seconds(3);
    return o;
}

} // namespace

TEST_CASE("http: a plain request reaches the handler with its body")
{
    live_server s(loopback());
    auto out = exchange(s.http.port(), "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello");
    CHECK(out.starts_with("HTTP/1.1 200"));
    CHECK(out.find("handled 5") != std::string::npos);
}

TEST_CASE("http: Transfer-Encoding chunked then identity is 400 and the rest is not a second request")
{
    // RFC 9112 6.3: chunked not final means the length is unknown: 400 and close. Read as "no
    // body", the body below was parsed as a second (smuggled) request.
    live_server s(loopback());
    auto out = exchange(s.http.port(), "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n"
                                       "GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(out.starts_with("HTTP/1.1 400"));
    CHECK(out.find("Transfer-Encoding") != std::string::npos);
    CHECK(out.find("HTTP/1.1 200") == std::string::npos);
    CHECK(s.handled == 0);
    for (const char* te : {"gzip, chunked", "identity", "chunked;foo", "x-custom"}) {
        CAPTURE(te);
        out = exchange(s.http.port(), std::string("POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ") + te +
                                          "\r\n\r\n0\r\n\r\n");
        CHECK(out.starts_with("HTTP/1.1 400"));
    }
    // With Content-Length too, or on HTTP/1.0: ambiguous, refused.
    out = exchange(s.http.port(), "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n");
    CHECK(out.starts_with("HTTP/1.1 400"));
    out = exchange(s.http.port(), "POST /x HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    CHECK(out.starts_with("HTTP/1.0 400"));
    CHECK(s.handled == 0);
    // Plain chunked is fine.
    out = exchange(s.http.port(), "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n"
                                  "3\r\nabc\r\n0\r\n\r\n");
    CHECK(out.starts_with("HTTP/1.1 200"));
    CHECK(s.body_seen == "abc");
}

TEST_CASE("http: chunked body bytes count against max_inflight_body_bytes as they are read")
{
    // A chunked body declares no length; it used to be read whole whatever the in-flight budget.
    auto o = loopback();
    o.max_inflight_body_bytes = 64 * 1024;
    live_server s(o);
    std::string chunk(32 * 1024, 'x');
    std::string req = "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
    char size[16];
    std::snprintf(size, sizeof size, "%zx", chunk.size());
    for (int i = 0; i < 4; ++i) req += std::string(size) + "\r\n" + chunk + "\r\n";
    req += "0\r\n\r\n";
    auto out = exchange(s.http.port(), req);
    CHECK(out.starts_with("HTTP/1.1 503"));
    CHECK(s.handled == 0);
    CHECK(s.http.stats().busy == 1);
    // Under the budget it is read and handled.
    req = "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + std::string(size) +
          "\r\n" + chunk + "\r\n0\r\n\r\n";
    out = exchange(s.http.port(), req);
    CHECK(out.starts_with("HTTP/1.1 200"));
    CHECK(s.body_seen.size() == chunk.size());
}
