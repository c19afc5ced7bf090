// The daemon runtime (libbus/include/bus/runtime): config reader, secret files, ledger, notify.
#include "bus/runtime/config_reader.hpp"

#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>
#include <sys/stat.h>
#include <unistd.h>

namespace rt = bus::runtime;

namespace {

std::string error_of(auto&& f)
{
    try {
        f();
    } catch (const rt::config_error& e) {
        return e.what();
    }
    return "(no error)";
}

struct temp_dir {
    std::filesystem::path path;
    temp_dir()
    {
        char tmpl[] = "/tmp/runtime-test-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~temp_dir() { std::filesystem::remove_all(path); }
    std::filesystem::path write(const std::string& name, const std::string& text, unsigned mode = 0600) const
    {
        auto p = path / name;
        std::ofstream(p) << text;
        ::chmod(p.c_str(), mode);
        return p;
    }
};

} // namespace

TEST_CASE("config reader: typed getters with defaults")
{
    auto f = rt::config_file::parse("name: web\nport: 8080\nfast: yes\nwait: 30s\nshort: 250ms\nbare: 2\n"
                                    "tags: [a, b]\none: x\nenv: {A: '1', B: two}\n",
                                    "t.yaml");
    auto r = f.root();
    CHECK(r.str("name") == "web");
    CHECK(r.str("missing", "dflt") == "dflt");
    CHECK_FALSE(r.str("missing"));
    CHECK(r.integer("port", 0, 1, 65535) == 8080);
    CHECK(r.integer("nope", 7, 1, 10) == 7);
    CHECK(r.flag("fast", false));
    CHECK(r.duration("wait", {}, {}, std::chrono::hours(1)) == std::chrono::seconds(30));
    CHECK(r.duration("short", {}, {}, std::chrono::hours(1)) == std::chrono::milliseconds(250));
    CHECK(r.duration("bare", {}, {}, std::chrono::hours(1)) == std::chrono::seconds(2));
    CHECK(r.list("tags") == std::vector<std::string>{"a", "b"});
    CHECK(r.list("one") == std::vector<std::string>{"x"});
    auto env = r.string_map("env");
    REQUIRE(env.size() == 2);
    CHECK(env[1] == std::pair<std::string, std::string>{"B", "two"});
    CHECK_NOTHROW(f.finish());
}

TEST_CASE("config reader: wrong types name file line key and expected type")
{
    auto f = rt::config_file::parse("a: 1\nkeep: abc\nflag: maybe\nlist: {x: 1}\nname: [1, 2]\nport: 70000\n", "c.yaml");
    auto r = f.root();
    CHECK(error_of([&] { r.integer("keep", 0, 0, 100); }) == "c.yaml:2: keep: expected a whole number, not 'abc'");
    CHECK(error_of([&] { r.flag("flag", false); }) == "c.yaml:3: flag: expected true or false, not 'maybe'");
    CHECK(error_of([&] { r.list("list"); }) == "c.yaml:4: list: expected a list of values, not a map");
    CHECK(error_of([&] { r.str("name"); }) == "c.yaml:5: name: expected a single value (a string), not a list");
    CHECK(error_of([&] { r.integer("port", 0, 1, 65535); }) ==
          "c.yaml:6: port: expected a whole number from 1 to 65535, not 70000");
    CHECK(error_of([&] { r.duration("keep", {}, {}, std::chrono::hours(1)); }).starts_with("c.yaml:2: keep: expected a duration"));
    CHECK(rt::config_error::exit_status == 2);
}

TEST_CASE("config reader: nested key paths and line numbers")
{
    auto f = rt::config_file::parse("repo-list:\n"
                                    "  - name: a\n"
                                    "    mode: tags\n"
                                    "  - name: b\n"
                                    "    mode: [x]\n"
                                    "  - name: c\n"
                                    "    mdoe: tags\n"
                                    "server:\n"
                                    "  tls:\n"
                                    "    port: nope\n",
                                    "s.yaml");
    auto r = f.root();
    auto repos = r.sections("repo-list");
    REQUIRE(repos.size() == 3);
    CHECK(repos[0].str("mode") == "tags");
    CHECK(error_of([&] { repos[1].str("mode"); }) == "s.yaml:5: repo-list[1].mode: expected a single value (a string), not a list");
    for (auto& s : repos) s.str("name");
    repos[2].str("mode");
    auto tls = r.sub("server")->sub("tls");
    REQUIRE(tls);
    CHECK(error_of([&] { tls->integer("port", 1, 1, 2); }) == "s.yaml:10: server.tls.port: expected a whole number, not 'nope'");
    CHECK(error_of([&] { f.finish(); }) == "s.yaml:7: repo-list[2].mdoe: unknown setting; did you mean `mode`?");
}

TEST_CASE("config reader: unknown keys are errors with the nearest known key")
{
    auto f = rt::config_file::parse("rserver: stomp://x\nrepo-lst:\n  a: b\n", "g.yaml");
    auto r = f.root();
    r.known(rt::bus_config_keys());
    CHECK(r.named("repo-list").empty());
    CHECK(error_of([&] { f.finish(); }) == "g.yaml:2: repo-lst: unknown setting; did you mean `repo-list`?");

    auto far = rt::config_file::parse("completely-different: 1\n", "h.yaml");
    far.root().str("port");
    CHECK(error_of([&] { far.finish(); }) == "h.yaml:1: completely-different: unknown setting");
    CHECK(rt::nearest_key("allow_from", {"allow-from", "allow-unsigned"}) == "allow-from");
    CHECK(rt::nearest_key("jenkins-ulr", {"jenkins-url", "jenkins-ca-file"}) == "jenkins-url");
    CHECK(rt::nearest_key("x", {"jenkins-url"}).empty());
}

TEST_CASE("config reader: underscore aliases and both spellings")
{
    auto f = rt::config_file::parse("max_frame_size: 10\nignore-refs: x\n", "b.yaml");
    auto r = f.root();
    CHECK(r.integer("max-frame-size", 0, 0, 100) == 10);
    CHECK(r.str("ignore_refs") == "x");
    CHECK_NOTHROW(f.finish());
    auto both = rt::config_file::parse("data-dir: a\ndata_dir: b\n", "d.yaml");
    CHECK(error_of([&] { both.root().str("data-dir"); }).find("given twice") != std::string::npos);
}

TEST_CASE("config reader: keys the original used are accepted with a notice")
{
    std::vector<std::string> notes;
    auto f = rt::config_file::parse("daemonize: true\nport: 1\n", "o.yaml", [&](std::string_view n) { notes.emplace_back(n); });
    auto r = f.root();
    r.ignored({"daemonize", "logfile"}, "use --daemonize");
    r.integer("port", 0, 0, 9);
    CHECK_NOTHROW(f.finish());
    REQUIRE(notes.size() == 1);
    CHECK(notes[0] == "o.yaml:1: daemonize: ignored (use --daemonize)");
}

TEST_CASE("config reader: named maps accept any key but check their entries")
{
    auto f = rt::config_file::parse("jobs:\n  site:\n    project: x\n  blog:\n    projcet: y\n", "n.yaml");
    auto named = f.root().named("jobs");
    REQUIRE(named.size() == 2);
    for (auto& [name, s] : named) s.str("project");
    CHECK(error_of([&] { f.finish(); }) == "n.yaml:5: jobs.blog.projcet: unknown setting; did you mean `project`?");
}

TEST_CASE("config reader: load errors name the file")
{
    temp_dir d;
    CHECK(error_of([&] { rt::config_file::load(d.path / "none.yaml"); }) ==
          (d.path / "none.yaml").string() + ": cannot read: No such file or directory");
    auto bad = d.write("bad.yaml", "a: 1\nb: [\n");
    CHECK(error_of([&] { rt::config_file::load(bad); }).starts_with(bad.string() + ":"));
    auto list = d.write("list.yaml", "- a\n- b\n");
    CHECK(error_of([&] { rt::config_file::load(list); }) == list.string() + ": expected a map of settings (key: value lines)");
}

TEST_CASE("secret files: OpenSSH's policy with the errno text")
{
    temp_dir d;
    auto ok = d.write("ok", "s3cret\n\n");
    CHECK(rt::read_secret_file(ok) == "s3cret");
    auto grp = d.write("grp", "x", 0640);
    CHECK(error_of([&] { rt::read_secret_file(grp, "f.yaml:3: passcode-file"); }) ==
          "f.yaml:3: passcode-file: " + grp.string() + " has mode 0640: it must not be accessible by group or others (chmod 600)");
    auto oth = d.write("oth", "x", 0604);
    CHECK(error_of([&] { rt::read_secret_file(oth); }).find("mode 0604") != std::string::npos);
    CHECK(error_of([&] { rt::read_secret_file((d.path / "missing").string()); }) ==
          "cannot read " + (d.path / "missing").string() + ": No such file or directory");
    CHECK(error_of([&] { rt::read_secret_file(d.path.string()); }).ends_with("is not a regular file"));
    // A symlink to a good file is followed (OpenSSH does too); the target is what is checked.
    std::filesystem::create_symlink(ok, d.path / "link");
    CHECK(rt::read_secret_file((d.path / "link").string()) == "s3cret");
    std::filesystem::create_symlink(grp, d.path / "badlink");
    CHECK(error_of([&] { rt::read_secret_file((d.path / "badlink").string()); }).find("mode 0640") != std::string::npos);
    if (::geteuid() == 0) {
        // Owned by someone else (not root, not us).
        auto other = d.write("other", "x");
        REQUIRE(::chown(other.c_str(), 65534, 65534) == 0);
        CHECK(error_of([&] { rt::read_secret_file(other); }).find("owned by uid 65534") != std::string::npos);
    } else {
        // Unreadable: the reason is in the message.
        auto unread = d.write("unread", "x", 0000);
        CHECK(error_of([&] { rt::read_secret_file(unread); }).find("Permission denied") != std::string::npos);
    }
}

// ---- the consumer ledger ----
#include "bus/config.hpp"

#include <yaml-cpp/yaml.h>

TEST_CASE("bus settings: the underscore alias is read and secrets follow the one policy")
{
    temp_dir d;
    auto pw = d.write("pw", "hunter2\n");
    auto y = YAML::Load("rserver: stomp://127.0.0.1:61613\npasscode_file: " + pw.string() + "\nclient_id: me\n");
    auto c = bus::read_bus_config(y, "f.yaml");
    REQUIRE(c.client.url.endpoints.size() == 1);
    CHECK(c.client.url.endpoints[0].passcode == "hunter2");
    CHECK(c.client.client_id == "me");
    // The libbus reader refuses what the runtime's secret policy refuses (it once only checked the mode).
    auto grp = d.write("grp", "x", 0640);
    auto bad = YAML::Load("rserver: stomp://127.0.0.1:61613\npasscode-file: " + grp.string() + "\n");
    CHECK(error_of([&] { bus::read_bus_config(bad, "f.yaml"); }).find("has mode 0640") != std::string::npos);
    CHECK(error_of([&] { bus::read_bus_config(YAML::Load("rserver: stomp://127.0.0.1:61613\npasscode-file: /nonexistent/pw\n"),
                                              "f.yaml"); })
              .find("No such file or directory") != std::string::npos);
}

#include "bus/runtime/ledger.hpp"

TEST_CASE("ledger: acknowledged after the work and copies answered with it")
{
    rt::ledger<std::string> l;
    auto t = l.hold("m1", "ev-1");
    CHECK(l.in_flight("ev-1"));
    // The broker's redelivery after a reconnect, and the other wire format: covered by t's work.
    CHECK(l.attach("ev-1", "m1-redelivered"));
    CHECK(l.attach("ev-1", "m1-legacy"));
    CHECK_FALSE(l.attach("ev-2", "m2"));
    CHECK(l.size() == 3);
    auto a = l.resolve(t, true);
    REQUIRE(a.size() == 3);
    CHECK(a[0].msg == "m1");
    CHECK(a[0].first);
    CHECK(a[0].ack);
    CHECK(a[0].event_id == "ev-1");
    CHECK(a[1].msg == "m1-redelivered");
    CHECK_FALSE(a[1].first);
    CHECK(a[2].ack);
    CHECK(l.size() == 0);
    CHECK_FALSE(l.in_flight("ev-1"));
    CHECK(l.resolve(t, true).empty());  // resolved once only
    // A later copy of a finished event is not in flight: the intake's dedupe answers it.
    CHECK_FALSE(l.attach("ev-1", "late"));
}

TEST_CASE("ledger: failed work leaves every copy to the broker")
{
    rt::ledger<int> l;
    auto t1 = l.hold(1, "a");
    auto t2 = l.hold(2, "b");
    CHECK(l.attach("a", 11));
    CHECK(l.work() == 2);
    auto a = l.resolve(t1, false);
    REQUIRE(a.size() == 2);
    CHECK_FALSE(a[0].ack);
    CHECK_FALSE(a[1].ack);
    CHECK(l.size() == 1);
    CHECK(l.resolve(t2, true).front().ack);
    // Messages without an event id are held but never attached to.
    auto t3 = l.hold(3, "");
    CHECK_FALSE(l.attach("", 4));
    CHECK(l.resolve(t3, true).size() == 1);
}

TEST_CASE("config reader: changed top-level keys for a reload")
{
    auto a = rt::config_file::parse("jenkins-url: http://a\nlist: [1, 2]\nsame: x\ngone: 1\n", "a");
    auto b = rt::config_file::parse("jenkins-url: http://b\nlist: [1, 2]\nsame: x\nnew: 2\n", "b");
    CHECK(a.changed_keys(b) == std::vector<std::string>{"jenkins-url", "new", "gone"});
    auto c = rt::config_file::parse("max_pending: 3\n", "c");
    auto d = rt::config_file::parse("max-pending: 3\n", "d");
    CHECK(c.changed_keys(d).empty());
}

TEST_CASE("config reader: a missing required key names a misspelt one")
{
    auto f = rt::config_file::parse("rserver: x\njenkins-ulr: http://j\n", "m.yaml");
    CHECK(error_of([&] { f.root().required("jenkins-url"); }) ==
          "m.yaml: jenkins-url: missing; `jenkins-ulr` on line 2 looks like a typo of it");
    CHECK(f.root().required("rserver") == "x");
}

// ---- systemd notification ----
#include "bus/runtime/notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>

namespace {

// A datagram socket the test owns: a path, or an abstract name ("@...").
struct notify_socket {
    int fd = -1;
    std::string name;
    explicit notify_socket(std::string n) : name(std::move(n))
    {
        fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::memcpy(a.sun_path, name.data(), name.size());
        if (name[0] == '@') a.sun_path[0] = '\0';
        auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size() + (name[0] == '@' ? 0 : 1));
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), len) == 0);
        timeval tv{5, 0};  // a deadline for every receive
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~notify_socket()
    {
        ::close(fd);
        if (name[0] == '/') ::unlink(name.c_str());
    }
    std::string next() const
    {
        char buf[4096];
        auto n = ::recv(fd, buf, sizeof buf, 0);
        return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string("(nothing)");
    }
};

} // namespace

TEST_CASE("notify: READY STATUS STOPPING WATCHDOG to a path socket")
{
    temp_dir d;
    notify_socket s((d.path / "notify").string());
    rt::notifier n(s.name, std::chrono::microseconds(3'000'000));
    REQUIRE(n.enabled());
    CHECK(n.ready("connected"));
    CHECK(s.next() == "READY=1\nSTATUS=connected");
    CHECK(n.status("2 pending"));
    CHECK(s.next() == "STATUS=2 pending");
    CHECK(n.watchdog());
    CHECK(s.next() == "WATCHDOG=1");
    CHECK(n.stopping());
    CHECK(s.next() == "STOPPING=1");
    // Half of WATCHDOG_USEC, as systemd advises.
    REQUIRE(n.watchdog_interval());
    CHECK(*n.watchdog_interval() == std::chrono::milliseconds(1500));
}

TEST_CASE("notify: abstract socket names and no socket at all")
{
    const std::string name = "@deploykit-runtime-test-" + std::to_string(::getpid());
    notify_socket s(name);
    rt::notifier n(name);
    CHECK(n.ready());
    CHECK(s.next() == "READY=1");
    CHECK_FALSE(n.watchdog_interval());
    rt::notifier off("");
    CHECK_FALSE(off.enabled());
    CHECK_FALSE(off.ready());
}

TEST_CASE("notify: the environment decides")
{
    ::setenv("NOTIFY_SOCKET", "@x", 1);
    ::setenv("WATCHDOG_USEC", "10000000", 1);
    ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
    rt::notifier mine;
    CHECK(mine.enabled());
    REQUIRE(mine.watchdog_interval());
    CHECK(*mine.watchdog_interval() == std::chrono::seconds(5));
    ::setenv("WATCHDOG_PID", "1", 1);  // meant for another process
    rt::notifier other;
    CHECK_FALSE(other.watchdog_interval());
    ::unsetenv("NOTIFY_SOCKET");
    ::unsetenv("WATCHDOG_USEC");
    ::unsetenv("WATCHDOG_PID");
}

// ---- the service shell: stop, drain, cancellation ----
#include "bus/runtime/service.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

namespace {
spdlog::logger& quiet_log()
{
    static auto l = std::make_shared<spdlog::logger>("runtime-test", std::make_shared<spdlog::sinks::null_sink_mt>());
    return *l;
}

// Coroutines as functions: their parameters live in the frame (a lambda's captures would not).
boost::asio::awaitable<void> sleeper(rt::service* svc, bool* slept_out)
{
    *slept_out = co_await svc->sleep_for(std::chrono::hours(1));
}

boost::asio::awaitable<void> mark(bool* done)
{
    *done = true;
    co_return;
}

boost::asio::awaitable<void> stubborn(rt::service* svc, boost::system::error_code* got)
{
    boost::asio::steady_timer t(svc->io());  // not svc.sleep_for: only cancellation ends it
    t.expires_after(std::chrono::hours(1));
    auto [ec] = co_await t.async_wait(boost::asio::as_tuple(boost::asio::use_awaitable));
    *got = ec;
}

boost::asio::awaitable<void> failing()
{
    throw std::runtime_error("broker gave up");
    co_return;
}

boost::asio::awaitable<void> offload(rt::service* svc, std::thread::id io_thread, std::thread::id* worker, int* result,
                                     bool* resumed_on_io)
{
    *result = co_await svc->blocking([worker] {
        *worker = std::this_thread::get_id();
        return 42;
    });
    *resumed_on_io = std::this_thread::get_id() == io_thread;
    svc->stop(0);
}

// What many_jobs() saw; checked on the test's thread after run().
struct job_tally {
    int rounds = 0;
    int right = 0;                // results as the captures said
    int void_runs = 0;            // void jobs that ran
    int rethrown = 0;             // job exceptions seen by the caller
    int counts_right = 0;         // rounds whose shared_ptr use counts were exact afterwards
    long shared_left = -1;        // use_count of the last round's shared_ptr at the end
};

// Jobs whose closures own heap memory (a string past the small-string buffer, a shared_ptr, a
// vector, a unique_ptr), given to blocking() named (as stomp-repo does) and moved, with results,
// void and exceptions. Each job is named before the co_await: GCC 12.2 also mishandles temporaries
// and loop locals moved into a temporary closure inside a co_await expression in the caller. The closure (or a copy of it) destroyed once too often frees a
// capture twice or under the worker (ASan: heap-use-after-free / double-free) and drops the
// shared_ptr's count below what this frame knows it holds.
boost::asio::awaitable<void> many_jobs(rt::service* svc, int rounds, job_tally* t)
{
    std::weak_ptr<std::string> last;
    for (int i = 0; i < rounds; ++i) {
        auto shared = std::make_shared<std::string>("shared " + std::to_string(i));
        std::string text = "a string well past the small-string buffer, round " + std::to_string(i);
        std::vector<int> v(64, i);
        const std::string want = *shared + "/" + text + "/" + std::to_string(64 * i);

        auto job = [shared, text, v] { return *shared + "/" + text + "/" + std::to_string(std::accumulate(v.begin(), v.end(), 0)); };
        auto named = co_await svc->blocking(job);
        auto again = [shared, text, v] {
            return *shared + "/" + text + "/" + std::to_string(std::accumulate(v.begin(), v.end(), 0));
        };
        auto temp = co_await svc->blocking(std::move(again));  // moved in, as a temporary would be
        auto move_only = [owned = std::make_unique<std::string>(text), v] { return *owned + std::to_string(v.size()); };
        auto moved = co_await svc->blocking(std::move(move_only));
        auto no_result = [shared, text, t] {
            if (*shared == "shared " + std::to_string(t->rounds) && !text.empty()) ++t->void_runs;
        };
        co_await svc->blocking(no_result);
        auto throws = [shared, text]() -> int { throw std::runtime_error(*shared + text); };
        try {
            co_await svc->blocking(throws);
        } catch (const std::runtime_error& e) {
            if (std::string(e.what()) == *shared + text) ++t->rethrown;
        }
        if (named == want && temp == want && moved == text + "64") ++t->right;
        // `shared` and the copies in `job`, `no_result` and `throws` (`again` was moved from):
        // every copy blocking() made is gone, none released twice.
        if (shared.use_count() == 4) ++t->counts_right;
        last = shared;
        ++t->rounds;
    }
    t->shared_left = last.use_count();
    svc->stop(0);
}
} // namespace

TEST_CASE("service: stop ends sleeps and runs the drain before exit")
{
    rt::common_options o;
    rt::service svc(o, quiet_log(), {.drain_deadline = std::chrono::seconds(30)});
    bool slept_out = true, drained = false;
    svc.spawn(sleeper(&svc, &slept_out), "sleeper");
    svc.on_stop([&] { return mark(&drained); });
    boost::asio::post(svc.io(), [&] { svc.stop(0); });
    CHECK(svc.run() == 0);
    CHECK_FALSE(slept_out);  // the hour-long sleep ended at the stop
    CHECK(drained);
    CHECK(svc.tasks() == 0);
}

TEST_CASE("service: a task that ignores the stop is cancelled at the drain deadline")
{
    rt::common_options o;
    rt::service svc(o, quiet_log(), {.drain_deadline = std::chrono::milliseconds(50), .cancel_grace = std::chrono::seconds(30)});
    boost::system::error_code got;
    svc.spawn(stubborn(&svc, &got), "stubborn");
    boost::asio::post(svc.io(), [&] { svc.stop(3); });
    CHECK(svc.run() == 3);
    CHECK(got == boost::asio::error::operation_aborted);
}

TEST_CASE("service: a critical task that fails stops the daemon with status 1")
{
    rt::common_options o;
    rt::service svc(o, quiet_log());
    bool slept_out = true;
    svc.spawn(sleeper(&svc, &slept_out), "idle");
    svc.spawn(failing(), "client", rt::task::critical);
    CHECK(svc.run() == 1);
    CHECK_FALSE(slept_out);
}

TEST_CASE("service: blocking work runs on the pool and resumes on the io thread")
{
    rt::common_options o;
    rt::service svc(o, quiet_log(), {.workers = 2});
    std::thread::id worker;
    int result = 0;
    bool resumed_on_io = false;
    svc.spawn(offload(&svc, std::this_thread::get_id(), &worker, &result, &resumed_on_io), "work");
    CHECK(svc.run() == 0);
    CHECK(result == 42);
    CHECK(resumed_on_io);
    CHECK(worker != std::this_thread::get_id());
}

TEST_CASE("service: blocking runs a job with owning captures many times")
{
    rt::common_options o;
    rt::service svc(o, quiet_log(), {.workers = 2});
    job_tally t;
    constexpr int rounds = 300;
    svc.spawn(many_jobs(&svc, rounds, &t), "jobs");
    CHECK(svc.run() == 0);
    CHECK(t.rounds == rounds);
    CHECK(t.right == rounds);
    CHECK(t.void_runs == rounds);
    CHECK(t.rethrown == rounds);
    CHECK(t.counts_right == rounds);
    CHECK(t.shared_left == 0);  // the last round's string freed once the coroutine ended
}
