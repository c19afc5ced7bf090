// bus::runtime::spawn: bounds, deadline with whole-group kill, exact environment, only the
// descriptors given, privilege drop.
#include "bus/runtime/spawn.hpp"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

using namespace bus::runtime;
using namespace std::chrono_literals;

namespace {

spawn_options sh(std::string script)
{
    spawn_options o;
    o.argv = {"/bin/sh", "-c", std::move(script)};
    o.env = {"PATH=/usr/bin:/bin"};
    o.timeout = 10s;
    return o;
}

std::set<int> fd_list(const std::string& out)
{
    std::set<int> fds;
    std::istringstream in(out);
    for (std::string line; std::getline(in, line);)
        if (!line.empty()) fds.insert(std::stoi(line));
    return fds;
}

// A process is gone once no /proc entry or only a zombie remains (reaped by init, or not yet).
bool gone(pid_t pid)
{
    std::ifstream st("/proc/" + std::to_string(pid) + "/stat");
    if (!st) return true;
    std::string all((std::istreambuf_iterator<char>(st)), {});
    auto close = all.rfind(')');
    return close != std::string::npos && close + 2 < all.size() && all[close + 2] == 'Z';
}

} // namespace

TEST_CASE("spawn: runs argv without a shell and reports the exit status")
{
    spawn_options o;
    o.argv = {"/bin/echo", "$(touch /tmp/never)", ";", "x"};
    auto r = spawn(o);
    REQUIRE(r.started);
    CHECK(r.ok());
    CHECK(r.out == "$(touch /tmp/never) ; x\n");
    auto f = spawn(sh("echo oops >&2; exit 3"));
    CHECK(f.exit_code == 3);
    CHECK(f.err == "oops\n");
    CHECK(f.describe() == "exited 3");
    auto missing = spawn({.argv = {"/nonexistent/program"}});
    CHECK_FALSE(missing.started);
    CHECK(missing.error.find("No such file") != std::string::npos);
    CHECK_FALSE(spawn({.argv = {"relative"}}).started);
}

TEST_CASE("spawn: capture is bounded and the excess is drained or ends the child")
{
    auto r = spawn(sh("head -c 100000 /dev/zero; echo done >&2"));
    CHECK(r.ok());
    CHECK(r.out_truncated == false);
    CHECK(r.out.size() == 100000);
    auto o = sh("head -c 300000 /dev/zero; head -c 200000 /dev/zero >&2");
    o.max_out = 1000;
    o.max_err = 10;
    r = spawn(o);
    CHECK(r.ok());  // the rest was read and dropped: the writer never blocked
    CHECK(r.out.size() == 1000);
    CHECK(r.out_truncated);
    CHECK(r.err.size() == 10);
    CHECK(r.err_truncated);
    o = sh("while :; do echo yyyyyyyyyyyyyyyyyyyyyyyy; done");
    o.max_out = 4096;
    o.kill_on_overflow = true;
    r = spawn(o);
    CHECK_FALSE(r.ok());
    CHECK(r.out.size() == 4096);
    CHECK(r.out_truncated);
}

TEST_CASE("spawn: the deadline ends the whole process group")
{
    // The grandchild holds no pipe (its output goes to a file) and ignores SIGTERM.
    char dir[] = "/tmp/spawn-test.XXXXXX";
    REQUIRE(::mkdtemp(dir));
    std::string pidfile = std::string(dir) + "/grandchild";
    auto o = sh("(trap '' TERM; exec sleep 300) >/dev/null 2>&1 </dev/null & echo $! >" + pidfile +
                ".tmp; mv " + pidfile + ".tmp " + pidfile + "; exec sleep 300");
    o.timeout = 500ms;
    o.kill_grace = 200ms;
    auto t0 = std::chrono::steady_clock::now();
    auto r = spawn(o);
    CHECK(std::chrono::steady_clock::now() - t0 < 10s);
    CHECK(r.timed_out);
    CHECK_FALSE(r.ok());
    std::ifstream in(pidfile);
    pid_t grandchild = 0;
    in >> grandchild;
    REQUIRE(grandchild > 0);
    bool dead = false;
    for (int i = 0; i < 200 && !(dead = gone(grandchild)); ++i) ::usleep(10000);
    CHECK(dead);
    std::filesystem::remove_all(dir);
}

TEST_CASE("spawn: a child that leaves a process holding its output is not waited for past a grace")
{
    auto o = sh("sleep 300 & echo started");
    o.timeout = 20s;
    auto t0 = std::chrono::steady_clock::now();
    auto r = spawn(o);
    CHECK(std::chrono::steady_clock::now() - t0 < 10s);
    CHECK(r.exit_code == 0);
    CHECK(r.out == "started\n");
}

TEST_CASE("spawn: the environment is exactly what was given")
{
    ::setenv("SPAWN_TEST_SECRET", "leak", 1);
    spawn_options o;
    o.argv = {"/usr/bin/env"};
    o.env = {"A=1", "PATH=/bin"};
    auto r = spawn(o);
    CHECK(r.out == "A=1\nPATH=/bin\n");
    ::unsetenv("SPAWN_TEST_SECRET");
}

TEST_CASE("spawn: the child sees only 0 1 2 and the descriptors passed")
{
    // Descriptors the caller holds, close-on-exec or not, never reach the child.
    int null = ::open("/dev/null", O_RDONLY);
    int leak = ::fcntl(null, F_DUPFD, 40);  // deliberately without FD_CLOEXEC
    ::close(null);
    REQUIRE(leak >= 40);
    auto r = spawn(sh("ls /proc/self/fd"));
    // ls itself opens one descriptor for the listing: everything >= 3 but that one is a leak.
    auto fds = fd_list(r.out);
    CHECK(fds.count(leak) == 0);
    fds.erase(3);
    CHECK(fds == std::set<int>{0, 1, 2});

    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    auto o = sh("echo result >&5; ls /proc/self/fd");
    o.pass = {{p[1], 5}};
    r = spawn(o);
    ::close(p[1]);
    char buf[64] = {};
    CHECK(::read(p[0], buf, sizeof buf - 1) == 7);
    CHECK(std::string(buf) == "result\n");
    ::close(p[0]);
    fds = fd_list(r.out);
    fds.erase(3);
    CHECK(fds == std::set<int>{0, 1, 2, 5});
    ::close(leak);
}

TEST_CASE("spawn: stdin input and the working directory")
{
    auto o = sh("cat; pwd");
    o.input = std::string(200000, 'x');
    o.cwd = "/tmp";
    auto r = spawn(o);
    CHECK(r.ok());
    CHECK(r.out == std::string(200000, 'x') + "/tmp\n");
    // A child that never reads its input does not hang the caller or kill it with SIGPIPE.
    o = sh("exit 0");
    o.input = std::string(1 << 20, 'x');
    CHECK(spawn(o).ok());
}

TEST_CASE("spawn: drops to another user when run as root")
{
    auto nobody = lookup_user("nobody");
    REQUIRE(nobody);
    CHECK_FALSE(lookup_user("no-such-user-deploykit"));
    auto o = sh("id -u; id -g");
    o.user = nobody;
    auto r = spawn(o);
    if (::geteuid() != 0) {
        CHECK_FALSE(r.started);
        CHECK(r.error.find("nobody") != std::string::npos);
        return;
    }
    REQUIRE(r.ok());
    CHECK(r.out == std::to_string(nobody->uid) + "\n" + std::to_string(nobody->gid) + "\n");
    // The death signal is set after the drop (which clears it), and the child still starts.
    o.die_with_parent = true;
    r = spawn(o);
    CHECK(r.ok());
}
