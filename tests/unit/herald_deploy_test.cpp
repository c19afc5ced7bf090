// herald's deploy page, pure parts (daemons/herald/deploy_web.hpp): the form read into the
// deploy CLI's command with the CLI's and the agents' checks, and past deploys from recorded
// deploy.job events.
#include "deploy_web.hpp"

#include <doctest/doctest.h>

using namespace herald;

namespace {

form_fields base_form()
{
    return {{"csrf", "x"}, {"repo", "site"}, {"tag", "v1.2.3"}, {"node", "web01"}, {"node", "web02"}};
}

std::string refusal(form_fields f)
{
    return parse_deploy_form(f, deploy::cli::rollout_options{}).error;
}

form_fields with(form_fields f, std::string k, std::string v)
{
    for (auto& [fk, fv] : f)
        if (fk == k) {
            fv = std::move(v);
            return f;
        }
    f.emplace_back(std::move(k), std::move(v));
    return f;
}

recorded_event job_event(std::int64_t seq, std::string data)
{
    recorded_event e;
    e.seq = seq;
    e.type = "deploy.job";
    e.time_ms = 1'800'000'000'000 + seq;
    e.data = std::move(data);
    return e;
}

} // namespace

TEST_CASE("deploy form: a valid form becomes the CLI's run command over the defaults")
{
    deploy::cli::rollout_options d;
    d.timeout = 30;
    auto f = with(with(with(base_form(), "canary", "1"), "batch", "50%"), "fact", "role=web\r\n\r\nidx>=2\n");
    f.emplace_back("class", "web");
    auto r = parse_deploy_form(f, d);
    REQUIRE(r.error == "");
    CHECK(r.cmd.name == "run");
    CHECK(r.cmd.repo == "site");
    CHECK(r.cmd.tag == "v1.2.3");
    CHECK(r.cmd.nodes == std::vector<std::string>{"web01", "web02"});
    CHECK(r.cmd.facts == std::vector<std::string>{"role=web", "idx>=2"});
    CHECK(r.cmd.classes == std::vector<std::string>{"web"});
    CHECK(r.cmd.ro.canary == 1);
    CHECK(r.cmd.ro.batch == "50%");
    CHECK(r.cmd.ro.timeout == 30);
    CHECK(r.cmd.ro.quorum == "100%");
}

TEST_CASE("deploy form: tags the agents would refuse are refused here")
{
    for (const char* t : {"v1;rm -rf /", "v1$(id)", "v1`id`", "v1 v2", "-v1", "v1..v2", "", "v1|x", "v1&x", "v1>x",
                          "a\nb", "v1~1", "v1^", "v1:x", "v1?", "v1*", "v1[", "refs/../x"})
        CHECK_MESSAGE(refusal(with(base_form(), "tag", t)).find("not a valid tag") != std::string::npos, t);
    CHECK(refusal(with(base_form(), "tag", std::string(300, 'a'))) != "");
    CHECK(refusal(with(base_form(), "tag", "release/2026-12")) == "");
}

TEST_CASE("deploy form: repo nodes and filters are checked")
{
    CHECK(refusal(with(base_form(), "repo", "a/b")) != "");
    CHECK(refusal(with(base_form(), "repo", "")) != "");
    CHECK(refusal(with(base_form(), "repo", "../etc")) != "");
    CHECK(refusal(with(base_form(), "node", "web 01")) != "");
    CHECK(refusal(with(base_form(), "node", "-web")) != "");
    CHECK(refusal(form_fields{{"repo", "site"}, {"tag", "v1"}}).find("choose nodes") != std::string::npos);
    CHECK(refusal(form_fields{{"repo", "site"}, {"tag", "v1"}, {"identity", "/[/"}}) != "");
    CHECK(refusal(form_fields{{"repo", "site"}, {"tag", "v1"}, {"fact", "novalue"}}) != "");
    CHECK(refusal(form_fields{{"repo", "site"}, {"tag", "v1"}, {"identity", "/^web/"}}) == "");
    CHECK(refusal(with(base_form(), "repo", "site2")) == "");
    auto twice = base_form();
    twice.emplace_back("tag", "v2");
    CHECK(refusal(twice).find("twice") != std::string::npos);
}

TEST_CASE("deploy form: options are checked as the CLI checks them")
{
    CHECK(refusal(with(base_form(), "canary", "-1")) != "");
    CHECK(refusal(with(base_form(), "canary", "1x")) != "");
    CHECK(refusal(with(base_form(), "batch", "abc")) != "");
    CHECK(refusal(with(base_form(), "batch", "150%")) != "");
    CHECK(refusal(with(base_form(), "max_failures", "x")) != "");
    CHECK(refusal(with(base_form(), "quorum", "-5")) != "");
    CHECK(refusal(with(base_form(), "tries", "0")) != "");
    CHECK(refusal(with(base_form(), "tries", "101")) != "");
    CHECK(refusal(with(base_form(), "timeout", "0")) != "");
    CHECK(refusal(with(base_form(), "health_url", "file:///etc/passwd")) != "");
    CHECK(refusal(with(base_form(), "health_url", "http://127.0.0.1:8080/health")) == "");
    CHECK(refusal(with(with(base_form(), "batch", "2"), "max_failures", "10%")) == "");
}

TEST_CASE("past deploys: each job once with its newest state and newest first")
{
    std::vector<recorded_event> rows{  // as the store returns them: newest first
        job_event(5, R"({"job_id":"j-2","state":"voting","repo":"site","tag":"v2","caller":"bob"})"),
        job_event(4, R"({"job_id":"j-1","state":"complete","repo":"site","tag":"v1","caller":"alice","action":"deploy",)"
                     R"("summary":{"ok":3,"failed":0,"no_reply":[]}})"),
        job_event(3, R"({"job_id":"j-1","state":"running","repo":"site","tag":"v1","caller":"alice"})"),
        job_event(2, "not json"),
        job_event(1, R"({"job_id":"j-0","state":"aborted","repo":"api","tag":"v9","caller":"carol"})"),
    };
    auto jobs = past_jobs(rows, 50);
    REQUIRE(jobs.size() == 3);
    CHECK(jobs[0].job_id == "j-2");
    CHECK(jobs[0].state == "voting");
    CHECK(jobs[1].job_id == "j-1");
    CHECK(jobs[1].state == "complete");
    CHECK(jobs[1].caller == "alice");
    CHECK(jobs[1].summary["ok"] == 3);
    CHECK(jobs[2].state == "aborted");
    CHECK(past_jobs(rows, 1).size() == 1);
}

TEST_CASE("deploy pages escape what agents and users sent")
{
    job_view v;
    v.job_id = "j-1";
    v.job = nlohmann::json::parse(R"({"state":"complete","repo":"site","tag":"v1","caller":"<b>eve</b>",)"
                                  R"("nodes":{"n1":"succeeded"},"nodes_detail":{"n1":{"message":"<script>x</script>",)"
                                  R"("detail":{"stages":[{"name":"pre-deploy","exit_code":0,"output":"<img src=x>"}]}}}})");
    auto html = job_fragment(v);
    CHECK(html.find("<script>") == std::string::npos);
    CHECK(html.find("<img") == std::string::npos);
    CHECK(html.find("&lt;img src=x&gt;") != std::string::npos);
    CHECK(html.find("&lt;b&gt;eve") != std::string::npos);
}
