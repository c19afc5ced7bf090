// stomp-git: on every server, fetch the repositories it keeps when a commit event names them,
// and publish the result per mode. Runs as root only to start, for each job, a worker process
// (this binary with --worker) that drops to the repository owner's user before touching
// anything; no su, no shell. Catches up on start and after every reconnect.
//
//   stomp-git [-c /etc/stomp-git/stomp-git.yaml] [-d]
#include "config.hpp"
#include "git_ops.hpp"
#include "scheduler.hpp"

#include "bus/client.hpp"
#include "bus/publisher.hpp"
#include "bus/intake.hpp"
#include "bus/wire.hpp"

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
#include <spawn.h>
#include <spdlog/sinks/stdout_color_sinks.h>
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
    if (::getuid() == pw->pw_uid) return {};
    if (::geteuid() != 0) return "cannot switch to user " + user + ": stomp-git is not running as root";
    if (::initgroups(user.c_str(), pw->pw_gid) != 0 || ::setgid(pw->pw_gid) != 0 || ::setuid(pw->pw_uid) != 0)
        return "cannot switch to user " + user + ": " + std::strerror(errno);
    if (::setuid(0) == 0) return "privileges could not be dropped for " + user;
    ::setenv("HOME", pw->pw_dir, 1);
    ::setenv("USER", user.c_str(), 1);
    return {};
}

// Runs argv with a deadline, no shell; returns its exit status, or -1 on timeout/failure.
int run_argv(const std::vector<std::string>& args, const std::vector<std::string>& env, std::chrono::seconds timeout)
{
    std::vector<char*> argv, envp;
    std::vector<std::string> a = args, e = env;
    for (auto& s : a) argv.push_back(s.data());
    argv.push_back(nullptr);
    for (auto& s : e) envp.push_back(s.data());
    envp.push_back(nullptr);
    pid_t pid = 0;
    if (posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), envp.data()) != 0) return -1;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        int status = 0;
        pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        if (std::chrono::steady_clock::now() >= deadline) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, &status, 0);
            return -1;
        }
        ::usleep(20000);
    }
}

int worker_main(const std::string& config_path, const std::string& name)
{
    nlohmann::json out;
    auto t0 = std::chrono::steady_clock::now();
    try {
        auto cfg = load_config(config_path);
        auto it = cfg.repos.find(name);
        if (it == cfg.repos.end()) throw std::runtime_error("repository " + name + " is not configured");
        const repo_entry& e = it->second;
        // Read while still root: the secrets are the daemon's (0600), not the repo user's.
        credentials creds = load_credentials(cfg);
        if (auto why = become(e.user); !why.empty()) throw std::runtime_error(why);
        if (!std::filesystem::exists(e.path)) throw std::runtime_error("Repo in config but not in filesystem: " + name);
        auto o = fetch_and_publish(e, creds);
        out = {{"ok", o.ok}, {"error", o.error}, {"ref", o.ref}, {"old_rev", o.old_rev}, {"new_rev", o.new_rev},
               {"detail", o.detail}};
        if (o.ok && !cfg.post_fetch.empty() && o.old_rev != o.new_rev) {
            std::vector<std::string> env{"PATH=/usr/local/bin:/usr/bin:/bin", "REPO=" + name, "OLD_REV=" + o.old_rev,
                                         "NEW_REV=" + o.new_rev, "MODE=" + std::string(to_string(e.how)),
                                         "HOME=" + std::string(::getenv("HOME") ? ::getenv("HOME") : "/")};
            int rc = run_argv(cfg.post_fetch, env, std::chrono::seconds(120));
            if (rc != 0) {
                out["ok"] = false;
                out["error"] = "post-fetch command " + cfg.post_fetch[0] +
                               (rc < 0 ? " timed out or could not start" : " exited " + std::to_string(rc));
            }
        }
    } catch (const std::exception& ex) {
        out = {{"ok", false}, {"error", ex.what()}};
    }
    out["duration_s"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
    return 0;
}

// ---- daemon side -----------------------------------------------------------------------------

struct worker_result {
    bool ok = false;
    std::string error, ref, old_rev, new_rev, detail;
    double duration_s = 0;
};

// Starts a worker (this binary, --worker) with a clean environment and waits for its one JSON
// line, killing its process group at the deadline. Blocking: runs on the worker thread pool.
worker_result run_worker(const std::string& self, const std::string& config, const std::string& repo,
                         std::chrono::seconds timeout)
{
    worker_result r;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        r.error = "pipe failed";
        return r;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&attr, 0);
    std::vector<std::string> args{self, "--worker", repo, "-c", config};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::string path_env = "PATH=/usr/local/bin:/usr/bin:/bin", lang = "LANG=C.UTF-8";
    char* envp[] = {path_env.data(), lang.data(), nullptr};
    pid_t pid = 0;
    int rc = posix_spawn(&pid, self.c_str(), &fa, &attr, argv.data(), envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    ::close(fds[1]);
    if (rc != 0) {
        ::close(fds[0]);
        r.error = std::string("cannot start worker: ") + std::strerror(rc);
        return r;
    }
    std::string output;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    bool timed_out = false;
    for (;;) {
        auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now()).count();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        pollfd p{fds[0], POLLIN, 0};
        int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) continue;
        char buf[4096];
        ssize_t got = ::read(fds[0], buf, sizeof buf);
        if (got <= 0) break;
        if (output.size() < 1024 * 1024) output.append(buf, static_cast<std::size_t>(got));
    }
    ::close(fds[0]);
    if (timed_out) ::kill(-pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (timed_out) {
        r.error = "fetch timed out after " + std::to_string(timeout.count()) + " s";
        return r;
    }
    auto j = nlohmann::json::parse(output, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        r.error = "worker failed (exit status " + std::to_string(status) + ")";
        return r;
    }
    r.ok = j.value("ok", false);
    r.error = j.value("error", "");
    r.ref = j.value("ref", "");
    r.old_rev = j.value("old_rev", "");
    r.new_rev = j.value("new_rev", "");
    r.detail = j.value("detail", "");
    r.duration_s = j.value("duration_s", 0.0);
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
    std::map<std::uint64_t, std::pair<bus::message, std::string>> waiting;  // token -> (message, event id)
    std::uint64_t next_token = 0;
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
        bus::fetch_event fe{repo, r.ref, r.old_rev, r.new_rev, host,
                            it != cfg.repos.end() ? std::string(to_string(it->second.how)) : "", r.duration_s, r.ok,
                            r.error};
        if (r.ok) {
            log.info("stomp-git: {} fetched {} {} -> {} in {:.2f}s{}", repo, r.ref, r.old_rev.substr(0, 12),
                     r.new_rev.substr(0, 12), r.duration_s, r.detail.empty() ? "" : "; " + r.detail);
        } else {
            ++failures;
            log.error("stomp-git: {} problem: {}", repo, r.error);
        }
        // Report (native and/or the original's one-liner); spooled if the broker is away and
        // delivered from the outbox later.
        auto ev = bus::make_event(fe, host);
        auto sent = co_await out.publish(bus::encode(ev, "/topic/" + cfg.report_topic, cfg.bus.format), milliseconds(5000));
        if (!sent.kept()) log.warn("stomp-git: report for {} not kept: {}", repo, sent.why);
        // Done: acknowledge every message this fetch covered (coalesced bursts included).
        auto d = sched.finished(repo);
        auto now = std::chrono::system_clock::now();
        for (auto token : d.covered) {
            auto w = waiting.find(token);
            if (w == waiting.end()) continue;
            client.acknowledge(w->second.first, bus::disposition::ack);
            in.processed(w->second.second, now);
            waiting.erase(w);
        }
        start(d.start);
    }

    net::awaitable<bus::disposition> on_message(const bus::message& m)
    {
        auto r = in.accept(m.frame, std::chrono::system_clock::now());
        if (!r.process) {
            if (r.reason != "keepalive") log.warn("stomp-git: dropped message {}: {}", m.id(), r.reason);
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
        for (const auto& [_, w] : waiting)
            if (w.second == r.ev->id) {
                log.debug("stomp-git: event {} is already being handled", r.ev->id);
                co_return bus::disposition::ack;
            }
        auto token = ++next_token;
        waiting.emplace(token, std::pair{m, r.ev->id});
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

} // namespace

int main(int argc, char** argv)
{
    CLI::App app{"stomp-git - fetch repositories when commits are announced on the bus"};
    std::string config_path = "/etc/stomp-git/stomp-git.yaml";
    std::string worker;
    bool debug = false;
    app.add_option("-c,--config", config_path, "configuration file");
    app.add_flag("-d,--debug", debug, "debug logging (runs in the foreground, as always)");
    app.add_option("--worker", worker, "internal: run one job for this repository")->group("");
    CLI11_PARSE(app, argc, argv);
    if (!worker.empty()) return worker_main(config_path, worker);

    auto log = spdlog::stderr_color_mt("stomp-git");
    log->set_level(debug ? spdlog::level::debug : spdlog::level::info);
    try {
        auto cfg = load_config(config_path);
        std::string self = std::filesystem::canonical("/proc/self/exe").string();
        config_path = std::filesystem::absolute(config_path).string();
        net::io_context io(1);
        daemon_state d(io, self, config_path, std::move(cfg), *log);
        log->info("stomp-git on {}: {} repositories, listening to {}", d.host, d.cfg.repos.size(), d.cfg.listen_topic);
        bus::subscription_options so;
        so.destination = "/topic/" + d.cfg.listen_topic;
        so.ack = bus::ack_mode::client_individual;
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
                    log->info("Re-read {}: {} repositories", config_path, d.cfg.repos.size());
                    d.request_all("configuration reloaded");
                } catch (const std::exception& ex) {
                    log->error("reload failed, keeping the old configuration: {}", ex.what());
                }
                on_hup();
            });
        };
        on_hup();
        io.run();
        d.pool.join();
    } catch (const bus::config_error& e) {
        std::cerr << "stomp-git: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "stomp-git: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
