// stomp-ci's pure core (daemons/stomp-ci/ci.hpp, config.hpp), the shared ref filters
// (daemons/common/refs.hpp) and what spawn() gained for it (rlimits, output to a file, cancel).
#include "cgroup.hpp"
#include "ci.hpp"
#include "config.hpp"
#include "refs.hpp"
#include "runner.hpp"

#include "bus/runtime/spawn.hpp"
#include "bus/wire.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

using namespace stomp_ci;
using namespace std::chrono_literals;

namespace {

const std::string rev = "0123456789abcdef0123456789abcdef01234567";

std::string yaml(std::string extra = {})
{
    return "rserver: stomp://127.0.0.1:61613\n" + extra +
           "repos:\n"
           "  site:\n"
           "    url: /srv/git/site.git\n"
           "    jobs:\n"
           "      - {name: unit, refs: ['refs/heads/*'], steps: [[./ci/test.sh], [/usr/bin/make, check]], timeout: 60}\n"
           "      - name: release\n"
           "        tags: ['v*']\n"
           "        ignore_refs: '\\Arefs/tags/v0'\n"
           "        steps: [[/bin/true]]\n"
           "        env: {A: b}\n"
           "        limits: {memory: 512M, cpu-seconds: 10}\n";
}

bus::commit_event commit(std::string repo, std::string ref, std::string new_rev = rev)
{
    bus::commit_event c;
    c.repo = std::move(repo);
    c.ref = std::move(ref);
    c.new_rev = std::move(new_rev);
    c.old_rev = std::string(40, '0');
    return c;
}

std::string config_error(const std::string& text)
{
    try {
        parse_config(text, "ci.yaml");
    } catch (const std::exception& e) {
        return e.what();
    }
    return {};
}

} // namespace

TEST_CASE("refs: branch and tag globs and ignore_refs")
{
    deploykit::refs::filter f;
    CHECK(deploykit::refs::rejects(f, "refs/heads/anything").empty());
    CHECK_FALSE(deploykit::refs::rejects(f, "refs/tags/v1").empty());
    f.branches = {"release/*"};
    f.tags = {"v*"};
    f.ignore = deploykit::refs::compile_ignore_refs("\\Arefs/tags/v0");
    CHECK(deploykit::refs::rejects(f, "refs/heads/release/1.2").empty());
    CHECK_FALSE(deploykit::refs::rejects(f, "refs/heads/master").empty());
    CHECK(deploykit::refs::rejects(f, "refs/tags/v1.0").empty());
    CHECK(deploykit::refs::rejects(f, "refs/tags/v0.9").find("ignore_refs") != std::string::npos);
    CHECK_FALSE(deploykit::refs::rejects(f, "refs/notes/x").empty());
    CHECK(deploykit::refs::glob_match("a*", "abc"));
    CHECK(deploykit::refs::translate_ruby_anchors("\\Ax\\z") == "^x$");
}

TEST_CASE("stomp-ci config - jobs per repo with refs steps env and limits")
{
    auto c = parse_config(yaml("dispatch: true\nworkers: 3\nlog-listen: 127.0.0.1:8089\n"), "ci.yaml");
    CHECK(c.dispatch);
    CHECK(c.workers == 3);
    CHECK(c.log_url == "http://127.0.0.1:8089");
    CHECK(c.job_queue == "deploykit.ci.jobs");
    CHECK(c.report_topic == "future.jenkins.builds");
    REQUIRE(c.repos.count("site"));
    const auto& jobs = c.repos.at("site").jobs;
    REQUIRE(jobs.size() == 2);
    CHECK(jobs[0].steps.size() == 2);
    CHECK(jobs[0].timeout == 60s);
    CHECK(jobs[1].lim.memory_bytes == 512ull << 20);
    CHECK(jobs[1].lim.cpu_seconds == 10);
    CHECK(jobs[1].env.size() == 1);
}

TEST_CASE("stomp-ci config - errors name the file line and key")
{
    auto e = config_error(yaml("wokers: 2\n"));
    CHECK(e.find("ci.yaml:2: wokers: unknown setting") != std::string::npos);
    e = config_error(yaml("user: root\n"));
    CHECK(e.find("ci.yaml:2: user: jobs never run as root") != std::string::npos);
    // A step that would need a shell, named without one.
    e = config_error("rserver: stomp://h:1\nrepos:\n  site:\n    url: /x\n    jobs:\n      - {name: a, steps: [[make, check]]}\n");
    CHECK(e.find("ci.yaml:6: repos.site.jobs[0].steps") != std::string::npos);
    e = config_error("rserver: stomp://h:1\nrepos:\n  site:\n    url: /x\n    jobs:\n      - {name: '../a', steps: [[/bin/true]]}\n");
    CHECK(e.find("repos.site.jobs[0].name") != std::string::npos);
    e = config_error("rserver: stomp://h:1\nrepos:\n  site:\n    url: /x\n    jobs:\n      - {name: a, refs: [master], steps: [[/bin/true]]}\n");
    CHECK(e.find("must start with refs/heads/") != std::string::npos);
    e = config_error("rserver: stomp://h:1\nworkers: 0\nrepos:\n  site:\n    url: /x\n    jobs:\n      - {name: a, steps: [[/bin/true]]}\n");
    CHECK(e.find("workers") != std::string::npos);
}

TEST_CASE("stomp-ci dispatch - a commit becomes one job request per matching job")
{
    auto c = parse_config(yaml(), "ci.yaml");
    auto s = select_jobs(c, commit("site", "refs/heads/master"), "ev1", 1000);
    CHECK(s.refused.empty());
    REQUIRE(s.requests.size() == 1);
    CHECK(s.requests[0].job == "unit");
    CHECK(valid_run_id(s.requests[0].run_id));
    CHECK(check_request(c, s.requests[0]).empty());
    // The same event again (a redelivery) gives the same run ids; another event another.
    CHECK(select_jobs(c, commit("site", "refs/heads/master"), "ev1", 2000).requests[0].run_id == s.requests[0].run_id);
    CHECK(select_jobs(c, commit("site", "refs/heads/master"), "ev2", 2000).requests[0].run_id != s.requests[0].run_id);
    auto t = select_jobs(c, commit("site", "refs/tags/v1.0"), "ev3", 0);
    REQUIRE(t.requests.size() == 1);
    CHECK(t.requests[0].job == "release");
    CHECK(select_jobs(c, commit("site", "refs/tags/v0.1"), "ev4", 0).requests.empty());
}

TEST_CASE("stomp-ci dispatch - hostile repo names refs and revisions are refused")
{
    auto c = parse_config(yaml(), "ci.yaml");
    CHECK_FALSE(select_jobs(c, commit("../site", "refs/heads/master"), "e", 0).refused.empty());
    CHECK_FALSE(select_jobs(c, commit("other", "refs/heads/master"), "e", 0).refused.empty());
    CHECK_FALSE(select_jobs(c, commit("site", "refs/heads/$(reboot)"), "e", 0).refused.empty());
    CHECK_FALSE(select_jobs(c, commit("site", "refs/heads/a;b"), "e", 0).refused.empty());
    CHECK_FALSE(select_jobs(c, commit("site", "HEAD"), "e", 0).refused.empty());
    CHECK_FALSE(select_jobs(c, commit("site", "refs/heads/master", std::string(40, '0')), "e", 0).refused.empty());
    CHECK_FALSE(select_jobs(c, commit("site", "refs/heads/master", "master"), "e", 0).refused.empty());
    CHECK_FALSE(select_jobs(c, commit("site", "refs/heads/master", "1234"), "e", 0).refused.empty());
}

TEST_CASE("stomp-ci job messages - round trip and validation against the config")
{
    auto c = parse_config(yaml(), "ci.yaml");
    job_request r{make_run_id("site", "unit", rev, "e"), "site", "unit", "refs/heads/master", rev, "e", 42};
    std::string err;
    auto back = decode_job(encode_job(r), err);
    REQUIRE(back);
    CHECK(*back == r);
    CHECK(check_request(c, r).empty());
    auto bad = r;
    bad.ref = "refs/heads/x y";
    CHECK_FALSE(check_request(c, bad).empty());
    bad = r;
    bad.repo = "../../etc";
    CHECK_FALSE(check_request(c, bad).empty());
    bad = r;
    bad.job = "nope";
    CHECK_FALSE(check_request(c, bad).empty());
    bad = r;
    bad.job = "release";  // the job does not take this ref
    CHECK_FALSE(check_request(c, bad).empty());
    bad = r;
    bad.run_id = "../x";
    CHECK_FALSE(check_request(c, bad).empty());
    CHECK_FALSE(decode_job("{\"type\":\"ci.job\"}", err));
    CHECK_FALSE(decode_job("not json", err));
    CHECK_FALSE(decode_job(std::string(20000, ' '), err));
}

TEST_CASE("stomp-ci recheck - names repo commit and optionally a job")
{
    auto c = parse_config(yaml(), "ci.yaml");
    auto s = select_recheck(c, "{\"repo\":\"site\",\"commit\":\"" + rev + "\",\"job\":\"unit\"}", "r1", 0);
    REQUIRE(s.requests.size() == 1);
    CHECK(s.requests[0].ref == "refs/heads/master");
    CHECK_FALSE(select_recheck(c, "{\"repo\":\"site\",\"commit\":\"" + rev + "\",\"job\":\"nope\"}", "r2", 0).refused.empty());
    CHECK_FALSE(select_recheck(c, "[1]", "r3", 0).refused.empty());
}

TEST_CASE("stomp-ci outcomes - status from the steps")
{
    std::vector<step_result> s(2);
    s[0].end = step_end::ok;
    s[1].end = step_end::ok;
    CHECK(run_status(s, false) == "SUCCESS");
    CHECK(run_status(s, true) == "FAILURE");
    s[1].end = step_end::failed;
    CHECK(run_status(s, false) == "FAILURE");
    s[1].end = step_end::timed_out;
    CHECK(run_status(s, false) == "TIMEOUT");
    s[1].end = step_end::cancelled;
    CHECK(run_status(s, false) == "ABORTED");
    s[1].end = step_end::not_started;
    CHECK(to_build_steps(s)[1].status == "SKIPPED");
}

TEST_CASE("stomp-ci slow runs - a multiple of the median or an absolute bound")
{
    CHECK(median({3, 1, 2}) == 2);
    CHECK(median({1, 2, 3, 4}) == 2.5);
    CHECK_FALSE(slow_warning({1, 1}, 10, 3, 0));  // too little history
    CHECK_FALSE(slow_warning({1, 1, 1}, 2.9, 3, 0));
    auto w = slow_warning({1, 1, 1}, 3.1, 3, 0);
    REQUIRE(w);
    CHECK(w->find("median") != std::string::npos);
    CHECK(slow_warning({}, 11, 3, 10));
    history h(3);
    for (double d : {1.0, 2.0, 3.0, 4.0}) h.add("site/unit", d);
    CHECK(h.of("site/unit") == std::vector<double>{2, 3, 4});
    CHECK(h.runs("site/unit") == 4);
    history h2(3);
    REQUIRE(h2.from_json(h.to_json()));
    CHECK(h2.of("site/unit") == h.of("site/unit"));
    CHECK_FALSE(h2.from_json("{\"x\":1}"));
    CHECK(h2.runs("site/unit") == 4);
}

TEST_CASE("stomp-ci events - the completed build event and the one-liners")
{
    job_request r{make_run_id("site", "unit", rev, "e"), "site", "unit", "refs/heads/master", rev, "e", 0};
    auto b = make_build(r, bus::build_phase::completed, 7, log_link("http://ci:8089", r.run_id), "w1");
    b.status = "TIMEOUT";
    b.steps.push_back(bus::build_step{"./ci/test.sh", "TIMEOUT", -1, 2.5});
    b.slow = true;
    b.warnings.push_back("slow run");
    b.artifacts.push_back(artifact_link("http://ci:8089", r.run_id, "out/report.xml"));
    topics t{"future.jenkins.builds", "future.jenkins", "future.jenkins.success", "future.jenkins.cake",
             "future.events.jenkins"};
    auto frames = build_frames(b, t, bus::wire_format::both, "w1");
    REQUIRE(frames.size() >= 3);
    CHECK(frames[0].get("destination") == "/topic/future.jenkins.builds");
    auto j = nlohmann::json::parse(frames[0].body);
    CHECK(j["id"] == "ci-" + r.run_id + "-completed");  // a rerun's report has the same id
    CHECK(j["data"]["status"] == "TIMEOUT");
    CHECK(j["data"]["url"] == "http://ci:8089/logs/" + r.run_id + ".log");
    CHECK(j["data"]["build"]["full_url"] == j["data"]["url"]);  // the Notification plugin's shape
    CHECK(j["data"]["steps"][0]["status"] == "TIMEOUT");
    CHECK(j["data"]["slow"] == true);
    CHECK(j["data"]["artifacts"][0] == "http://ci:8089/artifacts/" + r.run_id + "/out/report.xml");
    auto back = bus::from_native(frames[0].body);
    REQUIRE(back);
    CHECK(std::get<bus::build_event>(back.value->data) == b);
    bool cake = false, oneliner = false;
    for (const auto& f : frames) {
        if (f.get("destination") == "/topic/future.jenkins.cake") cake = true;
        if (f.get("destination") == "/topic/future.events.jenkins" && f.body.find("Fail job 7 - [unit]") != std::string::npos)
            oneliner = true;
    }
    CHECK(cake);
    CHECK(oneliner);
    CHECK(build_frames(b, t, bus::wire_format::native, "w1").size() == 1);
}

TEST_CASE("stomp-ci log server paths - run logs only")
{
    CHECK(log_path_run_id("/logs/0123456789abcdef0123456789abcdef.log") == "0123456789abcdef0123456789abcdef");
    CHECK_FALSE(log_path_run_id("/logs/../etc/passwd.log"));
    CHECK_FALSE(log_path_run_id("/logs/0123456789ABCDEF0123456789abcdef.log"));
    CHECK_FALSE(log_path_run_id("/logs/x.log"));
    CHECK_FALSE(log_path_run_id("/status"));
    CHECK(mirror_path("/m", "team/site") == std::filesystem::path("/m/team%2Fsite.git"));
    CHECK(mirror_path("/m", "team/site") != mirror_path("/m", "team_site"));
}

TEST_CASE("stomp-ci run dirs - the newest N are kept")
{
    auto rm = runs_to_remove({{"a", 1}, {"b", 3}, {"c", 2}, {"d", 4}}, 2);
    CHECK(rm == std::vector<std::string>{"c", "a"});
    CHECK(runs_to_remove({{"a", 1}}, 5).empty());
}

TEST_CASE("stomp-ci job environment - exactly what the job is given")
{
    auto c = parse_config(yaml(), "ci.yaml");
    job_request r{make_run_id("site", "release", rev, "e"), "site", "release", "refs/tags/v1", rev, "e", 0};
    auto env = job_environment(c.repos.at("site").jobs[1], r, "/w/x");
    CHECK(std::find(env.begin(), env.end(), "A=b") != env.end());
    CHECK(std::find(env.begin(), env.end(), "HOME=/w/x") != env.end());
    CHECK(std::find(env.begin(), env.end(), "CI_COMMIT=" + rev) != env.end());
    for (const auto& e : env) CHECK(e.rfind("LD_", 0) != 0);
}

TEST_CASE("spawn: limits are set in the child and output can go straight to a file")
{
    auto dir = std::filesystem::temp_directory_path() / ("ci-spawn-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    auto file = dir / "out.log";
    int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    REQUIRE(fd >= 0);
    bus::runtime::spawn_options o;
    o.argv = {"/bin/sh", "-c", "ulimit -v; ulimit -t; echo to-err >&2"};
    o.env = {"PATH=/usr/bin:/bin"};
    o.timeout = 10s;
    o.output_fd = fd;
    o.limits = {{RLIMIT_AS, 256ull << 20}, {RLIMIT_CPU, 7}};
    auto r = bus::runtime::spawn(o);
    ::close(fd);
    CHECK(r.ok());
    CHECK(r.out.empty());
    std::ifstream in(file);
    std::stringstream ss;
    ss << in.rdbuf();
    CHECK(ss.str() == "262144\n7\nto-err\n");
    std::filesystem::remove_all(dir);
}

TEST_CASE("spawn: cancel ends the whole process group")
{
    std::atomic<bool> cancel{false};
    bus::runtime::spawn_options o;
    o.argv = {"/bin/sh", "-c", "sleep 30 & sleep 30; wait"};
    o.env = {"PATH=/usr/bin:/bin"};
    o.timeout = 20s;
    o.cancel = &cancel;
    std::thread t([&] {
        std::this_thread::sleep_for(200ms);  // the child must be running; this is the fault injected, not a sync
        cancel = true;
    });
    auto t0 = std::chrono::steady_clock::now();
    auto r = bus::runtime::spawn(o);
    t.join();
    CHECK(r.cancelled);
    CHECK_FALSE(r.timed_out);
    CHECK(std::chrono::steady_clock::now() - t0 < 10s);
}

TEST_CASE("stomp-ci config - artifacts stop-grace and their bounds")
{
    auto c = parse_config(yaml("stop-grace: 5\nkeep-artifacts: 7\nartifacts-max-size: 2M\nartifacts-max-files: 9\n"), "ci.yaml");
    CHECK(c.stop_grace == 5s);
    CHECK(c.keep_artifacts == 7);
    CHECK(c.artifacts_max_bytes == 2u << 20);
    CHECK(c.artifacts_max_files == 9);
    CHECK(parse_config(yaml(), "ci.yaml").stop_grace == 20s);
    auto ok = parse_config("rserver: stomp://h:1\nrepos:\n  site:\n    url: /x\n    jobs:\n"
                           "      - {name: a, steps: [[/bin/true]], artifacts: [out, 'build/*.xml']}\n", "ci.yaml");
    CHECK(ok.repos.at("site").jobs[0].artifacts == std::vector<std::string>{"out", "build/*.xml"});
    for (const char* g : {"/etc/passwd", "../x", "out/../../x", "a//b", "./x"}) {
        auto e = config_error(std::string("rserver: stomp://h:1\nrepos:\n  site:\n    url: /x\n    jobs:\n"
                                          "      - {name: a, steps: [[/bin/true]], artifacts: ['") + g + "']}\n");
        CHECK_MESSAGE(e.find("ci.yaml:6: repos.site.jobs[0].artifacts") != std::string::npos, g);
    }
}

TEST_CASE("stomp-ci artifacts - links paths and globs")
{
    const std::string id = "0123456789abcdef0123456789abcdef";
    CHECK(artifact_link("http://ci:1", id, "out/a b.xml") == "http://ci:1/artifacts/" + id + "/out/a%20b.xml");
    auto p = artifact_path("/artifacts/" + id + "/out/a%20b.xml");
    REQUIRE(p);
    CHECK(p->first == id);
    CHECK(p->second == "out/a b.xml");
    CHECK_FALSE(artifact_path("/artifacts/" + id + "/../logs/x.log"));
    CHECK_FALSE(artifact_path("/artifacts/" + id + "/%2e%2e/%2e%2e/etc/passwd"));
    CHECK_FALSE(artifact_path("/artifacts/" + id + "/a//b"));
    CHECK_FALSE(artifact_path("/artifacts/" + id + "/"));
    CHECK_FALSE(artifact_path("/artifacts/" + id + "/a%00b"));
    CHECK_FALSE(artifact_path("/artifacts/xyz/a"));
    CHECK(artifact_wanted({"out"}, "out/sub/a.txt"));
    CHECK(artifact_wanted({"*.txt"}, "top.txt"));
    CHECK_FALSE(artifact_wanted({"*.txt"}, "out/sub/a.txt"));  // '*' stays within one component
    CHECK(artifact_wanted({"build/*.xml"}, "build/r.xml"));
    CHECK_FALSE(artifact_wanted({"build/*.xml"}, "build/r.json"));
    CHECK_FALSE(artifact_wanted({"out"}, "outside/x"));
}

namespace {
struct temp_dir {
    std::filesystem::path p;
    explicit temp_dir(const char* name)
        : p(std::filesystem::temp_directory_path() / (std::string(name) + "-" + std::to_string(::getpid())))
    {
        std::filesystem::remove_all(p);
        std::filesystem::create_directories(p);
    }
    ~temp_dir() { std::filesystem::remove_all(p); }
};
void write(const std::filesystem::path& f, const std::string& text)
{
    std::filesystem::create_directories(f.parent_path());
    std::ofstream(f) << text;
}
} // namespace

TEST_CASE("stomp-ci artifacts - copied without following symlinks and within the bounds")
{
    temp_dir t("ci-arts");
    const auto w = t.p / "work";
    write(w / "out/report.xml", "report");
    write(w / "out/sub/a.txt", "deep");
    write(w / "big.txt", std::string(5000, 'x'));
    write(t.p / "secret", "secret");
    std::filesystem::create_symlink(t.p / "secret", w / "out/secret");      // a file outside
    std::filesystem::create_symlink(t.p, w / "out/up");                     // a directory outside
    std::string note;
    auto kept = collect_artifacts(w, {"out", "*.txt"}, t.p / "kept", 1 << 20, 100, note);
    CHECK(kept == std::vector<std::string>{"big.txt", "out/report.xml", "out/sub/a.txt"});
    CHECK(note.empty());
    CHECK(std::filesystem::file_size(t.p / "kept/out/sub/a.txt") == 4);
    CHECK_FALSE(std::filesystem::exists(t.p / "kept/out/secret"));
    CHECK_FALSE(std::filesystem::exists(t.p / "kept/out/up"));
    // Bounded: bytes, then files.
    kept = collect_artifacts(w, {"out", "*.txt"}, t.p / "kept2", 1000, 100, note);
    CHECK(kept.empty());  // big.txt comes first and is over the limit: the rest is not kept either
    CHECK(note.find("artifacts-max-size") != std::string::npos);
    note.clear();
    kept = collect_artifacts(w, {"out"}, t.p / "kept3", 1 << 20, 1, note);
    CHECK(kept == std::vector<std::string>{"out/report.xml"});
    CHECK(note.find("artifacts-max-files") != std::string::npos);
}

TEST_CASE("stomp-ci datasets - refused when the job user could write them")
{
    temp_dir t("ci-dataset");
    write(t.p / "ds/rows", "v1");
    std::filesystem::permissions(t.p / "ds", std::filesystem::perms(0755));
    std::filesystem::permissions(t.p / "ds/rows", std::filesystem::perms(0644));
    bus::runtime::identity other{::geteuid() + 1000, ::getegid() + 1000, {}, "other"};
    if (other.uid == 0) other.uid = 4242;
    CHECK(dataset_writable(t.p / "ds", other).empty());
    std::filesystem::permissions(t.p / "ds/rows", std::filesystem::perms(0666));
    CHECK(dataset_writable(t.p / "ds", other).find("rows is writable by other") != std::string::npos);
    std::filesystem::permissions(t.p / "ds/rows", std::filesystem::perms(0644));
    std::filesystem::permissions(t.p / "ds", std::filesystem::perms(0777));
    CHECK(dataset_writable(t.p / "ds", other).find("is writable by other") != std::string::npos);
    std::filesystem::permissions(t.p / "ds", std::filesystem::perms(0775));
    other.groups = {::getegid()};  // its group may write
    CHECK_FALSE(dataset_writable(t.p / "ds", other).empty());
    CHECK(dataset_writable(t.p / "missing", other).find("No such file") != std::string::npos);
}

TEST_CASE("spawn: read-only paths in a private mount namespace")
{
    temp_dir t("ci-ro");
    write(t.p / "ds/rows", "v1");
    bus::runtime::spawn_options o;
    o.argv = {"/bin/sh", "-c", "cat \"$D/rows\" && echo changed > \"$D/rows\""};
    o.env = {"PATH=/usr/bin:/bin", "D=" + (t.p / "ds").string()};
    o.timeout = 10s;
    o.read_only = {{(t.p / "ds").string(), (t.p / "ds").string()}};
    auto r = bus::runtime::spawn(o);
    std::ifstream in(t.p / "ds/rows");
    std::string rows;
    std::getline(in, rows);
    CHECK(rows == "v1");  // unchanged either way
    if (bus::runtime::mount_namespaces_available()) {
        CHECK(r.started);
        CHECK(r.exit_code != 0);
        CHECK(r.out == "v1");
        CHECK(r.err.find("Read-only file system") != std::string::npos);
        // Nothing leaked into our namespace: we can still write there.
        std::ofstream(t.p / "ds/rows") << "v2";
        std::ifstream again(t.p / "ds/rows");
        std::getline(again, rows);
        CHECK(rows == "v2");
    } else {
        CHECK_FALSE(r.started);
        CHECK(r.error.find("private mount namespace") != std::string::npos);
    }
}

TEST_CASE("stomp-ci cgroups - this process's cgroup v2 path")
{
    CHECK(unified_cgroup_path("0::/\n") == "/");
    CHECK(unified_cgroup_path("12:pids:/x\n1:name=systemd:/y\n0::/system.slice/stomp-ci.service\n") ==
          "/system.slice/stomp-ci.service");
    CHECK_FALSE(unified_cgroup_path("4:memory:/a\n1:cpu:/\n"));
    std::string why;
    CHECK_FALSE(setup_cgroups(std::filesystem::temp_directory_path(), why));  // not a cgroup2 hierarchy
    CHECK(why.find("not a cgroup v2 hierarchy") != std::string::npos);
}
