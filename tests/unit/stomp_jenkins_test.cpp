// stomp-jenkins' configuration and decisions: the original config, job selection, Jenkins URLs,
// the crumb exchange, what answers mean, delays, coalescing and the report lines. No sockets.
#include "stomp_jenkins.hpp"

#include "config.hpp"

#include "bus/url.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

using namespace stomp_jenkins;
namespace fs = std::filesystem;

namespace {

const std::string sha_a(40, 'a'), sha_b(40, 'b'), zero(40, '0');
const std::string options =
    "initialReconnectDelay=0.01&randomize=false&useExponentialBackOff=true&MaxReconnectDelay=30&BackOffMultiplier=2"
    "&MaxReconnectAttempts=0&Backup=false&Timeout=-1";

struct temp_dir {
    fs::path path;
    temp_dir()
    {
        std::string tmpl = (fs::temp_directory_path() / "sj-test.XXXXXX").string();
        path = ::mkdtemp(tmpl.data());
    }
    ~temp_dir() { fs::remove_all(path); }
    fs::path write(const std::string& name, const std::string& text, int mode = 0600) const
    {
        auto p = path / name;
        std::ofstream(p) << text;
        ::chmod(p.c_str(), static_cast<mode_t>(mode));
        return p;
    }
};

// The original's sample (../shared/reference/original.md §4.2) as printed there; its
// stomp-options value is elided with "..." in the document.
std::string original_sample(const std::string& stomp_options)
{
    return "rserver: failover://(stomp://u:p@broker01:61613,stomp://u:p@broker02:61613)\n"
           "stomp-options: " + stomp_options + "\n"
           "listen-topic: future.git.commits\n"
           "report-topic: future.events.jenkins\n"
           "jenkins-url: http://jenkins.example:8080\n"
           "jenkins-projects:\n"
           "  git-repo: {project: Job-Name, ticket: SECRET, ignore_refs: 'refs\\/tags\\/jenkins-(?:.*)'}\n"
           "  svn-repo:                 # nested form, keyed by the Project: value\n"
           "    sub-a: {project: name%20with%20spaces, ticket: KEY_A}\n";
}

std::string error_of(const fs::path& p)
{
    try {
        load_config(p);
    } catch (const bus::config_error& e) {
        return e.what();
    }
    return "(loaded)";
}

bus::commit_event git_commit(std::string repo, std::string ref, std::string rev = sha_b)
{
    bus::commit_event c;
    c.source = bus::commit_source::git;
    c.repo = std::move(repo);
    c.ref = std::move(ref);
    c.old_rev = sha_a;
    c.new_rev = std::move(rev);
    return c;
}

bus::commit_event svn_commit(std::string repo, std::string project, std::string rev = "1234")
{
    bus::commit_event c;
    c.source = bus::commit_source::svn;
    c.repo = std::move(repo);
    c.new_rev = std::move(rev);
    c.svn_project = std::move(project);
    return c;
}

job_config job(std::string name, trigger_mode m = trigger_mode::build)
{
    job_config j;
    j.name = name;
    j.configured = name;
    j.mode = m;
    j.cause = std::string(default_cause);
    return j;
}

std::vector<std::string> names(const selection& s)
{
    std::vector<std::string> out;
    for (const auto* j : s.jobs) out.push_back(j->name);
    return out;
}

http_response answer(long status, std::string body = {}, std::string location = {})
{
    http_response r;
    r.status = status;
    r.body = std::move(body);
    r.location = std::move(location);
    return r;
}

const std::string base = "http://jenkins.example:8080/ci";
const std::string crumb_json = R"({"_class":"hudson.security.csrf.DefaultCrumbIssuer","crumb":"c0ffee","crumbRequestField":"Jenkins-Crumb"})";

} // namespace

TEST_CASE("stomp-jenkins config - the original sample loads unchanged")
{
    temp_dir d;
    auto c = load_config(d.write("stomp-jenkins.yaml", original_sample(options)));
    CHECK(c.jenkins_url == "http://jenkins.example:8080");
    CHECK(c.listen_topic == "future.git.commits");
    CHECK(c.report_topic == "future.events.jenkins");
    CHECK(c.bus.client.url.endpoints.size() == 2);
    CHECK(c.creds.empty());
    REQUIRE(c.projects.size() == 2);

    const auto& g = c.projects.at("git-repo");
    CHECK_FALSE(g.nested);
    REQUIRE(g.jobs.size() == 1);
    CHECK(g.jobs[0].name == "Job-Name");
    CHECK(g.jobs[0].token == "SECRET");
    CHECK(g.jobs[0].mode == trigger_mode::token);  // the original sent ?token=<ticket>
    REQUIRE(g.jobs[0].ignore_re);
    CHECK(std::regex_search("refs/tags/jenkins-42", *g.jobs[0].ignore_re));
    CHECK_FALSE(std::regex_search("refs/heads/master", *g.jobs[0].ignore_re));

    const auto& s = c.projects.at("svn-repo");
    CHECK(s.nested);
    REQUIRE(s.by_project.count("sub-a") == 1);
    const auto& sub = s.by_project.at("sub-a");
    REQUIRE(sub.size() == 1);
    CHECK(sub[0].name == "name with spaces");
    CHECK(sub[0].configured == "name%20with%20spaces");
    CHECK(sub[0].token == "KEY_A");
    CHECK(sub[0].ignore_refs.empty());  // missing ignore_refs: no filter

    // Verbatim, the document's elided "..." option is refused with the file, line and key.
    auto e = error_of(d.write("verbatim.yaml", original_sample("initialReconnectDelay=0.01&...&Timeout=-1")));
    CHECK(e.find("verbatim.yaml:2: rserver/stomp-options") != std::string::npos);
}

TEST_CASE("stomp-jenkins config - the older repo-token form and the new keys")
{
    temp_dir d;
    auto creds = d.write("creds", "ci-bot:11aa22bb33\n");
    auto c = load_config(d.write("c.yaml",
        "rserver: stomp://127.0.0.1:61613\n"
        "jenkins-url: https://ci.example/jenkins/\n"
        "credentials-file: " + creds.string() + "\n"
        "crumb: 'off'\n"
        "request-timeout-ms: 2500\n"
        "retries: 3\n"
        "quiet-seconds: 2\n"
        "build-topic: future.jenkins.builds\n"
        "jenkins-projects:\n"
        "  old: OLDTOKEN\n"
        "  many:\n"
        "    ignore_refs: '^refs/tags/'\n"
        "    branches: [master, 'release/*']\n"
        "    jobs:\n"
        "      - project: folder/sub/deploy\n"
        "      - {project: tests, mode: buildWithParameters, quiet-seconds: 0.5}\n"
        "      - {project: pipe, mode: build, parameters: {SHA: '{commit}', WHY: 'push to {branch}'}}\n"
        "      - {project: remote, mode: buildByToken, ticket: T1, delay: 10}\n"
        "      - {mode: notifyCommit, clone-url: 'https://git.example/many.git', ticket: NT}\n"));
    CHECK(c.jenkins_url == "https://ci.example/jenkins");
    CHECK(c.creds.user == "ci-bot");
    CHECK(c.creds.token == "11aa22bb33");
    CHECK_FALSE(c.http.crumbs);
    CHECK(c.http.request_timeout == std::chrono::milliseconds(2500));
    CHECK(c.http.retries == 3);
    CHECK(c.build_topic == "future.jenkins.builds");

    const auto& old = c.projects.at("old").jobs;
    REQUIRE(old.size() == 1);
    CHECK(old[0].name == "old");
    CHECK(old[0].token == "OLDTOKEN");
    CHECK(old[0].mode == trigger_mode::token);

    const auto& m = c.projects.at("many").jobs;
    REQUIRE(m.size() == 5);
    CHECK(m[0].name == "folder/sub/deploy");
    CHECK(m[0].mode == trigger_mode::build);
    CHECK(m[0].quiet == std::chrono::milliseconds(2000));  // the global default
    CHECK(m[0].branches == std::vector<std::string>{"master", "release/*"});  // inherited
    CHECK(m[0].ignore_refs == "^refs/tags/");
    CHECK(m[1].mode == trigger_mode::build_with_parameters);
    CHECK(m[1].with_parameters);
    CHECK(m[1].parameters.empty());  // the default set
    CHECK(m[1].quiet == std::chrono::milliseconds(500));
    CHECK(m[2].parameters.size() == 2);
    CHECK(m[3].mode == trigger_mode::build_by_token);
    REQUIRE(m[3].delay);
    CHECK(m[3].delay->count() == 10);
    CHECK(m[4].mode == trigger_mode::notify_commit);
    CHECK(m[4].clone_url == "https://git.example/many.git");
    CHECK(m[4].display() == "https://git.example/many.git");
}

TEST_CASE("stomp-jenkins config - errors name the file line and key")
{
    temp_dir d;
    const std::string head = "rserver: stomp://127.0.0.1:61613\njenkins-url: http://j:8080\njenkins-projects:\n";
    auto err = [&](const std::string& body) { return error_of(d.write("bad.yaml", head + body)); };
    CHECK(err("  r: {project: x, projet: y}\n").find("bad.yaml:4: jenkins-projects.r.projet: unknown setting; did you mean `project`?") != std::string::npos);
    CHECK(err("  r: {project: x, mode: fetch}\n").find("bad.yaml:4: jenkins-projects.r: mode 'fetch'") != std::string::npos);
    CHECK(err("  r: {project: x, mode: token}\n").find("needs ticket") != std::string::npos);
    CHECK(err("  r: {project: x, ignore_refs: 'refs/(tags'}\n").find("jenkins-projects.r: ignore_refs") != std::string::npos);
    CHECK(err("  r: {project: 'a/../b'}\n").find("not a valid Jenkins item name") != std::string::npos);
    CHECK(err("  r: {project: 'bad%2'}\n").find("malformed %-escape") != std::string::npos);
    CHECK(err("  r: {mode: notifyCommit}\n").find("needs clone-url") != std::string::npos);
    CHECK(err("  r: {project: x, parameters: {A: '{sha}'}}\n").find("jenkins-projects.r.parameters.A: unknown placeholder {sha}") !=
          std::string::npos);
    CHECK(err("  r: {project: x, jobs: [{project: y}]}\n").find("project or jobs") != std::string::npos);
    CHECK(err("  r: [x]\n").find("bad.yaml:4: jenkins-projects.r: must be") != std::string::npos);
    CHECK(err("  r:\n    p: notamap\n").find("bad.yaml:5: jenkins-projects.r.p: a nested") != std::string::npos);
    CHECK(error_of(d.write("u.yaml", "rserver: stomp://h\njenkins-url: http://u:p@j:8080\n")).find("u.yaml:2: jenkins-url: no user") !=
          std::string::npos);
    CHECK(error_of(d.write("n.yaml", "rserver: stomp://h\n")).find("jenkins-url: missing") != std::string::npos);
    auto open = d.write("open-creds", "u:t\n", 0644);
    CHECK(error_of(d.write("c.yaml", "rserver: stomp://h\njenkins-url: http://j\ncredentials-file: " + open.string() + "\n"))
              .find("chmod 600") != std::string::npos);
    auto nocolon = d.write("nocolon", "justatoken\n");
    CHECK(error_of(d.write("c2.yaml", "rserver: stomp://h\njenkins-url: http://j\ncredentials-file: " + nocolon.string() + "\n"))
              .find("user:apitoken") != std::string::npos);
    CHECK(error_of(d.write("r.yaml", "rserver: stomp://h\njenkins-url: http://j\nretries: -1\n")).find("r.yaml:3: retries") !=
          std::string::npos);
    // An empty project list is a valid (idle) configuration, unlike the original's crash.
    CHECK(error_of(d.write("e.yaml", "rserver: stomp://h\njenkins-url: http://j\njenkins-projects:\n")) == "(loaded)");
}

TEST_CASE("stomp-jenkins config - an unreadable jenkins-ca-file stops the start")
{
    // libcurl and OpenSSL are initialised at the first request, not at start: the CA file they
    // would read is checked when the config is loaded (start, --check-config, reload).
    temp_dir d;
    auto ca = d.write("ca.pem", "-----BEGIN CERTIFICATE-----\n");
    CHECK(error_of(d.write("ok.yaml", "rserver: stomp://h\njenkins-url: https://j\njenkins-ca-file: " + ca.string() + "\n")) ==
          "(loaded)");
    auto err = error_of(d.write("ca.yaml", "rserver: stomp://h\njenkins-url: https://j\njenkins-ca-file: " +
                                               (d.path / "missing.pem").string() + "\n"));
    CHECK(err.find("ca.yaml:3: jenkins-ca-file: cannot read") != std::string::npos);
    CHECK(err.find("missing.pem") != std::string::npos);
}

TEST_CASE("stomp-jenkins - which jobs a commit triggers")
{
    temp_dir d;
    auto c = load_config(d.write("s.yaml", original_sample(options) +
                                                "  plain: {project: Plain}\n"
                                                "  filtered:\n"
                                                "    branches: ['release/*', master]\n"
                                                "    jobs: [{project: F1}, {project: F2, ignore_refs: 'hotfix'}]\n"));
    // Missing ignore_refs = no filter: the original suppressed nearly every build here.
    auto s = select_jobs(c.projects, git_commit("plain", "refs/tags/v1.0"));
    CHECK(s.known_repo);
    CHECK(names(s) == std::vector<std::string>{"Plain"});

    CHECK(select_jobs(c.projects, git_commit("git-repo", "refs/tags/jenkins-17")).jobs.empty());
    CHECK(names(select_jobs(c.projects, git_commit("git-repo", "refs/heads/master"))) == std::vector<std::string>{"Job-Name"});

    // A git message for the nested (SVN) entry: a logged skip, not a crash.
    s = select_jobs(c.projects, git_commit("svn-repo", "refs/heads/master"));
    CHECK(s.known_repo);
    CHECK(s.jobs.empty());
    REQUIRE(s.skipped.size() == 1);
    CHECK(s.skipped[0].find("no Project:") != std::string::npos);
    CHECK(names(select_jobs(c.projects, svn_commit("svn-repo", "sub-a"))) == std::vector<std::string>{"name with spaces"});
    s = select_jobs(c.projects, svn_commit("svn-repo", "sub-b"));
    CHECK(s.jobs.empty());
    CHECK(s.skipped[0].find("Project sub-b is not configured") != std::string::npos);
    // A flat entry takes SVN commits too (the original dropped them).
    CHECK(names(select_jobs(c.projects, svn_commit("plain", "anything"))) == std::vector<std::string>{"Plain"});

    CHECK_FALSE(select_jobs(c.projects, git_commit("unknown", "refs/heads/master")).known_repo);
    s = select_jobs(c.projects, git_commit("plain", "refs/heads/gone", zero));
    CHECK(s.jobs.empty());
    CHECK(s.skipped[0].find("deleted") != std::string::npos);

    CHECK(names(select_jobs(c.projects, git_commit("filtered", "refs/heads/release/2.1"))) ==
          std::vector<std::string>{"F1", "F2"});
    CHECK(names(select_jobs(c.projects, git_commit("filtered", "refs/heads/master"))) == std::vector<std::string>{"F1", "F2"});
    CHECK(select_jobs(c.projects, git_commit("filtered", "refs/heads/feature")).jobs.empty());
    CHECK(select_jobs(c.projects, git_commit("filtered", "refs/tags/release/1")).jobs.empty());
    CHECK(names(select_jobs(c.projects, git_commit("filtered", "refs/heads/release/hotfix-1"))) ==
          std::vector<std::string>{"F1"});
}

TEST_CASE("stomp-jenkins - folder URLs and encoding")
{
    CHECK(job_path("a/b/job") == "/job/a/job/b/job/job/");
    CHECK(job_path("Job-Name") == "/job/Job-Name/");
    CHECK(job_path("name with spaces") == "/job/name%20with%20spaces/");
    CHECK(job_path("dept/caf\xc3\xa9 (nightly)") == "/job/dept/job/caf%C3%A9%20%28nightly%29/");
    CHECK(percent_decode("name%20with%20spaces") == std::optional<std::string>("name with spaces"));
    CHECK_FALSE(percent_decode("bad%2"));
    CHECK_FALSE(percent_decode("bad%zz"));
    CHECK(form_encode({{"a b", "x&y=z"}, {"json", "{\"k\":1}"}}) == "a%20b=x%26y%3Dz&json=%7B%22k%22%3A1%7D");
    CHECK(valid_job_segment("Job-Name_2.x (nightly)"));
    for (std::string bad : {"", ".", "..", "a/b", "a?b", "a%b", "a:b", "a;b", "a\nb", "a#b"}) CHECK_FALSE(valid_job_segment(bad));
}

TEST_CASE("stomp-jenkins - trigger requests for every mode")
{
    auto t = make_trigger_data(git_commit("site", "refs/heads/feature/x"), "ev-1");
    CHECK(t.subject == "[site] refs/heads/feature/x " + sha_b);
    CHECK(t.branch == "feature/x");

    auto j = job("a/b/deploy");
    auto r = trigger_request(base, j, t);
    CHECK(r.method == "POST");
    CHECK(r.url == base + "/job/a/job/b/job/deploy/build");
    CHECK(r.body.empty());
    CHECK(r.wants_crumb);

    j.with_parameters = true;
    j.parameters = {{"SHA", "{commit}"}, {"WHY", "push to {branch}"}};
    r = trigger_request(base, j, t);
    auto json = nlohmann::json::parse(*percent_decode(r.body.substr(5)));
    CHECK(json == nlohmann::json::parse(R"({"parameter":[{"name":"SHA","value":")" + sha_b +
                                         R"("},{"name":"WHY","value":"push to feature/x"}]})"));

    auto bwp = job("tests", trigger_mode::build_with_parameters);
    bwp.with_parameters = true;
    bwp.delay = std::chrono::seconds(0);
    r = trigger_request(base, bwp, t);
    CHECK(r.url == base + "/job/tests/buildWithParameters");
    CHECK(r.body == "COMMIT=" + sha_b + "&BRANCH=feature%2Fx&REPO=site&EVENT_ID=ev-1&delay=0sec");

    auto tok = job("Job-Name", trigger_mode::token);
    tok.token = "SECRET";
    r = trigger_request(base, tok, t);
    CHECK(r.url == base + "/job/Job-Name/build");  // the token never goes into the URL
    CHECK(r.url.find("SECRET") == std::string::npos);
    CHECK(r.body == "token=SECRET&cause=deploykit%3A%20%5Bsite%5D%20refs%2Fheads%2Ffeature%2Fx%20" + sha_b +
                        "%20%28event%20ev-1%29");
    CHECK(r.wants_crumb);

    auto btr = job("a/b/remote", trigger_mode::build_by_token);
    btr.token = "T1";
    btr.cause = "{event_id}";
    r = trigger_request(base, btr, t);
    CHECK(r.url == base + "/buildByToken/build");
    CHECK(r.body == "job=a%2Fb%2Fremote&token=T1&cause=ev-1");
    CHECK_FALSE(r.wants_crumb);  // the plugin's URL is crumb-exempt
    btr.with_parameters = true;
    CHECK(trigger_request(base, btr, t).url == base + "/buildByToken/buildWithParameters");

    job_config nc;
    nc.mode = trigger_mode::notify_commit;
    nc.clone_url = "git@git.example:site.git";
    nc.token = "NT";
    r = trigger_request(base, nc, t);
    CHECK(r.url == base + "/git/notifyCommit");
    CHECK(r.body == "url=git%40git.example%3Asite.git&branches=feature%2Fx&sha1=" + sha_b + "&token=NT");
    CHECK_FALSE(r.wants_crumb);
    nc.notify_sha1 = false;
    CHECK(trigger_request(base, nc, t).body.find("sha1") == std::string::npos);
    auto tag = make_trigger_data(git_commit("site", "refs/tags/v1"), "ev-2");
    CHECK(trigger_request(base, nc, tag).body == "url=git%40git.example%3Asite.git&token=NT");  // tags: poll
}

TEST_CASE("stomp-jenkins - the crumb is fetched once and refetched once on 403")
{
    crumb_cache cache;
    http_request post;
    post.url = base + "/job/x/build";
    post.wants_crumb = true;

    exchange x(post, base, cache, true);
    auto r1 = x.next();
    REQUIRE(r1);
    CHECK(r1->method == "GET");
    CHECK(r1->url == base + "/crumbIssuer/api/json");
    CHECK_FALSE(x.next());  // waits for the answer
    x.on_response(answer(200, crumb_json));
    auto r2 = x.next();
    REQUIRE(r2);
    CHECK(r2->method == "POST");
    REQUIRE(r2->headers.size() == 1);
    CHECK(r2->headers[0] == std::pair<std::string, std::string>{"Jenkins-Crumb", "c0ffee"});
    x.on_response(answer(201, "", "http://jenkins.example:8080/ci/queue/item/7/"));
    CHECK_FALSE(x.next());
    CHECK(x.result().status == 201);
    CHECK(cache.st == crumb_cache::state::have);

    // Reused by the next trigger on this session; a stale one (403) is refetched once.
    exchange y(post, base, cache, true);
    auto p = y.next();
    REQUIRE(p);
    CHECK(p->method == "POST");
    y.on_response(answer(403, "<title>Error 403 No valid crumb was included in the request</title>"));
    auto g = y.next();
    REQUIRE(g);
    CHECK(g->method == "GET");
    y.on_response(answer(200, R"({"crumb":"fresh","crumbRequestField":"Jenkins-Crumb"})"));
    p = y.next();
    REQUIRE(p);
    CHECK(p->headers.at(0).second == "fresh");
    y.on_response(answer(201));
    CHECK_FALSE(y.next());
    CHECK(y.refetched());
    CHECK(y.requests() == 3);

    // A second 403 is the answer: refetched once only.
    exchange z(post, base, cache, true);
    z.next();
    z.on_response(answer(403));
    z.next();
    z.on_response(answer(200, crumb_json));
    z.next();
    z.on_response(answer(403, "<title>Error 403 alice is missing the Job/Build permission</title>"));
    CHECK_FALSE(z.next());
    CHECK(z.result().status == 403);

    // A 403 for another reason (a wrong job token) is not helped by a new crumb.
    exchange w(post, base, cache, true);
    w.next();
    w.on_response(answer(403, "<title>Error 403 Invalid token provided.</title>"));
    CHECK_FALSE(w.next());
    CHECK_FALSE(w.refetched());

    // CSRF protection off: the issuer's 404 is remembered and POSTs go without a crumb.
    crumb_cache off;
    exchange o(post, base, off, true);
    o.next();
    o.on_response(answer(404));
    p = o.next();
    REQUIRE(p);
    CHECK(p->headers.empty());
    o.on_response(answer(201));
    CHECK(off.st == crumb_cache::state::disabled);
    exchange o2(post, base, off, true);
    CHECK(o2.next()->method == "POST");

    // Jenkins unreachable while fetching the crumb: that is the result (retried later).
    crumb_cache c2;
    exchange u(post, base, c2, true);
    u.next();
    http_response down;
    down.error = "Connection refused";
    u.on_response(down);
    CHECK_FALSE(u.next());
    CHECK(u.result().status == 0);
    CHECK(c2.st == crumb_cache::state::unknown);

    // crumb: off, and crumb-exempt requests, never fetch one.
    crumb_cache c3;
    exchange n(post, base, c3, false);
    CHECK(n.next()->method == "POST");
    http_request exempt = post;
    exempt.wants_crumb = false;
    exchange e(exempt, base, c3, true);
    CHECK(e.next()->method == "POST");

    CHECK_FALSE(parse_crumb(R"({"crumb":"a\r\nX: y","crumbRequestField":"Jenkins-Crumb"})"));
    CHECK_FALSE(parse_crumb(R"({"crumb":"a","crumbRequestField":"Bad Field"})"));
    CHECK_FALSE(parse_crumb("not json"));
}

TEST_CASE("stomp-jenkins - what Jenkins answers mean")
{
    auto c = classify(trigger_mode::build, answer(201, "", "http://elsewhere.invalid/ci/queue/item/42/"), base);
    CHECK(c.v == verdict::accepted);
    REQUIRE(c.queue);
    CHECK(*c.queue == base + "/queue/item/42/api/json");  // the configured host, always
    CHECK(classify(trigger_mode::build_by_token, answer(303, "", base + "/buildByToken/"), base).v == verdict::accepted);
    CHECK(classify(trigger_mode::build, answer(302, "", base + "/login?from=%2Fjob"), base).v == verdict::held);
    http_response down;
    down.error = "Connection refused";
    c = classify(trigger_mode::build, down, base);
    CHECK(c.v == verdict::transient);
    CHECK(c.reason.find("Connection refused") != std::string::npos);
    c = classify(trigger_mode::build, answer(503, "<html><body>Jenkins is getting\nready to work ...</body></html>"), base);
    CHECK(c.v == verdict::transient);
    CHECK(c.reason == "HTTP 503: Jenkins is getting ready to work ...");
    CHECK(classify(trigger_mode::build, answer(429), base).v == verdict::transient);
    c = classify(trigger_mode::build, answer(404, "<html><head><title>Error 404 Not Found</title></head></html>"), base);
    CHECK(c.v == verdict::permanent);
    CHECK(c.reason == "HTTP 404: Not Found");
    c = classify(trigger_mode::build, answer(401, "<title>Error 401 Invalid password/token for user: ci</title>"), base);
    CHECK(c.v == verdict::held);  // a rotated API token: held until fixed, never dropped
    CHECK(c.reason == "HTTP 401: Invalid password/token for user: ci");
    CHECK(classify(trigger_mode::build, answer(403), base).v == verdict::held);
    CHECK(classify(trigger_mode::build, answer(400, "Nothing is submitted"), base).v == verdict::permanent);
    CHECK(classify(trigger_mode::build_with_parameters,
                   answer(500, "java.lang.IllegalStateException: This build is not parameterized!"), base)
              .v == verdict::permanent);
    CHECK(classify(trigger_mode::build, answer(500, "java.lang.OutOfMemoryError"), base).v == verdict::transient);

    c = classify(trigger_mode::notify_commit, answer(200, "Scheduled polling of a/b\nScheduled site-build\n"), base);
    CHECK(c.v == verdict::accepted);
    CHECK(c.notified == std::vector<std::string>{"Scheduled polling of a/b", "Scheduled site-build"});
    c = classify(trigger_mode::notify_commit, answer(200, "No git jobs using repository: x and branches: master\n"), base);
    CHECK(c.v == verdict::permanent);
    CHECK(classify(trigger_mode::notify_commit, answer(401, "An access token is required."), base).v == verdict::held);

    CHECK(queue_api_url(base, "http://j/queue/item/12/") == std::optional<std::string>(base + "/queue/item/12/api/json"));
    CHECK_FALSE(queue_api_url(base, "http://j/queue/item/x/"));
    CHECK_FALSE(queue_api_url(base, "http://j/job/x/"));
}

TEST_CASE("stomp-jenkins - queue items move to a build number")
{
    auto q = parse_queue_item(R"({"_class":"hudson.model.Queue$WaitingItem","blocked":false,"buildable":false,"id":7,
        "why":"In the quiet period. Expires in 4.9 sec"})");
    CHECK(q.what == queue_state::kind::waiting);
    CHECK(q.why.starts_with("In the quiet period"));
    q = parse_queue_item(R"({"_class":"hudson.model.Queue$LeftItem","cancelled":false,
        "executable":{"_class":"hudson.model.FreeStyleBuild","number":12,"url":"http://j/job/x/12/"}})");
    CHECK(q.what == queue_state::kind::started);
    CHECK(q.number == 12);
    CHECK(q.url == "http://j/job/x/12/");
    CHECK(parse_queue_item(R"({"cancelled":true,"executable":null})").what == queue_state::kind::cancelled);
    CHECK(parse_queue_item(R"({"executable":{"number":"12"}})").what == queue_state::kind::invalid);
    CHECK(parse_queue_item("<html>").what == queue_state::kind::invalid);
}

TEST_CASE("stomp-jenkins - retry and polling delays are bounded")
{
    http_settings h;
    h.retry_initial = std::chrono::milliseconds(1000);
    h.retry_max = std::chrono::milliseconds(30000);
    CHECK(retry_delay(h, 1, 0.0) == std::chrono::milliseconds(1000));
    CHECK(retry_delay(h, 2, 0.0) == std::chrono::milliseconds(2000));
    CHECK(retry_delay(h, 5, 0.0) == std::chrono::milliseconds(16000));
    CHECK(retry_delay(h, 6, 0.0) == std::chrono::milliseconds(30000));
    CHECK(retry_delay(h, 60, 0.0) == std::chrono::milliseconds(30000));
    CHECK(retry_delay(h, 1, 0.999) >= std::chrono::milliseconds(800));
    CHECK(retry_delay(h, 1, 0.0, "7") == std::chrono::milliseconds(7000));      // Retry-After
    CHECK(retry_delay(h, 1, 0.0, "3600") == std::chrono::milliseconds(30000));  // within the cap
    CHECK(retry_delay(h, 1, 0.0, "Wed, 21 Oct 2015") == std::chrono::milliseconds(1000));
    CHECK(poll_delay(0) == std::chrono::milliseconds(500));
    CHECK(poll_delay(1) == std::chrono::milliseconds(750));
    CHECK(poll_delay(100) == std::chrono::milliseconds(5000));
}

TEST_CASE("stomp-jenkins - a burst of pushes becomes one request per quiet window")
{
    using clock = scheduler::clock;
    scheduler s;
    auto t0 = clock::time_point{} + std::chrono::hours(1);
    auto j = job("site-build");
    j.quiet = std::chrono::seconds(2);
    for (std::uint64_t i = 1; i <= 10; ++i) {
        auto c = git_commit("site", "refs/heads/master", std::string(39, 'c') + static_cast<char>('0' + i % 10));
        std::vector<scheduler::trigger> ts{{j, make_trigger_data(c, "ev-" + std::to_string(i))}};
        CHECK(s.submit(i, "ev-" + std::to_string(i), std::move(ts), t0 + std::chrono::milliseconds(100 * i)) == 1);
    }
    CHECK(s.messages() == 10);
    // The window opened with the first push (t0 + 100 ms) and is not extended by the others.
    CHECK(s.take_due(t0 + std::chrono::milliseconds(2099)).empty());
    CHECK(s.next_due() == t0 + std::chrono::milliseconds(2100));
    auto due = s.take_due(t0 + std::chrono::milliseconds(2100));
    REQUIRE(due.size() == 1);
    CHECK(due[0].requests == 10);
    CHECK(due[0].tokens.size() == 10);
    CHECK(due[0].data.event_id == "ev-10");  // the latest push's data

    // While that request is in flight, the next push waits behind it, whatever its window.
    std::vector<scheduler::trigger> late{{j, make_trigger_data(git_commit("site", "refs/heads/master"), "ev-11")}};
    s.submit(11, "ev-11", std::move(late), t0 + std::chrono::seconds(3));
    CHECK(s.take_due(t0 + std::chrono::seconds(10)).empty());
    CHECK_FALSE(s.next_due());
    auto res = s.complete(due[0], scheduler::outcome::accepted);
    CHECK(res.size() == 10);
    CHECK(std::all_of(res.begin(), res.end(), [](const auto& r) { return r.ack; }));
    auto next = s.take_due(t0 + std::chrono::seconds(10));
    REQUIRE(next.size() == 1);
    CHECK(next[0].tokens == std::vector<std::uint64_t>{11});
}

TEST_CASE("stomp-jenkins - parameterized jobs coalesce per branch")
{
    scheduler s;
    auto now = scheduler::clock::now();
    auto j = job("tests", trigger_mode::build_with_parameters);
    j.with_parameters = true;
    std::vector<scheduler::trigger> a{{j, make_trigger_data(git_commit("site", "refs/heads/master"), "e1")}};
    std::vector<scheduler::trigger> b{{j, make_trigger_data(git_commit("site", "refs/heads/feature"), "e2")}};
    std::vector<scheduler::trigger> c{{j, make_trigger_data(git_commit("site", "refs/heads/master"), "e3")}};
    s.submit(1, "e1", std::move(a), now);
    s.submit(2, "e2", std::move(b), now);
    s.submit(3, "e3", std::move(c), now);
    auto due = s.take_due(now);
    REQUIRE(due.size() == 2);  // master (e1+e3) and feature (e2)
    CHECK(due[0].requests + due[1].requests == 3);
}

TEST_CASE("stomp-jenkins - a message is acknowledged after all its jobs and given back when one gave up")
{
    scheduler s;
    auto now = scheduler::clock::now();
    auto data = make_trigger_data(git_commit("site", "refs/heads/master"), "ev-x");
    std::vector<scheduler::trigger> ts{{job("one"), data}, {job("two"), data}};
    CHECK(s.submit(1, "ev-x", ts, now) == 2);
    CHECK(s.in_progress("ev-x"));
    auto due = s.take_due(now);
    REQUIRE(due.size() == 2);
    CHECK(s.complete(due[0], scheduler::outcome::accepted).empty());  // still waiting for the other
    auto res = s.complete(due[1], scheduler::outcome::gave_up);
    REQUIRE(res.size() == 1);
    CHECK_FALSE(res[0].ack);  // NACK: the broker redelivers
    CHECK_FALSE(s.in_progress("ev-x"));

    // The redelivery asks only for the job that did not get through.
    CHECK(s.submit(2, "ev-x", ts, now) == 1);
    due = s.take_due(now);
    REQUIRE(due.size() == 1);
    CHECK(due[0].job.name == (due[0].key.find("one") != std::string::npos ? "one" : "two"));
    res = s.complete(due[0], scheduler::outcome::rejected);  // refused for good: acknowledged
    REQUIRE(res.size() == 1);
    CHECK(res[0].ack);
    // Everything accepted already: nothing to wait for.
    std::vector<scheduler::trigger> again{{job(due[0].job.name == "one" ? "two" : "one"), data}};
    CHECK(s.submit(3, "ev-x", std::move(again), now) == 0);
}

TEST_CASE("stomp-jenkins - the report lines")
{
    auto j = job("name with spaces", trigger_mode::token);
    j.configured = "name%20with%20spaces";
    auto t = make_trigger_data(git_commit("git-repo", "refs/heads/master"), "e");
    CHECK(report_line(t, j) == "Requested Jenkins build: [git-repo] refs/heads/master " + sha_b + " / name_with_spaces");
    auto s = make_trigger_data(svn_commit("svn-repo", "sub-a", "1234"), "e");
    CHECK(report_line(s, j) == "Requested Jenkins build: [svn-repo] 1234  / name_with_spaces");  // the SVN subject's space
    CHECK(failure_line(t, job("x"), "HTTP 404: Not Found") ==
          "Jenkins build request failed: [git-repo] refs/heads/master " + sha_b + " / x: HTTP 404: Not Found");
    CHECK(expand("{repo}@{branch}:{unknown}", t) == "git-repo@master:{unknown}");
    CHECK(unknown_placeholder("{repo} {nope} {commit}") == "nope");
    CHECK(glob_match("release/*", "release/2.1"));
    CHECK_FALSE(glob_match("release/*", "master"));
}

TEST_CASE("stomp-jenkins - only real acceptance counts as accepted")
{
    const std::string job_name = "folder/deploy";
    auto cl = [&](trigger_mode m, long status, std::string body = {}, std::string location = {}) {
        return classify(m, answer(status, std::move(body), std::move(location)), base, job_name);
    };
    // Accepted: 201; 302 with no Location, at a queue item or at the job; 303 for buildByToken; 200 for notifyCommit.
    CHECK(cl(trigger_mode::build, 201, "", base + "/queue/item/3/").v == verdict::accepted);
    CHECK(cl(trigger_mode::build_with_parameters, 302).v == verdict::accepted);
    CHECK(cl(trigger_mode::build_with_parameters, 302, "", base + "/queue/item/9/").v == verdict::accepted);
    CHECK(cl(trigger_mode::build_with_parameters, 302, "", base + "/job/folder/job/deploy/").v == verdict::accepted);
    CHECK(cl(trigger_mode::build_with_parameters, 302, "", "/ci/job/folder/job/deploy/").v == verdict::accepted);
    CHECK(cl(trigger_mode::build_by_token, 303, "", base + "/buildByToken/").v == verdict::accepted);
    CHECK(cl(trigger_mode::notify_commit, 200, "Scheduled polling of x\n").v == verdict::accepted);
    CHECK(cl(trigger_mode::notify_commit, 200, "<html><title>Log in</title></html>").v == verdict::held);
    // Not accepted, each with a reason.
    auto c = cl(trigger_mode::build, 302, "", "https://sso.example/auth?next=jenkins");
    CHECK(c.v == verdict::held);
    CHECK(c.reason.find("sso.example") != std::string::npos);
    CHECK(cl(trigger_mode::build, 302, "", base + "/job/other/").v == verdict::held);
    CHECK(cl(trigger_mode::build, 303, "", base + "/job/folder/job/deploy/").v == verdict::held);  // 303 only for buildByToken
    c = cl(trigger_mode::build, 200, "<html><title>Sign in</title></html>");
    CHECK(c.v == verdict::held);  // a proxy's login page
    CHECK(c.reason.starts_with("HTTP 200: Sign in"));
    CHECK(cl(trigger_mode::build, 204).v == verdict::held);
    CHECK(cl(trigger_mode::build, 405, "Method Not Allowed").v == verdict::permanent);
    CHECK(cl(trigger_mode::build, 410).v == verdict::permanent);
    CHECK(cl(trigger_mode::build, 409).v == verdict::transient);
    CHECK(cl(trigger_mode::build, 502).v == verdict::transient);
    CHECK_FALSE(cl(trigger_mode::build, 403, "Invalid token provided").reason.empty());
}

TEST_CASE("stomp-jenkins - the crumb issuer's own answer is an error")
{
    crumb_cache cache;
    http_request post;
    post.url = base + "/job/x/build";
    post.wants_crumb = true;
    for (long status : {302L, 200L, 401L, 500L, 0L}) {
        cache = crumb_cache{};
        exchange x(post, base, cache, true);
        REQUIRE(x.next());
        auto a = answer(status, status == 200 ? crumb_json : "", status == 302 ? "https://sso.example/login?x" : "");
        if (status == 200) {
            x.on_response(a);
            CHECK(x.next()->method == "POST");  // a crumb: on to the trigger
            continue;
        }
        x.on_response(a);
        CHECK_FALSE(x.next());
        CHECK(x.result().crumb_issuer);
        auto c = classify(trigger_mode::build, x.result(), base, "x");
        CHECK(c.v != verdict::accepted);
        CHECK(c.reason.starts_with("crumb issuer: "));
        if (status == 302 || status == 401) CHECK(c.v == verdict::held);
        else CHECK(c.v == verdict::transient);
    }
    // The crumb issuer answering 302 never counts as the trigger's 302.
    exchange x(post, base, cache, true);
    cache = crumb_cache{};
    REQUIRE(x.next());
    x.on_response(answer(302));
    CHECK(classify(trigger_mode::build_with_parameters, x.result(), base, "x").reason == "crumb issuer: HTTP 302");
}

TEST_CASE("stomp-jenkins - a redelivered copy joins the event in progress")
{
    scheduler s;
    auto now = scheduler::clock::now();
    auto data = make_trigger_data(git_commit("site", "refs/heads/master"), "ev-r");
    CHECK_FALSE(s.attach("ev-r", 1));  // nothing in progress: submit instead
    std::vector<scheduler::trigger> ts{{job("one"), data}};
    CHECK(s.submit(1, "ev-r", ts, now) == 1);
    CHECK(s.attach("ev-r", 2));  // the broker's redelivery after a reconnect
    CHECK(s.attach("ev-r", 3));  // the other wire format
    CHECK(s.attach("ev-r", 3));  // once only
    CHECK(s.messages() == 1);
    auto due = s.take_due(now);
    REQUIRE(due.size() == 1);
    // Jenkins down: back to the scheduler, nothing answered.
    due[0].attempts = 1;
    s.requeue(due[0], now + std::chrono::seconds(1), false);
    CHECK(s.take_due(now).empty());
    CHECK(s.next_due() == now + std::chrono::seconds(1));
    due = s.take_due(now + std::chrono::seconds(1));
    REQUIRE(due.size() == 1);
    CHECK(due[0].attempts == 1);
    auto res = s.complete(due[0], scheduler::outcome::accepted);
    REQUIRE(res.size() == 3);  // all copies acknowledged together
    CHECK(std::all_of(res.begin(), res.end(), [](const auto& r) { return r.ack; }));
    std::vector<std::uint64_t> tokens;
    for (auto& r : res) tokens.push_back(r.token);
    std::sort(tokens.begin(), tokens.end());
    CHECK(tokens == std::vector<std::uint64_t>{1, 2, 3});
    CHECK_FALSE(s.in_progress("ev-r"));
}

TEST_CASE("stomp-jenkins - retried batches merge with newer events and held ones wake on reload")
{
    scheduler s;
    auto now = scheduler::clock::now();
    auto j = job("deploy");
    std::vector<scheduler::trigger> a{{j, make_trigger_data(git_commit("site", "refs/heads/master", sha_a), "e1")}};
    s.submit(1, "e1", std::move(a), now);
    auto due = s.take_due(now);
    REQUIRE(due.size() == 1);
    // While it is in flight a newer push arrives; the first then fails with 401 (held).
    std::vector<scheduler::trigger> b{{j, make_trigger_data(git_commit("site", "refs/heads/master", sha_b), "e2")}};
    s.submit(2, "e2", std::move(b), now);
    due[0].attempts = 1;
    s.requeue(due[0], now + std::chrono::minutes(1), true);
    CHECK(s.pending() == 1);
    CHECK(s.take_due(now + std::chrono::seconds(5)).empty());
    CHECK(s.kick_held(now + std::chrono::seconds(5)) == 1);  // SIGHUP
    due = s.take_due(now + std::chrono::seconds(5));
    REQUIRE(due.size() == 1);
    CHECK(due[0].tokens.size() == 2);
    CHECK(due[0].data.commit == sha_b);  // the newer event's data, one request for both
    auto res = s.complete(due[0], scheduler::outcome::accepted);
    CHECK(res.size() == 2);
    CHECK(s.messages() == 0);
}

TEST_CASE("stomp-jenkins - invalid UTF-8 in commit data does not throw")
{
    auto c = git_commit("site", "refs/heads/ma\xff\xfeter");
    c.author = "Dev \xc3\x28 One";
    auto t = make_trigger_data(c, "ev-u");
    auto j = job("pipe");
    j.with_parameters = true;
    j.parameters = {{"WHO", "{author}"}, {"BRANCH", "{branch}"}};
    http_request r;
    CHECK_NOTHROW(r = trigger_request(base, j, t));
    CHECK(r.body.starts_with("json="));
    CHECK(r.body.find("%EF%BF%BD") != std::string::npos);  // U+FFFD in place of the bad bytes
}

TEST_CASE("stomp-jenkins config - Ruby anchors in ignore_refs")
{
    CHECK(translate_ruby_anchors("\\Arefs/tags/.*\\z") == "^refs/tags/.*$");
    CHECK(translate_ruby_anchors("a\\\\Ab") == "a\\\\Ab");  // an escaped backslash then A
    CHECK(translate_ruby_anchors("refs\\/tags") == "refs\\/tags");
    std::regex re(translate_ruby_anchors("\\Arefs/tags/jenkins-.*\\Z"));
    CHECK(std::regex_search(std::string("refs/tags/jenkins-1"), re));
    CHECK_FALSE(std::regex_search(std::string("x/refs/tags/jenkins-1"), re));
}

TEST_CASE("stomp-jenkins config - durable by default and secrets out of URL errors")
{
    temp_dir d;
    auto c = load_config(d.write("a.yaml", "rserver: stomp://h\njenkins-url: http://j\n"));
    CHECK(c.durable_name.starts_with("stomp-jenkins-"));
    CHECK(c.bus.client.client_id == c.durable_name);  // ActiveMQ needs one for a durable subscription
    c = load_config(d.write("b.yaml", "rserver: stomp://h\njenkins-url: http://j\ndurable-name: ''\n"));
    CHECK(c.durable_name.empty());
    CHECK(c.bus.client.client_id.empty());
    c = load_config(d.write("c.yaml", "rserver: stomp://h\njenkins-url: http://j\ndurable-name: sj-one\n"));
    CHECK(c.durable_name == "sj-one");
    auto e = error_of(d.write("u.yaml", "rserver: stomp://h\njenkins-url: ftp://bob:hunter2@j/x\n"));
    CHECK(e.find("is not an http") != std::string::npos);
    CHECK(e.find("hunter2") == std::string::npos);
    CHECK(e.find("ftp://***@j/x") != std::string::npos);
}

TEST_CASE("stomp-jenkins config - a nested SVN Project named like a key")
{
    temp_dir d;
    auto c = load_config(d.write("n.yaml", "rserver: stomp://h\njenkins-url: http://j\njenkins-projects:\n"
                                           "  svn-repo:\n    project: {project: p-build}\n    other: {project: o-build}\n"));
    const auto& e = c.projects.at("svn-repo");
    CHECK(e.nested);
    REQUIRE(e.by_project.count("project"));
    CHECK(e.by_project.at("project").at(0).name == "p-build");
    c = load_config(d.write("f.yaml", "rserver: stomp://h\njenkins-url: http://j\njenkins-projects:\n"
                                      "  r: {project: x, parameters: {A: '{commit}'}}\n"));
    CHECK_FALSE(c.projects.at("r").nested);
}

TEST_CASE("stomp-jenkins config - unknown settings are errors naming the nearest key")
{
    temp_dir d;
    CHECK(error_of(d.write("t.yaml", "rserver: stomp://h\njenkins-url: http://j\njenkins-ulr: http://k\n")) ==
          (d.path / "t.yaml").string() + ":3: jenkins-ulr: unknown setting; did you mean `jenkins-url`?");
    CHECK(error_of(d.write("p.yaml", "rserver: stomp://h\njenkins-url: http://j\njenkins-project:\n  r: {project: x}\n")) ==
          (d.path / "p.yaml").string() + ":3: jenkins-project: unknown setting; did you mean `jenkins-projects`?");
    CHECK(error_of(d.write("n.yaml", "rserver: stomp://h\njenkins-url: http://j\nretries: lots\n")) ==
          (d.path / "n.yaml").string() + ":3: retries: expected a whole number, not 'lots'");
    // Underscore spellings are the same settings.
    auto c = load_config(d.write("u.yaml", "rserver: stomp://h\njenkins_url: http://j\nmax_pending: 7\n"));
    CHECK(c.max_pending == 7);
    CHECK(c.heartbeat.topic == "deploykit.heartbeats");
    CHECK(c.heartbeat.interval == std::chrono::seconds(60));
    c = load_config(d.write("h.yaml", "rserver: stomp://h\njenkins-url: http://j\nheartbeat-interval: 0\n"
                                      "heartbeat-topic: ops.beats\n"));
    CHECK(c.heartbeat.interval.count() == 0);
    CHECK(c.heartbeat.topic == "ops.beats");
}

TEST_CASE("stomp-jenkins config - a reload names the settings that need a restart")
{
    temp_dir d;
    auto a = load_config(d.write("a.yaml", "rserver: stomp://h\njenkins-url: http://j\njenkins-projects:\n  r: {project: x}\n"));
    auto b = load_config(d.write("b.yaml", "rserver: stomp://h\njenkins-url: http://k\nretries: 3\njenkins-projects:\n"
                                           "  r: {project: y}\n"));
    CHECK(needs_restart(a, b) == std::vector<std::string>{"jenkins-url", "retries"});
    CHECK(needs_restart(a, a).empty());
}

TEST_CASE("stomp-jenkins config - credentials-file follows the one secret policy with the reason")
{
    temp_dir d;
    auto e = error_of(d.write("m.yaml", "rserver: stomp://h\njenkins-url: http://j\ncredentials-file: " + (d.path / "none").string() + "\n"));
    CHECK(e.find("m.yaml:3: credentials-file: cannot read") != std::string::npos);
    CHECK(e.find("No such file or directory") != std::string::npos);
    auto grp = d.write("grp-creds", "u:t\n", 0640);
    e = error_of(d.write("g.yaml", "rserver: stomp://h\njenkins-url: http://j\ncredentials-file: " + grp.string() + "\n"));
    CHECK(e.find("has mode 0640") != std::string::npos);
}
