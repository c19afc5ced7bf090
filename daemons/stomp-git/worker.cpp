// stomp-git's worker process (worker.hpp): runs as the repository's user, one job at a time.
#include "worker.hpp"

#include "config.hpp"
#include "git_ops.hpp"

#include "bus/crypto.hpp"
#include "bus/detail/hex.hpp"
#include "bus/runtime/spawn.hpp"

#include <CLI/CLI.hpp>
#include <fcntl.h>
#include <grp.h>
#include <nlohmann/json.hpp>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace stomp_git {

namespace {

// Drops to `user`; an empty user keeps the current one. Returns an error message or "".
std::string become(const std::string& user)
{
    if (user.empty()) return {};
    struct passwd* pw = ::getpwnam(user.c_str());
    if (!pw) return "No such user " + user;
    if (::getuid() == pw->pw_uid) {
        ::setenv("HOME", pw->pw_dir, 1);
        ::setenv("USER", user.c_str(), 1);
        return {};
    }
    if (::geteuid() != 0) return "cannot switch to user " + user + ": stomp-git is not running as root";
    if (::initgroups(user.c_str(), pw->pw_gid) != 0 || ::setgid(pw->pw_gid) != 0 || ::setuid(pw->pw_uid) != 0)
        return "cannot switch to user " + user + ": " + std::strerror(errno);
    if (::setuid(0) == 0) return "privileges could not be dropped for " + user;
    ::setenv("HOME", pw->pw_dir, 1);
    ::setenv("USER", user.c_str(), 1);
    return {};
}

// The per-clone lock and post-fetch record: <state-dir>/locks/<sha256 of the clone path>.lock,
// in a directory only root (or the daemon's user) can write, so a repository's user can neither
// replace nor unlock it. Opened before the privilege drop; the descriptor (close-on-exec) is kept.
int open_clone_lock(const config& cfg, const repo_entry& e)
{
    namespace fs = std::filesystem;
    fs::path dir = cfg.state_dir / "locks";
    std::error_code ec;
    fs::create_directories(dir, ec);
    for (const fs::path& d : {cfg.state_dir, dir}) {
        struct stat st{};
        if (::lstat(d.c_str(), &st) != 0)
            throw std::runtime_error("state-dir " + d.string() + ": " + std::strerror(errno));
        if (!S_ISDIR(st.st_mode) || (st.st_uid != 0 && st.st_uid != ::geteuid()) || (st.st_mode & 022))
            throw std::runtime_error("state-dir " + d.string() +
                                     " must be a directory owned by root (or stomp-git's user) and writable by no one "
                                     "else");
    }
    ::chmod(dir.c_str(), 0700);
    std::string canonical = fs::weakly_canonical(e.path, ec).string();
    if (canonical.empty()) canonical = e.path.string();
    const auto md = bus::crypto::sha256(canonical);
    fs::path file = dir / (bus::detail::to_hex(md.data(), 16) + ".lock");
    int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error("lock " + file.string() + ": " + std::strerror(errno));
    // A second fetch of this clone (another worker, or one left by a daemon killed before a
    // restart) waits here; the daemon's fetch-timeout bounds the wait.
    while (::flock(fd, LOCK_EX) != 0)
        if (errno != EINTR) throw std::runtime_error("lock " + file.string() + ": " + std::strerror(errno));
    return fd;
}

std::string read_record(int fd)
{
    char buf[128] = {};
    ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
    std::string s = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s.size() == 40 && s.find_first_not_of("0123456789abcdef") == std::string::npos ? s : std::string();
}

void write_record(int fd, const std::string& rev)
{
    std::string line = rev + "\n";
    if (::ftruncate(fd, 0) == 0 && ::pwrite(fd, line.data(), line.size(), 0) == static_cast<ssize_t>(line.size()))
        ::fsync(fd);
}

std::string bounded(std::string s, std::size_t max = 16384)
{
    if (s.size() > max) s = s.substr(0, max) + " [truncated]";
    return s;
}

// The worker's result goes to descriptor 3, which the daemon passes (and names in
// DEPLOYKIT_RESULT_FD); its stdout and stderr are plain output, never the protocol. By hand: stdout.
void send_result(const nlohmann::json& out)
{
    std::string line = out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    const char* named = ::getenv("DEPLOYKIT_RESULT_FD");
    int fd = named && std::string_view(named) == "3" && ::fcntl(3, F_GETFD) >= 0 ? 3 : 1;
    for (std::string_view rest = line; !rest.empty();) {
        ssize_t n = ::write(fd, rest.data(), rest.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        rest.remove_prefix(static_cast<std::size_t>(n));
    }
}

int worker_main(const std::string& config_path, const std::string& name)
{
    nlohmann::json out;
    auto t0 = std::chrono::steady_clock::now();
    const pid_t parent = ::getppid();
    try {
        auto cfg = load_config(config_path);
        auto it = cfg.repos.find(name);
        if (it == cfg.repos.end()) throw std::runtime_error("repository " + name + " is not configured");
        const repo_entry& e = it->second;
        // Read while still root: the secrets are the daemon's (0600), not the repo user's.
        credentials creds = load_credentials(cfg);
        int lock = open_clone_lock(cfg, e);
        if (auto why = become(e.user); !why.empty()) throw std::runtime_error(why);
        // The drop cleared the death signal spawn() set: set it again, and make sure the daemon
        // did not die in between (then nobody would deliver it).
        if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || ::getppid() != parent)
            throw std::runtime_error("stomp-git ended before this fetch started");
        if (!std::filesystem::exists(e.path)) throw std::runtime_error("Repo in config but not in filesystem: " + name);
        auto o = fetch_and_publish(e, creds);
        out = {{"ok", o.ok}, {"error", bounded(o.error)}, {"ref", o.ref}, {"old_rev", o.old_rev},
               {"new_rev", o.new_rev}, {"changed", o.changed}, {"detail", bounded(o.detail)}};
        // post-fetch-command runs once for every revision change, even when a fetch was cut off
        // between the fetch and the command: the revision it last ran for is recorded.
        std::string done = read_record(lock);
        std::string from = done.empty() ? o.old_rev : done;
        if (o.ok && !cfg.post_fetch.empty() && from != o.new_rev) {
            bus::runtime::spawn_options so;
            so.argv = cfg.post_fetch;
            so.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "REPO=" + name, "OLD_REV=" + from,
                      "NEW_REV=" + o.new_rev, "MODE=" + std::string(to_string(e.how)),
                      "HOME=" + std::string(::getenv("HOME") ? ::getenv("HOME") : "/"),
                      "USER=" + std::string(::getenv("USER") ? ::getenv("USER") : "")};
            so.timeout = cfg.post_fetch_timeout;
            so.max_out = 8192;
            so.max_err = 8192;
            so.die_with_parent = true;
            auto r = bus::runtime::spawn(so);
            std::string output = r.out + r.err;
            if (!output.empty()) out["post_fetch_output"] = bounded(output, 4096);
            if (!r.ok()) {
                out["ok"] = false;
                out["error"] = "post-fetch command " + cfg.post_fetch[0] + " " + r.describe();
            } else {
                write_record(lock, o.new_rev);
            }
        } else if (o.ok && from != o.new_rev) {
            write_record(lock, o.new_rev);
        }
    } catch (const std::exception& ex) {
        out = {{"ok", false}, {"error", bounded(ex.what())}};
    }
    out["duration_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    send_result(out);
    return 0;
}

} // namespace

worker_result run_worker(const std::string& self, const std::string& config, const std::string& repo,
                         std::chrono::seconds timeout)
{
    worker_result r;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        r.error = std::string("pipe failed: ") + std::strerror(errno);
        return r;
    }
    bus::runtime::spawn_options so;
    so.argv = {self, "--worker", repo, "-c", config};
    so.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "DEPLOYKIT_RESULT_FD=3"};
    so.pass = {{fds[1], 3}};
    so.timeout = timeout;
    so.max_out = 16384;
    so.max_err = 16384;
    so.die_with_parent = true;
    auto s = bus::runtime::spawn(so);
    ::close(fds[1]);
    std::string output;
    ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
    char buf[4096];
    for (ssize_t got; (got = ::read(fds[0], buf, sizeof buf)) > 0 && output.size() < (1 << 20);)
        output.append(buf, static_cast<std::size_t>(got));
    ::close(fds[0]);
    r.output = s.out + s.err;
    if (s.timed_out) {
        r.error = "fetch timed out after " + std::to_string(timeout.count()) + " s";
        return r;
    }
    auto j = nlohmann::json::parse(output, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        r.error = "worker failed (" + s.describe() + ")";
        return r;
    }
    r.ok = j.value("ok", false);
    r.changed = j.value("changed", false);
    r.error = j.value("error", "");
    r.ref = j.value("ref", "");
    r.old_rev = j.value("old_rev", "");
    r.new_rev = j.value("new_rev", "");
    r.detail = j.value("detail", "");
    r.duration_s = j.value("duration_s", 0.0);
    if (auto pf = j.value("post_fetch_output", std::string()); !pf.empty())
        r.output += (r.output.empty() ? "" : "\n") + pf;
    return r;
}

bool is_worker_mode(int argc, char** argv)
{
    for (int i = 1; i < argc; ++i)
        if (std::string_view a = argv[i]; a == "--worker" || a.starts_with("--worker=")) return true;
    return false;
}

int worker_entry(int argc, char** argv)
{
    CLI::App app{"stomp-git worker"};
    std::string config_path = "/etc/stomp-git/stomp-git.yaml";
    std::string worker;
    bool debug = false;
    app.add_option("-c,--config", config_path, "configuration file");
    app.add_flag("-d,--debug", debug, "debug logging");
    app.add_option("--worker", worker, "internal: run one job for this repository")->required();
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : 2;
    }
    return worker_main(config_path, worker);
}

} // namespace stomp_git
