#include "child.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

namespace svn_hook {

namespace {

constexpr std::size_t max_err = 4096;

struct fd_guard {
    int fd = -1;
    ~fd_guard() { reset(); }
    void reset()
    {
        if (fd >= 0) ::close(fd);
        fd = -1;
    }
};

bool wait_exit(pid_t pid, int& status, std::chrono::steady_clock::time_point deadline)
{
    for (;;) {
        pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) return true;
        if (r < 0 && errno != EINTR) {
            // ECHILD (e.g. SIGCHLD ignored by whoever started us): the exit status is unknown,
            // which must not read as success.
            status = -1;
            return true;
        }
        if (std::chrono::steady_clock::now() >= deadline) return false;
        timespec ts{0, 5'000'000};
        ::nanosleep(&ts, nullptr);
    }
}

} // namespace

child_result run_child(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                       std::chrono::milliseconds timeout, std::size_t max_out)
{
    child_result r;
    if (argv.empty()) {
        r.error = "no program";
        return r;
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    int outp[2], errp[2];
    if (::pipe2(outp, O_CLOEXEC) != 0) {
        r.error = std::string("pipe: ") + std::strerror(errno);
        return r;
    }
    fd_guard out_r{outp[0]}, out_w{outp[1]};
    if (::pipe2(errp, O_CLOEXEC) != 0) {
        r.error = std::string("pipe: ") + std::strerror(errno);
        return r;
    }
    fd_guard err_r{errp[0]}, err_w{errp[1]};

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out_w.fd, 1);
    posix_spawn_file_actions_adddup2(&fa, err_w.fd, 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // Own process group (killed as a whole), default signal handling (a hook may be started with
    // SIGPIPE ignored), nothing blocked.
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int s : {SIGPIPE, SIGINT, SIGTERM, SIGHUP, SIGCHLD}) sigaddset(&defaults, s);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    std::vector<std::string> a = argv, e = env;
    std::vector<char*> av, ev;
    for (auto& s : a) av.push_back(s.data());
    av.push_back(nullptr);
    for (auto& s : e) ev.push_back(s.data());
    ev.push_back(nullptr);
    pid_t pid = 0;
    int rc = ::posix_spawn(&pid, a[0].c_str(), &fa, &attr, av.data(), ev.data());
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    out_w.reset();
    err_w.reset();
    if (rc != 0) {
        r.error = "cannot run " + a[0] + ": " + std::strerror(rc);
        return r;
    }
    r.started = true;

    auto kill_child = [&] { ::kill(-pid, SIGKILL); };
    char buf[16384];
    while (out_r.fd >= 0 || err_r.fd >= 0) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            r.timed_out = true;
            kill_child();
            break;
        }
        pollfd p[2] = {{out_r.fd, POLLIN, 0}, {err_r.fd, POLLIN, 0}};
        int n = ::poll(p, 2, static_cast<int>(std::min<long long>(left.count(), 1000)));
        if (n < 0) {
            if (errno == EINTR) continue;
            r.error = std::string("poll: ") + std::strerror(errno);
            kill_child();
            break;
        }
        for (int i = 0; i < 2; ++i) {
            if (p[i].fd < 0 || p[i].revents == 0) continue;
            ssize_t got = ::read(p[i].fd, buf, sizeof buf);
            if (got < 0 && errno == EINTR) continue;
            if (got <= 0) {
                (i == 0 ? out_r : err_r).reset();
                continue;
            }
            auto chunk = std::string_view(buf, static_cast<std::size_t>(got));
            if (i == 1) {
                r.err.append(chunk.substr(0, max_err - std::min(max_err, r.err.size())));
                continue;
            }
            if (r.out.size() + chunk.size() > max_out) {
                r.out.append(chunk.substr(0, max_out - r.out.size()));
                r.truncated = true;
                kill_child();
                out_r.reset();
                err_r.reset();
                break;
            }
            r.out.append(chunk);
        }
    }
    out_r.reset();
    err_r.reset();
    int status = 0;
    if (!wait_exit(pid, status, deadline)) {
        r.timed_out = true;
        kill_child();
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    }
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

} // namespace svn_hook
