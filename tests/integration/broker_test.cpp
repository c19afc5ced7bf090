// libbus against real brokers: every broker named in BUS_TEST_BROKERS
// ("rabbitmq=stomp://guest:guest@127.0.0.1:P;activemq=stomp://127.0.0.1:Q;..."), which
// tests/run_broker_tests.sh starts. A missing variable fails: a skipped real-broker test must
// never count as a pass.
#include "bus/client.hpp"

#include "../support/async_test.hpp"

#include <boost/asio/as_tuple.hpp>
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
#include <random>

namespace net = boost::asio;
using namespace std::chrono_literals;

namespace {

using test::logger;

template <class F>
void run_test(F f)
{
    test::run_test(std::move(f), std::chrono::seconds(60));
}

template <class Pred>
net::awaitable<bool> eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::milliseconds(15000))
{
    co_return co_await test::eventually(std::move(pred), limit);
}

struct broker {
    std::string kind;
    std::string url;
};

std::vector<broker> brokers()
{
    const char* env = std::getenv("BUS_TEST_BROKERS");
    REQUIRE_MESSAGE(env != nullptr, "BUS_TEST_BROKERS is not set: run tests/run_broker_tests.sh");
    std::vector<broker> out;
    std::string_view s = env;
    while (!s.empty()) {
        auto semi = s.find(';');
        std::string_view one = s.substr(0, semi);
        s = semi == std::string_view::npos ? std::string_view{} : s.substr(semi + 1);
        auto eq = one.find('=');
        if (eq != std::string_view::npos)
            out.push_back({std::string(one.substr(0, eq)), std::string(one.substr(eq + 1))});
    }
    REQUIRE(!out.empty());
    return out;
}

std::string unique(std::string_view prefix)
{
    static std::mt19937_64 rng{std::random_device{}()};
    return std::string(prefix) + std::to_string(rng() % 1000000000);
}

bus::client_options opts(const broker& b, std::string client_id = {})
{
    auto o = bus::options_from_url(b.url, "initialReconnectDelay=50&maxReconnectDelay=500");
    o.client_id = std::move(client_id);
    o.receipt_timeout = 10000ms;
    return o;
}

net::awaitable<void> publish_one(bus::client* c, std::string dest, std::string body, int* ok, int* done,
                                 std::vector<std::pair<std::string, std::string>> headers = {})
{
    auto ec = co_await c->publish(std::move(dest), std::move(body), std::move(headers));
    if (!ec) ++*ok;
    ++*done;
}

// A handler that never finishes: the subscriber "dies" while working.
net::awaitable<bus::disposition> hang(std::vector<std::string>* seen, const bus::message& m)
{
    seen->push_back(m.body());
    net::steady_timer forever(co_await net::this_coro::executor);
    forever.expires_after(3600s);
    co_await forever.async_wait(net::as_tuple(net::use_awaitable));
    co_return bus::disposition::ack;
}

} // namespace

TEST_CASE("publish/subscribe with receipts / pipelined / in order")
{
    for (auto& b : brokers()) {
        CAPTURE(b.kind);
        run_test([&b](net::any_io_executor ex) -> net::awaitable<void> {
            bus::client sub(ex, opts(b), logger());
            bus::client pub(ex, opts(b), logger());
            net::co_spawn(ex, sub.run(), net::detached);
            net::co_spawn(ex, pub.run(), net::detached);
            auto topic = "/topic/" + unique("bus.it.pubsub.");
            std::vector<std::string> got;
            auto id = sub.subscribe({.destination = topic, .ack = bus::ack_mode::client_individual},
                                    [&](const bus::message& m) -> net::awaitable<bus::disposition> {
                                        got.push_back(m.body());
                                        co_return bus::disposition::ack;
                                    });
            REQUIRE(co_await sub.wait_subscribed(id, 10000ms));
            REQUIRE(co_await pub.wait_connected(10000ms));
            const int n = 200;
            int ok = 0, done = 0;
            for (int i = 0; i < n; ++i)
                net::co_spawn(ex, publish_one(&pub, topic, "m" + std::to_string(i), &ok, &done), net::detached);
            CHECK(co_await eventually([&] { return done == n; }));
            CHECK(ok == n);
            CHECK(co_await eventually([&] { return got.size() == static_cast<std::size_t>(n); }));
            for (int i = 0; i < n && i < static_cast<int>(got.size()); ++i) CHECK(got[i] == "m" + std::to_string(i));
            CHECK(pub.stats().published == static_cast<std::uint64_t>(n));
            sub.stop();
            pub.stop();
        });
    }
}

TEST_CASE("client-individual - a message left unacked by a dead subscriber is redelivered")
{
    for (auto& b : brokers()) {
        CAPTURE(b.kind);
        run_test([&b](net::any_io_executor ex) -> net::awaitable<void> {
            auto queue = "/queue/" + unique("bus.it.redeliver.");
            bus::client pub(ex, opts(b), logger());
            net::co_spawn(ex, pub.run(), net::detached);
            // (A named vector: GCC 12 miscompiles initializer lists inside co_await.)
            std::vector<std::pair<std::string, std::string>> persistent{{"persistent", "true"}};
            REQUIRE(!co_await pub.publish(queue, "work-item", persistent));

            std::vector<std::string> first_seen;
            {
                bus::client a(ex, opts(b), logger());
                net::co_spawn(ex, a.run(), net::detached);
                a.subscribe({.destination = queue, .ack = bus::ack_mode::client_individual, .prefetch = 1},
                            [seen = &first_seen](const bus::message& m) { return hang(seen, m); });
                CHECK(co_await eventually([&] { return first_seen.size() == 1; }));
                a.abort();
            }
            std::vector<bus::message> second;
            bus::client b2(ex, opts(b), logger());
            net::co_spawn(ex, b2.run(), net::detached);
            b2.subscribe({.destination = queue, .ack = bus::ack_mode::client_individual},
                         [&](const bus::message& m) -> net::awaitable<bus::disposition> {
                             second.push_back(m);
                             co_return bus::disposition::ack;
                         });
            CHECK(co_await eventually([&] { return second.size() == 1; }));
            if (!second.empty()) {
                CHECK(second[0].body() == "work-item");
                CHECK(second[0].redelivered);
            }
            b2.stop();
            pub.stop();
        });
    }
}

TEST_CASE("a durable subscription catches up on messages sent while it was away")
{
    for (auto& b : brokers()) {
        CAPTURE(b.kind);
        run_test([&b](net::any_io_executor ex) -> net::awaitable<void> {
            auto topic = "/topic/" + unique("bus.it.durable.");
            auto name = unique("stomp-git-host");
            bus::subscription_options so{.destination = topic,
                                         .ack = bus::ack_mode::client_individual,
                                         .durable_name = name,
                                         .durable = bus::durable_style::both};
            std::vector<std::string> got;
            auto handler = [&](const bus::message& m) -> net::awaitable<bus::disposition> {
                got.push_back(m.body());
                co_return bus::disposition::ack;
            };
            {
                bus::client d(ex, opts(b, name), logger());
                net::co_spawn(ex, d.run(), net::detached);
                auto id = d.subscribe(so, handler);
                REQUIRE(co_await d.wait_subscribed(id, 10000ms));
                d.stop();
                CHECK(co_await eventually([&] { return !d.connected(); }));
            }
            bus::client pub(ex, opts(b), logger());
            net::co_spawn(ex, pub.run(), net::detached);
            std::vector<std::pair<std::string, std::string>> persistent{{"persistent", "true"}};
            for (int i = 0; i < 5; ++i)
                REQUIRE(!co_await pub.publish(topic, "away" + std::to_string(i), persistent));
            bus::client d2(ex, opts(b, name), logger());
            net::co_spawn(ex, d2.run(), net::detached);
            d2.subscribe(so, handler);
            CHECK(co_await eventually([&] { return got.size() == 5; }));
            CHECK(got == std::vector<std::string>{"away0", "away1", "away2", "away3", "away4"});
            d2.stop();
            pub.stop();
        });
    }
}

TEST_CASE("ERROR frames are surfaced with their text and the client reconnects")
{
    for (auto& b : brokers()) {
        if (b.kind == "activemq") continue;  // RabbitMQ and stomp-broker refuse '/' inside a topic name
        run_test([&b](net::any_io_executor ex) -> net::awaitable<void> {
            bus::client c(ex, opts(b), logger());
            net::co_spawn(ex, c.run(), net::detached);
            auto ec = co_await c.publish("/topic/a/b", "x");
            CHECK(ec == bus::errc::broker_error);
            CHECK(!c.last_error().empty());
            CHECK(co_await c.wait_connected(10000ms));
            CHECK(!co_await c.publish("/topic/bus.it.after-error", "y"));
            c.stop();
        });
    }
}

TEST_CASE("heart-beats negotiated with the broker keep an idle connection alive")
{
    for (auto& b : brokers()) {
        CAPTURE(b.kind);
        run_test([&b](net::any_io_executor ex) -> net::awaitable<void> {
            auto o = opts(b);
            o.heartbeat_send = 500ms;
            o.heartbeat_receive = 500ms;
            bus::client c(ex, o, logger());
            net::co_spawn(ex, c.run(), net::detached);
            REQUIRE(co_await c.wait_connected(10000ms));
            // Idle for several heart-beat periods: heart-beats flow both ways and nobody drops.
            CHECK(co_await eventually([&] { return c.stats().heartbeats_in >= 3 && c.stats().heartbeats_out >= 3; },
                                      10000ms));
            CHECK(c.stats().connects == 1);
            CHECK(c.stats().dead_connections == 0);
            CHECK(!co_await c.publish("/topic/bus.it.hb", "still-up"));
            c.stop();
        });
    }
}
