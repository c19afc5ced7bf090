#include "bus/runtime/spawn.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <iostream>

namespace bus::runtime {

namespace {

using clock = std::chrono::steady_clock;

struct fd_guard {
    int fd = -1;
    fd_guard() = default;
    explicit fd_guard(int f) : fd(f) {}
    fd_guard(const fd_guard&) = delete;
    fd_guard& operator=(const fd_guard&) = delete;
    ~fd_guard() { reset(); }
    void reset()
    {
        if (fd >= 0) ::close(fd);
        fd = -1;
    }
};

bool make_pipe(fd_guard& r, fd_guard& w)
{
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return false;
    r.fd = p[0];
    w.fd = p[1];
    return true;
}

// ---- in the child, after fork: async-signal-safe calls only ------------------------------------

// The child reports a failure before exec as {stage, errno} on the status pipe (close-on-exec, so
// a successful exec closes it with nothing written).
enum stage : int { st_fd = 1, st_groups, st_gid, st_uid, st_verify, st_pdeath, st_cwd, st_exec, st_limit, st_mount, st_cgroup };

[[noreturn]] void child_fail(int status_fd, int st)
{
    int msg[2] = {st, errno};
    [[maybe_unused]] auto n = ::write(status_fd, msg, sizeof msg);
    ::_exit(127);
}

void close_from(int first, int last)  // [first, last], last = -1: to the end
{
    if (first > last && last != -1) return;
    unsigned hi = last == -1 ? ~0U : static_cast<unsigned>(last);
    if (::close_range(static_cast<unsigned>(first), hi, 0) == 0) return;
    // Kernels before 5.9: close them one by one up to the descriptor limit.
    rlimit rl{};
    long max = ::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY ? static_cast<long>(rl.rlim_cur) : 65536;
    if (last != -1) max = std::min<long>(max, last + 1L);
    for (long fd = first; fd < max; ++fd) ::close(static_cast<int>(fd));
}

struct child_plan {
    const spawn_options* o;
    char* const* argv;
    char* const* envp;
    int in_r, out_w, err_w, status_w;
    pid_t parent;
    const unsigned long* ro_flags;  ///< per read_only bind: the source's nosuid/nodev/noexec/... to keep
};

// A private mount namespace with `o.read_only` bound read-only (async-signal-safe: syscalls only).
bool isolate_mounts(const spawn_options& o, const unsigned long* keep_flags)
{
    if (::unshare(CLONE_NEWNS) != 0) return false;
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) return false;
    for (std::size_t i = 0; i < o.read_only.size(); ++i) {
        const auto& b = o.read_only[i];
        if (::mount(b.source.c_str(), b.target.c_str(), nullptr, MS_BIND, nullptr) != 0) return false;
        if (::mount(nullptr, b.target.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | keep_flags[i], nullptr) != 0)
            return false;
    }
    return true;
}

[[noreturn]] void run_child(const child_plan& p)
{
    const spawn_options& o = *p.o;
    ::setpgid(0, 0);
    if (o.cgroup_fd >= 0) {
        int procs = ::openat(o.cgroup_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
        if (procs < 0 || ::write(procs, "0", 1) != 1) child_fail(p.status_w, st_cgroup);
        ::close(procs);
    }
    // Default dispositions and an empty mask: a hook may run with SIGPIPE ignored, and the
    // caller's thread may block signals.
    for (int s = 1; s < NSIG; ++s)
        if (s != SIGKILL && s != SIGSTOP) ::signal(s, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);

    // Move everything the child keeps above every target number, then onto its target: no source
    // can be overwritten by another's dup2.
    int top = 3;
    for (const auto& f : o.pass) top = std::max(top, f.as + 1);
    auto lift = [&](int fd) {
        int n = ::fcntl(fd, F_DUPFD_CLOEXEC, top);
        if (n < 0) child_fail(p.status_w, st_fd);
        return n;
    };
    int status = lift(p.status_w);
    int in = lift(p.in_r), out = lift(p.out_w), err = lift(p.err_w);
    int lifted[64];
    std::size_t npass = std::min<std::size_t>(o.pass.size(), 64);
    for (std::size_t i = 0; i < npass; ++i) lifted[i] = lift(o.pass[i].fd);
    if (::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) child_fail(status, st_fd);
    for (std::size_t i = 0; i < npass; ++i)
        if (::dup2(lifted[i], o.pass[i].as) < 0) child_fail(status, st_fd);
    // Everything else goes: the gaps between given numbers, then all above them but the status pipe
    // (close-on-exec; it is gone once exec succeeds).
    int prev = 2;
    int sorted[64];
    for (std::size_t i = 0; i < npass; ++i) sorted[i] = o.pass[i].as;
    std::sort(sorted, sorted + npass);
    for (std::size_t i = 0; i < npass; ++i) {
        if (sorted[i] > prev + 1) close_from(prev + 1, sorted[i] - 1);
        prev = std::max(prev, sorted[i]);
    }
    if (status > prev + 1) close_from(prev + 1, status - 1);
    close_from(status + 1, -1);

    if (!o.read_only.empty() && !isolate_mounts(o, p.ro_flags)) child_fail(status, st_mount);
    for (const auto& l : o.limits) {
        rlimit rl{static_cast<rlim_t>(l.value), static_cast<rlim_t>(l.value)};
        if (::setrlimit(l.resource, &rl) != 0) child_fail(status, st_limit);
    }
    if (o.user && (::getuid() != o.user->uid || ::geteuid() != o.user->uid)) {
        const identity& u = *o.user;
        if (::setgroups(u.groups.size(), u.groups.data()) != 0) child_fail(status, st_groups);
        if (::setgid(u.gid) != 0) child_fail(status, st_gid);
        if (::setuid(u.uid) != 0) child_fail(status, st_uid);
        errno = EPERM;
        if (::getuid() != u.uid || ::geteuid() != u.uid || ::getgid() != u.gid || ::getegid() != u.gid)
            child_fail(status, st_verify);
        if (u.uid != 0 && ::setuid(0) == 0) child_fail(status, st_verify);
    }
    if (o.die_with_parent) {
        // After the drop: changing credentials clears the death signal. The parent may have died
        // before it was set: then nobody would send it.
        if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) child_fail(status, st_pdeath);
        if (::getppid() != p.parent) {
            errno = ESRCH;
            child_fail(status, st_pdeath);
        }
    }
    if (!o.cwd.empty() && ::chdir(o.cwd.c_str()) != 0) child_fail(status, st_cwd);
    ::execve(p.argv[0], p.argv, p.envp);
    child_fail(status, st_exec);
}

std::string stage_text(int st, const spawn_options& o)
{
    std::string who = o.user ? o.user->name : std::string();
    switch (st) {
    case st_fd: return "setting up descriptors";
    case st_groups: return "cannot set the groups of " + who;
    case st_gid: return "cannot switch to the group of " + who;
    case st_uid: return "cannot switch to user " + who;
    case st_verify: return "privileges could not be dropped for " + who;
    case st_pdeath: return "cannot tie the child to its parent";
    case st_cwd: return "cannot change to " + o.cwd;
    case st_limit: return "cannot set a resource limit";
    case st_cgroup: return "cannot move into the run's cgroup";
    case st_mount: return "cannot mount the read-only paths in a private mount namespace";
    default: return "cannot run " + (o.argv.empty() ? std::string() : o.argv[0]);
    }
}

void kill_group(pid_t pid, int sig) { ::kill(-pid, sig); }

// write() to a pipe whose reader is gone, without SIGPIPE ending the caller (a hook need not
// ignore it): blocked for the call, a pending one consumed.
ssize_t write_nosigpipe(int fd, std::string_view data)
{
    sigset_t pipe_set, old;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigset_t pending_before;
    sigpending(&pending_before);
    bool was_pending = sigismember(&pending_before, SIGPIPE);
    ::pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
    ssize_t n = ::write(fd, data.data(), data.size());
    int saved = errno;
    if (n < 0 && saved == EPIPE && !was_pending) {
        timespec zero{0, 0};
        ::sigtimedwait(&pipe_set, nullptr, &zero);
    }
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    errno = saved;
    return n;
}

} // namespace

std::optional<identity> lookup_user(const std::string& user)
{
    std::vector<char> buf(16384);
    passwd pw{}, *res = nullptr;
    if (::getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &res) != 0 || !res) return std::nullopt;
    identity id;
    id.uid = pw.pw_uid;
    id.gid = pw.pw_gid;
    id.name = user;
    int n = 64;
    for (int tries = 0; tries < 8; ++tries) {
        id.groups.resize(static_cast<std::size_t>(n));
        int want = n;
        if (::getgrouplist(user.c_str(), pw.pw_gid, id.groups.data(), &want) >= 0) {
            id.groups.resize(static_cast<std::size_t>(want));
            return id;
        }
        n = std::max(want, n * 2);
    }
    id.groups = {pw.pw_gid};
    return id;
}

bool mount_namespaces_available()
{
    pid_t pid = ::fork();
    if (pid < 0) return false;
    if (pid == 0) {
        bool ok = ::unshare(CLONE_NEWNS) == 0 && ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) == 0;
        ::_exit(ok ? 0 : 1);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::string spawn_result::describe() const
{
    if (!started) return error;
    if (timed_out) return "timed out" + (error.empty() ? std::string() : " (" + error + ")");
    if (signal) return "killed by signal " + std::to_string(signal);
    return "exited " + std::to_string(exit_code);
}

spawn_result spawn(const spawn_options& o)
{
    spawn_result r;
    if (o.argv.empty() || o.argv[0].empty() || o.argv[0][0] != '/') {
        r.error = "cannot run '" + (o.argv.empty() ? std::string() : o.argv[0]) + "': not an absolute path";
        return r;
    }
    for (const auto& f : o.pass)
        if (f.as < 3 || f.fd < 0) {
            r.error = "cannot pass descriptor " + std::to_string(f.fd) + " as " + std::to_string(f.as);
            return r;
        }
    if (o.pass.size() > 64) {
        r.error = "too many descriptors to pass";
        return r;
    }
    const auto deadline = clock::now() + o.timeout;

    fd_guard in_r, in_w, out_r, out_w, err_r, err_w, st_r, st_w;
    if (o.input) {
        if (!make_pipe(in_r, in_w)) return r.error = std::string("pipe: ") + std::strerror(errno), r;
    } else if ((in_r.fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        return r.error = std::string("/dev/null: ") + std::strerror(errno), r;
    }
    if (o.output_fd >= 0) {
        // Straight to the caller's file: both streams, nothing captured.
        out_w.fd = ::fcntl(o.output_fd, F_DUPFD_CLOEXEC, 3);
        err_w.fd = ::fcntl(o.output_fd, F_DUPFD_CLOEXEC, 3);
        if (out_w.fd < 0 || err_w.fd < 0 || !make_pipe(st_r, st_w))
            return r.error = std::string("output descriptor: ") + std::strerror(errno), r;
    } else if (!make_pipe(out_r, out_w) || !make_pipe(err_r, err_w) || !make_pipe(st_r, st_w))
        return r.error = std::string("pipe: ") + std::strerror(errno), r;

    std::vector<std::string> a = o.argv, e = o.env;
    std::vector<char*> av, ev;
    for (auto& s : a) av.push_back(s.data());
    av.push_back(nullptr);
    for (auto& s : e) ev.push_back(s.data());
    ev.push_back(nullptr);
    // The flags a read-only remount must keep (a remount may not clear locked nosuid/nodev/...).
    std::vector<unsigned long> ro_flags;
    for (const auto& b : o.read_only) {
        struct statvfs sv {};
        if (::statvfs(b.source.c_str(), &sv) != 0) return r.error = "read-only path " + b.source + ": " + std::strerror(errno), r;
        unsigned long f = 0;
        if (sv.f_flag & ST_NOSUID) f |= MS_NOSUID;
        if (sv.f_flag & ST_NODEV) f |= MS_NODEV;
        if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
        if (sv.f_flag & ST_NOATIME) f |= MS_NOATIME;
        if (sv.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
        if (sv.f_flag & ST_RELATIME) f |= MS_RELATIME;
        ro_flags.push_back(f);
    }
    child_plan plan{&o, av.data(), ev.data(), in_r.fd, out_w.fd, err_w.fd, st_w.fd, ::getpid(), ro_flags.data()};

    pid_t pid = ::fork();
    if (pid < 0) return r.error = std::string("fork: ") + std::strerror(errno), r;
    if (pid == 0) run_child(plan);
    ::setpgid(pid, pid);  // also here, so a kill of the group cannot race the child's own setpgid
    in_r.reset();
    out_w.reset();
    err_w.reset();
    st_w.reset();

    // Did it get as far as exec?
    int msg[2] = {0, 0};
    ssize_t got;
    do {
        got = ::read(st_r.fd, msg, sizeof msg);
    } while (got < 0 && errno == EINTR);
    st_r.reset();
    if (got == static_cast<ssize_t>(sizeof msg)) {
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        r.error = stage_text(msg[0], o) + ": " + std::strerror(msg[1]);
        return r;
    }
    r.started = true;

    fd_guard pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));  // glibc 2.36 declares pidfd_open without C linkage
    std::string_view pending = o.input ? std::string_view(*o.input) : std::string_view();
    if (in_w.fd >= 0) {
        ::fcntl(in_w.fd, F_SETFL, O_NONBLOCK);
        if (pending.empty()) in_w.reset();
    }
    // Exit is noticed without reaping (WNOWAIT): while the child is an unreaped zombie its process
    // group id cannot be reused, so ending the group below never hits a stranger.
    bool exited = false;
    bool unknown = false;
    auto reap = [&](bool block) {
        if (exited) return true;
        for (;;) {
            siginfo_t si{};
            int rc = ::waitid(P_PID, static_cast<id_t>(pid), &si, WEXITED | WNOWAIT | (block ? 0 : WNOHANG));
            if (rc == 0 && si.si_pid == pid) return exited = true;
            if (rc < 0 && errno == EINTR) continue;
            if (rc < 0) {  // ECHILD: SIGCHLD ignored by our caller; the status is unknown, not success
                unknown = true;
                return exited = true;
            }
            return false;
        }
    };
    // After the child exits, its pipes get a short grace: a process it left behind in its group
    // that still holds them is ended with the group.
    auto exit_grace = clock::time_point::max();
    bool terminated = false;
    auto term_at = clock::time_point::max();
    auto end_group = [&](auto now) {
        if (!terminated) {
            terminated = true;
            kill_group(pid, SIGTERM);
            term_at = now + o.kill_grace;
        }
    };
    char buf[16384];
    while (out_r.fd >= 0 || err_r.fd >= 0 || !exited) {
        auto now = clock::now();
        if (!terminated && now >= deadline) {
            r.timed_out = true;
            end_group(now);
        }
        if (!terminated && now >= exit_grace) end_group(now);
        if (!terminated && o.cancel && o.cancel->load()) {
            r.cancelled = true;
            end_group(now);
        }
        if (terminated && now >= term_at) {
            kill_group(pid, SIGKILL);
            if (exited) break;  // the pipes' holders are gone or unkillable; stop reading
            term_at = clock::time_point::max();
            reap(true);
            continue;
        }
        auto until = std::min({deadline, exit_grace, term_at});
        if (terminated) until = term_at;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count();
        int wait_ms = static_cast<int>(std::clamp<long long>(left, 0, o.cancel ? 100 : 1000));
        pollfd p[4] = {{out_r.fd, POLLIN, 0}, {err_r.fd, POLLIN, 0}, {in_w.fd, POLLOUT, 0},
                       {exited ? -1 : pidfd.fd, POLLIN, 0}};
        if (pidfd.fd < 0 && !exited) wait_ms = std::min(wait_ms, 20);  // no pidfd: poll waitpid
        int n = ::poll(p, 4, wait_ms);
        if (n < 0 && errno != EINTR) {
            r.error = std::string("poll: ") + std::strerror(errno);
            end_group(clock::now());
            continue;
        }
        if (!exited && reap(false) && exit_grace == clock::time_point::max())
            exit_grace = std::min(deadline, clock::now() + std::chrono::milliseconds(2000));
        if (n <= 0) continue;
        if (p[2].revents) {
            ssize_t w = write_nosigpipe(in_w.fd, pending);
            if (w > 0) pending.remove_prefix(static_cast<std::size_t>(w));
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || pending.empty()) in_w.reset();
        }
        for (int i = 0; i < 2; ++i) {
            if (p[i].fd < 0 || p[i].revents == 0) continue;
            ssize_t k = ::read(p[i].fd, buf, sizeof buf);
            if (k < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            if (k <= 0) {
                (i == 0 ? out_r : err_r).reset();
                continue;
            }
            auto chunk = std::string_view(buf, static_cast<std::size_t>(k));
            std::string& into = i == 0 ? r.out : r.err;
            std::size_t limit = i == 0 ? o.max_out : o.max_err;
            bool& trunc = i == 0 ? r.out_truncated : r.err_truncated;
            std::size_t room = limit - std::min(limit, into.size());
            into.append(chunk.substr(0, room));
            if (chunk.size() > room) {
                trunc = true;
                if (i == 0 && o.kill_on_overflow) {
                    r.error = "output exceeded " + std::to_string(o.max_out) + " bytes";
                    end_group(clock::now());
                    kill_group(pid, SIGKILL);
                    out_r.reset();
                    err_r.reset();
                }
            }
        }
    }
    reap(true);
    // Whatever it left in its group does not outlive it.
    kill_group(pid, SIGKILL);
    int status = 0;
    if (!unknown)
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    if (unknown) {
        r.exit_code = -1;
        r.error = "exit status unknown (SIGCHLD ignored)";
    } else if (WIFEXITED(status)) {
        r.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        r.signal = WTERMSIG(status);
    }
    if (r.timed_out)
        r.error = "after " + std::to_string(std::chrono::duration_cast<std::chrono::seconds>(o.timeout).count()) +
                  " s, ended with its process group";
    return r;
}

int run_chained_hook(std::vector<std::string> argv, std::string input, std::chrono::milliseconds timeout,
                     std::string_view who)
{
    spawn_options so;
    so.argv = std::move(argv);
    for (char** e = environ; e && *e; ++e) so.env.emplace_back(*e);
    so.input = std::move(input);
    so.timeout = timeout;
    so.max_out = 1 << 20;
    so.max_err = 1 << 20;
    auto r = spawn(so);
    std::cout << r.out << std::flush;
    std::cerr << r.err;
    if (!r.started) {
        std::cerr << who << ": " << r.error << "\n";
        return 1;
    }
    if (r.timed_out) std::cerr << who << ": " << so.argv.front() << " " << r.describe() << "\n";
    return r.exit_code >= 0 ? r.exit_code : 1;
}

} // namespace bus::runtime
