// bus::session, the client's protocol state, driven with a fake clock and no sockets: frames
// in, actions out.
#include "bus/session.hpp"
#include "bus/stomp/parser.hpp"

#include <doctest/doctest.h>

#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using bus::close_cause;
using bus::publish_status;
using bus::session;
using bus::stomp::frame;

namespace {

const auto t0 = std::chrono::steady_clock::time_point{} + 1h;

bus::client_options options()
{
    bus::client_options o;
    o.url.endpoints.push_back(bus::endpoint{"127.0.0.1", 61613, false, "guest", "secret"});
    o.heartbeat_send = 0ms;
    o.heartbeat_receive = 0ms;
    o.synthetic_keepalive = 0ms;
    o.liveness_probe = 0ms;
    return o;
}

/// What the session wrote, as frames (heart-beats counted apart).
struct written {
    std::vector<frame> frames;
    int heartbeats = 0;
    const frame* find(std::string_view command, std::size_t nth = 0) const
    {
        for (auto& f : frames)
            if (f.command == command && nth-- == 0) return &f;
        return nullptr;
    }
    std::size_t count(std::string_view command) const
    {
        std::size_t n = 0;
        for (auto& f : frames) n += f.command == command;
        return n;
    }
};

written parse(const std::vector<std::string>& writes, bus::stomp::version v = bus::stomp::version::v1_2)
{
    written w;
    bus::stomp::parser p;
    p.set_version(v);
    std::string all;
    for (auto& s : writes) all += s;
    std::string_view in(all);
    while (!in.empty()) {
        std::error_code ec;
        auto used = p.put(in, ec);
        REQUIRE(!ec);
        in.remove_prefix(used);
        if (p.got() == bus::stomp::parser::item::heartbeat) ++w.heartbeats;
        else w.frames.push_back(p.release());
    }
    return w;
}

frame make(std::string command, std::vector<std::pair<std::string, std::string>> headers, std::string body = {})
{
    frame f(std::move(command));
    for (auto& [k, v] : headers) f.add(k, v);
    f.body = std::move(body);
    return f;
}

/// CONNECT and CONNECTED with `headers`; returns what on_connected asked for.
bus::session_actions connect(session& s, std::vector<std::pair<std::string, std::string>> headers,
                             std::chrono::steady_clock::time_point now = t0)
{
    auto bytes = s.begin(s.options().url.endpoints[0], now);
    REQUIRE(bytes.starts_with("CONNECT\n"));
    s.on_frame(make("CONNECTED", std::move(headers)), now);
    REQUIRE(s.connected());
    return s.take();
}

frame receipt(std::string_view id) { return make("RECEIPT", {{"receipt-id", std::string(id)}}); }

} // namespace

TEST_CASE("session - CONNECT carries credentials and the requested heart-beat")
{
    auto o = options();
    o.heartbeat_send = 30500ms;
    o.heartbeat_receive = 29500ms;
    o.vhost = "prod";
    session s(o);
    auto w = parse({s.begin(o.url.endpoints[0], t0)}, bus::stomp::version::v1_0);
    REQUIRE(w.frames.size() == 1);
    auto& c = w.frames[0];
    CHECK(c.get("accept-version") == "1.0,1.1,1.2");
    CHECK(c.get("host") == "prod");
    CHECK(c.get("heart-beat") == "30500,29500");
    CHECK(c.get("login") == "guest");
    CHECK(c.get("passcode") == "secret");
    CHECK(!s.connected());

    auto bad = o;
    bad.url.endpoints[0].passcode = "a\nb";
    session s2(bad);
    CHECK_THROWS_AS(s2.begin(bad.url.endpoints[0], t0), std::runtime_error);
}

TEST_CASE("session - ERROR instead of CONNECTED closes with the broker's reason")
{
    session s(options());
    s.begin(s.options().url.endpoints[0], t0);
    s.on_frame(make("ERROR", {{"message", "access refused"}}, "bad login"), t0);
    auto a = s.take();
    REQUIRE(a.close);
    CHECK(*a.close == close_cause::connect_refused);
    CHECK(a.close_reason == "broker refused CONNECT: access refused: bad login");
    CHECK(!s.connected());
}

TEST_CASE("session - a publish completes with its RECEIPT and a late one is unknown or not sent")
{
    session s(options());
    // Before CONNECTED nothing is written; the publish waits.
    auto t1 = s.publish(make("SEND", {{"destination", "/topic/a"}}, "one"), false);
    REQUIRE(!t1.result);
    CHECK(s.take().writes.empty());

    auto a = connect(s, {{"version", "1.2"}});
    auto w = parse(a.writes);
    REQUIRE(w.count("SEND") == 1);
    auto rid = std::string(w.find("SEND")->get("receipt"));
    CHECK(rid == "p-" + std::to_string(t1.seq));

    s.on_frame(receipt(rid), t0 + 1ms);
    a = s.take();
    REQUIRE(a.receipts.size() == 1);
    CHECK(a.receipts[0].seq == t1.seq);
    CHECK(a.receipts[0].result.status == publish_status::receipted);
    CHECK(s.pending() == 0);
    CHECK(s.stats().published == 1);

    // Written, never receipted: the broker may have it.
    auto t2 = s.publish(make("SEND", {{"destination", "/topic/a"}}, "two"), false);
    CHECK(parse(s.take().writes).count("SEND") == 1);
    auto r = s.expire(t2.seq);
    CHECK(r.status == publish_status::unknown);
    CHECK(r.error == bus::errc::receipt_timeout);
    CHECK(s.stats().publish_timeouts == 1);

    // Never written (disconnected): certainly not delivered.
    s.on_closed();
    auto t3 = s.publish(make("SEND", {{"destination", "/topic/a"}}, "three"), false);
    CHECK(s.expire(t3.seq).status == publish_status::not_sent);

    // Refused at once: stopping, or a header this protocol cannot carry.
    auto t4 = s.publish(make("SEND", {{"destination", "/topic/a"}}), true);
    REQUIRE(t4.result);
    CHECK(t4.result->status == publish_status::not_sent);
    CHECK(t4.result->error == bus::errc::stopped);
}

TEST_CASE("session - publishes past the send budget wait for the writes to drain")
{
    auto o = options();
    o.max_queued_bytes = 2000;
    session s(o);
    connect(s, {{"version", "1.2"}});
    auto p1 = s.publish(make("SEND", {{"destination", "/q/a"}}, std::string(1000, 'x')), false);
    auto p2 = s.publish(make("SEND", {{"destination", "/q/a"}}, std::string(1000, 'y')), false);
    auto a = s.take();
    CHECK(parse(a.writes).count("SEND") == 1);
    CHECK(!a.close);
    std::size_t n = 0;
    for (auto& b : a.writes) n += b.size();
    s.on_written(n, t0 + 1ms);
    a = s.take();
    auto w = parse(a.writes);
    REQUIRE(w.count("SEND") == 1);
    CHECK(w.find("SEND")->get("receipt") == "p-" + std::to_string(p2.seq));
    (void)p1;
}

TEST_CASE("session - ERROR naming a publish's receipt refuses that publish")
{
    session s(options());
    connect(s, {{"version", "1.2"}});
    auto p = s.publish(make("SEND", {{"destination", "/bad"}}), false);
    s.take();
    s.on_frame(make("ERROR", {{"message", "not allowed"}, {"receipt-id", "p-" + std::to_string(p.seq)}}), t0);
    auto a = s.take();
    REQUIRE(a.receipts.size() == 1);
    CHECK(a.receipts[0].result.status == publish_status::refused);
    CHECK(a.receipts[0].result.error == bus::errc::broker_error);
    REQUIRE(a.close);
    CHECK(*a.close == close_cause::broker_error);
    CHECK(s.last_error() == "not allowed");
}

TEST_CASE("session - an ERROR without receipt-id fails the oldest publish the second time only")
{
    session s(options());
    connect(s, {{"version", "1.2"}});
    auto p = s.publish(make("SEND", {{"destination", "/poison"}}), false);
    s.take();
    s.on_frame(make("ERROR", {{"message", "invalid destination"}}), t0);
    auto a = s.take();
    CHECK(a.receipts.empty());  // once: it may have been something else; resend
    REQUIRE(a.close);
    CHECK(*a.close == close_cause::broker_error);
    s.on_closed();

    a = connect(s, {{"version", "1.2"}});
    CHECK(parse(a.writes).count("SEND") == 1);
    CHECK(s.stats().resent == 1);
    s.on_frame(make("ERROR", {{"message", "invalid destination"}}), t0);
    a = s.take();
    REQUIRE(a.receipts.size() == 1);
    CHECK(a.receipts[0].seq == p.seq);
    CHECK(a.receipts[0].result.status == publish_status::refused);
}

TEST_CASE("session - an ERROR without receipt-id after an unconfirmed SUBSCRIBE is that subscription's refusal")
{
    session s(options());
    connect(s, {{"version", "1.2"}});
    auto id = s.subscribe({.destination = "/queue/down"}, t0);
    s.take();
    s.on_frame(make("ERROR", {{"message", "queue down"}}, "home node is down"), t0 + 10ms);
    auto a = s.take();
    REQUIRE(a.close);
    CHECK(*a.close == close_cause::subscription_refused);
    CHECK(a.close_reason == "broker refused SUBSCRIBE to /queue/down");
    CHECK(a.subscriptions_changed);
    auto st = s.subscription(id);
    CHECK(st.refusals == 1);
    CHECK(st.refused == "queue down: home node is down");
    CHECK(!st.permanent);
    CHECK(s.on_closed());  // reconnect at once, without it

    // ...but not when an older publish still awaits its receipt: that one is the culprit.
    session s2(options());
    connect(s2, {{"version", "1.2"}});
    s2.publish(make("SEND", {{"destination", "/x"}}), false);
    auto id2 = s2.subscribe({.destination = "/queue/b"}, t0);
    s2.take();
    s2.on_frame(make("ERROR", {{"message", "boom"}}), t0);
    auto a2 = s2.take();
    REQUIRE(a2.close);
    CHECK(*a2.close == close_cause::broker_error);
    CHECK(s2.subscription(id2).refusals == 0);
    CHECK(!s2.on_closed());
}

TEST_CASE("session - a refused subscription is retried on its own schedule while the others resubscribe at once")
{
    auto o = options();
    o.subscribe_retry_initial = 1000ms;
    o.subscribe_retry_max = 5000ms;
    session s(o);
    auto a_id = s.subscribe({.destination = "/queue/a", .id = "a"}, t0);
    auto b_id = s.subscribe({.destination = "/queue/b", .id = "b"}, t0);
    auto a = connect(s, {{"version", "1.2"}});
    auto w = parse(a.writes);
    REQUIRE(w.count("SUBSCRIBE") == 2);
    auto b_receipt = std::string(w.find("SUBSCRIBE", 1)->get("receipt"));
    CHECK(b_receipt == "s-1-b");
    s.on_frame(receipt("s-1-a"), t0);
    CHECK(s.subscribed(a_id));
    s.on_frame(make("ERROR", {{"message", "not_found"}, {"receipt-id", b_receipt}}), t0);
    a = s.take();
    REQUIRE(a.close);
    CHECK(*a.close == close_cause::subscription_refused);
    CHECK(s.on_closed());

    // The next connection subscribes `a` again and leaves `b` parked.
    a = connect(s, {{"version", "1.2"}}, t0 + 50ms);
    w = parse(a.writes);
    REQUIRE(w.count("SUBSCRIBE") == 1);
    CHECK(w.find("SUBSCRIBE")->get("id") == "a");
    CHECK(w.find("SUBSCRIBE")->get("receipt") == "s-2-a");
    CHECK(!s.subscribed(a_id));  // not yet confirmed on this connection
    CHECK(s.next_deadline(t0 + 50ms) <= t0 + 1000ms);
    s.on_tick(t0 + 999ms);
    CHECK(parse(s.take().writes).count("SUBSCRIBE") == 0);
    s.on_tick(t0 + 1000ms);
    w = parse(s.take().writes);
    REQUIRE(w.count("SUBSCRIBE") == 1);
    CHECK(w.find("SUBSCRIBE")->get("id") == "b");
    s.on_frame(receipt("s-2-b"), t0 + 1001ms);
    auto st = s.subscription(b_id);
    CHECK(st.confirmed);
    CHECK(st.refusals == 0);

    // A refusal that waiting will not change: a minute, and hopeless for wait_subscribed.
    s.on_frame(make("ERROR", {{"message", "access_refused"}, {"receipt-id", "s-2-a"}}), t0 + 2s);
    CHECK(s.subscription(a_id).permanent);
    CHECK(s.hopeless(a_id));
    CHECK(!s.hopeless(b_id));
}

TEST_CASE("session - every subscription and unreceipted publish is sent again after a reconnect")
{
    session s(options());
    auto id = s.subscribe({.destination = "/topic/x", .ack = bus::ack_mode::client_individual}, t0);
    auto a = connect(s, {{"version", "1.2"}});
    auto w = parse(a.writes);
    REQUIRE(w.count("SUBSCRIBE") == 1);
    CHECK(w.find("SUBSCRIBE")->get("ack") == "client-individual");
    CHECK(w.find("SUBSCRIBE")->get("prefetch-count") == "256");
    s.on_frame(receipt("s-1-" + id), t0);
    auto p = s.publish(make("SEND", {{"destination", "/topic/y"}}), false);
    s.on_frame(make("MESSAGE", {{"subscription", id}, {"message-id", "m1"}, {"ack", "a1"}, {"destination", "/topic/x"}}),
               t0);
    a = s.take();
    REQUIRE(a.deliveries.size() == 1);
    auto old = a.deliveries[0];
    CHECK(old.connection == 1);
    CHECK(!s.on_closed());

    a = connect(s, {{"version", "1.2"}});
    w = parse(a.writes);
    CHECK(w.count("SUBSCRIBE") == 1);
    CHECK(w.find("SUBSCRIBE")->get("receipt") == "s-2-" + id);
    REQUIRE(w.count("SEND") == 1);
    CHECK(w.find("SEND")->get("receipt") == "p-" + std::to_string(p.seq));
    CHECK(s.stats().resent == 1);
    CHECK(!s.subscribed(id));
    s.on_frame(receipt("s-2-" + id), t0);
    CHECK(s.subscribed(id));
    s.take();

    // A message of the old connection is not acknowledged (the broker redelivers it).
    s.acknowledge(old, bus::disposition::ack);
    a = s.take();
    CHECK(a.writes.empty());
    REQUIRE(a.notices.size() == 1);
    CHECK(a.notices[0].text.find("old connection") != std::string::npos);
}

TEST_CASE("session - ACK and NACK follow the negotiated version")
{
    auto msg = [](bus::session& s, const std::string& id) {
        s.on_frame(make("MESSAGE", {{"subscription", id}, {"message-id", "m7"}, {"ack", "a7"}, {"destination", "/q"}}),
                   t0);
        auto a = s.take();
        REQUIRE(a.deliveries.size() == 1);
        return a.deliveries[0];
    };
    {
        session s(options());
        auto id = s.subscribe({.destination = "/q"}, t0);
        connect(s, {{"version", "1.2"}});
        auto m = msg(s, id);
        s.acknowledge(m, bus::disposition::nack);
        auto w = parse(s.take().writes);
        REQUIRE(w.count("NACK") == 1);
        CHECK(w.find("NACK")->get("id") == "a7");
        s.acknowledge(m, bus::disposition::leave);
        CHECK(s.take().writes.empty());
    }
    {
        session s(options());
        auto id = s.subscribe({.destination = "/q"}, t0);
        connect(s, {{"version", "1.1"}});
        auto m = msg(s, id);
        s.acknowledge(m, bus::disposition::ack);
        auto w = parse(s.take().writes, bus::stomp::version::v1_1);
        REQUIRE(w.count("ACK") == 1);
        CHECK(w.find("ACK")->get("message-id") == "m7");
        CHECK(w.find("ACK")->get("subscription") == id);
    }
    {
        session s(options());
        auto id = s.subscribe({.destination = "/q"}, t0);
        connect(s, {});  // no version header: STOMP 1.0
        auto m = msg(s, id);
        s.acknowledge(m, bus::disposition::nack);  // 1.0 has no NACK
        auto a = s.take();
        CHECK(a.writes.empty());
        REQUIRE(a.notices.size() == 1);
        CHECK(a.notices[0].lvl == bus::session_notice::level::warn);
        // Unsubscribed: no ACK either (RabbitMQ would answer it with ERROR).
        s.unsubscribe(id);
        auto w = parse(s.take().writes, bus::stomp::version::v1_0);
        REQUIRE(w.count("UNSUBSCRIBE") == 1);
        CHECK(w.find("UNSUBSCRIBE")->get("destination") == "/q");
        s.acknowledge(m, bus::disposition::ack);
        CHECK(s.take().writes.empty());
    }
}

TEST_CASE("session - MESSAGE matching and the original's keepalive")
{
    session s(options());
    auto auto_id = s.subscribe({.destination = "/topic/auto", .ack = bus::ack_mode::automatic}, t0);
    auto client_id = s.subscribe({.destination = "/topic/client", .ack = bus::ack_mode::client}, t0);
    connect(s, {});
    // 1.0 brokers may omit `subscription`: matched by destination.
    s.on_frame(make("MESSAGE", {{"destination", "/topic/client"}, {"message-id", "1"}}, "hello"), t0);
    // The "\n" keepalive: dropped in auto mode, passed on (to be acked in order) otherwise.
    s.on_frame(make("MESSAGE", {{"destination", "/topic/auto"}, {"subscription", auto_id}}, "\n"), t0);
    s.on_frame(make("MESSAGE", {{"destination", "/topic/client"}, {"subscription", client_id}}, "\n"), t0);
    // A removed subscription's message is dropped.
    s.on_frame(make("MESSAGE", {{"destination", "/topic/client"}, {"subscription", "gone"}}), t0);
    auto a = s.take();
    REQUIRE(a.deliveries.size() == 2);
    CHECK(a.deliveries[0].subscription == client_id);
    CHECK(a.deliveries[0].body() == "hello");
    CHECK(!a.deliveries[0].keepalive);
    CHECK(a.deliveries[1].keepalive);
    CHECK(s.stats().keepalives_dropped == 2);
    CHECK(!a.close);
}

TEST_CASE("session - negotiated heart-beats are sent when idle and silence past the grace is a dead link")
{
    auto o = options();
    o.heartbeat_send = 4000ms;
    o.heartbeat_receive = 5000ms;
    o.dead_link_grace = 2.0;
    session s(o);
    connect(s, {{"version", "1.2"}, {"heart-beat", "6000,3000"}});
    // We send every max(4000, 3000) = 4000 ms, a tenth early; the broker promised 6000 ms.
    CHECK(s.next_deadline(t0) == t0 + 1000ms);  // ticks are capped at a second
    s.on_tick(t0 + 3599ms);
    CHECK(s.take().writes.empty());
    s.on_tick(t0 + 3600ms);
    auto a = s.take();
    REQUIRE(a.writes.size() == 1);
    CHECK(a.writes[0] == "\n");
    s.on_written(1, t0 + 3600ms);
    CHECK(s.stats().heartbeats_out == 1);
    s.on_heartbeat(t0 + 6000ms);
    CHECK(s.stats().heartbeats_in == 1);
    s.on_tick(t0 + 17999ms);
    CHECK(!s.take().close);
    s.on_tick(t0 + 18000ms);  // 6000 + 2 * 6000
    a = s.take();
    REQUIRE(a.close);
    CHECK(*a.close == close_cause::dead_link);
    CHECK(s.stats().dead_connections == 1);
}

TEST_CASE("session - paused delivery is not the broker's silence")
{
    auto o = options();
    o.heartbeat_receive = 1000ms;
    o.dead_link_grace = 2.0;
    session s(o);
    connect(s, {{"version", "1.2"}, {"heart-beat", "1000,0"}});
    s.set_paused(true, t0 + 100ms);
    s.on_tick(t0 + 10s);
    CHECK(!s.take().close);
    s.set_paused(false, t0 + 10s);
    s.on_tick(t0 + 11s);
    CHECK(!s.take().close);
    s.on_tick(t0 + 12s);
    CHECK(s.take().close);
}

TEST_CASE("session - on STOMP 1.0 a silent broker is probed and no answer is a dead link")
{
    auto o = options();
    o.synthetic_keepalive = 1000ms;
    o.liveness_probe = 5000ms;
    o.probe_timeout = 2000ms;
    session s(o);
    auto a = connect(s, {{"heart-beat", "0,0"}});  // 1.0: heart-beat ignored anyway
    CHECK(a.notices.size() == 1);
    CHECK(a.notices[0].text.find("probing silence") != std::string::npos);
    // The synthetic keepalive keeps the flow busy for firewalls...
    s.on_tick(t0 + 1000ms);
    a = s.take();
    REQUIRE(a.writes.size() == 1);
    CHECK(a.writes[0] == "\n");
    s.on_written(1, t0 + 1000ms);
    // ...and after 5 s of silence from the broker, a receipt-requesting BEGIN/ABORT.
    s.on_tick(t0 + 5000ms);
    auto w = parse(s.take().writes, bus::stomp::version::v1_0);
    REQUIRE(w.count("BEGIN") == 1);
    REQUIRE(w.count("ABORT") == 1);
    auto tx = std::string(w.find("BEGIN")->get("receipt"));
    CHECK(tx == w.find("BEGIN")->get("transaction"));
    CHECK(s.stats().probes == 1);
    // Answered: alive.
    s.on_frame(receipt(tx), t0 + 5100ms);
    s.on_tick(t0 + 7100ms);
    CHECK(!s.take().close);
    // The next probe goes unanswered.
    s.on_tick(t0 + 10100ms);
    w = parse(s.take().writes, bus::stomp::version::v1_0);
    CHECK(w.count("BEGIN") == 1);
    s.on_tick(t0 + 12099ms);
    CHECK(!s.take().close);
    s.on_tick(t0 + 12100ms);
    a = s.take();
    REQUIRE(a.close);
    CHECK(*a.close == close_cause::dead_link);
}

TEST_CASE("session - the original's legacy keepalive SEND goes out on its own interval")
{
    auto o = options();
    o.legacy_keepalives.push_back({"/topic/keepalive", 60000ms});
    session s(o);
    connect(s, {{"version", "1.2"}});
    CHECK(s.next_deadline(t0 + 59500ms) == t0 + 60000ms);
    s.on_tick(t0 + 60000ms);
    auto w = parse(s.take().writes);
    REQUIRE(w.count("SEND") == 1);
    CHECK(w.find("SEND")->get("destination") == "/topic/keepalive");
    CHECK(w.find("SEND")->body == "\n");
}

TEST_CASE("session - DISCONNECT is the last frame and its receipt is reported")
{
    session s(options());
    connect(s, {{"version", "1.2"}});
    s.disconnect();
    auto w = parse(s.take().writes);
    REQUIRE(w.count("DISCONNECT") == 1);
    CHECK(w.find("DISCONNECT")->get("receipt") == "d-1");
    s.publish(make("SEND", {{"destination", "/late"}}), false);
    CHECK(s.take().writes.empty());
    s.on_frame(receipt("d-1"), t0);
    CHECK(s.take().disconnect_receipted);
    s.fail_all(bus::errc::stopped);
    auto a = s.take();
    REQUIRE(a.receipts.size() == 1);
    CHECK(a.receipts[0].result.status == publish_status::not_sent);  // never written after DISCONNECT
}

TEST_CASE("session - more unwritten bytes than the budget close the connection")
{
    auto o = options();
    o.max_queued_bytes = 600;
    session s(o);
    auto id = s.subscribe({.destination = "/q", .ack = bus::ack_mode::client}, t0);
    connect(s, {{"version", "1.2"}});
    std::optional<close_cause> closed;
    int acks = 0;
    for (int i = 0; i < 100 && !closed; ++i) {
        s.on_frame(make("MESSAGE", {{"subscription", id}, {"message-id", std::to_string(i)}, {"ack", std::to_string(i)},
                                     {"destination", "/q"}}),
                   t0);
        for (auto& m : s.take().deliveries) s.acknowledge(m, bus::disposition::ack);
        auto a = s.take();
        acks += static_cast<int>(a.writes.size());
        closed = a.close;
    }
    REQUIRE(closed);
    CHECK(*closed == close_cause::send_queue_full);
    CHECK(acks > 10);  // the writer never drained: the budget, not the first ACK, ended it
}

TEST_CASE("session - an unexpected frame is a protocol error")
{
    session s(options());
    s.begin(s.options().url.endpoints[0], t0);
    s.on_frame(make("MESSAGE", {}), t0);
    auto a = s.take();
    REQUIRE(a.close);
    CHECK(*a.close == close_cause::protocol);
    CHECK(a.close_reason == "expected CONNECTED, got MESSAGE");
    s.on_closed();
    connect(s, {{"version", "1.2"}});
    s.on_frame(make("CONNECTED", {}), t0);
    a = s.take();
    REQUIRE(a.close);
    CHECK(*a.close == close_cause::protocol);
    CHECK(s.stats().protocol_errors == 1);
}
