// deploy-agent's pure parts: reservations (two-phase votes), release names, the state record,
// the gitagent facts file as repo config, and the config reader's errors.

#include "config.hpp"
#include "core.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>

using namespace deploy_agent;
using namespace std::chrono_literals;

TEST_CASE("deploy-agent reservations: vote commit busy expire")
{
    reservations r;
    auto now = sys_clock::now();
    deploy::request_args a{"site", "v1", "", std::nullopt};
    CHECK(r.vote("site", "j1", "deploy", a, now + 30s, now) == reservations::vote_result::ready);
    CHECK(r.vote("site", "j2", "deploy", a, now + 30s, now) == reservations::vote_result::busy);
    CHECK(r.vote("site", "j1", "deploy", a, now + 60s, now) == reservations::vote_result::ready);  // renew
    CHECK(r.begin("site", "j2", "deploy", a, now) == std::optional<std::string>("busy: reserved by another job"));
    auto other = a;
    other.tag = "v2";
    CHECK(r.begin("site", "j1", "deploy", other, now).value() == "the commit differs from the vote");
    CHECK_FALSE(r.begin("site", "j1", "deploy", a, now));
    CHECK(r.begin("site", "j1", "deploy", a, now).value().starts_with("busy"));  // already running
    // Running reservations never expire, whatever the clock says.
    CHECK(r.vote("site", "j3", "deploy", a, now + 1h, now + 2h) == reservations::vote_result::busy);
    r.end("site", "j1");
    CHECK(r.vote("site", "j3", "deploy", a, now + 30s, now) == reservations::vote_result::ready);
    // Expired votes free the repo.
    CHECK(r.vote("site", "j4", "deploy", a, now + 1h, now + 31s) == reservations::vote_result::ready);
    r.release("j4");
    CHECK(r.size() == 0);
    CHECK(r.begin("site", "j4", "deploy", a, now).value() == "no vote for this job");
}

TEST_CASE("deploy-agent release names are injective and flat")
{
    auto t = sys_clock::from_time_t(1796378401);  // 2026-12-04T10:00:01Z
    CHECK(release_name(t, "v1.2.3") == "20261204T100001Z-v1.2.3");
    CHECK(release_name(t, "release/1") == "20261204T100001Z-release%2F1");
    CHECK(release_name(t, "release%2F1") == "20261204T100001Z-release%252F1");
    CHECK(release_name(t, "release/1") != release_name(t, "release%2F1"));
}

TEST_CASE("deploy-agent state record keeps N releases and never the live or previous one")
{
    repo_record r{"site", {}};
    std::vector<std::string> dropped;
    for (int i = 1; i <= 5; ++i) {
        auto d = push_release(r, release_record{"v" + std::to_string(i), "c", "/r/" + std::to_string(i), "t", "a", "q"}, 3);
        dropped.insert(dropped.end(), d.begin(), d.end());
    }
    CHECK(r.releases.size() == 3);
    CHECK(dropped == std::vector<std::string>{"/r/1", "/r/2"});
    CHECK(r.live()->tag == "v5");
    CHECK(r.previous()->tag == "v4");
    CHECK(push_release(r, release_record{"v6", "c", "/r/6", "t", "a", "q"}, 1).size() == 2);  // keep >= 2
    std::string err;
    auto back = repo_record_from_json(to_json(r).dump(), err);
    REQUIRE(back);
    CHECK(*back == r);
    CHECK_FALSE(repo_record_from_json("{not json", err));
    auto d = state_data(r);
    CHECK(d["tag"] == "v6");
    CHECK(d["previous"]["tag"] == "v5");
}

TEST_CASE("deploy-agent reads the original gitagent facts as repos")
{
    std::vector<std::pair<std::string, std::string>> facts{{"osfamily", "Debian"},
                                                           {"repo_site", "/data/repo/site"},
                                                           {"sitedir_site", "/data/site/"},
                                                           {"controldir_site", "/data/repo/site/future-control"},
                                                           {"sitetype_site", "live"}};
    auto repos = repos_from_facts(facts, "facts.yaml", "www-data");
    REQUIRE(repos.size() == 1);
    const auto& r = repos.at("site");
    CHECK(r.repo == "/data/repo/site");
    CHECK(r.sitedir == "/data/site");
    CHECK(r.releases() == "/data/site.releases");
    CHECK(r.sitetype == "live");
    CHECK(r.user == "www-data");
    facts.emplace_back("repo_other", "/data/repo/other");
    CHECK_THROWS_WITH(repos_from_facts(facts, "facts.yaml", "www-data"),
                      doctest::Contains("facts.yaml: sitedir_other: missing"));
    std::vector<std::pair<std::string, std::string>> bad{{"repo_../x", "/a"}};
    CHECK_THROWS(repos_from_facts(bad, "facts.yaml", "www-data"));
}

TEST_CASE("deploy-agent config errors name file line and key")
{
    auto dir = std::filesystem::temp_directory_path() / ("deploy-agent-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    auto write = [&](const std::string& text) {
        std::ofstream(dir / "a.yaml") << text;
        return dir / "a.yaml";
    };
    std::string base = "rserver: stomp://127.0.0.1:1\nfacts-file: /nonexistent\nstate-dir: /tmp/x\n";
    auto ok = load_config(write(base + "repos:\n  site: {repo: /r, sitedir: /s, controldir: /c, user: u1}\n"
                                       "commands:\n  hi: [/bin/echo, hi]\npolicy:\n  - {caller: a, effect: allow}\n"));
    CHECK(ok.repos.at("site").keep == 5);
    CHECK(ok.commands.at("hi").argv.size() == 2);
    CHECK(ok.policy.size() == 1);
    CHECK_THROWS_WITH(load_config(write(base + "policy:\n  - {caller: a, effect: maybe}\n")),
                      doctest::Contains("a.yaml:5: policy[0].effect: must be allow or deny"));
    CHECK_THROWS_WITH(load_config(write(base + "commands:\n  hi: [echo, hi]\n")),
                      doctest::Contains("argv must start with an absolute program path"));
    CHECK_THROWS_WITH(load_config(write(base + "repos:\n  a: {repo: /r, sitedir: /s, controldir: /c}\n"
                                               "  b: {repo: /r, sitedir: /s, controldir: /c}\n")),
                      doctest::Contains("share sitedir"));
    CHECK_THROWS_WITH(load_config(write(base + "identity: 'web 01'\n")), doctest::Contains("identity"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("deploy-agent command environment entries")
{
    CHECK(valid_env_entry("LANG=C"));
    CHECK(valid_env_entry("A_1="));
    CHECK_FALSE(valid_env_entry("=x"));
    CHECK_FALSE(valid_env_entry("1A=x"));
    CHECK_FALSE(valid_env_entry("A-B=x"));
    CHECK_FALSE(valid_env_entry("A=x\ny"));
}
