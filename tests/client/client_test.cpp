// libbus client against a scripted fake broker on loopback: exact bytes, pipelining, receipts,
// heart-beats, synthetic keepalives, liveness probes, reconnect and resubscribe.
#include "bus/client.hpp"

#include "../support/async_test.hpp"

#include "fake_broker.hpp"
#include "throw_counter.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <doctest/doctest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdlib>

namespace net = boost::asio;
using namespace std::chrono_literals;
using namespace std::string_literals;
using bus::stomp::frame;

namespace {

using test::eventually;
using test::logger;


bus::client_options options(const test::fake_broker& fb, std::string creds = "")
{
    auto o = bus::options_from_url("stomp://" + creds + "127.0.0.1:" + std::to_string(fb.port()),
                                   "initialReconnectDelay=10&maxReconnectDelay=50");
    o.receipt_timeout = 3000ms;
    return o;
}

net::awaitable<void> publish_into(bus::client* c, std::string dest, std::string body,
                                  std::error_code* out, int* done, std::chrono::milliseconds timeout)
{
    *out = co_await c->publish(std::move(dest), std::move(body), {}, timeout);
    ++*done;
}

} // namespace

TEST_CASE("connecting and publishing throw no C++ exception")
{
    // An exception's first unwind reads the program's .eh_frame and .gcc_except_table: in a
    // daemon, one throw per connect (the lost branch of connect || stop) kept ~0.5 MiB of them
    // resident for its whole life.
    test::run_test([](net::any_io_executor ex) -> net::awaitable<void> {
        test::fake_broker fb(ex);
        bus::client c(ex, options(fb), logger());
        const long before = test::cxx_throws();
        net::co_spawn(ex, c.run(), net::detached);
        auto conn = co_await fb.accept(5000ms);
        REQUIRE(conn);
        co_await conn->handshake("version:1.2\nheart-beat:0,0\nserver:fake\n");
        CHECK(co_await c.wait_connected(1000ms));
        std::error_code result = bus::errc::stopped;
        int done = 0;
        net::co_spawn(ex, publish_into(&c, "/topic/t", "b", &result, &done, 3000ms), net::detached);
        auto f = co_await conn->frame(2000ms);
        REQUIRE(f);
        co_await conn->send(test::receipt(f->get("receipt")));
        CHECK(co_await eventually([&] { return done == 1; }));
        CHECK(!result);
        CHECK(test::cxx_throws() == before);
        c.stop();
    });
}

TEST_CASE("CONNECT bytes / pipelined publishes complete on their own receipts")
{
    test::run_test([](net::any_io_executor ex) -> net::awaitable<void> {
        test::fake_broker fb(ex);
        bus::client c(ex, options(fb, "gitbot:pw@"), logger());
        net::co_spawn(ex, c.run(), net::detached);
        auto conn = co_await fb.accept(5000ms);
        REQUIRE(conn);
        co_await conn->handshake("version:1.2\nheart-beat:0,0\nserver:fake\n");
        CHECK(conn->raw == "CONNECT\naccept-version:1.0,1.1,1.2\nhost:/\nheart-beat:10000,10000\n"
                           "login:gitbot\npasscode:pw\n\n\0"s);
        CHECK(co_await c.wait_connected(1000ms));
        CHECK(c.version() == bus::stomp::version::v1_2);

        std::error_code results[3] = {bus::errc::stopped, bus::errc::stopped, bus::errc::stopped};
        int done = 0;
        for (int i = 0; i < 3; ++i)
            net::co_spawn(ex, publish_into(&c, "/topic/t", "b" + std::to_string(i), &results[i], &done, 3000ms),
                          net::detached);
        std::vector<frame> sends;
        conn->raw.clear();
        for (int i = 0; i < 3; ++i) {
            auto f = co_await conn->frame(2000ms);
            REQUIRE(f);
            sends.push_back(*f);
        }
        // All three are on the wire before any receipt: pipelined, not one round trip each.
        CHECK(done == 0);
        CHECK(conn->raw.starts_with("SEND\ndestination:/topic/t\nreceipt:p-1\ncontent-length:2\n\nb0\0"s));
        co_await conn->send(test::receipt(sends[2].get("receipt")));
        co_await conn->send(test::receipt(sends[0].get("receipt")));
        CHECK(co_await eventually([&] { return done == 2; }));
        CHECK(!results[0]);
        CHECK(!results[2]);
        CHECK(results[1] == bus::errc::stopped);  // still waiting
        co_await conn->send(test::receipt(sends[1].get("receipt")));
        CHECK(co_await eventually([&] { return done == 3; }));
        CHECK(!results[1]);
        CHECK(c.stats().published == 3);

        c.stop();
        auto d = co_await conn->frame(2000ms);
        REQUIRE(d);
        CHECK(d->command == "DISCONNECT");
        co_await conn->send(test::receipt(d->get("receipt")));
    });
}

TEST_CASE("a missing receipt times out - an ERROR naming the receipt fails that publish")
{
    test::run_test([](net::any_io_executor ex) -> net::awaitable<void> {
        test::fake_broker fb(ex);
        bus::client c(ex, options(fb), logger());
        net::co_spawn(ex, c.run(), net::detached);
        auto conn = co_await fb.accept(5000ms);
        REQUIRE(conn);
        co_await conn->handshake("version:1.1\n");
        auto ec = co_await c.publish("/topic/t", "x", {}, 100ms);
        CHECK(ec == bus::errc::receipt_timeout);
        CHECK(c.stats().publish_timeouts == 1);

        std::error_code r = bus::errc::stopped;
        int done = 0;
        net::co_spawn(ex, publish_into(&c, "/topic/forbidden", "y", &r, &done, 3000ms), net::detached);
        co_await conn->frame(2000ms);  // the timed-out SEND
        auto send = co_await conn->frame(2000ms);
        REQUIRE(send);
        co_await conn->send("ERROR\nmessage:access refused\nreceipt-id:" + std::string(send->get("receipt")) +
                            "\n\nno write permission\0"s);
        CHECK(co_await eventually([&] { return done == 1; }));
        CHECK(r == bus::errc::broker_error);
        CHECK(c.last_error() == "access refused: no write permission");
        CHECK(c.stats().broker_errors == 1);
        c.stop();
    });
}

TEST_CASE("negotiated heart-beats are sent and a silent broker is detected and replaced")
{
    test::run_test([](net::any_io_executor ex) -> net::awaitable<void> {
        test::fake_broker fb(ex);
        auto o = options(fb);
        o.heartbeat_send = 100ms;
        o.heartbeat_receive = 100ms;
        bus::client c(ex, o, logger());
        net::co_spawn(ex, c.run(), net::detached);
        auto conn = co_await fb.accept(5000ms);
        REQUIRE(conn);
        auto connect = co_await conn->handshake("version:1.2\nheart-beat:100,100\n");
        CHECK(connect.get("heart-beat") == "100,100");
        // We promised and negotiated 100 ms: EOLs must arrive while we stay silent...
        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < 2; ++i) {
            auto item = co_await conn->next(1000ms);
            REQUIRE(item);
            CHECK(std::holds_alternative<test::heartbeat_item>(*item));
        }
        CHECK(std::chrono::steady_clock::now() - t0 >= 150ms);  // ~90 ms apart, not a flood
        // ...and since we never send any, the client declares us dead after 2x100 ms and
        // reconnects.
        auto second = co_await fb.accept(3000ms);
        REQUIRE(second);
        CHECK(c.stats().dead_connections == 1);
        co_await second->handshake("version:1.2\nheart-beat:0,0\n");
        CHECK(co_await c.wait_connected(1000ms));
        c.stop();
    });
}

TEST_CASE("STOMP 1.0 - synthetic keepalives and a liveness probe - an answered probe keeps the link")
{
    test::run_test([](net::any_io_executor ex) -> net::awaitable<void> {
        test::fake_broker fb(ex);
        auto o = options(fb);
        o.synthetic_keepalive = 50ms;
        o.liveness_probe = 300ms;
        o.probe_timeout = 200ms;
        bus::client c(ex, o, logger());
        net::co_spawn(ex, c.run(), net::detached);
        auto conn = co_await fb.accept(5000ms);
        REQUIRE(conn);
        co_await conn->handshake("session:1\n");  // no version header: STOMP 1.0, no heart-beats
        CHECK(c.version() == bus::stomp::version::v1_0);
        auto hb = co_await conn->next(1000ms);
        REQUIRE(hb);
        CHECK(std::holds_alternative<test::heartbeat_item>(*hb));
        // After 300 ms of silence from us-as-broker, the client asks for a receipt.
        auto probe = co_await conn->frame(2000ms);
        REQUIRE(probe);
        CHECK(probe->command == "BEGIN");
        CHECK(probe->get("receipt") == probe->get("transaction"));
        auto abort = co_await conn->frame(1000ms);
        REQUIRE(abort);
        CHECK(abort->command == "ABORT");
        co_await conn->send(test::receipt(probe->get("receipt")));
        // Answered: the next probe comes, unanswered, and the client reconnects.
        auto probe2 = co_await conn->frame(2000ms);
        REQUIRE(probe2);
        CHECK(probe2->command == "BEGIN");
        auto second = co_await fb.accept(3000ms);
        REQUIRE(second);
        CHECK(c.stats().probes >= 2);
        CHECK(c.stats().dead_connections == 1);
        CHECK(conn->heartbeats >= 2);
        c.stop();
    });
}

TEST_CASE("the original's 1.0 CONNECT and the legacy keepalive SEND / byte for byte")
{
    test::run_test([](net::any_io_executor ex) -> net::awaitable<void> {
        test::fake_broker fb(ex);
        auto o = options(fb, "u:p@");
        o.protocol = bus::protocol_mode::v1_0;
        o.legacy_keepalives.push_back({"/topic/future.git.commits", 50ms});
        o.synthetic_keepalive = 0ms;
        o.liveness_probe = 0ms;
        bus::client c(ex, o, logger());
        net::co_spawn(ex, c.run(), net::detached);
        auto conn = co_await fb.accept(5000ms);
        REQUIRE(conn);
        co_await conn->handshake("");
        CHECK(conn->raw == "CONNECT\nlogin:u\npasscode:p\ncontent-length:0\n"
                           "content-type:text/plain; charset=UTF-8\n\n\0"s);
        conn->raw.clear();
        auto k = co_await conn->frame(2000ms);
        REQUIRE(k);
        CHECK(conn->raw == "SEND\ndestination:/topic/future.git.commits\ncontent-type:text/plain; "
                           "charset=UTF-8\ncontent-length:1\n\n\n\0"s);
        c.stop();
    });
}

TEST_CASE("reconnect resubscribes / resends unreceipted publishes and acks after the handler")
{
    test::run_test([](net::any_io_executor ex) -> net::awaitable<void> {
        test::fake_broker fb(ex);
        bus::client c(ex, options(fb), logger());
        std::vector<std::string> seen;
        bus::subscription_options so;
        so.destination = "/topic/future.git.commits";
        so.ack = bus::ack_mode::client_individual;
        so.durable_name = "stomp-git-web01";
        so.durable = bus::durable_style::both;
        auto id = c.subscribe(so, [&](const bus::message& m) -> net::awaitable<bus::disposition> {
            seen.push_back(m.body());
            co_return m.body() == "fail" ? bus::disposition::nack : bus::disposition::ack;
        });
        CHECK(id == "stomp-git-web01");
        net::co_spawn(ex, c.run(), net::detached);

        auto conn = co_await fb.accept(5000ms);
        REQUIRE(conn);
        co_await conn->handshake("version:1.2\n");
        auto sub = co_await conn->frame(2000ms);
        REQUIRE(sub);
        CHECK(sub->command == "SUBSCRIBE");
        CHECK(sub->get("id") == "stomp-git-web01");
        CHECK(sub->get("ack") == "client-individual");
        CHECK(sub->get("durable") == "true");
        CHECK(sub->get("auto-delete") == "false");
        CHECK(sub->get("activemq.subscriptionName") == "stomp-git-web01");
        co_await conn->send(test::receipt(sub->get("receipt")));
        CHECK(co_await c.wait_subscribed(id, 1000ms));

        // A message, the original's keepalive (dropped but acked), and a failing message.
        co_await conn->send("MESSAGE\ndestination:/topic/future.git.commits\nmessage-id:m1\n"
                            "subscription:stomp-git-web01\nack:a1\ncontent-length:5\n\nhello\0"
                            "MESSAGE\ndestination:/topic/future.git.commits\nmessage-id:m2\n"
                            "subscription:stomp-git-web01\nack:a2\ncontent-length:1\n\n\n\0"
                            "MESSAGE\ndestination:/topic/future.git.commits\nmessage-id:m3\n"
                            "subscription:stomp-git-web01\nack:a3\n\nfail\0"s);
        std::vector<frame> acks;
        for (int i = 0; i < 3; ++i) {
            auto a = co_await conn->frame(2000ms);
            REQUIRE(a);
            acks.push_back(*a);
        }
        std::sort(acks.begin(), acks.end(), [](auto& x, auto& y) { return x.get("id") < y.get("id"); });
        CHECK(acks[0].command == "ACK");
        CHECK(acks[0].get("id") == "a1");
        CHECK(acks[1].command == "ACK");
        CHECK(acks[1].get("id") == "a2");
        CHECK(acks[2].command == "NACK");
        CHECK(acks[2].get("id") == "a3");
        CHECK(seen == std::vector<std::string>{"hello", "fail"});
        CHECK(c.stats().keepalives_dropped == 1);

        // A publish that gets no receipt before the connection dies is resent on the next one.
        std::error_code r = bus::errc::stopped;
        int done = 0;
        net::co_spawn(ex, publish_into(&c, "/topic/x", "payload", &r, &done, 5000ms), net::detached);
        auto first = co_await conn->frame(2000ms);
        REQUIRE(first);
        CHECK(first->command == "SEND");
        conn->close();

        auto conn2 = co_await fb.accept(5000ms);
        REQUIRE(conn2);
        co_await conn2->handshake("version:1.2\n");
        auto resub = co_await conn2->frame(2000ms);
        REQUIRE(resub);
        CHECK(resub->command == "SUBSCRIBE");
        CHECK(resub->get("id") == "stomp-git-web01");
        auto resent = co_await conn2->frame(2000ms);
        REQUIRE(resent);
        CHECK(resent->command == "SEND");
        CHECK(resent->body == "payload");
        CHECK(resent->get("receipt") == first->get("receipt"));
        co_await conn2->send(test::receipt(resent->get("receipt")));
        CHECK(co_await eventually([&] { return done == 1; }));
        CHECK(!r);
        CHECK(c.stats().resent == 1);
        c.stop();
    });
}

TEST_CASE("a malformed frame from the broker drops the connection and reconnects")
{
    test::run_test([](net::any_io_executor ex) -> net::awaitable<void> {
        test::fake_broker fb(ex);
        bus::client c(ex, options(fb), logger());
        net::co_spawn(ex, c.run(), net::detached);
        auto conn = co_await fb.accept(5000ms);
        REQUIRE(conn);
        co_await conn->handshake("version:1.2\n");
        co_await conn->send("MESSAGE\nbroken header line\n\n\0"s);
        auto second = co_await fb.accept(3000ms);
        REQUIRE(second);
        CHECK(c.stats().protocol_errors == 1);
        co_await second->handshake("version:1.2\n");
        CHECK(co_await c.wait_connected(1000ms));
        c.stop();
    });
}

TEST_CASE("failover rotates to the next broker - attempts are bounded when asked")
{
    test::run_test([](net::any_io_executor ex) -> net::awaitable<void> {
        test::fake_broker dead(ex);
        auto dead_port = dead.port();
        dead.close();  // nothing listens there any more
        test::fake_broker live(ex);
        auto o = bus::options_from_url("failover://(stomp://127.0.0.1:" + std::to_string(dead_port) +
                                       ",stomp://127.0.0.1:" + std::to_string(live.port()) +
                                       ")?initialReconnectDelay=10&randomize=false");
        bus::client c(ex, o, logger());
        net::co_spawn(ex, c.run(), net::detached);
        auto conn = co_await live.accept(5000ms);
        REQUIRE(conn);
        co_await conn->handshake("version:1.2\n");
        CHECK(co_await c.wait_connected(1000ms));
        CHECK(c.stats().connect_failures >= 1);
        c.stop();
    });

    test::run_test([](net::any_io_executor ex) -> net::awaitable<void> {
        test::fake_broker dead(ex);
        auto port = dead.port();
        dead.close();
        auto o = bus::options_from_url("stomp://127.0.0.1:" + std::to_string(port),
                                       "initialReconnectDelay=10&maxReconnectAttempts=3");
        bus::client c(ex, o, logger());
        std::error_code result;
        try {
            co_await c.run();
        } catch (const std::system_error& e) {
            result = e.code();
        }
        CHECK(result == bus::errc::attempts_exhausted);
        CHECK(c.stats().connect_failures == 3);
    });
}

TEST_CASE("publishes beyond the send-queue byte budget wait their turn instead of dropping the link")
{
    test::run_test([](net::any_io_executor ex) -> net::awaitable<void> {
        test::fake_broker fb(ex);
        auto o = options(fb);
        o.max_queued_bytes = 2000;  // a few 600-byte frames at most
        bus::client c(ex, o, logger());
        net::co_spawn(ex, c.run(), net::detached);
        auto conn = co_await fb.accept(5000ms);
        REQUIRE(conn);
        co_await conn->handshake("version:1.2\n");
        const int n = 20;
        std::vector<std::error_code> results(n, bus::errc::stopped);
        int done = 0;
        for (int i = 0; i < n; ++i)
            net::co_spawn(ex, publish_into(&c, "/queue/big", std::string(600, static_cast<char>('a' + i)), &results[i], &done, 5000ms),
                          net::detached);
        std::vector<char> order;
        for (int i = 0; i < n; ++i) {
            auto f = co_await conn->frame(3000ms);
            REQUIRE(f);
            order.push_back(f->body[0]);
            co_await conn->send(test::receipt(f->get("receipt")));
        }
        CHECK(co_await eventually([&] { return done == n; }));
        for (auto& r : results) CHECK(!r);
        for (int i = 0; i < n; ++i) CHECK(order[i] == static_cast<char>('a' + i));  // in order
        CHECK(c.stats().connects == 1);  // no overflow, no reconnect
        c.stop();
    });
}
