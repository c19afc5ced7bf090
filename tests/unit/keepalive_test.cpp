#include "bus/keepalive.hpp"

#include <doctest/doctest.h>

using namespace std::chrono_literals;
using bus::keepalive_action;

TEST_CASE("heart-beat negotiation follows STOMP 1.1")
{
    auto hb = bus::negotiate_heartbeat(10000ms, 10000ms, 0ms, 0ms);
    CHECK(hb.send == 0ms);
    CHECK(hb.receive == 0ms);
    hb = bus::negotiate_heartbeat(10000ms, 5000ms, 20000ms, 3000ms);
    CHECK(hb.send == 10000ms);
    CHECK(hb.receive == 20000ms);
    hb = bus::negotiate_heartbeat(0ms, 5000ms, 1000ms, 1000ms);
    CHECK(hb.send == 0ms);
    CHECK(hb.receive == 5000ms);
    std::chrono::milliseconds x, y;
    CHECK(bus::parse_heartbeat_header("30500,29500", x, y));
    CHECK(x == 30500ms);
    CHECK(y == 29500ms);
    CHECK(!bus::parse_heartbeat_header("abc", x, y));
    CHECK(x == 0ms);
}

TEST_CASE("negotiated heart-beats - send when idle / dead after grace")
{
    bus::keepalive_config c;
    c.send_every = 1000ms;
    c.expect_every = 2000ms;
    c.grace = 2.0;
    auto t0 = std::chrono::steady_clock::time_point{} + 1h;
    bus::keepalive k(c, t0);
    CHECK(k.next_deadline() == t0 + 1000ms);
    CHECK(k.on_tick(t0 + 999ms) == keepalive_action::none);
    CHECK(k.on_tick(t0 + 1000ms) == keepalive_action::send_heartbeat);
    k.on_tx(t0 + 1000ms);
    CHECK(k.on_tick(t0 + 1500ms) == keepalive_action::none);
    k.on_rx(t0 + 1500ms);
    k.on_tx(t0 + 2000ms);
    CHECK(k.on_tick(t0 + 5499ms) == keepalive_action::send_heartbeat);
    k.on_tx(t0 + 5499ms);
    CHECK(k.on_tick(t0 + 5500ms) == keepalive_action::dead);
    bus::keepalive dflt({.expect_every = 1000ms}, t0);
    CHECK(dflt.on_tick(t0 + 2999ms) == keepalive_action::none);
    CHECK(dflt.on_tick(t0 + 3000ms) == keepalive_action::dead);
}

TEST_CASE("1.0 - synthetic keepalive and silence probe")
{
    bus::keepalive_config c;
    c.send_every = 10s;
    c.probe_after = 30s;
    c.probe_timeout = 5s;
    auto t0 = std::chrono::steady_clock::time_point{} + 1h;
    bus::keepalive k(c, t0);
    CHECK(k.on_tick(t0 + 10s) == keepalive_action::send_heartbeat);
    k.on_tx(t0 + 10s);
    k.on_tx(t0 + 20s);
    CHECK(k.next_deadline() == t0 + 30s);
    CHECK(k.on_tick(t0 + 30s) == keepalive_action::send_probe);
    k.on_tx(t0 + 30s);
    CHECK(k.next_deadline() == t0 + 35s);
    CHECK(k.on_tick(t0 + 34s) == keepalive_action::none);
    k.on_rx(t0 + 34s);  // the receipt came back
    CHECK(k.on_tick(t0 + 35s) == keepalive_action::none);
    CHECK(k.on_tick(t0 + 64s) == keepalive_action::send_probe);
    CHECK(k.on_tick(t0 + 69s) == keepalive_action::dead);
}

TEST_CASE("paused reading is not silence")
{
    bus::keepalive_config c;
    c.expect_every = 1s;
    auto t0 = std::chrono::steady_clock::time_point{} + 1h;
    bus::keepalive k(c, t0);
    k.set_paused(true, t0);
    CHECK(k.on_tick(t0 + 10s) == keepalive_action::none);
    k.set_paused(false, t0 + 10s);
    CHECK(k.on_tick(t0 + 11s) == keepalive_action::none);
    CHECK(k.on_tick(t0 + 12s) == keepalive_action::none);
    CHECK(k.on_tick(t0 + 13s) == keepalive_action::dead);
}
