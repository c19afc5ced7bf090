// The deploy protocol library (daemons/deploy-common): round trips through the bus event model,
// validation of everything a request carries, and the action policy.

#include "deploy/protocol.hpp"

#include "bus/intake.hpp"
#include "bus/wire.hpp"

#include <doctest/doctest.h>

using namespace deploy;

namespace {

request sample_request()
{
    request r;
    r.request_id = "r-1";
    r.job_id = "j-1";
    r.action = "deploy";
    r.ph = phase::vote;
    r.args.repo = "site";
    r.args.tag = "v1.2.3";
    r.caller = "alice";
    r.deadline = "2026-12-04T10:00:30Z";
    r.nodes = {"web01", "web02"};
    r.reply_to = "/topic/deploykit.deploy.reply.4be0c2d19a7f3e65";
    return r;
}

} // namespace

TEST_CASE("deploy request round-trips through the native wire form")
{
    auto r = sample_request();
    auto e = to_event(r, "ops1");
    CHECK(e.type() == "agent.request");
    auto back = bus::from_native(bus::to_native(e));
    REQUIRE(back);
    CHECK(*back.value == e);
    auto q = request_from(*back.value);
    REQUIRE(q);
    CHECK(*q.value == r);
    CHECK(validate(r));
}

TEST_CASE("deploy request with count as string or number")
{
    auto d = nlohmann::json::parse(R"({"request_id":"r","action":"tags","args":{"repo":"site","count":"5"}})");
    auto q = request_from_json(d);
    REQUIRE(q);
    CHECK(q.value->args.count == 5);
    d["args"]["count"] = 7;
    CHECK(request_from_json(d).value->args.count == 7);
    d["args"]["count"] = "7x";
    auto bad = request_from_json(d);
    CHECK_FALSE(bad);
    CHECK(bad.error == "data.args.count: not a number");
}

TEST_CASE("deploy reply job audit and heartbeat round-trip")
{
    reply p;
    p.request_id = "r-1";
    p.job_id = "j-1";
    p.identity = "web01";
    p.action = "deploy";
    p.ph = phase::commit;
    p.code = status::aborted;
    p.message = "pre-deploy failed";
    p.data = {{"repo", "site"}, {"tag", "v1"}};
    p.stages = {{"pre-deploy", 3, "no\n", 0.5}};
    p.duration_s = 0.6;
    auto e = bus::from_native(bus::to_native(to_event(p)));
    REQUIRE(e);
    auto back = reply_from(*e.value);
    REQUIRE(back);
    CHECK(*back.value == p);
    CHECK_FALSE(request_from(*e.value));

    job j;
    j.job_id = "j-1";
    j.state = "complete";
    j.action = "deploy";
    j.nodes = {{"web01", "succeeded"}};
    j.summary = job_summary{1, 1, 1, 0, {}, 2.5};
    auto je = bus::from_native(bus::to_native(to_event(j)));
    REQUIRE(je);
    CHECK(*job_from(*je.value).value == j);

    auto a = make_audit(sample_request(), p, "alice", true);
    CHECK(a.stages.at(0).output.empty());
    auto ae = bus::from_native(bus::to_native(to_event(a)));
    REQUIRE(ae);
    CHECK(*audit_from(*ae.value).value == a);

    agent_info info{"web01", "0.1.0", {{"os", "debian"}}, {"web"}, {{"site", "v1", "abc"}}, 30};
    auto he = to_heartbeat(info, std::chrono::seconds(5), {{"deploys", 2}}, "web01");
    auto hb = bus::from_native(bus::to_native(he));
    REQUIRE(hb);
    CHECK(hb.value->type() == "heartbeat");
    auto back_info = agent_info_from(*hb.value);
    REQUIRE(back_info);
    CHECK(*back_info.value == info);
    CHECK(std::get<bus::heartbeat_event>(hb.value->data).counters.at("deploys") == 2);
}

TEST_CASE("deploy events pass bus intake")
{
    bus::intake in(bus::intake_options{});
    auto e = to_event(sample_request(), "ops1");
    auto frames = bus::encode(e, "/topic/deploykit.deploy.requests", bus::wire_format::native);
    REQUIRE(frames.size() == 1);
    auto f = frames[0];
    f.command = "MESSAGE";
    auto res = in.accept(f, std::chrono::system_clock::now());
    REQUIRE(res.process());
    CHECK(request_from(*res.ev));
}

TEST_CASE("unknown event types stay refused")
{
    auto bad = bus::from_native(R"({"v":1,"id":"x","type":"agent.bogus","data":{}})");
    CHECK_FALSE(bad);
}

TEST_CASE("deploy request validation status codes")
{
    auto r = sample_request();
    SUBCASE("missing deadline is 3")
    {
        r.deadline.clear();
        CHECK(validate(r).code == status::missing_data);
    }
    SUBCASE("unknown action is 2")
    {
        r.action = "format-disk";
        CHECK(validate(r).code == status::unknown_action);
    }
    SUBCASE("missing tag is 3")
    {
        r.args.tag.clear();
        CHECK(validate(r).code == status::missing_data);
    }
    SUBCASE("bad tags are 4")
    {
        for (std::string t : std::vector<std::string>{"$(touch /tmp/x)", "v1;rm -rf /", "../x", "a..b", "v1.lock", "-x", "a b", "x~1",
                              "`id`", "v1|x", std::string(10240, 'a'), std::string(256, 'a'), "a\nb", ".hidden"}) {
            r.args.tag = t;
            CHECK_MESSAGE(validate(r).code == status::invalid_data, t.substr(0, 40));
        }
        r.args.tag = std::string(255, 'a');
        CHECK(validate(r));
        r.args.tag = "release/2026.12";
        CHECK(validate(r));
    }
    SUBCASE("bad ids are 4")
    {
        r.request_id = "r 1";
        CHECK(validate(r).code == status::invalid_data);
        r.request_id = std::string(65, 'a');
        CHECK(validate(r).code == status::invalid_data);
    }
    SUBCASE("reply_to must be under the prefix")
    {
        r.reply_to = "/topic/deploykit.events";
        CHECK(validate(r).code == status::invalid_data);
        r.reply_to = "/topic/deploykit.deploy.reply.a/../x";
        CHECK(validate(r).code == status::invalid_data);
        r.reply_to = "/topic/other.abc";
        CHECK(validate(r, "/topic/other.").code == status::ok);
    }
    SUBCASE("deploy never runs direct")
    {
        r.ph = phase::direct;
        CHECK(validate(r).code == status::invalid_data);
    }
    SUBCASE("repo names with a slash or dots are 4")
    {
        r.args.repo = "../etc";
        CHECK(validate(r).code == status::invalid_data);
        r.args.repo = "a/b";
        CHECK(validate(r).code == status::invalid_data);
    }
    SUBCASE("run needs a command name")
    {
        r.action = "run";
        r.args = {};
        CHECK(validate(r).code == status::missing_data);
        r.args.command = "rm -rf";
        CHECK(validate(r).code == status::invalid_data);
        r.args.command = "restart-nginx";
        CHECK(validate(r));
    }
}

TEST_CASE("deploy identities and ids")
{
    CHECK(valid_identity("web01"));
    CHECK(valid_identity("web01.example.com"));
    CHECK_FALSE(valid_identity("-web"));
    CHECK_FALSE(valid_identity(""));
    CHECK_FALSE(valid_identity(std::string(65, 'a')));
    CHECK_FALSE(valid_identity("web/01"));
    CHECK(valid_id("j-9a2e.1_x"));
    CHECK_FALSE(valid_id("a:b"));
}

TEST_CASE("deploy policy first match and default deny")
{
    std::vector<policy_rule> rules{
        {"mallory", "*", "*", false},
        {"*", "ping", "*", true},
        {"alice", "deploy", "site", true},
        {"*", "run", "restart-nginx", true},
    };
    CHECK_FALSE(evaluate(rules, "mallory", "ping", "").allow);
    CHECK(evaluate(rules, "mallory", "ping", "").rule == 0);
    CHECK(evaluate(rules, "bob", "ping", "").allow);
    CHECK(evaluate(rules, "alice", "deploy", "site").allow);
    CHECK_FALSE(evaluate(rules, "alice", "deploy", "other").allow);
    CHECK(evaluate(rules, "alice", "deploy", "other").rule == -1);
    CHECK_FALSE(evaluate(rules, "bob", "deploy", "site").allow);
    CHECK(evaluate(rules, "bob", "run", "restart-nginx").allow);
    CHECK_FALSE(evaluate({}, "root", "ping", "").allow);
}

TEST_CASE("deploy times and output bounds")
{
    auto t = parse_time("2026-12-04T10:00:30Z");
    REQUIRE(t);
    CHECK(format_time(*t) == "2026-12-04T10:00:30Z");
    CHECK(parse_time("2026-12-04T10:00:30.250Z"));
    CHECK_FALSE(parse_time("2026-12-04 10:00:30"));
    CHECK_FALSE(parse_time("2026-13-04T10:00:30Z"));
    CHECK(bound_output("abc", 10) == "abc");
    auto b = bound_output(std::string(100, 'x') + "END", 10);
    CHECK(b.starts_with("…[truncated]"));
    CHECK(b.ends_with("END"));
}
