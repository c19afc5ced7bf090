// stomp-git: on every server, fetch the repositories it keeps when a commit event names them,
// and publish the result per mode. Runs as root only to start, for each job, a worker process
// (this binary with --worker) that drops to the repository owner's user before touching
// anything; no su, no shell. Catches up on start and after every reconnect.
//
//   stomp-git [-c /etc/stomp-git/stomp-git.yaml] [-d] [--daemonize --pidfile FILE]
//
// The common options (--check-config, --log-format, --syslog, --version) come from the runtime
// (docs/runtime.md); `--worker REPO` is the internal per-job mode, parsed on its own.
#include "config.hpp"
#include "git_ops.hpp"
#include "ledger.hpp"
#include "scheduler.hpp"

#include "bus/client.hpp"
#include "bus/publisher.hpp"
#include "bus/intake.hpp"
#include "bus/wire.hpp"
#include "bus/runtime/program.hpp"
#include "bus/runtime/spawn.hpp"
#include "bus/detail/hex.hpp"

#include <openssl/evp.h>

#include <CLI/CLI.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <fcntl.h>
#include <grp.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>

namespace net = boost::asio;
using std::chrono::milliseconds;
using namespace stomp_git;

namespace {

std::string hostname()
{
    char buf[256] = {};
    ::gethostname(buf, sizeof buf - 1);
    return buf;
}

// ---- worker process (runs as the repository's user) --------------------------------------------

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
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_Digest(canonical.data(), canonical.size(), md, &len, EVP_sha256(), nullptr);
    fs::path file = dir / (bus::detail::to_hex(md, 16) + ".lock");
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

// ---- daemon side -----------------------------------------------------------------------------

struct worker_result {
    bool ok = false;
    bool changed = false;
    std::string error, ref, old_rev, new_rev, detail, output;
    double duration_s = 0;
};

// Starts a worker (this binary, --worker) through spawn(): clean environment, own process group
// ended at the deadline, dead with the daemon, only its pipes and the result pipe (as descriptor
// 3) open. Blocking: runs on the worker thread pool.
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

struct daemon_state {
    daemon_state(net::io_context& io_, std::string self_, std::string config_path_, config cfg_, spdlog::logger& log_)
        : io(io_), self(std::move(self_)), config_path(std::move(config_path_)), cfg(std::move(cfg_)), log(log_),
          pool(cfg.workers), client(io.get_executor(), cfg.bus.client, log),
          out(io.get_executor(), client, cfg.bus.spool, cfg.bus.signing, pool.get_executor(), log),
          in(bus::intake_options{.require_signatures = cfg.bus.require_signatures}, cfg.bus.verify_keys),
          sched(cfg.workers), host(hostname())
    {
    }
    net::io_context& io;
    std::string self;
    std::string config_path;
    config cfg;
    spdlog::logger& log;
    net::thread_pool pool;
    bus::client client;
    bus::spooling_publisher out;  // reports: receipted, or spooled and delivered later
    bus::intake in;
    scheduler sched;
    std::string host;
    pending_acks<bus::message> waiting;  // messages waiting for the fetch that covers them
    std::uint64_t fetches = 0, failures = 0, ignored = 0;

    void start(const std::vector<std::string>& repos)
    {
        for (auto& r : repos) net::co_spawn(io, job(r), net::detached);
    }

    void request_all(const char* why)
    {
        log.info("stomp-git: fetching every configured repository ({})", why);
        for (auto& [name, _] : cfg.repos) start(sched.request(name, 0));
    }

    net::awaitable<void> job(std::string repo)
    {
        // Captures stay trivially destructible: GCC 12 mis-destroys by-value captures of coroutine
        // lambdas run by co_spawn on another thread. `repo` outlives the call (we await it).
        const std::string* name = &repo;
        auto r = co_await net::co_spawn(
            pool, [this, name]() -> net::awaitable<worker_result> { co_return run_worker(self, config_path, *name, cfg.fetch_timeout); },
            net::use_awaitable);
        ++fetches;
        auto it = cfg.repos.find(repo);
        std::string how = it != cfg.repos.end() ? std::string(to_string(it->second.how)) : "";
        if (r.ok) {
            log.info("stomp-git: {} fetched {} {} -> {} in {:.2f}s{}", repo, r.ref, r.old_rev.substr(0, 12),
                     r.new_rev.substr(0, 12), r.duration_s, r.detail.empty() ? "" : "; " + r.detail);
        } else {
            ++failures;
            log.error("stomp-git: {} problem: {}", repo, r.error);
        }
        if (!r.output.empty()) log.info("stomp-git: {} output: {}", repo, r.output);
        auto d = sched.finished(repo);
        // Reports, as the original wrote them: one per announced commit, naming the pushed ref and
        // revision (the message's subject); a fetch nobody announced (start-up, reconnect, safety
        // fetch, reload) is reported only when it changed something or failed.
        std::vector<bus::fetch_event> reports;
        for (auto token : d.covered)
            if (const auto* w = waiting.find(token))
                reports.push_back({repo, w->ref, w->old_rev, w->new_rev, host, how, r.duration_s, r.ok, r.error});
        if (reports.empty() && (!r.ok || r.changed))
            reports.push_back({repo, r.ref, r.old_rev, r.new_rev, host, how, r.duration_s, r.ok, r.error});
        // Spooled if the broker is away and delivered from the outbox later.
        for (const auto& fe : reports) {
            auto ev = bus::make_event(fe, host);
            auto sent =
                co_await out.publish(bus::encode(ev, "/topic/" + cfg.report_topic, cfg.bus.format), milliseconds(5000));
            if (!sent.kept()) log.warn("stomp-git: report for {} not kept: {}", repo, sent.why);
        }
        // Done: acknowledge every message this fetch covered (coalesced bursts included).
        auto now = std::chrono::system_clock::now();
        waiting.settle(d.covered, [&](const auto& w) {
            client.acknowledge(w.msg, bus::disposition::ack);
            in.processed(w.event_id, now);
        });
        start(d.start);
    }

    net::awaitable<bus::disposition> on_message(const bus::message& m)
    {
        auto r = in.accept(m.frame, std::chrono::system_clock::now());
        if (!r.process()) {
            if (r.decision != bus::intake_decision::keepalive) log.warn("stomp-git: dropped message {}: {}", m.id(), r.reason);
            co_return bus::disposition::ack;
        }
        auto* commit = std::get_if<bus::commit_event>(&r.ev->data);
        if (!commit || !cfg.repos.count(commit->repo)) {
            ++ignored;  // not ours: quietly
            log.debug("stomp-git: not our repo: {}", commit ? commit->repo : std::string(r.ev->type()));
            co_return bus::disposition::ack;
        }
        // The same event already waiting for its fetch (a producer sending both wire forms, or a
        // redelivery): that fetch covers it. Acknowledged now; without this every dual-form push
        // cost each server a second, empty fetch.
        if (waiting.holds_event(r.ev->id)) {
            log.debug("stomp-git: event {} is already being handled", r.ev->id);
            co_return bus::disposition::ack;
        }
        auto token = waiting.hold({m, r.ev->id, commit->ref, commit->old_rev, commit->new_rev});
        start(sched.request(commit->repo, token));
        co_return bus::disposition::leave;  // acknowledged when the fetch is done
    }

    net::awaitable<void> watch_connections()
    {
        net::steady_timer t(io);
        std::uint64_t seen = 0;
        auto next_safety = std::chrono::steady_clock::now() + cfg.safety_fetch;
        for (;;) {
            t.expires_after(milliseconds(250));
            auto [ec] = co_await t.async_wait(net::as_tuple(net::use_awaitable));
            if (ec) co_return;
            if (client.connected() && client.stats().connects != seen) {
                seen = client.stats().connects;
                // Anything pushed while we were away or disconnected is caught up now.
                request_all(seen == 1 ? "start-up" : "reconnected");
            }
            if (cfg.safety_fetch.count() > 0 && std::chrono::steady_clock::now() >= next_safety) {
                next_safety = std::chrono::steady_clock::now() + cfg.safety_fetch;
                request_all("safety fetch");
            }
        }
    }
};

// The internal worker mode (`--worker REPO -c CONFIG`, started by the daemon itself): parsed as
// before, outside the runtime (no logger, no daemonizing; its result goes to descriptor 3).
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

int run_daemon(const bus::runtime::common_options& opts, spdlog::logger& logger)
{
    auto* log = &logger;
    std::string config_path = opts.config_path;
    {
        auto cfg = load_config(config_path);
        if (opts.check_config) return 0;
        bus::runtime::pidfile pid(opts.pidfile);
        std::string self = std::filesystem::canonical("/proc/self/exe").string();
        config_path = std::filesystem::absolute(config_path).string();
        net::io_context io(1);
        daemon_state d(io, self, config_path, std::move(cfg), *log);
        log->info("stomp-git on {}: {} repositories, listening to {}", d.host, d.cfg.repos.size(), d.cfg.listen_topic);
        bus::subscription_options so;
        so.destination = "/topic/" + d.cfg.listen_topic;
        so.ack = bus::ack_mode::client_individual;
        if (!d.cfg.durable_name.empty()) {
            // As stomp-jenkins: both header sets (RabbitMQ's durable queue, ActiveMQ's
            // subscriptionName with the client-id); a reconnect gap or a restart never drops a commit.
            so.durable_name = d.cfg.durable_name;
            so.durable = bus::durable_style::both;
            log->info("stomp-git: durable subscription '{}' (client-id '{}')", d.cfg.durable_name,
                      d.cfg.bus.client.client_id);
        } else {
            log->warn("stomp-git: durable-name is empty: a plain subscription; commits published while stopped or "
                      "reconnecting are only caught up by the next catch-up fetch");
        }
        d.client.subscribe(so, [&](const bus::message& m) { return d.on_message(m); });
        net::co_spawn(io, d.client.run(), [&](std::exception_ptr e) {
            if (e) log->error("stomp-git: bus client ended");
            io.stop();
        });
        net::co_spawn(io, d.watch_connections(), net::detached);
        net::co_spawn(io, d.out.run(), net::detached);
        net::signal_set term(io, SIGTERM, SIGINT);
        term.async_wait([&](auto ec, int) {
            if (ec) return;
            d.out.stop();
            d.client.stop();
        });
        net::signal_set hup(io, SIGHUP);
        std::function<void()> on_hup = [&] {
            hup.async_wait([&](auto ec, int) {
                if (ec) return;
                try {
                    auto fresh = load_config(config_path);
                    d.cfg.repos = std::move(fresh.repos);  // the connection settings need a restart
                    d.cfg.post_fetch = std::move(fresh.post_fetch);
                    d.cfg.post_fetch_timeout = fresh.post_fetch_timeout;
                    log->info("Re-read {}: {} repositories", config_path, d.cfg.repos.size());
                    d.request_all("configuration reloaded");
                } catch (const std::exception& ex) {
                    log->error("reload failed, keeping the old configuration: {}", ex.what());
                }
                on_hup();
            });
        };
        on_hup();
        // Started: signals handled, the bus client running (it connects and catches up on its
        // own, broker up or not). A `--daemonize`d start returns to start-stop-daemon now.
        net::post(io, [] { bus::runtime::report_ready(); });
        io.run();
        d.pool.join();
    }
    return 0;
}

} // namespace

int main(int argc, char** argv)
{
    for (int i = 1; i < argc; ++i)
        if (std::string_view a = argv[i]; a == "--worker" || a.starts_with("--worker=")) return worker_entry(argc, argv);
    return bus::runtime::run_main(argc, argv,
                                  {.name = "stomp-git",
                                   .description = "stomp-git - fetch repositories when commits are announced on the bus",
                                   .default_config = "/etc/stomp-git/stomp-git.yaml"},
                                  {}, run_daemon);
}
