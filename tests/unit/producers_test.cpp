// The hook's and jenkins-helper's logic: input parsing, naming, and the frames they publish.
#include "jenkins_helper.hpp"
#include "post_receive.hpp"

#include "bus/legacy.hpp"
#include "bus/wire.hpp"

#include <doctest/doctest.h>

#include <map>

namespace {
const std::string a(40, 'a'), b(40, 'b'), zero(40, '0');
}

TEST_CASE("post-receive - stdin parsing refuses unsafe refs and malformed lines")
{
    auto p = hook::parse_updates(a + " " + b + " refs/heads/master\n" + zero + " " + b + " refs/tags/v1\n" + a +
                                 " " + zero + " refs/heads/gone\n" + a + " " + b + " refs/heads/$(touch /tmp/x)\n" +
                                 "garbage\n" + a + " " + b + " refs/heads/../../etc\n" + "xyz " + b + " refs/heads/x\n");
    REQUIRE(p.updates.size() == 3);
    CHECK(p.updates[0].ref == "refs/heads/master");
    CHECK(p.updates[1].old_rev == zero);  // tag created
    CHECK(p.updates[2].new_rev == zero);  // branch deleted
    CHECK(p.rejected.size() == 4);
}

TEST_CASE("post-receive - repository names as the original derived them")
{
    CHECK(hook::repo_name("", "/srv/git/site.git") == "site");
    CHECK(hook::repo_name("", "/srv/git/site.git/") == "site");
    CHECK(hook::repo_name("", "/home/dev/work/site/.git") == "site");
    CHECK(hook::repo_name("group/site", "/var/lib/gitolite/repositories/group/site.git") == "group/site");
}

TEST_CASE("post-receive - commit events / legacy body for the original's consumers")
{
    hook::ref_update u{a, b, "refs/heads/master"};
    auto c = hook::make_commit("site", u, {"Dev <dev@example.com>", hook::git_date(1795312800, 60), "Fix\n\nBody\n"});
    CHECK(c.date == "Sun Nov 22 03:00:00 2026 +0100");
    CHECK(c.message == "Fix\n\nBody");
    auto frames = bus::encode(bus::make_event(c, "git01"), "/topic/future.git.commits", bus::wire_format::legacy);
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].get("subject") == "[site] refs/heads/master " + b);
    CHECK(frames[0].body.starts_with("repo: site\noldrev: " + a + "\nnewrev: " + b + "\nrefname: refs/heads/master\n " + b +
                                     "\nAuthor: Dev <dev@example.com>\n"));
    CHECK(hook::git_date(0, -330) == "Wed Dec 31 18:30:00 1969 -0530");
}

TEST_CASE("jenkins-helper - the original's subjects / bodies and topics plus a native build event")
{
    std::map<std::string, std::string> e{{"JOB_NAME", "Site-Build"},
                                         {"BUILD_NUMBER", "42"},
                                         {"BUILD_URL", "http://jenkins:8080/job/Site-Build/42/"},
                                         {"GIT_BRANCH", "origin/master"},
                                         {"GIT_COMMIT", b}};
    auto env = [&](const std::string& k) -> std::optional<std::string> {
        auto it = e.find(k);
        return it == e.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
    jenkins_helper::topics t;
    auto r = jenkins_helper::make_plan(jenkins_helper::stage::success, env, t, bus::wire_format::legacy, "ci01");
    REQUIRE(r.value);
    auto& f = r.value->frames;
    REQUIRE(f.size() == 2);  // legacy only: no native build event
    CHECK(f[0].get("destination") == "/topic/future.jenkins.success");
    CHECK(f[0].get("subject") == "Complete job 42 - [Site-Build] origin/master " + b);
    CHECK(f[0].body == "Repo: origin\nURL: http://jenkins:8080/job/Site-Build/42/\nStatus: Success\n");
    CHECK(f[1].get("destination") == "/topic/future.events.jenkins");
    CHECK(f[1].get("subject") == "Talking to eventbot");
    CHECK(f[1].body == "Complete job 42 - [Site-Build] origin/master " + b);

    auto begin = jenkins_helper::make_plan(jenkins_helper::stage::begin, env, t, bus::wire_format::both, "ci01");
    REQUIRE(begin.value);
    REQUIRE(begin.value->frames.size() == 3);
    CHECK(begin.value->frames[0].get("destination") == "/topic/future.jenkins");  // a real topic, not "/topic/"
    auto native = bus::decode([&] {
        auto m = begin.value->frames[2];
        m.command = "MESSAGE";
        return m;
    }());
    REQUIRE(native.ev);
    auto& be = std::get<bus::build_event>(native.ev->data);
    CHECK(be.phase == bus::build_phase::started);
    CHECK(be.number == 42);
    CHECK(begin.value->frames[2].body.find("\"phase\":\"STARTED\"") != std::string::npos);  // Notification plugin shape

    e.erase("GIT_BRANCH");
    auto cake = jenkins_helper::make_plan(jenkins_helper::stage::failure, env, t, bus::wire_format::legacy, "ci01");
    REQUIRE(cake.value);  // the original crashed here
    CHECK(cake.value->frames[0].body.ends_with("Status: Cake\n"));
    CHECK(cake.value->warnings.size() == 1);
    e.erase("JOB_NAME");
    auto none = jenkins_helper::make_plan(jenkins_helper::stage::failure, env, t, bus::wire_format::legacy, "ci01");
    CHECK(!none.value);
    CHECK(none.error.find("JOB_NAME") != std::string::npos);
}

#include "scheduler.hpp"

TEST_CASE("stomp-git scheduler - one fetch per repository at a time and bursts coalesced")
{
    stomp_git::scheduler s(2);
    CHECK(s.request("a", 1) == std::vector<std::string>{"a"});
    CHECK(s.request("b", 2) == std::vector<std::string>{"b"});
    CHECK(s.request("c", 3).empty());  // two workers busy
    for (std::uint64_t t = 10; t < 20; ++t) CHECK(s.request("a", t).empty());  // ten pushes while a runs
    auto d = s.finished("a");
    CHECK(d.covered == std::vector<std::uint64_t>{1});
    CHECK(d.start == std::vector<std::string>{"c"});  // c waited longest
    auto e = s.finished("b");
    CHECK(e.start == std::vector<std::string>{"a"});  // one more fetch of a covers all ten
    auto f = s.finished("a");
    CHECK(f.covered.size() == 10);
    CHECK(s.finished("c").covered == std::vector<std::uint64_t>{3});
    CHECK(s.running() == 0);
}
