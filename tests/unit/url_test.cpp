#include "bus/backoff.hpp"
#include "bus/url.hpp"

#include <doctest/doctest.h>

using namespace std::chrono_literals;

TEST_CASE("the original's failover rserver and stomp-options")
{
    auto u = bus::parse_broker_url(
        "failover://(stomp://gitbot:s%40cret@broker01:61613,stomp://gitbot:pw@broker02:61614)",
        "initialReconnectDelay=0.01&randomize=false&useExponentialBackOff=true&MaxReconnectDelay=30"
        "&BackOffMultiplier=2&MaxReconnectAttempts=0&Backup=false&Timeout=-1");
    REQUIRE(u.endpoints.size() == 2);
    CHECK(u.endpoints[0].host == "broker01");
    CHECK(u.endpoints[0].port == 61613);
    CHECK(u.endpoints[0].login == "gitbot");
    CHECK(u.endpoints[0].passcode == "s@cret");
    CHECK(u.endpoints[1].port == 61614);
    CHECK(u.endpoints[0].display() == "stomp://broker01:61613");
    CHECK(u.reconnect.initial_delay == 10ms);   // 0.01 ms floored to 10 ms
    CHECK(u.reconnect.max_delay == 30000ms);    // capitalised: seconds, as shipped
    CHECK(u.reconnect.multiplier == 2.0);
    CHECK(u.reconnect.max_attempts == 0);
    CHECK(!u.reconnect.randomize);
    CHECK(u.reconnect.exponential);
    CHECK(u.notes.size() == 2);  // Backup, Timeout
}

TEST_CASE("lower-camel delays are milliseconds")
{
    auto u = bus::parse_broker_url("failover:(stomp://h1:1,stomp+ssl://h2)?maxReconnectDelay=5000"
                                   "&initialReconnectDelay=100&maxReconnectAttempts=3&randomize=true");
    CHECK(u.reconnect.max_delay == 5000ms);
    CHECK(u.reconnect.initial_delay == 100ms);
    CHECK(u.reconnect.max_attempts == 3);
    CHECK(u.reconnect.randomize);
    CHECK(u.endpoints[1].tls);
    CHECK(u.endpoints[1].port == 61614);
}

TEST_CASE("single URLs / IPv6 and errors")
{
    auto u = bus::parse_broker_url("stomp://[::1]:61613");
    CHECK(u.endpoints[0].host == "::1");
    CHECK(u.endpoints[0].display() == "stomp://[::1]:61613");
    CHECK(bus::parse_broker_url("stomp://localhost").endpoints[0].port == 61613);
    CHECK_THROWS_AS(bus::parse_broker_url("http://x"), bus::config_error);
    CHECK_THROWS_AS(bus::parse_broker_url("stomp://h:0"), bus::config_error);
    CHECK_THROWS_AS(bus::parse_broker_url("stomp://h:99999"), bus::config_error);
    CHECK_THROWS_AS(bus::parse_broker_url("failover://(stomp://h"), bus::config_error);
    CHECK_THROWS_AS(bus::parse_broker_url("failover://()"), bus::config_error);
    CHECK_THROWS_AS(bus::parse_broker_url("stomp://h", "randomize=maybe"), bus::config_error);
    CHECK_THROWS_AS(bus::parse_broker_url("stomp://h", "maxReconnectDelay=abc"), bus::config_error);
    CHECK_THROWS_AS(bus::parse_broker_url("stomp://u:%zz@h"), bus::config_error);
    // The message never repeats the password.
    try {
        bus::parse_broker_url("ftp://user:hunter2@h");
    } catch (const bus::config_error& e) {
        CHECK(std::string(e.what()).find("hunter2") == std::string::npos);
    }
}

TEST_CASE("backoff grows / caps / rotates / resets")
{
    bus::reconnect_policy p;
    p.initial_delay = 100ms;
    p.max_delay = 1000ms;
    p.multiplier = 2;
    p.jitter = 0;
    bus::backoff b(p, 2, 1);
    CHECK(b.endpoint() == 0);
    CHECK(b.failed() == 100ms);
    CHECK(b.endpoint() == 1);
    CHECK(b.failed() == 200ms);
    CHECK(b.endpoint() == 0);
    CHECK(b.failed() == 400ms);
    CHECK(b.failed() == 800ms);
    CHECK(b.failed() == 1000ms);
    CHECK(b.failed() == 1000ms);
    CHECK(!b.exhausted());
    b.reset();
    CHECK(b.failed() == 100ms);
}

TEST_CASE("backoff jitter stays within bounds and attempts are bounded")
{
    bus::reconnect_policy p;
    p.initial_delay = 1000ms;
    p.max_delay = 1000ms;
    p.jitter = 0.5;
    p.max_attempts = 3;
    bus::backoff b(p, 1, 42);
    for (int i = 0; i < 3; ++i) {
        auto d = b.failed();
        CHECK(d >= 500ms);
        CHECK(d <= 1000ms);
    }
    CHECK(b.exhausted());
}
