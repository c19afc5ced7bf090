// The embedded broker's core, without sockets: frames in, actions out.
#include "auth.hpp"
#include "broker.hpp"
#include "config.hpp"
#include "journal.hpp"

#include "bus/runtime/config_reader.hpp"
#include "bus/url.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <random>

using namespace broker;
using bus::stomp::frame;

namespace {

frame make(std::string cmd, std::vector<std::pair<std::string, std::string>> headers, std::string body = {})
{
    frame f(std::move(cmd));
    f.headers = std::move(headers);
    f.body = std::move(body);
    return f;
}

struct harness {
    broker_core core;
    actions out;
    explicit harness(core_options o = {}, authorizer a = {}) : core(o, std::move(a)) {}

    session_id connect(std::string version = "1.2", std::vector<std::pair<std::string, std::string>> extra = {})
    {
        auto s = core.open();
        extra.insert(extra.begin(), {"accept-version", version});
        core.on_frame(s, make("CONNECT", extra), out);
        REQUIRE(!out.frames.empty());
        REQUIRE(out.frames.back().frame.command == "CONNECTED");
        out.clear();
        return s;
    }
    std::vector<frame> to(session_id s)
    {
        std::vector<frame> r;
        for (auto& f : out.frames)
            if (f.to == s) r.push_back(f.frame);
        return r;
    }
    void send(session_id s, frame f)
    {
        out.clear();
        core.on_frame(s, std::move(f), out);
    }
};

} // namespace

TEST_CASE("broker - CONNECT negotiates the version and refuses what it cannot speak")
{
    harness h;
    auto s = h.core.open();
    h.send(s, make("CONNECT", {{"accept-version", "1.0,1.1,1.2"}, {"heart-beat", "1000,2000"}}));
    auto c = h.to(s).at(0);
    CHECK(c.command == "CONNECTED");
    CHECK(c.get("version") == "1.2");
    CHECK(c.get("heart-beat") == "2000,1000");
    CHECK(!c.get("server").empty());
    auto hb = h.core.heartbeat(s);
    CHECK(hb->send_ms == 2000);
    CHECK(hb->expect_ms == 1000);

    auto plain = h.core.open();
    h.send(plain, make("CONNECT", {{"login", "x"}}));
    CHECK(h.to(plain).at(0).get("version") == "1.0");  // a 1.0 client gets a 1.0 answer
    CHECK(h.core.version(plain) == bus::stomp::version::v1_0);

    auto old = h.core.open();
    h.send(old, make("CONNECT", {{"accept-version", "2.0"}}));
    CHECK(h.to(old).at(0).command == "ERROR");
    CHECK(h.out.close == std::vector<session_id>{old});

    auto early = h.core.open();
    h.send(early, make("SEND", {{"destination", "/queue/a"}}));
    CHECK(h.to(early).at(0).command == "ERROR");
}

TEST_CASE("broker - topic fan-out and queue round-robin with receipts")
{
    harness h;
    auto a = h.connect(), b = h.connect(), p = h.connect();
    h.send(a, make("SUBSCRIBE", {{"destination", "/topic/t"}, {"id", "1"}, {"receipt", "r1"}}));
    CHECK(h.to(a).at(0).get("receipt-id") == "r1");
    h.send(b, make("SUBSCRIBE", {{"destination", "/topic/t"}, {"id", "1"}}));
    h.send(p, make("SEND", {{"destination", "/topic/t"}, {"receipt", "s1"}, {"x-h", "v"}}, "hello"));
    CHECK(h.to(p).at(0).command == "RECEIPT");
    for (auto s : {a, b}) {
        auto m = h.to(s).at(0);
        CHECK(m.command == "MESSAGE");
        CHECK(m.get("subscription") == "1");
        CHECK(m.get("destination") == "/topic/t");
        CHECK(m.get("x-h") == "v");
        CHECK(!m.get("message-id").empty());
        CHECK(!m.find("receipt"));
        CHECK(m.body == "hello");
    }
    // Queue: kept until a consumer comes, then shared round-robin.
    h.send(p, make("SEND", {{"destination", "/queue/q"}}, "early"));
    h.send(a, make("SUBSCRIBE", {{"destination", "/queue/q"}, {"id", "q"}}));
    CHECK(h.to(a).at(0).body == "early");
    h.send(b, make("SUBSCRIBE", {{"destination", "/queue/q"}, {"id", "q"}}));
    int got_a = 0, got_b = 0;
    for (int i = 0; i < 10; ++i) {
        h.send(p, make("SEND", {{"destination", "/queue/q"}}, std::to_string(i)));
        got_a += static_cast<int>(h.to(a).size());
        got_b += static_cast<int>(h.to(b).size());
    }
    CHECK(got_a + got_b == 10);
    CHECK(got_a == 5);
}

TEST_CASE("broker - client-individual acks - a dead consumer's messages are redelivered")
{
    harness h;
    auto a = h.connect(), b = h.connect(), p = h.connect();
    h.send(a, make("SUBSCRIBE", {{"destination", "/queue/w"}, {"id", "s"}, {"ack", "client-individual"}}));
    h.send(p, make("SEND", {{"destination", "/queue/w"}}, "one"));
    auto m1 = h.to(a).at(0);
    h.send(p, make("SEND", {{"destination", "/queue/w"}}, "two"));
    auto m2 = h.to(a).at(0);
    h.send(a, make("ACK", {{"id", std::string(m2.get("ack"))}}));
    CHECK(h.out.frames.empty());
    h.out.clear();
    h.core.close(a, h.out);
    h.send(b, make("SUBSCRIBE", {{"destination", "/queue/w"}, {"id", "s"}, {"ack", "client-individual"}}));
    auto again = h.to(b);
    REQUIRE(again.size() == 1);
    CHECK(again[0].body == "one");
    CHECK(again[0].get("redelivered") == "true");
    // NACK puts it back at once.
    h.send(b, make("NACK", {{"id", std::string(again[0].get("ack"))}}));
    auto third = h.to(b);
    REQUIRE(third.size() == 1);
    CHECK(third[0].body == "one");
    // An ACK for nothing is an error.
    h.send(b, make("ACK", {{"id", "bogus"}, {"receipt", "rx"}}));
    CHECK(h.to(b).at(0).command == "ERROR");
    CHECK(h.to(b).at(0).get("receipt-id") == "rx");
}

TEST_CASE("broker - cumulative client ack on 1.1 by message-id")
{
    harness h;
    auto a = h.connect("1.1"), p = h.connect();
    h.send(a, make("SUBSCRIBE", {{"destination", "/queue/c"}, {"id", "s"}, {"ack", "client"}}));
    std::vector<frame> ms;
    for (int i = 0; i < 3; ++i) {
        h.send(p, make("SEND", {{"destination", "/queue/c"}}, std::to_string(i)));
        ms.push_back(h.to(a).at(0));
    }
    h.send(a, make("ACK", {{"message-id", std::string(ms[1].get("message-id"))}, {"subscription", "s"}}));
    auto q = h.core.queues();
    auto it = std::find_if(q.begin(), q.end(), [](auto& i) { return i.name == "/queue/c"; });
    REQUIRE(it != q.end());
    CHECK(it->in_flight == 1);  // 0 and 1 acked together
}

TEST_CASE("broker - durable subscriptions in RabbitMQ and ActiveMQ style catch up")
{
    harness h;
    auto p = h.connect();
    auto rmq = h.connect();
    h.send(rmq, make("SUBSCRIBE", {{"destination", "/topic/d"}, {"id", "web01"}, {"durable", "true"},
                                   {"auto-delete", "false"}, {"ack", "client-individual"}}));
    REQUIRE(!h.out.persist.empty());
    CHECK(h.out.persist[0].what == journal_record::kind::bind);
    auto amq = h.connect("1.2", {{"client-id", "host2"}});
    h.send(amq, make("SUBSCRIBE", {{"destination", "/topic/d"}, {"id", "x"}, {"activemq.subscriptionName", "git"}}));
    h.out.clear();
    h.core.close(rmq, h.out);
    h.core.close(amq, h.out);
    h.send(p, make("SEND", {{"destination", "/topic/d"}, {"persistent", "true"}, {"receipt", "r"}}, "while away"));
    CHECK(h.out.persist.size() == 2);  // one per durable subscription
    REQUIRE(h.out.after_persist.size() == 1);
    CHECK(h.out.after_persist[0].frame.command == "RECEIPT");  // only after the journal has it
    auto back = h.connect();
    h.send(back, make("SUBSCRIBE", {{"destination", "/topic/d"}, {"id", "web01"}, {"durable", "true"},
                                    {"auto-delete", "false"}}));
    CHECK(h.to(back).at(0).body == "while away");
    auto back2 = h.connect("1.2", {{"client-id", "host2"}});
    h.send(back2, make("SUBSCRIBE", {{"destination", "/topic/d"}, {"id", "y"}, {"activemq.subscriptionName", "git"}}));
    CHECK(h.to(back2).at(0).body == "while away");
    // Without client-id an ActiveMQ-style durable subscription is refused.
    auto anon = h.connect();
    h.send(anon, make("SUBSCRIBE", {{"destination", "/topic/d"}, {"id", "z"}, {"activemq.subscriptionName", "n"}}));
    CHECK(h.to(anon).at(0).command == "ERROR");
}

TEST_CASE("broker - transactions / the liveness probe and DISCONNECT")
{
    harness h;
    auto a = h.connect(), p = h.connect();
    h.send(a, make("SUBSCRIBE", {{"destination", "/queue/tx"}, {"id", "s"}}));
    h.send(p, make("BEGIN", {{"transaction", "t1"}, {"receipt", "b"}}));
    CHECK(h.to(p).at(0).get("receipt-id") == "b");
    h.send(p, make("SEND", {{"destination", "/queue/tx"}, {"transaction", "t1"}}, "in tx"));
    CHECK(h.to(a).empty());
    h.send(p, make("COMMIT", {{"transaction", "t1"}}));
    CHECK(h.to(a).at(0).body == "in tx");
    h.send(p, make("BEGIN", {{"transaction", "ka-1"}, {"receipt", "ka-1"}}));  // libbus's 1.0 probe
    CHECK(h.to(p).at(0).get("receipt-id") == "ka-1");
    h.send(p, make("SEND", {{"destination", "/queue/tx"}, {"transaction", "ka-1"}}, "aborted"));
    h.send(p, make("ABORT", {{"transaction", "ka-1"}}));
    CHECK(h.to(a).empty());
    h.send(p, make("DISCONNECT", {{"receipt", "bye"}}));
    CHECK(h.to(p).at(0).get("receipt-id") == "bye");
    CHECK(h.out.close == std::vector<session_id>{p});
}

TEST_CASE("broker - bad destinations / permissions / full queues and slow topic subscribers")
{
    access_policy pol;
    pol.anonymous = false;
    pol.users["gitbot"] = user{hash_password("secret", 1000), {"/topic/future.*"}, {"/topic/future.git.commits"}};
    core_options o;
    o.max_queue_depth = 2;
    o.transient_topic_depth = 3;
    harness h(o, pol.make_authorizer());
    auto bad = h.core.open();
    h.send(bad, make("CONNECT", {{"accept-version", "1.2"}, {"login", "gitbot"}, {"passcode", "wrong"}}));
    CHECK(h.to(bad).at(0).command == "ERROR");
    CHECK(h.core.stats().auth_failures == 1);
    auto g = h.connect("1.2", {{"login", "gitbot"}, {"passcode", "secret"}});
    h.send(g, make("SEND", {{"destination", "/topic/a/b"}, {"receipt", "r"}}));
    CHECK(h.to(g).at(0).command == "ERROR");
    CHECK(h.to(g).at(0).get("receipt-id") == "r");
    g = h.connect("1.2", {{"login", "gitbot"}, {"passcode", "secret"}});
    h.send(g, make("SUBSCRIBE", {{"destination", "q"}, {"id", "1"}}));  // found by the fuzzer: short names
    CHECK(h.to(g).at(0).get("message") == "Invalid destination");
    g = h.connect("1.2", {{"login", "gitbot"}, {"passcode", "secret"}});
    h.send(g, make("SEND", {{"destination", "/topic/future.jenkins.cake"}}));
    CHECK(h.to(g).at(0).get("message") == "Access refused");
    CHECK(h.core.stats().denied == 1);

    o.block_when_full = false;
    harness q(o);
    auto p = q.connect();
    q.send(p, make("SEND", {{"destination", "/queue/full"}}, "1"));
    q.send(p, make("SEND", {{"destination", "/queue/full"}}, "2"));
    q.send(p, make("SEND", {{"destination", "/queue/full"}, {"receipt", "r3"}}, "3"));
    CHECK(q.to(p).at(0).get("message") == "Queue full");
    auto slow = q.connect(), p2 = q.connect();
    q.send(slow, make("SUBSCRIBE", {{"destination", "/topic/busy"}, {"id", "s"}}));
    q.core.set_congested(slow, true);
    for (int i = 0; i < 5; ++i) q.send(p2, make("SEND", {{"destination", "/topic/busy"}}, std::to_string(i)));
    CHECK(q.core.stats().dropped_slow == 2);  // bounded: the oldest two went
    q.out.clear();
    q.core.on_writable(slow, q.out);
    auto got = q.to(slow);
    REQUIRE(got.size() == 3);
    CHECK(got[0].body == "2");
}

TEST_CASE("broker - journal replay restores durable state - a torn tail is cut off")
{
    auto dir = std::filesystem::temp_directory_path() / ("dk-journal-" + std::to_string(std::random_device{}()));
    {
        harness h;
        auto p = h.connect();
        auto d = h.connect();
        h.send(d, make("SUBSCRIBE", {{"destination", "/topic/j"}, {"id", "dur"}, {"durable", "true"}}));
        std::vector<journal_record> all = h.out.persist;
        h.send(p, make("SEND", {{"destination", "/queue/jq"}, {"persistent", "true"}}, "keep"));
        all.insert(all.end(), h.out.persist.begin(), h.out.persist.end());
        h.send(p, make("SEND", {{"destination", "/queue/jq"}}, "memory only"));
        h.out.clear();
        h.core.close(d, h.out);
        h.send(p, make("SEND", {{"destination", "/topic/j"}, {"persistent", "true"}}, "for dur"));
        all.insert(all.end(), h.out.persist.begin(), h.out.persist.end());
        journal j(dir, fsync_policy::always);
        j.load();
        j.start();
        bool written = false;
        j.append(all, [&] { written = true; });
        j.stop();
        CHECK(written);
    }
    // A crash mid-append: half a record at the end.
    {
        std::ofstream(dir / "journal", std::ios::app | std::ios::binary) << std::string("\x40\x00\x00\x00garbage", 11);
    }
    journal j(dir, fsync_policy::always);
    auto records = j.load();
    CHECK(records.size() == 3);
    harness h2;
    for (auto& r : records) h2.core.replay(r);
    auto c = h2.connect();
    h2.send(c, make("SUBSCRIBE", {{"destination", "/queue/jq"}, {"id", "q"}}));
    auto got = h2.to(c);
    REQUIRE(got.size() == 1);
    CHECK(got[0].body == "keep");
    h2.send(c, make("SUBSCRIBE", {{"destination", "/topic/j"}, {"id", "dur"}, {"durable", "true"}}));
    CHECK(h2.to(c).at(0).body == "for dur");
    CHECK(h2.core.snapshot().size() == 1);  // the binding; both messages were consumed (auto)
    std::filesystem::remove_all(dir);
}

TEST_CASE("broker - passwords and patterns")
{
    auto h = hash_password("s3cret", 1000);
    CHECK(check_password("s3cret", h));
    CHECK(!check_password("s3cre", h));
    CHECK(!check_password("s3cret", "plain"));
    CHECK(glob_match("/topic/future.*", "/topic/future.git.commits"));
    CHECK(!glob_match("/topic/future.*", "/queue/future.x"));
    CHECK(glob_match("*", "anything"));
}

TEST_CASE("broker - a full queue blocks its producer until a consumer makes room")
{
    core_options o;
    o.max_queue_depth = 2;
    harness h(o);
    auto p = h.connect(), c = h.connect();
    h.send(p, make("SEND", {{"destination", "/queue/bp"}, {"persistent", "true"}}, "1"));
    h.send(p, make("SEND", {{"destination", "/queue/bp"}, {"persistent", "true"}}, "2"));
    h.send(p, make("SEND", {{"destination", "/queue/bp"}, {"persistent", "true"}, {"receipt", "r3"}}, "3"));
    CHECK(h.out.blocked == std::vector<session_id>{p});
    CHECK(h.out.frames.empty());  // no ERROR, no RECEIPT yet
    CHECK(h.core.stats().blocked_sends == 1);
    h.send(c, make("SUBSCRIBE", {{"destination", "/queue/bp"}, {"id", "s"}}));
    auto got = h.to(c);
    REQUIRE(got.size() == 3);  // 1 and 2, then 3 once there was room
    CHECK(got[2].body == "3");
    CHECK(h.out.unblocked == std::vector<session_id>{p});
    REQUIRE(h.out.after_persist.size() == 1);
    CHECK(h.out.after_persist[0].frame.get("receipt-id") == "r3");
}

namespace {

access_policy two_users()
{
    access_policy pol;
    pol.anonymous = false;
    pol.users["alice"] = user{hash_password("a", 1000), {"*"}, {"*"}};
    pol.users["mallory"] = user{hash_password("m", 1000), {"/topic/future.*", "/queue/*"}, {"/queue/m.*"}};
    return pol;
}

} // namespace

TEST_CASE("broker - ActiveMQ-style durable subscriptions belong to their login - a live client-id is refused")
{
    harness h({}, two_users().make_authorizer());
    auto a = h.connect("1.2", {{"login", "alice"}, {"passcode", "a"}, {"client-id", "host1"}});
    h.send(a, make("SUBSCRIBE", {{"destination", "/topic/future.d"}, {"id", "x"}, {"activemq.subscriptionName", "git"}}));
    h.core.close(a, h.out);
    auto p = h.connect("1.2", {{"login", "alice"}, {"passcode", "a"}});
    h.send(p, make("SEND", {{"destination", "/topic/future.d"}, {"persistent", "true"}}, "alice's"));
    // Another user with the same client-id and name gets a subscription of its own.
    auto m = h.connect("1.2", {{"login", "mallory"}, {"passcode", "m"}, {"client-id", "host1"}});
    h.send(m, make("SUBSCRIBE", {{"destination", "/topic/future.d"}, {"id", "x"}, {"activemq.subscriptionName", "git"}}));
    CHECK(h.to(m).empty());
    h.send(m, make("UNSUBSCRIBE", {{"id", "x"}, {"activemq.subscriptionName", "git"}}));  // deletes only its own
    auto back = h.connect("1.2", {{"login", "alice"}, {"passcode", "a"}, {"client-id", "host1"}});
    h.send(back, make("SUBSCRIBE", {{"destination", "/topic/future.d"}, {"id", "x"}, {"activemq.subscriptionName", "git"}}));
    REQUIRE(h.to(back).size() == 1);
    CHECK(h.to(back).at(0).body == "alice's");
    // A second live session with that client-id is refused, not given half the messages.
    auto twin = h.core.open();
    h.send(twin, make("CONNECT", {{"accept-version", "1.2"}, {"login", "alice"}, {"passcode", "a"}, {"client-id", "host1"}}));
    CHECK(h.to(twin).at(0).command == "ERROR");
    CHECK(h.to(twin).at(0).get("message") == "Client-id in use");
    h.core.close(back, h.out);
    h.connect("1.2", {{"login", "alice"}, {"passcode", "a"}, {"client-id", "host1"}});  // free again
}

TEST_CASE("broker - a SEND in a transaction is checked for permission and bounded in bytes")
{
    core_options o;
    o.max_transaction_bytes = 10000;
    harness h(o, two_users().make_authorizer());
    auto m = h.connect("1.2", {{"login", "mallory"}, {"passcode", "m"}});
    h.send(m, make("BEGIN", {{"transaction", "t"}}));
    h.send(m, make("SEND", {{"destination", "/topic/future.x"}, {"transaction", "t"}}, "not allowed"));
    REQUIRE(!h.to(m).empty());
    CHECK(h.to(m).at(0).get("message") == "Access refused");
    CHECK(h.out.close == std::vector<session_id>{m});

    m = h.connect("1.2", {{"login", "mallory"}, {"passcode", "m"}});
    h.send(m, make("BEGIN", {{"transaction", "t"}}));
    h.send(m, make("SEND", {{"destination", "/queue/m.1"}, {"transaction", "t"}}, std::string(6000, 'x')));
    CHECK(h.to(m).empty());
    h.send(m, make("BEGIN", {{"transaction", "u"}}));
    h.send(m, make("SEND", {{"destination", "/queue/m.1"}, {"transaction", "u"}}, std::string(6000, 'x')));
    REQUIRE(!h.to(m).empty());
    CHECK(h.to(m).at(0).get("message") == "Transaction too large");  // counted over all its transactions
}

TEST_CASE("broker - byte limits per queue - the broker-wide memory mark blocks publishers - destinations per user")
{
    core_options o;
    o.max_queue_bytes = 3000;
    o.block_when_full = false;
    harness h(o);
    auto p = h.connect();
    h.send(p, make("SEND", {{"destination", "/queue/b"}}, std::string(1000, 'x')));
    h.send(p, make("SEND", {{"destination", "/queue/b"}}, std::string(1000, 'x')));
    CHECK(h.out.frames.empty());
    h.send(p, make("SEND", {{"destination", "/queue/b"}}, std::string(1000, 'x')));
    CHECK(h.to(p).at(0).get("message") == "Queue full");
    CHECK(h.core.stats().held_bytes > 2000);

    core_options m;
    m.max_memory = 5000;
    harness b(m);
    auto pub = b.connect(), c = b.connect();
    for (int i = 0; i < 4; ++i) b.send(pub, make("SEND", {{"destination", "/queue/q" + std::to_string(i)}}, std::string(1000, 'x')));
    CHECK(b.out.blocked.empty());
    b.send(pub, make("SEND", {{"destination", "/queue/q4"}, {"receipt", "r"}}, std::string(1000, 'x')));
    CHECK(b.out.blocked == std::vector<session_id>{pub});  // RabbitMQ's memory alarm: the publisher waits
    CHECK(b.out.frames.empty());
    CHECK(b.core.stats().memory_blocked == 1);
    b.send(c, make("SUBSCRIBE", {{"destination", "/queue/q0"}, {"id", "s"}}));  // drains 1000 bytes
    CHECK(b.out.unblocked == std::vector<session_id>{pub});
    bool receipted = false;
    for (auto& f : b.to(pub)) receipted |= f.get("receipt-id") == "r";
    CHECK(receipted);

    core_options d;
    d.max_destinations_per_user = 2;
    harness u(d);
    auto s = u.connect();
    u.send(s, make("SEND", {{"destination", "/queue/d1"}}));
    u.send(s, make("SUBSCRIBE", {{"destination", "/queue/d2"}, {"id", "1"}}));
    CHECK(u.to(s).empty());
    u.send(s, make("SEND", {{"destination", "/queue/d3"}}));
    CHECK(u.to(s).at(0).get("message") == "Too many destinations");
    s = u.connect();
    u.send(s, make("SEND", {{"destination", "/queue/d1"}}));  // an existing one is fine
    CHECK(u.to(s).empty());
}

TEST_CASE("broker - a permission reload ends subscriptions no longer allowed")
{
    auto pol = two_users();
    auto current = std::make_shared<authorizer>(pol.make_authorizer());
    authorizer indirect{[current](std::string_view l, std::string_view p) { return current->authenticate(l, p); },
                        [current](std::string_view l, std::string_view d, bool w) { return current->permit(l, d, w); }};
    harness h({}, indirect);
    auto m = h.connect("1.2", {{"login", "mallory"}, {"passcode", "m"}});
    h.send(m, make("SUBSCRIBE", {{"destination", "/topic/future.git"}, {"id", "git"}}));
    auto a = h.connect("1.2", {{"login", "alice"}, {"passcode", "a"}});
    h.send(a, make("SUBSCRIBE", {{"destination", "/topic/future.git"}, {"id", "git"}}));
    pol.users["mallory"].read = {"/queue/*"};
    *current = pol.make_authorizer();
    h.out.clear();
    h.core.recheck_permissions(h.out);
    REQUIRE(h.to(m).size() == 1);
    CHECK(h.to(m).at(0).command == "ERROR");
    CHECK(h.to(m).at(0).get("subscription") == "git");
    CHECK(h.out.close == std::vector<session_id>{m});
    CHECK(h.to(a).empty());
    auto p = h.connect("1.2", {{"login", "alice"}, {"passcode", "a"}});
    h.send(p, make("SEND", {{"destination", "/topic/future.git"}}, "after"));
    CHECK(h.to(m).empty());
    CHECK(h.to(a).size() == 1);
    CHECK(h.core.stats().revoked == 1);
}

TEST_CASE("broker - wildcard subscriptions in RabbitMQ and ActiveMQ dialects")
{
    harness h;
    auto c = h.connect();
    h.send(c, make("SUBSCRIBE", {{"destination", "/topic/future.events.*"}, {"id", "star"}}));
    h.send(c, make("SUBSCRIBE", {{"destination", "/topic/future.#"}, {"id", "hash"}}));
    h.send(c, make("SUBSCRIBE", {{"destination", "/topic/future.events.>"}, {"id", "gt"}}));
    h.send(c, make("SUBSCRIBE", {{"destination", "/topic/*.git.#"}, {"id", "mid"}}));
    CHECK(h.to(c).empty());
    auto p = h.connect();
    auto got = [&](std::string dest) {
        h.send(p, make("SEND", {{"destination", dest}}, dest));
        std::set<std::string> subs;
        for (auto& f : h.to(c)) subs.insert(std::string(f.get("subscription")));
        return subs;
    };
    CHECK(got("/topic/future.events.push") == std::set<std::string>{"star", "hash", "gt"});
    CHECK(got("/topic/future.events.push.tag") == std::set<std::string>{"hash", "gt"});
    CHECK(got("/topic/future.events") == std::set<std::string>{"hash"});
    CHECK(got("/topic/future") == std::set<std::string>{"hash"});  // `#` is zero or more words
    CHECK(got("/topic/future.git.commits") == std::set<std::string>{"hash", "mid"});
    CHECK(got("/topic/other.events.push").empty());
    // Never on SEND: a wildcard names no destination there.
    h.send(p, make("SEND", {{"destination", "/topic/future.*"}}));
    CHECK(h.to(p).at(0).get("message") == "Invalid destination");
    p = h.connect();
    h.send(p, make("SUBSCRIBE", {{"destination", "/topic/a.>.b"}, {"id", "1"}}));  // `>` only last
    CHECK(h.to(p).at(0).get("message") == "Invalid destination");
    p = h.connect();
    h.send(p, make("SUBSCRIBE", {{"destination", "/queue/a.*"}, {"id", "1"}}));  // topics only
    CHECK(h.to(p).at(0).get("message") == "Invalid destination");
    p = h.connect();
    h.send(p, make("SUBSCRIBE", {{"destination", "/topic/a*.b"}, {"id", "1"}}));  // whole words only
    CHECK(h.to(p).at(0).get("message") == "Invalid destination");
    // Unsubscribing unbinds.
    h.send(c, make("UNSUBSCRIBE", {{"id", "hash"}}));
    CHECK(got("/topic/future") .empty());
}

TEST_CASE("broker - a wildcard subscription needs read permission for everything it can reach")
{
    harness h({}, two_users().make_authorizer());  // mallory reads /topic/future.* and /queue/*
    auto ok = [&](std::string dest) {
        auto m = h.connect("1.2", {{"login", "mallory"}, {"passcode", "m"}});
        h.send(m, make("SUBSCRIBE", {{"destination", dest}, {"id", "1"}, {"receipt", "r"}}));
        return h.to(m).at(0).command == "RECEIPT";
    };
    CHECK(ok("/topic/future.events.*"));
    CHECK(ok("/topic/future.*"));
    CHECK(ok("/topic/future.>"));
    CHECK(!ok("/topic/future.#"));  // also reaches /topic/future itself
    CHECK(!ok("/topic/*.events"));  // reaches /topic/secret.events
    CHECK(!ok("/topic/#"));
    CHECK(!ok("/topic/>"));
    auto a = h.connect("1.2", {{"login", "alice"}, {"passcode", "a"}});
    h.send(a, make("SUBSCRIBE", {{"destination", "/topic/#"}, {"id", "1"}, {"receipt", "r"}}));
    CHECK(h.to(a).at(0).command == "RECEIPT");
}

TEST_CASE("broker - a CONNECT verified off the I/O thread")
{
    harness h;
    auto s = h.core.open();
    h.out.clear();
    h.core.on_connect_verified(s, make("CONNECT", {{"accept-version", "1.2"}, {"login", "x"}}), "bad login or passcode",
                               h.out);
    CHECK(h.to(s).at(0).command == "ERROR");
    CHECK(h.core.stats().auth_failures == 1);
    s = h.core.open();
    h.out.clear();
    h.core.on_connect_verified(s, make("CONNECT", {{"accept-version", "1.2"}}), "", h.out);
    CHECK(h.to(s).at(0).command == "CONNECTED");
}

namespace {

// The format-1 journal record, as brokers before the format version wrote it: u32 length,
// u64 FNV-1a of the payload, payload (the payload is unchanged in format 2).
std::string v1_record(const journal_record& r)
{
    std::string v2 = journal::encode(r);
    std::string payload = v2.substr(8);
    std::uint64_t h = 1469598103934665603ULL;
    for (unsigned char c : payload) {
        h ^= c;
        h *= 1099511628211ULL;
    }
    std::string out;
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((payload.size() >> (8 * i)) & 0xff));
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((h >> (8 * i)) & 0xff));
    return out + payload;
}

} // namespace

TEST_CASE("broker - a journal in the old FNV-1a format replays and is rewritten with CRC32C")
{
    auto dir = std::filesystem::temp_directory_path() / ("dk-journal-v1-" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(dir);
    auto m = std::make_shared<message>();
    m->seq = 7;
    m->destination = "/queue/old";
    m->headers = {{"destination", "/queue/old"}};
    m->body = "from an old broker";
    m->persistent = true;
    {
        std::ofstream f(dir / "journal", std::ios::binary);
        f << v1_record({journal_record::kind::bind, "durable:rmq:x", "t", {}, 0})
          << v1_record({journal_record::kind::add, "/queue/old", {}, m, 0}) << "torn";
    }
    {
        journal j(dir, fsync_policy::always);
        auto records = j.load();
        REQUIRE(records.size() == 2);
        CHECK(records[1].msg->body == "from an old broker");
        CHECK(records[1].msg->seq == 7);
    }
    std::ifstream in(dir / "journal", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    CHECK(bytes.starts_with(journal::file_header()));  // format 2 from now on
    {
        journal j(dir, fsync_policy::always);
        auto records = j.load();
        REQUIRE(records.size() == 2);
        harness h;
        for (auto& r : records) h.core.replay(r);
        auto c = h.connect();
        h.send(c, make("SUBSCRIBE", {{"destination", "/queue/old"}, {"id", "q"}}));
        CHECK(h.to(c).at(0).body == "from an old broker");
    }
    // A flipped bit in a format-2 record is caught by its CRC32C: the tail from there is cut.
    bytes[bytes.size() - 3] ^= 0x10;
    std::ofstream(dir / "journal", std::ios::binary | std::ios::trunc) << bytes;
    journal j(dir, fsync_policy::always);
    CHECK(j.load().size() == 1);
    std::filesystem::remove_all(dir);
}

TEST_CASE("broker - an unknown login costs one password derivation as a known one does")
{
    auto a = two_users().make_authorizer();
    auto before = password_checks();
    CHECK(a.authenticate("alice", "wrong") == "bad login or passcode");
    auto known = password_checks() - before;
    before = password_checks();
    CHECK(a.authenticate("nobody", "wrong") == "bad login or passcode");
    CHECK(password_checks() - before == known);
    CHECK(known == 1);
}

TEST_CASE("broker - settings in hyphen or underscore spelling - not both")
{
    auto dir = std::filesystem::temp_directory_path() / ("dk-broker-cfg-" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(dir);
    auto file = dir / "b.yaml";
    std::ofstream(file) << "max-memory: 1000000\nmax_queue_depth: 7\ntcp-keepalive-idle: 5\nmax-connect-frame: 4096\n";
    auto c = load_config(file);
    CHECK(c.server.core.max_memory == 1000000);
    CHECK(c.server.core.max_queue_depth == 7);
    CHECK(c.server.tcp_keepalive_idle == std::chrono::seconds(5));
    CHECK(c.server.max_connect_frame == 4096);
    std::ofstream(file) << "max-memory: 1\nmax_memory: 2\n";
    CHECK_THROWS_WITH_AS(load_config(file), doctest::Contains("given twice"), bus::config_error);
    std::ofstream(file) << "max-memroy: 1\n";
    CHECK_THROWS_WITH_AS(load_config(file), doctest::Contains("max-memroy: unknown setting"), bus::config_error);
    std::filesystem::remove_all(dir);
}

namespace {

// The message load_config throws for `text`, or "" when it loads.
std::string broker_config_error(const std::string& text)
{
    auto dir = std::filesystem::temp_directory_path() / ("dk-broker-cfg-" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(dir);
    auto file = dir / "broker.yaml";
    std::ofstream(file) << text;
    std::string msg;
    try {
        load_config(file);
    } catch (const bus::runtime::config_error& e) {
        CHECK(e.exit_status == 2);
        msg = e.what();
    }
    std::filesystem::remove_all(dir);
    return msg;
}

} // namespace

TEST_CASE("broker config - a misspelt key is an error naming file line and the nearest key")
{
    // Before the runtime's reader: "unknown setting" without a suggestion, and no alias notice.
    auto msg = broker_config_error("listen: 127.0.0.1:61613\nmax_frame_sise: 1000\n");
    CHECK(msg.find("broker.yaml:2: max_frame_sise: unknown setting; did you mean `max-frame-size`?") != std::string::npos);
    msg = broker_config_error("listen: 127.0.0.1:61613\nadmin-lisen: 127.0.0.1:9100\n");
    CHECK(msg.find("broker.yaml:2: admin-lisen: unknown setting; did you mean `admin-listen`?") != std::string::npos);
}

TEST_CASE("broker config - a value of the wrong type names file line key and the expected type")
{
    // Before: "bad value 'lots'" (no expected type); a list where a number belongs, or a
    // negative size, gave a yaml-cpp message or wrapped around. The message names the key in
    // its canonical (hyphenated) spelling, whichever alias the file used.
    auto msg = broker_config_error("\nmax_queue_depth: lots\n");
    CHECK(msg.find("broker.yaml:2: max-queue-depth: expected a whole number, not 'lots'") != std::string::npos);
    msg = broker_config_error("max-frame-size: [1, 2]\n");
    CHECK(msg.find("broker.yaml:1: max-frame-size: expected a whole number") != std::string::npos);
    msg = broker_config_error("max-memory: -5\n");
    CHECK(msg.find("broker.yaml:1: max-memory: expected a whole number from 0") != std::string::npos);
    msg = broker_config_error("heartbeat-grace: soon\n");
    CHECK(msg.find("broker.yaml:1: heartbeat-grace: expected a number") != std::string::npos);
    msg = broker_config_error("listen: localhost\n");
    CHECK(msg.find("broker.yaml:1: listen: expected ADDRESS:PORT") != std::string::npos);
    msg = broker_config_error("full_queue: drop\n");
    CHECK(msg.find("broker.yaml:1: full-queue: expected block or reject") != std::string::npos);
    msg = broker_config_error("tls-listen: 127.0.0.1:61614\n");
    CHECK(msg.find("tls-listen: needs tls-cert and tls-key") != std::string::npos);
}

TEST_CASE("broker config - underscore aliases the runtime settings and restart-only changes")
{
    auto dir = std::filesystem::temp_directory_path() / ("dk-broker-cfg-" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(dir);
    auto a = dir / "a.yaml", b = dir / "b.yaml";
    std::ofstream(a) << "admin_listen: 127.0.0.1:9100\nusers_file: /etc/u.yaml\nheartbeat-interval: 30s\n"
                        "max_memory: 1000\n";
    std::ofstream(b) << "admin-listen: 127.0.0.1:9101\nusers-file: /etc/v.yaml\nheartbeat-interval: 0\n"
                        "max-memory: 1000\ndrain-timeout: 2s\n";
    auto ca = load_config(a), cb = load_config(b);
    REQUIRE(ca.admin_listen);
    CHECK(ca.admin_listen->port == 9100);
    CHECK(ca.users_file == "/etc/u.yaml");
    CHECK(ca.heartbeat.interval == std::chrono::seconds(30));
    CHECK(ca.heartbeat.topic == "deploykit.heartbeats");
    CHECK(cb.heartbeat.interval.count() == 0);
    CHECK(cb.drain_timeout == std::chrono::seconds(2));
    // users-file and the heartbeat apply on SIGHUP; the rest needs a restart (max-memory is
    // the same value in both spellings: not a change).
    CHECK(needs_restart(ca, cb) == std::vector<std::string>{"admin-listen", "drain-timeout"});
    std::filesystem::remove_all(dir);
}
