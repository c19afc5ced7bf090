// The deploy CLI's pure core (daemons/deploy/core.hpp): selection, counts, batches, quorum,
// threshold, state machines, summary, exit codes, tags intersection, --health-cmd parsing.
#include "core.hpp"

#include <doctest/doctest.h>

using namespace deploy::cli;

namespace {

node_info node(std::string id, std::map<std::string, std::string> facts = {}, std::vector<std::string> classes = {})
{
    return {std::move(id), std::move(facts), std::move(classes), {}};
}

std::vector<node_info> fleet()
{
    return {node("web01", {{"sitetype_www", "live"}, {"cores", "8"}}, {"web", "php"}),
            node("web02", {{"sitetype_www", "live"}, {"cores", "16"}}, {"web"}),
            node("web10", {{"sitetype_www", "stage"}, {"cores", "2"}}, {"web"}),
            node("db01", {{"cores", "32"}}, {"db"})};
}

} // namespace

TEST_CASE("deploy selection: identity exact and /regex/ are ORed")
{
    selection_args a;
    a.identities = {"db01"};
    CHECK(selector(a).select(fleet()) == std::vector<std::string>{"db01"});
    a.identities = {"/^web0/", "db01"};
    CHECK(selector(a).select(fleet()) == std::vector<std::string>{"db01", "web01", "web02"});
    a.identities = {"web"};  // exact: no node is called "web"
    CHECK(selector(a).select(fleet()).empty());
}

TEST_CASE("deploy selection: facts with regex and comparisons are ANDed")
{
    selection_args a;
    a.facts = {"sitetype_www=live"};
    CHECK(selector(a).select(fleet()) == std::vector<std::string>{"web01", "web02"});
    a.facts = {"sitetype_www=/^st/"};
    CHECK(selector(a).select(fleet()) == std::vector<std::string>{"web10"});
    a.facts = {"cores>=8", "cores<32"};  // numeric, not lexical ("16" < "8" as text)
    CHECK(selector(a).select(fleet()) == std::vector<std::string>{"web01", "web02"});
    a.facts = {"cores>8"};
    CHECK(selector(a).select(fleet()) == std::vector<std::string>{"db01", "web02"});
    a.facts = {"cores<=2"};
    CHECK(selector(a).select(fleet()) == std::vector<std::string>{"web10"});
    a.facts = {"sitetype_www!=live"};  // a node without the fact never matches
    CHECK(selector(a).select(fleet()) == std::vector<std::string>{"web10"});
    a.facts = {"sitetype_www=~li"};
    CHECK(selector(a).select(fleet()) == std::vector<std::string>{"web01", "web02"});
}

TEST_CASE("deploy selection: classes and identity and facts combine with AND")
{
    selection_args a;
    a.classes = {"web"};
    a.identities = {"/0[12]$/"};
    CHECK(selector(a).select(fleet()) == std::vector<std::string>{"web01", "web02"});
    a.classes = {"web", "php"};
    CHECK(selector(a).select(fleet()) == std::vector<std::string>{"web01"});
    a.classes = {"/^d/"};
    CHECK(selector(a).select(fleet()) == std::vector<std::string>{"db01"});
    a.facts = {"cores<10"};
    CHECK(selector(a).select(fleet()).empty());
}

TEST_CASE("deploy selection: static node list")
{
    selection_args a;
    a.nodes = {"web02,db01", "web99"};
    // web99 never sent a heartbeat: still targeted, so the summary names it as no reply
    CHECK(selector(a).select(fleet()) == std::vector<std::string>{"db01", "web02", "web99"});
    a.classes = {"web"};  // facts/classes cannot be checked for an unknown node: left out
    CHECK(selector(a).select(fleet()) == std::vector<std::string>{"web02"});
    a.classes.clear();
    a.nodes = {"web01,../etc"};
    CHECK_THROWS_AS(selector{a}, usage_error);
}

TEST_CASE("deploy selection: malformed filters are usage errors")
{
    selection_args a;
    a.identities = {"/([/"};
    CHECK_THROWS_AS(selector{a}, usage_error);
    a.identities.clear();
    for (const char* f : {"cores", "=x", "cores=", "cores=/[/"}) {
        a.facts = {f};
        CHECK_THROWS_AS(selector{a}, usage_error);
    }
}

TEST_CASE("deploy identities follow the protocol")
{
    CHECK(valid_identity("web01.example.com"));
    CHECK(valid_identity("a"));
    CHECK_FALSE(valid_identity(""));
    CHECK_FALSE(valid_identity("-web"));
    CHECK_FALSE(valid_identity("web 01"));
    CHECK_FALSE(valid_identity(std::string(65, 'a')));
}

TEST_CASE("deploy amounts: N or N percent")
{
    CHECK(amount::parse("2", "--batch").of(5) == 2);
    CHECK(amount::parse("40%", "--batch").of(5) == 2);
    CHECK(amount::parse("50%", "--batch").of(5) == 3);  // rounded up
    CHECK(amount::parse("1%", "--batch").of(5) == 1);
    CHECK(amount::parse("0%", "--max-failures").of(5) == 0);
    CHECK(amount::parse("100%", "--quorum").of(5) == 5);
    CHECK(amount::parse("20%", "--x").str() == "20%");
    for (const char* bad : {"", "%", "-1", "x", "101%", "2.5", "3 ", "5%%"})
        CHECK_THROWS_AS(amount::parse(bad, "--batch"), usage_error);
}

TEST_CASE("deploy batches: canary first then batches of N or N percent")
{
    std::vector<std::string> n{"a", "b", "c", "d", "e"};
    auto p = plan_batches(n, 1, amount::parse("2", "b"));
    REQUIRE(p.size() == 3);
    CHECK(p[0] == std::vector<std::string>{"a"});
    CHECK(p[1] == std::vector<std::string>{"b", "c"});
    CHECK(p[2] == std::vector<std::string>{"d", "e"});
    p = plan_batches(n, 0, amount::parse("100%", "b"));
    REQUIRE(p.size() == 1);
    CHECK(p[0].size() == 5);
    p = plan_batches(n, 2, amount::parse("20%", "b"));  // 20% of 5 = 1
    CHECK(p.size() == 4);
    p = plan_batches(n, 9, amount::parse("0", "b"));  // canary clamped; batch 0 is 1
    REQUIRE(p.size() == 1);
    CHECK(p[0].size() == 5);
    CHECK(plan_batches({}, 1, amount::parse("2", "b")).empty());
}

TEST_CASE("deploy quorum and failure threshold")
{
    CHECK(quorum_met(5, 5, amount::parse("100%", "q")));
    CHECK_FALSE(quorum_met(4, 5, amount::parse("100%", "q")));
    CHECK(quorum_met(3, 5, amount::parse("60%", "q")));
    CHECK_FALSE(quorum_met(2, 5, amount::parse("60%", "q")));
    CHECK(quorum_met(3, 5, amount::parse("3", "q")));
    CHECK_FALSE(quorum_met(0, 5, amount::parse("0", "q")));  // nobody ready is never a quorum
    CHECK_FALSE(past_threshold(0, 5, amount::parse("0", "m")));
    CHECK(past_threshold(1, 5, amount::parse("0", "m")));
    CHECK_FALSE(past_threshold(1, 5, amount::parse("20%", "m")));
    CHECK(past_threshold(2, 5, amount::parse("20%", "m")));
}

TEST_CASE("deploy job state machine follows the contract")
{
    job j("j-1", "deploy", {"a", "b"});
    CHECK(j.state() == job_state::new_);
    CHECK_THROWS_AS(j.set(job_state::running), std::logic_error);
    j.set(job_state::voting);
    j.set(job_state::running);
    CHECK_THROWS_AS(j.set(job_state::quorum_failed), std::logic_error);
    j.set(job_state::complete);
    CHECK(terminal(j.state()));
    CHECK_THROWS_AS(j.set(job_state::aborted), std::logic_error);
    for (auto s : {job_state::new_, job_state::voting, job_state::running, job_state::complete,
                   job_state::quorum_failed, job_state::aborted, job_state::timed_out})
        CHECK(to_string(s) != "?");
    CHECK(to_string(job_state::new_) == "new");
    CHECK(to_string(job_state::quorum_failed) == "quorum_failed");
}

TEST_CASE("deploy node state machine follows the contract")
{
    job j("j-1", "deploy", {"a", "b", "c"});
    j.set("a", node_state::ready);
    CHECK_THROWS_AS(j.set("a", node_state::succeeded), std::logic_error);  // never without running
    j.set("a", node_state::running);
    j.set("a", node_state::failed);
    j.set("a", node_state::ready);  // a retry votes again
    j.set("a", node_state::running);
    j.set("a", node_state::succeeded);
    CHECK_THROWS_AS(j.set("a", node_state::running), std::logic_error);
    j.set("b", node_state::nacked);
    CHECK_THROWS_AS(j.set("b", node_state::running), std::logic_error);
    CHECK_THROWS_AS(j.set("zz", node_state::ready), std::logic_error);
    CHECK(j.in_state(node_state::succeeded) == std::vector<std::string>{"a"});
    CHECK_FALSE(j.state_of("c"));
    CHECK(to_string(node_state::timed_out) == "timed_out");
    CHECK(to_string(node_state::unavailable) == "unavailable");
}

TEST_CASE("deploy summary names the nodes that did not answer")
{
    job j("j-2", "deploy", {"a", "b", "c", "d", "e"});
    j.set(job_state::voting);
    for (auto n : {"a", "b", "c", "d"}) {
        j.set(n, node_state::ready);
        j.note_reply(n, 0, "ready");
    }
    j.set("e", node_state::unavailable);
    j.set(job_state::running);
    j.set("a", node_state::running);
    j.set("a", node_state::succeeded);
    j.set("b", node_state::running);
    j.set("b", node_state::failed);
    j.set("c", node_state::running);
    j.set("c", node_state::timed_out);
    j.set(job_state::aborted);
    auto s = summarize(j, 1.5);
    CHECK(s.discovered == 5);
    CHECK(s.responded == 4);
    CHECK(s.ok == 1);
    CHECK(s.failed == 2);
    CHECK(s.no_reply == std::vector<std::string>{"c", "e"});
    auto t = to_text(s, "deploy#run");
    CHECK(t.find("discovered=5 responses=4 failcount=2 okcount=1 totaltime=1.500") != std::string::npos);
    CHECK(t.find("no reply from 2 node(s): c e") != std::string::npos);
    auto js = to_json(s);
    CHECK(js["no_reply"].size() == 2);
    CHECK(exit_code(j) == exit_failed);
    auto ev = job_event(j, &s);
    CHECK(ev["state"] == "aborted");
    CHECK(ev["nodes"]["d"] == "ready");  // untouched: left on its old release
    CHECK(ev["summary"]["ok"] == 1);
}

TEST_CASE("deploy exit codes")
{
    job ok("j", "deploy", {"a"});
    ok.set(job_state::voting);
    ok.set("a", node_state::ready);
    ok.set(job_state::running);
    ok.set("a", node_state::running);
    ok.set("a", node_state::succeeded);
    ok.set(job_state::complete);
    CHECK(exit_code(ok) == exit_ok);

    job q("j", "deploy", {"a"});
    q.set(job_state::voting);
    q.set("a", node_state::nacked);
    q.set(job_state::quorum_failed);
    CHECK(exit_code(q) == exit_refused);

    job partial("j", "deploy", {"a", "b"});  // quorum 50%: b never ran, a succeeded
    partial.set(job_state::voting);
    partial.set("a", node_state::ready);
    partial.set("b", node_state::nacked);
    partial.set(job_state::running);
    partial.set("a", node_state::running);
    partial.set("a", node_state::succeeded);
    partial.set(job_state::complete);
    CHECK(exit_code(partial) == exit_failed);
}

TEST_CASE("deploy tags intersection marks the tags missing on some nodes")
{
    std::map<std::string, std::vector<std::pair<std::string, std::string>>> by;
    by["a"] = {{"v3", "2026-12-03T00:00:00Z"}, {"v2", "2026-12-02T00:00:00Z"}, {"v1", "2026-12-01T00:00:00Z"}};
    by["b"] = {{"v2", "2026-12-02T00:00:00Z"}, {"v1", "2026-12-01T00:00:00Z"}};
    by["c"] = {{"v3", "2026-12-03T00:00:00Z"}, {"v2", "2026-12-02T00:00:00Z"}};
    auto rows = intersect_tags(by);
    REQUIRE(rows.size() == 3);
    CHECK(rows[0].name == "v3");
    CHECK(rows[0].missing == std::vector<std::string>{"b"});
    CHECK(rows[1].name == "v2");
    CHECK(rows[1].missing.empty());
    CHECK(rows[2].name == "v1");
    CHECK(rows[2].missing == std::vector<std::string>{"c"});
}

TEST_CASE("deploy health command is argv without a shell")
{
    CHECK(parse_argv("curl  -fsS http://127.0.0.1/") == std::vector<std::string>{"curl", "-fsS", "http://127.0.0.1/"});
    CHECK(parse_argv(R"j(["/bin/check", "a b", "$(id)"])j") == std::vector<std::string>{"/bin/check", "a b", "$(id)"});
    CHECK(parse_argv("sh -c 'x; y'") == std::vector<std::string>{"sh", "-c", "'x;", "y'"});  // no quoting
    CHECK_THROWS_AS(parse_argv(""), usage_error);
    CHECK_THROWS_AS(parse_argv("   "), usage_error);
    CHECK_THROWS_AS(parse_argv("[1, 2]"), usage_error);
    CHECK_THROWS_AS(parse_argv("[\"a\""), usage_error);
}
