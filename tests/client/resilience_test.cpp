// libbus client faults that a daemon must ride out without help: a SUBSCRIBE the broker refuses
// after a good CONNECT (a RabbitMQ queue whose home node is down), a refusal that waiting will not
// change, configured extra headers, and descriptors a child process must not inherit.
#include "bus/backoff.hpp"
#include "bus/client.hpp"
#include "bus/config.hpp"

#include "../support/async_test.hpp"

#include "fake_broker.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <doctest/doctest.h>
#include <yaml-cpp/yaml.h>

#include <cstdio>
#include <string>

namespace net = boost::asio;
using namespace std::chrono_literals;
using namespace std::string_literals;

namespace {

// Reconnect backoff far longer than the test: a reconnect that waited for it would fail it.
bus::client_options slow_backoff(const test::fake_broker& fb)
{
    auto o = bus::options_from_url("stomp://127.0.0.1:" + std::to_string(fb.port()),
                                   "initialReconnectDelay=20000&maxReconnectDelay=20000");
    o.receipt_timeout = 3000ms;
    return o;
}

bus::subscription_options topic(std::string dest)
{
    bus::subscription_options so;
    so.destination = std::move(dest);
    so.ack = bus::ack_mode::automatic;
    return so;
}

net::awaitable<void> publish_into(bus::client* c, std::error_code* r, bool* done)
{
    bus::header_list own;
    own.emplace_back("persistent", "false");
    *r = co_await c->publish("/queue/work", "x", std::move(own), 3000ms);
    *done = true;
}

net::awaitable<bus::disposition> ignore(const bus::message&) { co_return bus::disposition::ack; }

} // namespace

TEST_CASE("subscription retry schedule doubles from 1 s to 5 s")
{
    CHECK(bus::subscription_retry_delay(1000ms, 5000ms, 1) == 1000ms);
    CHECK(bus::subscription_retry_delay(1000ms, 5000ms, 2) == 2000ms);
    CHECK(bus::subscription_retry_delay(1000ms, 5000ms, 3) == 4000ms);
    CHECK(bus::subscription_retry_delay(1000ms, 5000ms, 4) == 5000ms);
    CHECK(bus::subscription_retry_delay(1000ms, 5000ms, 100) == 5000ms);
}

TEST_CASE("broker refusals - a down node is transient and access or syntax is permanent")
{
    CHECK_FALSE(bus::is_permanent_refusal(
        "NOT_FOUND - home node 'rabbit@b' of durable queue 'stomp-subscription-x' in vhost '/' is down or inaccessible"));
    CHECK(bus::is_permanent_refusal("ACCESS_REFUSED - access to exchange 'amq.topic' in vhost '/' refused for user 'u'"));
    CHECK(bus::is_permanent_refusal("Invalid destination: '/foo/bar' is not a valid destination"));
    CHECK(bus::is_permanent_refusal("Unknown destination: /bogus/x"));
    CHECK(bus::is_permanent_refusal("PRECONDITION_FAILED - inequivalent arg 'x-queue-type' for queue 'q'"));
    CHECK(bus::is_permanent_refusal("not authorized to read /topic/secret"));
    CHECK_FALSE(bus::is_permanent_refusal("something unexpected"));
}

TEST_CASE("a refused SUBSCRIBE waits on its own short schedule while the connection comes straight back")
{
    test::run_test([](net::any_io_executor ex) -> net::awaitable<void> {
        test::fake_broker fb(ex);
        auto o = slow_backoff(fb);
        o.subscribe_headers = {{"x-queue-type", "quorum"}};
        o.publish_headers = {{"x-queue-type", "quorum"}, {"persistent", "true"}};
        bus::client c(ex, o, test::logger());
        auto refused = c.subscribe(topic("/topic/a"), ignore);
        net::co_spawn(ex, c.run(), net::detached);

        auto conn = co_await fb.accept(5000ms);
        REQUIRE(conn);
        co_await conn->handshake("version:1.2\n");
        auto sub = co_await conn->frame(2000ms);
        REQUIRE(sub);
        CHECK(sub->command == "SUBSCRIBE");
        CHECK(sub->get("x-queue-type") == "quorum");
        // RabbitMQ names no receipt on this ERROR and closes the connection.
        co_await conn->send("ERROR\nmessage:NOT_FOUND - home node 'rabbit@b' of durable queue 'q' in vhost '/' "
                            "is down or inaccessible\n\n\0"s);
        conn->close();

        // Back at once (the reconnect backoff is 20 s), and a subscription added meanwhile is
        // sent at once while the refused one waits for its retry time.
        auto conn2 = co_await fb.accept(3000ms);
        REQUIRE(conn2);
        CHECK(c.subscription(refused).refusals == 1);
        CHECK_FALSE(c.subscription(refused).permanent);
        co_await conn2->handshake("version:1.2\n");
        auto other = c.subscribe(topic("/topic/b"), ignore);
        auto first = co_await conn2->frame(700ms);
        REQUIRE(first);
        CHECK(first->get("destination") == "/topic/b");
        co_await conn2->send(test::receipt(first->get("receipt")));
        CHECK(co_await c.wait_subscribed(other, 1000ms));

        // The refused one comes about a second after the refusal, on the same connection.
        auto again = co_await conn2->frame(4000ms);
        REQUIRE(again);
        CHECK(again->command == "SUBSCRIBE");
        CHECK(again->get("destination") == "/topic/a");
        co_await conn2->send(test::receipt(again->get("receipt")));
        CHECK(co_await c.wait_subscribed(refused, 1000ms));
        CHECK(c.subscription(refused).refusals == 0);
        CHECK(c.stats().connects == 2);

        // Configured publish headers ride on every SEND; the frame's own header wins.
        std::error_code r = bus::errc::stopped;
        bool done = false;
        net::co_spawn(ex, publish_into(&c, &r, &done), net::detached);
        auto send = co_await conn2->frame(2000ms);
        REQUIRE(send);
        CHECK(send->get("x-queue-type") == "quorum");
        CHECK(send->get("persistent") == "false");
        co_await conn2->send(test::receipt(send->get("receipt")));
        CHECK(co_await test::eventually([&] { return done; }));
        CHECK(!r);
        c.unsubscribe(refused);
        c.unsubscribe(other);
        c.stop();
        co_await conn2->frame(1000ms);
    });
}

TEST_CASE("a permanently refused SUBSCRIBE ends wait_subscribed early and says why")
{
    test::run_test([](net::any_io_executor ex) -> net::awaitable<void> {
        test::fake_broker fb(ex);
        bus::client c(ex, slow_backoff(fb), test::logger());
        auto id = c.subscribe(topic("/topic/secret"), ignore);
        net::co_spawn(ex, c.run(), net::detached);
        auto conn = co_await fb.accept(5000ms);
        REQUIRE(conn);
        co_await conn->handshake("version:1.2\n");
        auto sub = co_await conn->frame(2000ms);
        REQUIRE(sub);
        co_await conn->send("ERROR\nmessage:ACCESS_REFUSED - read access to topic 'secret' refused\nreceipt-id:"s +
                            std::string(sub->get("receipt")) + "\n\n\0"s);
        conn->close();
        CHECK_FALSE(co_await c.wait_subscribed(id, 8000ms));
        auto st = c.subscription(id);
        CHECK(st.permanent);
        CHECK(st.refused.find("ACCESS_REFUSED") != std::string::npos);
        c.unsubscribe(id);
        c.stop();
    });
}

TEST_CASE("a child process started after the client connected inherits no socket")
{
    test::run_test([](net::any_io_executor ex) -> net::awaitable<void> {
        test::fake_broker fb(ex);
        bus::client c(ex, slow_backoff(fb), test::logger());
        net::co_spawn(ex, c.run(), net::detached);
        auto conn = co_await fb.accept(5000ms);
        REQUIRE(conn);
        co_await conn->handshake("version:1.2\n");
        CHECK(co_await c.wait_connected(2000ms));
        // fork + exec, as every spawn does; the child lists what it was given.
        FILE* p = ::popen("for f in /proc/self/fd/*; do readlink \"$f\"; done", "r");
        REQUIRE(p);
        std::string out;
        char buf[512];
        while (std::fgets(buf, sizeof buf, p)) out += buf;
        ::pclose(p);
        INFO("child's descriptors: " << out);
        CHECK(out.find("socket:") == std::string::npos);
        c.stop();
        co_await conn->frame(1000ms);
    });
}

TEST_CASE("connection config - keepalive keys / legacy-keepalive / extra headers")
{
    auto root = YAML::Load("rserver: stomp://127.0.0.1:61613\n"
                           "heartbeat-ms: 1500\n"
                           "keepalive-ms: 1000\n"
                           "probe-ms: 2000\n"
                           "probe-timeout-ms: 1500\n"
                           "dead-link-grace: 2\n"
                           "legacy-keepalive:\n"
                           "  interval: 30\n"
                           "  topics:\n"
                           "    future.git.commits: {user: gitbot, pass: x, type: topic}\n"
                           "    work: {type: queue}\n"
                           "subscribe-headers: {x-queue-type: quorum}\n"
                           "publish-headers: {x-queue-type: quorum}\n");
    auto cfg = bus::read_bus_config(root, "t.yaml");
    CHECK(cfg.client.heartbeat_send == 1500ms);
    CHECK(cfg.client.heartbeat_receive == 1500ms);
    CHECK(cfg.client.synthetic_keepalive == 1000ms);
    CHECK(cfg.client.liveness_probe == 2000ms);
    CHECK(cfg.client.probe_timeout == 1500ms);
    CHECK(cfg.client.dead_link_grace == doctest::Approx(2.0));
    REQUIRE(cfg.client.legacy_keepalives.size() == 2);
    CHECK(cfg.client.legacy_keepalives[0].destination == "/topic/future.git.commits");
    CHECK(cfg.client.legacy_keepalives[0].every == 30000ms);
    CHECK(cfg.client.legacy_keepalives[1].destination == "/queue/work");
    REQUIRE(cfg.client.subscribe_headers.size() == 1);
    CHECK(cfg.client.subscribe_headers[0] == std::pair<std::string, std::string>{"x-queue-type", "quorum"});
    CHECK(cfg.client.publish_headers.size() == 1);

    auto list = YAML::Load("rserver: stomp://h:61613\nlegacy-keepalive: {topics: [a.b, /queue/c]}\n");
    auto l = bus::read_bus_config(list, "l.yaml").client.legacy_keepalives;
    REQUIRE(l.size() == 2);
    CHECK(l[0].destination == "/topic/a.b");
    CHECK(l[0].every == 60000ms);
    CHECK(l[1].destination == "/queue/c");

    auto bad = [](const char* text) {
        try {
            bus::read_bus_config(YAML::Load(text), "bad.yaml");
        } catch (const bus::config_error& e) {
            return std::string(e.what());
        }
        return std::string();
    };
    CHECK(bad("rserver: stomp://h:1\nheartbeat-ms: -5\n").find("bad.yaml:2: heartbeat-ms") == 0);
    CHECK(bad("rserver: stomp://h:1\ndead-link-grace: 0.5\n").find("dead-link-grace") != std::string::npos);
    CHECK(bad("rserver: stomp://h:1\nlegacy-keepalive: {interval: 0, topics: [a]}\n").find("interval") !=
          std::string::npos);
    CHECK(bad("rserver: stomp://h:1\nsubscribe-headers: {\"a:b\": c}\n").find("subscribe-headers") !=
          std::string::npos);
    CHECK(bad("rserver: stomp://h:1\npublish-headers: [x]\n").find("publish-headers") != std::string::npos);
}
