#include "bus/backoff.hpp"
#include "bus/numeric.hpp"
#include "bus/url.hpp"

#include <doctest/doctest.h>

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>

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

// ---- bus/numeric.hpp: rounding and powers without libm ---------------------------------------

TEST_CASE("numeric - round_half_away and round_to_int64 agree with std::round and std::llround")
{
    const double specials[] = {0.0, -0.0, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 0.49999999999999994, -0.49999999999999994,
                               4503599627370495.5, -4503599627370495.5, 0x1p52, 0x1p52 + 1, 0x1p62, -0x1p62,
                               1e-310, 123456.499999, 86400000.5, 1.0 / 3.0};
    for (double x : specials) {
        CAPTURE(x);
        CHECK(bus::round_half_away(x) == std::round(x));
        CHECK(bus::round_to_int64(x) == std::llround(x));
    }
    std::mt19937_64 rng(20261205);
    std::uniform_real_distribution<double> small(-1e6, 1e6);
    for (int i = 0; i < 200000; ++i) {
        // halves and near-halves on a fine grid, and arbitrary values across the whole range
        double x = i % 2 ? small(rng) : std::ldexp(static_cast<double>(static_cast<std::int64_t>(rng() >> 1)), -(i % 70));
        CAPTURE(x);
        REQUIRE(bus::round_half_away(x) == std::round(x));
        if (std::fabs(x) < 0x1p62) REQUIRE(bus::round_to_int64(x) == std::llround(x));
    }
}

TEST_CASE("numeric - round_to_int64 saturates where std::llround is undefined")
{
    CHECK(bus::round_to_int64(1e300) == std::numeric_limits<std::int64_t>::max());
    CHECK(bus::round_to_int64(-1e300) == std::numeric_limits<std::int64_t>::min());
    CHECK(bus::round_to_int64(std::numeric_limits<double>::infinity()) == std::numeric_limits<std::int64_t>::max());
    CHECK(bus::round_to_int64(std::numeric_limits<double>::quiet_NaN()) == 0);
    CHECK(bus::round_to_int64(-0x1p63) == std::numeric_limits<std::int64_t>::min());
    CHECK(bus::round_half_away(std::numeric_limits<double>::infinity()) == std::numeric_limits<double>::infinity());
    CHECK(std::isnan(bus::round_half_away(std::numeric_limits<double>::quiet_NaN())));
    static_assert(bus::round_to_int64(2.5) == 3 && bus::round_to_int64(-2.5) == -3);
}

TEST_CASE("numeric - pow_int matches std::pow for the back-off exponents")
{
    for (unsigned n = 0; n <= 62; ++n) CHECK(bus::pow_int(2.0, n) == std::pow(2.0, n));
    for (unsigned n = 0; n <= 20; ++n) CHECK(bus::pow_int(1.5, n) == doctest::Approx(std::pow(1.5, n)).epsilon(1e-15));
    CHECK(bus::pow_int(7.0, 0) == 1.0);
}

TEST_CASE("numeric - parse_decimal reads what std::from_chars reads and nothing around it")
{
    const char* good[] = {"0", "-0", "30", "0.5", ".5", "5.", "-2.25", "1e3", "1E-3", "2.5e+2", "86400000",
                          "0.1", "123456789012345678901234567890", "4.9406564584124654e-324", "1.7976931348623157e308"};
    for (const char* t : good) {
        CAPTURE(t);
        double want = 0;
        std::string_view s(t);
        auto r = std::from_chars(s.data(), s.data() + s.size(), want);
        REQUIRE(r.ptr == s.data() + s.size());
        auto got = bus::parse_decimal(s);
        REQUIRE(got);
        CHECK(*got == want);
    }
    const char* bad[] = {"", "-", ".", "e5", "1e", "1e+", " 1", "1 ", "+1", "0x10", "1,5", "inf", "nan", "-inf",
                         "1..2", "1e400", "--1", "١"};
    for (const char* t : bad) {
        CAPTURE(t);
        CHECK_FALSE(bus::parse_decimal(t));
    }
    // Correct rounding on random digit strings, against libstdc++'s from_chars.
    std::mt19937_64 rng(7);
    for (int i = 0; i < 20000; ++i) {
        std::string t = std::to_string(rng() % 1000000007) + "." + std::to_string(rng()) + "e" +
                        std::to_string(static_cast<int>(rng() % 600) - 300);
        double want = 0;
        auto r = std::from_chars(t.data(), t.data() + t.size(), want);
        auto got = bus::parse_decimal(t);
        CAPTURE(t);
        if (r.ec == std::errc{} && std::isfinite(want)) {
            REQUIRE(got);
            REQUIRE(*got == want);
        } else {
            REQUIRE_FALSE(got);
        }
    }
}
