#include "config.hpp"
#include "delivery_window.hpp"
#include "webhook.hpp"

#include "bus/dedupe.hpp"
#include "bus/detail/hex.hpp"

#include "bus/legacy.hpp"
#include "bus/url.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

using namespace webhook;
namespace fs = std::filesystem;

namespace {

std::string fixture(const std::string& name)
{
    std::ifstream in(std::string(DEPLOYKIT_TEST_DATA) + "/webhooks/" + name);
    REQUIRE(in.good());
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

hook_config hook_for(provider p, std::string secret = "It's a Secret to Everybody")
{
    hook_config h;
    h.path = "/hook";
    h.kind = p;
    h.secret = std::move(secret);
    h.topic = "future.git.commits";
    return h;
}

struct delivery {
    header_map headers;
    std::string body;
    decision run(const hook_config& h) const
    {
        request r{"POST", h.path, &headers, body};
        return handle(h, r);
    }
};

delivery github(const std::string& event, std::string body, const std::string& secret = "It's a Secret to Everybody")
{
    delivery d;
    d.body = std::move(body);
    d.headers = {{"x-github-event", event},
                 {"x-github-delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
                 {"content-type", "application/json"},
                 {"user-agent", "GitHub-Hookshot/044aadd"},
                 {"x-hub-signature-256", "sha256=" + hmac_sha256_hex(secret, d.body)}};
    return d;
}

std::string status_of(const decision& d)
{
    return nlohmann::json::parse(d.body).value("status", "");
}

} // namespace

TEST_CASE("webhook: GitHub's published HMAC test vector")
{
    // docs.github.com "Validating webhook deliveries": this secret and body give this signature.
    CHECK(hmac_sha256_hex("It's a Secret to Everybody", "Hello, World!") ==
          "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
    CHECK(equal_constant_time("abc", "abc"));
    CHECK_FALSE(equal_constant_time("abc", "abd"));
    CHECK_FALSE(equal_constant_time("abc", "abcd"));
}

TEST_CASE("webhook: a signed GitHub push becomes one commit event")
{
    auto h = hook_for(provider::github);
    auto d = github("push", fixture("github_push.json")).run(h);
    REQUIRE(d.status == 202);
    CHECK(status_of(d) == "accepted");
    CHECK(d.delivery == "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    REQUIRE(d.commits.size() == 1);
    const auto& c = d.commits[0];
    CHECK(c.source == bus::commit_source::github);
    CHECK(c.repo == "blog");
    CHECK(c.ref == "refs/heads/main");
    CHECK(c.old_rev == "6113728f27ae82c7b1a177c8d03f9e96e0adf246");
    CHECK(c.new_rev == "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
    CHECK(c.author == "Mona Lisa <mona@example.com>");
    CHECK(c.date == "2026-11-22T10:00:00+00:00");
    CHECK(c.message == "Update README.md\n\nExplain the deploy.");
    // The original github-stomp form, for the Ruby consumers.
    auto m = bus::legacy::commit_message(c);
    CHECK(m.subject == "[blog] refs/heads/main 0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");
    CHECK(m.body.starts_with("repo: blog\noldrev: 6113728f27ae82c7b1a177c8d03f9e96e0adf246\nnewrev: "
                             "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c\nrefname: refs/heads/main\n commit "));
    auto back = bus::legacy::parse_commit(m.subject, m.body);
    REQUIRE(back);
    CHECK(back.value->repo == "blog");

    h.naming = repo_naming::full_name;
    CHECK(github("push", fixture("github_push.json")).run(h).commits.at(0).repo == "octo-org/blog");
}

TEST_CASE("webhook: GitHub form-encoded payload (the original github-stomp's input)")
{
    auto json = fixture("github_push.json");
    std::string form = "payload=";
    for (unsigned char ch : json) {
        if (std::isalnum(ch)) form.push_back(static_cast<char>(ch));
        else if (ch == ' ') form.push_back('+');
        else {
            char buf[4];
            std::snprintf(buf, sizeof buf, "%%%02X", ch);
            form += buf;
        }
    }
    auto d = github("push", form);
    d.headers["content-type"] = "application/x-www-form-urlencoded";
    auto r = d.run(hook_for(provider::github));
    REQUIRE(r.status == 202);
    CHECK(r.commits.at(0).new_rev == "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c");

    CHECK(form_value("a=1&payload=x%20y+z", "payload") == "x y z");
    CHECK_FALSE(form_value("payload=%zz", "payload"));
    CHECK_FALSE(form_value("payload=%4", "payload"));
    CHECK_FALSE(form_value("a=1", "payload"));
    auto bad = github("push", "a=1");
    bad.headers["content-type"] = "application/x-www-form-urlencoded";
    CHECK(bad.run(hook_for(provider::github)).status == 400);
}

TEST_CASE("webhook: signatures are checked before anything else")
{
    auto h = hook_for(provider::github);
    auto good = github("push", fixture("github_push.json"));

    auto missing = good;
    missing.headers.erase("x-hub-signature-256");
    auto d = missing.run(h);
    CHECK(d.status == 401);
    CHECK(d.commits.empty());

    auto forged = github("push", fixture("github_push.json"), "another secret");
    CHECK(forged.run(h).status == 403);

    auto tampered = good;
    tampered.body.replace(tampered.body.find("main"), 4, "prod");
    CHECK(tampered.run(h).status == 403);

    auto upper = good;
    auto& sig = upper.headers["x-hub-signature-256"];
    for (auto& ch : sig) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    sig.replace(0, 7, "sha256=");
    CHECK(upper.run(h).status == 202);  // hex case does not matter

    // Legacy SHA-1 only with allow-sha1.
    auto sha1 = good;
    sha1.headers.erase("x-hub-signature-256");
    sha1.headers["x-hub-signature"] = "sha1=" + hmac_sha1_hex("It's a Secret to Everybody", sha1.body);
    CHECK(sha1.run(h).status == 403);
    h.allow_sha1 = true;
    CHECK(sha1.run(h).status == 202);

    // An unsigned hook only when explicitly allowed; then no signature is needed.
    auto open = hook_for(provider::github, "");
    CHECK(missing.run(open).status == 403);
    open.allow_unsigned = true;
    CHECK(missing.run(open).status == 202);
}

TEST_CASE("webhook: ping is answered and not published")
{
    auto d = github("ping", fixture("github_ping.json")).run(hook_for(provider::github));
    CHECK(d.status == 200);
    CHECK(status_of(d) == "pong");
    CHECK(d.commits.empty());
}

TEST_CASE("webhook: other event types are ignored or rejected by config")
{
    auto h = hook_for(provider::github);
    auto d = github("issues", R"({"action":"opened"})").run(h);
    CHECK(d.status == 200);
    CHECK(status_of(d) == "ignored");
    CHECK(d.commits.empty());
    h.others = other_events::reject;
    CHECK(github("issues", R"({"action":"opened"})").run(h).status == 400);
}

TEST_CASE("webhook: a branch deletion carries the all-zero revision")
{
    auto d = github("push", fixture("github_delete.json")).run(hook_for(provider::github));
    REQUIRE(d.status == 202);
    CHECK(d.commits.at(0).ref == "refs/heads/feature/old");
    CHECK(bus::is_zero_revision(d.commits.at(0).new_rev));
    CHECK(d.commits.at(0).author == "monalisa <mona@example.com>");
}

TEST_CASE("webhook: malformed payloads are 400 and publish nothing")
{
    auto h = hook_for(provider::github);
    for (std::string body : {std::string("not json"), std::string("[1,2]"), std::string("{}"),
                             std::string(R"({"ref":"refs/heads/x","before":"zz","after":"0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c","repository":{"name":"r"}})")}) {
        CAPTURE(body);
        auto d = github("push", body).run(h);
        CHECK(d.status == 400);
        CHECK(d.commits.empty());
    }
}

TEST_CASE("webhook: members the parsers do not read are skipped but still checked to be JSON")
{
    auto h = hook_for(provider::github);
    auto base = nlohmann::json::parse(fixture("github_push.json"));
    // Unread members of any shape (deep, arrays of objects, scalars) change nothing; read members
    // after them are still found (the payload tree keeps only what the parsers read).
    auto j = nlohmann::json::object();
    j["sender"] = {{"login", "x"}, {"nested", {{"a", {1, 2, {{"b", nullptr}}}}}}};
    j["zz_unread"] = nlohmann::json::array({nlohmann::json::object({{"ref", "refs/heads/evil"}}), 1.5, true});
    for (auto& [k, v] : base.items()) j[k] = v;
    j["repository"]["owner"] = {{"name", "not-the-repo"}, {"full_name", "x/y"}};
    j["repository"]["topics"] = nlohmann::json::array({"a", "b"});
    auto d = github("push", j.dump()).run(h);
    REQUIRE(d.status == 202);
    REQUIRE(d.commits.size() == 1);
    CHECK(d.commits[0].repo == "blog");
    CHECK(d.commits[0].ref == "refs/heads/main");
    CHECK(d.commits[0].author == "Mona Lisa <mona@example.com>");
    h.naming = repo_naming::full_name;
    CHECK(github("push", j.dump()).run(h).commits.at(0).repo == "octo-org/blog");
    // A syntax error inside a skipped member is still a malformed payload.
    auto text = base.dump();
    text.insert(1, R"("sender": {"login": [1, 2,, ]}, )");
    CHECK(github("push", text).run(h).status == 400);
    text = base.dump();
    text.insert(text.size() - 1, R"(, "zz": {"a": tru})");
    CHECK(github("push", text).run(h).status == 400);
}

TEST_CASE("webhook: hostile refs and repository names are refused")
{
    auto h = hook_for(provider::github);
    auto base = nlohmann::json::parse(fixture("github_push.json"));
    for (std::string ref : {"refs/heads/$(touch /tmp/x)", "refs/heads/a;b", "refs/heads/`id`", "refs/heads/../../etc",
                            "refs/heads/a b"}) {
        CAPTURE(ref);
        auto j = base;
        j["ref"] = ref;
        CHECK(github("push", j.dump()).run(h).status == 400);
    }
    for (std::string repo : {"../etc", "-rf", "a;b", "$(id)", ""}) {
        CAPTURE(repo);
        auto j = base;
        j["repository"]["name"] = repo;
        CHECK(github("push", j.dump()).run(h).status == 400);
    }
}

TEST_CASE("webhook: repository and ref filters")
{
    auto h = hook_for(provider::github);
    h.repos = {"other", "bl*"};
    CHECK(github("push", fixture("github_push.json")).run(h).status == 202);
    h.repos = {"other"};
    auto d = github("push", fixture("github_push.json")).run(h);
    CHECK(d.status == 200);  // ignored, not an error the forge would count against the hook
    CHECK(status_of(d) == "ignored");
    CHECK(d.commits.empty());
    h.repos.clear();
    h.refs.emplace_back("^refs/tags/");
    d = github("push", fixture("github_push.json")).run(h);
    CHECK(d.status == 200);
    CHECK(status_of(d) == "ignored");
    h.refs.emplace_back("^refs/heads/(main|release/.*)$");
    CHECK(github("push", fixture("github_push.json")).run(h).status == 202);
}

TEST_CASE("webhook: GitLab push and tag push with the token")
{
    auto h = hook_for(provider::gitlab, "gl-token");
    delivery d;
    d.body = fixture("gitlab_push.json");
    d.headers = {{"x-gitlab-event", "Push Hook"},
                 {"x-gitlab-token", "gl-token"},
                 {"x-gitlab-event-uuid", "13792a34-cac6-4fda-95a8-c58e00a3954e"},
                 {"idempotency-key", "f5e5f430-f57b-4e6e-9fac-d9128cd7232f"},
                 {"content-type", "application/json"}};
    auto r = d.run(h);
    REQUIRE(r.status == 202);
    CHECK(r.delivery == "f5e5f430-f57b-4e6e-9fac-d9128cd7232f");  // the idempotency key wins
    const auto& c = r.commits.at(0);
    CHECK(c.source == bus::commit_source::gitlab);
    CHECK(c.repo == "diaspora");  // the path, not the display name
    CHECK(c.ref == "refs/heads/master");
    CHECK(c.new_rev == "da1560886d4f094c3e6c9ef40349f7d38b5d27d7");
    CHECK(c.message == "fixed readme");
    CHECK(c.author == "GitLab dev user <gitlabdev@dv6700.(none)>");
    h.naming = repo_naming::full_name;
    CHECK(d.run(h).commits.at(0).repo == "mike/diaspora");

    d.headers.erase("idempotency-key");
    CHECK(d.run(h).delivery == "13792a34-cac6-4fda-95a8-c58e00a3954e");

    auto wrong = d;
    wrong.headers["x-gitlab-token"] = "gl-tokem";
    CHECK(wrong.run(h).status == 403);
    wrong.headers.erase("x-gitlab-token");
    CHECK(wrong.run(h).status == 401);

    delivery tag;
    tag.body = fixture("gitlab_tag_push.json");
    tag.headers = {{"x-gitlab-event", "Tag Push Hook"}, {"x-gitlab-token", "gl-token"}};
    auto t = tag.run(h);
    REQUIRE(t.status == 202);
    CHECK(t.commits.at(0).ref == "refs/tags/v1.0.0");
    CHECK(bus::is_zero_revision(t.commits.at(0).old_rev));
    CHECK(t.delivery.starts_with("sha256:"));  // no id header: the body hash
}

TEST_CASE("webhook: Gitea signs with bare hex")
{
    auto h = hook_for(provider::gitea, "gitea-secret");
    delivery d;
    d.body = fixture("gitea_push.json");
    d.headers = {{"x-gitea-event", "push"},
                 {"x-gitea-delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473"},
                 {"x-gitea-signature", hmac_sha256_hex("gitea-secret", d.body)},
                 {"x-github-event", "push"},
                 {"x-gogs-event", "push"}};
    auto r = d.run(h);
    REQUIRE(r.status == 202);
    CHECK(r.delivery == "f6266f16-1bf3-46a5-9ea4-602e06ead473");
    CHECK(r.commits.at(0).source == bus::commit_source::gitea);
    CHECK(r.commits.at(0).repo == "webhooks");
    CHECK(r.commits.at(0).message == "Webhooks Yay!");
    CHECK(r.commits.at(0).url.starts_with("http://localhost:3000/gitea/webhooks/compare/"));
    // GitHub's prefixed form is not Gitea's: refused.
    d.headers["x-gitea-signature"] = "sha256=" + hmac_sha256_hex("gitea-secret", d.body);
    CHECK(d.run(h).status == 403);
    // Gogs
    d.headers.erase("x-gitea-signature");
    d.headers["x-gogs-signature"] = hmac_sha256_hex("gitea-secret", d.body);
    CHECK(d.run(h).status == 202);
}

TEST_CASE("webhook: Bitbucket Cloud push with two changes")
{
    auto h = hook_for(provider::bitbucket_cloud, "bb-secret");
    delivery d;
    d.body = fixture("bitbucket_cloud_push.json");
    d.headers = {{"x-event-key", "repo:push"},
                 {"x-request-uuid", "d9b5d4f4-5d1d-4d1b-9c6b-3f7a3a1c1e11"},
                 {"x-hook-uuid", "4d7f6d6b-2c3e-4e0b-8f4a-0a6e3d2b7f10"},
                 {"x-hub-signature", "sha256=" + hmac_sha256_hex("bb-secret", d.body)}};
    auto r = d.run(h);
    REQUIRE(r.status == 202);
    CHECK(r.delivery == "d9b5d4f4-5d1d-4d1b-9c6b-3f7a3a1c1e11");
    REQUIRE(r.commits.size() == 2);
    CHECK(r.commits[0].repo == "website");
    CHECK(r.commits[0].ref == "refs/heads/master");
    CHECK(r.commits[0].old_rev == "1e65c05c1d5171631d92438a13901ca7dae9618c");
    CHECK(r.commits[0].new_rev == "709d658dc5b6d6afcd46049c2f332ee3f515a67d");
    CHECK(r.commits[0].author == "Emma <emma@example.com>");
    CHECK(r.commits[1].ref == "refs/tags/v0.9");
    CHECK(bus::is_zero_revision(r.commits[1].new_rev));
    // The same SHA-256 value under GitHub's SHA-1 header name is Bitbucket's scheme; a sha1= value is not.
    d.headers["x-hub-signature"] = "sha1=" + hmac_sha1_hex("bb-secret", d.body);
    CHECK(d.run(h).status == 403);
    d.headers["x-event-key"] = "diagnostics:ping";
    d.headers["x-hub-signature"] = "sha256=" + hmac_sha256_hex("bb-secret", d.body);
    CHECK(d.run(h).status == 200);
}

TEST_CASE("webhook: Bitbucket Server refs_changed")
{
    auto h = hook_for(provider::bitbucket_server, "bbs-secret");
    delivery d;
    d.body = fixture("bitbucket_server_refs_changed.json");
    d.headers = {{"x-event-key", "repo:refs_changed"},
                 {"x-request-id", "a4f8b5a1-7e1c-4f7a-9a4b-2b8e5c6d7e8f"},
                 {"x-hub-signature", "sha256=" + hmac_sha256_hex("bbs-secret", d.body)}};
    auto r = d.run(h);
    REQUIRE(r.status == 202);
    CHECK(r.commits.at(0).repo == "repository");
    CHECK(r.commits.at(0).ref == "refs/heads/master");
    CHECK(r.commits.at(0).new_rev == "178864a7d521b6f5e720b386b2c2b0ef8563e0dc");
    CHECK(r.commits.at(0).author == "Administrator <admin@example.com>");
    h.naming = repo_naming::full_name;
    CHECK(d.run(h).commits.at(0).repo == "PROJ/repository");
}

TEST_CASE("webhook: redeliveries get the same event ids")
{
    auto a = event_id_for(provider::github, "72d3162e-cc78-11e3-81ab-4c9367dc0958", 0);
    CHECK(a == event_id_for(provider::github, "72d3162e-cc78-11e3-81ab-4c9367dc0958", 0));
    CHECK(a != event_id_for(provider::github, "72d3162e-cc78-11e3-81ab-4c9367dc0958", 1));
    CHECK(a != event_id_for(provider::gitea, "72d3162e-cc78-11e3-81ab-4c9367dc0958", 0));
    CHECK(a.size() == 36);
}

TEST_CASE("webhook: client address behind trusted proxies")
{
    std::vector<cidr> proxies{*parse_cidr("10.0.0.0/8"), *parse_cidr("::1")};
    CHECK(client_address("192.0.2.7", "1.2.3.4", proxies) == "192.0.2.7");  // not a proxy: XFF ignored
    CHECK(client_address("10.1.1.1", "198.51.100.9", proxies) == "198.51.100.9");
    CHECK(client_address("10.1.1.1", "6.6.6.6, 198.51.100.9, 10.2.2.2", proxies) == "198.51.100.9");
    CHECK(client_address("10.1.1.1", "10.2.2.2", proxies) == "10.2.2.2");
    CHECK(client_address("10.1.1.1", "garbage", proxies) == "10.1.1.1");
    CHECK(client_address("::1", "2001:db8::5", proxies) == "2001:db8::5");
    auto net = parse_cidr("192.30.252.0/22");
    REQUIRE(net);
    CHECK(net->contains("192.30.253.1"));
    CHECK_FALSE(net->contains("192.30.248.1"));
    CHECK_FALSE(parse_cidr("10.0.0.0/33"));
    CHECK_FALSE(parse_cidr("nonsense"));
}

TEST_CASE("webhook: config loads the original github-stomp keys and refuses inline secrets")
{
    auto dir = fs::temp_directory_path() / ("webhook-cfg-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    auto secret = dir / "secret";
    {
        std::ofstream(secret) << "s3cret\n";
    }
    ::chmod(secret.c_str(), 0600);
    auto write = [&](const std::string& text) {
        std::ofstream(dir / "c.yaml") << text;
        return dir / "c.yaml";
    };
    // The original github-stomp config: rserver and topics, nothing else (its example even lacked
    // stomp-options). Unsigned, as the original was, only when said so.
    auto orig = write("rserver: failover://(stomp://u:p@broker01:61613,stomp://u:p@broker02:61613)\n"
                      "trigger-topic: future.git.commits\nreport-topic: future.events.stomp-git\n"
                      "allow-unsigned: true\n");
    auto c = load_config(orig);
    REQUIRE(c.hooks.size() == 1);
    CHECK(c.hooks[0].path == "/");
    CHECK(c.hooks[0].kind == provider::github);
    CHECK(c.hooks[0].topic == "future.git.commits");
    CHECK(c.hooks[0].report_topic == "future.events.stomp-git");
    CHECK(c.listen_port == 4567);

    CHECK_FALSE(c.legacy_unsigned);  // said so: no migration warning

    // The original file exactly (no secret, no allow-unsigned) loads, unsigned, flagged so the
    // daemon warns at every start (issue 11, item 16: it used to be refused).
    c = load_config(write("rserver: failover://(stomp://u:p@broker01:61613)\n"
                          "trigger-topic: future.git.commits\nreport-topic: future.events.stomp-git\n"));
    REQUIRE(c.hooks.size() == 1);
    CHECK(c.hooks[0].allow_unsigned);
    CHECK(c.hooks[0].secret.empty());
    CHECK(c.legacy_unsigned);
    // The one line to add makes it signed, and the warning goes.
    c = load_config(write("rserver: failover://(stomp://u:p@broker01:61613)\n"
                          "trigger-topic: future.git.commits\nreport-topic: future.events.stomp-git\n"
                          "secret-file: " + secret.string() + "\n"));
    CHECK_FALSE(c.hooks[0].allow_unsigned);
    CHECK_FALSE(c.legacy_unsigned);
    // A hook in the `hooks:` map must still have a secret or say allow-unsigned.
    CHECK_THROWS_AS(load_config(write("rserver: stomp://localhost:61613\nhooks:\n  /x:\n    provider: github\n")),
                    bus::config_error);

    c = load_config(write("rserver: stomp://localhost:61613\nlisten: 127.0.0.1:0\nhooks:\n"
                          "  /github:\n    provider: github\n    secret-file: " + secret.string() +
                          "\n    repos: [blog]\n    refs: ['^refs/heads/main$']\n"
                          "  /gitlab:\n    provider: gitlab\n    secret-file: " + secret.string() +
                          "\n    topic: other.topic\n"));
    REQUIRE(c.hooks.size() == 2);
    CHECK(c.hooks[0].secret == "s3cret");
    CHECK(find_hook(c, "/gitlab")->topic == "other.topic");
    CHECK(find_hook(c, "/nope") == nullptr);

    try {
        load_config(write("rserver: stomp://localhost:61613\nhooks:\n  /x:\n    provider: github\n    secret: inline\n"));
        FAIL("inline secret accepted");
    } catch (const bus::config_error& e) {
        CHECK(std::string(e.what()).find(":5:") != std::string::npos);
        CHECK(std::string(e.what()).find("secret-file") != std::string::npos);
    }
    try {
        load_config(write("rserver: stomp://localhost:61613\nhooks:\n  /x:\n    provider: gitbucket\n"));
        FAIL("bad provider accepted");
    } catch (const bus::config_error& e) {
        CHECK(std::string(e.what()).find("provider") != std::string::npos);
    }
    ::chmod(secret.c_str(), 0644);
    CHECK_THROWS_AS(load_config(write("rserver: stomp://localhost:61613\nsecret-file: " + secret.string() + "\n")),
                    bus::config_error);
    fs::remove_all(dir);
}

namespace {

// Writes `text` as a config in a fresh directory (with a 0600 secret beside it) and loads it;
// returns the config_error's message, or "" when it loaded.
struct config_dir {
    fs::path dir = fs::temp_directory_path() / ("webhook-rt-" + std::to_string(::getpid()));
    fs::path secret = dir / "secret";
    config_dir()
    {
        fs::create_directories(dir);
        std::ofstream(secret) << "s3cret\n";
        ::chmod(secret.c_str(), 0600);
    }
    ~config_dir() { fs::remove_all(dir); }
    fs::path write(const std::string& text, const std::string& name = "c.yaml") const
    {
        std::ofstream(dir / name) << text;
        return dir / name;
    }
    std::string error(const std::string& text) const
    {
        try {
            load_config(write(text));
        } catch (const bus::runtime::config_error& e) {
            return e.what();
        }
        return "";
    }
    std::string hook(const std::string& extra = {}) const
    {
        return "hooks:\n  /github:\n    provider: github\n    secret-file: " + secret.string() + "\n" + extra;
    }
};

bool has(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

} // namespace

// issue 12: `allow_from:` was ignored, which turned the allow-list off without a word.
TEST_CASE("webhook: a misspelt or underscore key is an error naming the key meant")
{
    config_dir d;
    const std::string top = "rserver: stomp://localhost:61613\n";
    auto e = d.error(top + "allow_from: [10.0.0.0/8]\n" + d.hook());
    CHECK(has(e, "c.yaml:2: allow_from: unknown setting; did you mean `allow-from`?"));
    e = d.error(top + "allow-frm: [10.0.0.0/8]\n" + d.hook());
    CHECK(has(e, "c.yaml:2: allow-frm: unknown setting; did you mean `allow-from`?"));
    e = d.error(top + "max_connections: 10\n" + d.hook());
    CHECK(has(e, "c.yaml:2: max_connections:"));
    CHECK(has(e, "`max-connections`"));
    // Nested keys: the hook's path in the key.
    e = d.error(top + d.hook("    allow_sha1: true\n"));
    CHECK(has(e, "c.yaml:6: hooks./github.allow_sha1: unknown setting; did you mean `allow-sha1`?"));
    e = d.error(top + d.hook("    refz: ['^refs/heads/main$']\n"));
    CHECK(has(e, "c.yaml:6: hooks./github.refz: unknown setting; did you mean `refs`?"));
    // The legacy form takes the hook's keys at the top level; a typo there is caught too.
    e = d.error(top + "secret_file: " + d.secret.string() + "\n");
    CHECK(has(e, "c.yaml:2: secret_file: unknown setting; did you mean `secret-file`?"));
    // Types: file, line, key and what was expected.
    e = d.error(top + "max-connections: lots\n" + d.hook());
    CHECK(has(e, "c.yaml:2: max-connections: expected a whole number"));
    e = d.error(top + "allow-from: [10.0.0.0/40]\n" + d.hook());
    CHECK(has(e, "c.yaml:2: allow-from: expected an address or CIDR"));
    e = d.error(top + "hooks:\n  /x: github\n");
    CHECK(has(e, "c.yaml:3: hooks./x: expected a map of settings"));
    e = d.error(top + "hooks:\n  x:\n    provider: github\n    allow-unsigned: true\n");
    CHECK(has(e, "hooks.x: a hook path starts with /"));
    e = d.error(top + "admin-listen: nowhere\n" + d.hook());
    CHECK(has(e, "c.yaml:2: admin-listen: expected ADDRESS:PORT"));
    // The runtime's keys are read: admin endpoint and heartbeats.
    auto c = load_config(d.write(top + "admin-listen: 127.0.0.1:9101\nheartbeat-interval: 30s\n" + d.hook()));
    REQUIRE(c.admin_listen);
    CHECK(c.admin_listen->port == 9101);
    CHECK(c.heartbeat.interval == std::chrono::seconds(30));
    CHECK(c.heartbeat.topic == "deploykit.heartbeats");
}

TEST_CASE("webhook: secrets and the TLS key follow the one secret-file policy")
{
    config_dir d;
    const std::string top = "rserver: stomp://localhost:61613\n";
    ::chmod(d.secret.c_str(), 0640);
    auto e = d.error(top + d.hook());
    CHECK(has(e, "c.yaml:5: hooks./github.secret-file: "));
    CHECK(has(e, "has mode 0640"));
    CHECK(has(e, "chmod 600"));
    e = d.error(top + "hooks:\n  /github:\n    secret-file: " + (d.dir / "missing").string() + "\n");
    CHECK(has(e, "No such file or directory"));
    ::chmod(d.secret.c_str(), 0600);
    auto key = d.dir / "key.pem";
    std::ofstream(key) << "not really a key\n";
    ::chmod(key.c_str(), 0644);
    e = d.error(top + "tls-cert-file: /dev/null\ntls-key-file: " + key.string() + "\n" + d.hook());
    CHECK(has(e, "c.yaml:3: tls-key-file: "));
    CHECK(has(e, "has mode 0644"));
    // The broker's passcode too (the reader's own check had no owner test and no errno).
    auto pass = d.dir / "bus.passcode";
    std::ofstream(pass) << "pw\n";
    ::chmod(pass.c_str(), 0644);
    e = d.error(top + "passcode-file: " + pass.string() + "\n" + d.hook());
    CHECK(has(e, "c.yaml:2: passcode-file: "));
    CHECK(has(e, "has mode 0644"));
    e = d.error(top + "passcode-file: " + d.dir.string() + "\n" + d.hook());
    CHECK(has(e, "is not a regular file"));
}

TEST_CASE("webhook: a reload names the settings that need a restart")
{
    config_dir d;
    auto a = load_config(d.write("rserver: stomp://localhost:61613\nlisten: 127.0.0.1:4567\nmax-connections: 10\n"
                                 "allow-from: [10.0.0.0/8]\n" + d.hook()));
    auto b = load_config(d.write("rserver: stomp://localhost:61613\nlisten: 127.0.0.1:4568\nmax-connections: 20\n"
                                 "allow-from: [10.0.0.0/16]\n" + d.hook("    repos: [blog]\n")));
    auto n = needs_restart(a, b);
    CHECK(n == std::vector<std::string>{"listen", "max-connections"});
    CHECK(needs_restart(a, a).empty());
}

TEST_CASE("webhook: the access log line names the delivery and its outcome")
{
    decision d;
    d.delivery = "11111111-aaaa";
    d.event = "push";
    d.repo = "blog";
    d.commits.resize(2);
    auto line = access_line({.remote = "192.0.2.1", .method = "POST", .path = "/github", .status = 202, .bytes = 7,
                             .ms = 1.5, .d = &d},
                            "2026-12-04T10:00:00Z");
    CHECK(has(line, R"("delivery":"11111111-aaaa")"));
    CHECK(has(line, R"("events":2)"));
    CHECK(has(line, R"("status":202)"));
    CHECK(status_body("duplicate", "x") == R"({"detail":"x","status":"duplicate"})");
}

TEST_CASE("webhook: JSON nesting is bounded before parsing on an unsigned hook")
{
    // Issue 11 item 15: an allow-unsigned hook parsed a 16 MB body nested 8 million deep (613 MB
    // peak). The depth is now checked by a scan before any parser runs, on every hook.
    hook_config open = hook_for(provider::github, "");
    open.allow_unsigned = true;
    delivery d;
    d.headers = {{"x-github-event", "push"}, {"x-github-delivery", "deep-1"}, {"content-type", "application/json"}};
    d.body = "{\"a\":" + std::string(2'000'000, '[') + std::string(2'000'000, ']') + "}";
    auto r = d.run(open);
    CHECK(r.status == 400);
    CHECK(r.reason.find("nested deeper than") != std::string::npos);
    CHECK(r.commits.empty());
    // The same through the form encoding the original read.
    d.headers["content-type"] = "application/x-www-form-urlencoded";
    d.body = "payload=" + std::string(100'000, '%');  // not even decodable: still a 400
    CHECK(d.run(open).status == 400);
    d.body = "payload=" + std::string(1000, '{');
    r = d.run(open);
    CHECK(r.status == 400);
    CHECK(r.reason.find("nested deeper than") != std::string::npos);
    // Real payloads are far shallower; brackets inside strings do not count.
    CHECK(json_depth(fixture("github_push.json"), max_json_depth) < 10);
    CHECK(json_depth(R"({"m":"[[[[[[[[[[[[\"[[[["})", 3) == 1);
    CHECK(json_depth("[[[[[", 3) == 4);
}


// ---- the dedupe window (delivery_window.hpp) ------------------------------------------------

namespace {
using wclock = delivery_window::clock;
wclock::time_point whole_second_now() { return std::chrono::floor<std::chrono::seconds>(wclock::now()); }
} // namespace

namespace {
/// This process's resident set, in bytes (/proc/self/statm: pages).
std::size_t resident_bytes()
{
    std::ifstream f("/proc/self/statm");
    std::size_t size = 0, resident = 0;
    f >> size >> resident;
    return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
}
} // namespace

TEST_CASE("delivery_window - an empty window for 100000 deliveries is not resident")
{
    // The ring is allocated for its capacity but only the slots used may be touched: an idle
    // daemon must not hold 1.6 MB for deliveries it has not seen.
    // Bound: half the ring. Written at start, all of it is resident (1.6 MB); under ASan the
    // allocation's shadow (an eighth of it) and redzones are, ~0.3 MB.
    const std::size_t ring = 100000 * sizeof(delivery_window::slot);
    std::size_t before = resident_bytes();
    delivery_window w(100000, std::chrono::seconds(3600));
    std::size_t after = resident_bytes();
    CHECK(after - std::min(after, before) < ring / 2);
    w.remember("a", wclock::now());
    CHECK(w.seen("a", wclock::now()));
    CHECK(resident_bytes() - std::min(resident_bytes(), before) < ring / 2);
}

TEST_CASE("webhook dedupe: a remembered delivery is a duplicate and another is not")
{
    delivery_window w(100, std::chrono::seconds(60));
    auto t = wclock::now();
    CHECK_FALSE(w.seen("github:/github:d-1", t));
    w.remember("github:/github:d-1", t);
    CHECK(w.seen("github:/github:d-1", t));
    CHECK_FALSE(w.seen("github:/github:d-2", t));
    CHECK_FALSE(w.seen("gitea:/github:d-1", t));  // the key names provider and path too
    CHECK(w.size() == 1);
}

TEST_CASE("webhook dedupe: at most capacity deliveries and the oldest forgotten first")
{
    delivery_window w(1000, std::chrono::seconds(3600));
    auto t = wclock::now();
    for (int i = 0; i < 5000; ++i) w.remember("d-" + std::to_string(i), t);
    CHECK(w.size() == 1000);
    int kept = 0;
    for (int i = 0; i < 5000; ++i) kept += w.seen("d-" + std::to_string(i), t) ? 1 : 0;
    CHECK(kept == 1000);
    for (int i = 4000; i < 5000; ++i) REQUIRE(w.seen("d-" + std::to_string(i), t));
    // 16 bytes per slot plus the index at load <= 2/3: the memory bound holds at any fill.
    CHECK(w.memory_bytes() <= 1000 * 16 + (1000 * 3 / 2 + 1) * 4);
}

TEST_CASE("webhook dedupe: a delivery expires after the ttl and never before it")
{
    const auto ttl = std::chrono::seconds(10);
    delivery_window w(100, ttl);
    auto t0 = wclock::now();
    w.remember("a", t0);
    CHECK(w.seen("a", t0 + ttl - std::chrono::milliseconds(1)));
    CHECK_FALSE(w.seen("a", t0 + ttl + std::chrono::seconds(1)));  // whole seconds: at most 1 s late
    CHECK(w.size() == 0);
    // Remembered again: kept for the ttl from the later time.
    w.remember("b", t0);
    w.remember("b", t0 + std::chrono::seconds(8));
    CHECK(w.seen("b", t0 + std::chrono::seconds(17)));
    CHECK_FALSE(w.seen("b", t0 + std::chrono::seconds(19)));
}

TEST_CASE("webhook dedupe: answers like the exact string window under random load")
{
    // bus::dedupe_window keeps the ids themselves; with whole-second times both must agree on
    // every answer (capacity, expiry, re-remembering), through wrap-around and index growth.
    // Each remember a few seconds after the last (the exact window cannot tell two remembers of
    // one id in the same tick apart); ~500 remembers span about the ttl, so both bounds bind.
    delivery_window w(500, std::chrono::seconds(3000), "fixed test key");
    bus::dedupe_window exact(500, std::chrono::seconds(3000));
    std::mt19937 rng(18);
    auto t = whole_second_now();
    for (int op = 0; op < 40000; ++op) {
        std::string id = "id-" + std::to_string(rng() % 2000);
        if (rng() % 2) {
            REQUIRE(w.seen(id, t) == exact.seen(id, t));
        } else {
            t += std::chrono::seconds(1 + rng() % 11);
            w.remember(id, t);
            exact.remember(id, t);
        }
        REQUIRE(w.size() == exact.entries().size());
    }
}
