// stomp-git's glue between the bus, its pure parts (scheduler.hpp, the consumer ledger) and the
// runtime.
//
// The receive handler only decides: a commit event for a repository we keep is held in the
// consumer ledger (bus/runtime/ledger.hpp) and asks the scheduler for a fetch; the fetch runs in
// a worker process started from the service's worker pool (never on the I/O thread); when it
// ends, its result is reported on the bus (receipted, or spooled and delivered later) and every
// message it covered is acknowledged and marked processed in the intake. Catches up (a fetch of
// every repository) on start, after every reconnect, on SIGHUP and every safety-fetch-interval.
#include "daemon.hpp"

#include "config.hpp"
#include "git_lazy.hpp"
#include "scheduler.hpp"
#include "worker.hpp"

#include "bus/client.hpp"
#include "bus/http/metrics.hpp"
#include "bus/intake.hpp"
#include "bus/publisher.hpp"
#include "bus/runtime/consumer.hpp"
#include "bus/runtime/heartbeat.hpp"
#include "bus/runtime/ledger.hpp"
#include "bus/runtime/service.hpp"
#include "bus/text.hpp"
#include "bus/wire.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <map>

namespace stomp_git {

namespace net = boost::asio;
using std::chrono::milliseconds;

namespace {

// Messages held until their fetch is done, at most; beyond it the handler waits (the broker
// keeps the rest).
constexpr std::size_t max_held = 10000;

struct daemon_state {
    daemon_state(bus::runtime::service& svc_, std::string self_, std::string config_path_, config cfg_)
        : svc(svc_), self(std::move(self_)), config_path(std::move(config_path_)), cfg(std::move(cfg_)),
          log(svc.log()), client(svc.executor(), cfg.bus.client, log),
          out(svc.executor(), client, cfg.bus.spool, cfg.bus.signing, svc.workers(), log),
          in(bus::intake_options{.require_signatures = cfg.bus.require_signatures, .replay_cache = cfg.replay_cache},
             cfg.bus.verify_keys),
          sched(cfg.workers), host(bus::runtime::hostname()), idle(svc.io())
    {
    }
    bus::runtime::service& svc;
    std::string self;         // this binary, started as the worker
    std::string config_path;  // absolute: the worker reads it too
    config cfg;
    spdlog::logger& log;
    bus::client client;
    bus::spooling_publisher out;  // reports: receipted, or spooled and delivered later
    bus::intake in;
    scheduler sched;
    bus::runtime::ledger<bus::message> held;  // messages left until the fetch covering them is done
    struct announced {
        std::string ref, old_rev, new_rev;  // what the commit event named (reported back)
    };
    std::map<bus::runtime::ledger<bus::message>::token, announced> commits;
    std::string host;
    std::string subscription;
    net::steady_timer idle;  // the drain's wait for fetches in flight; cancelled by the last one
    std::size_t running = 0;
    std::uint64_t fetches = 0, failures = 0, events = 0, ignored = 0;  // heartbeat counters

    bus::http::registry metrics{"stomp_git"};
    bus::http::daemon_metrics common{metrics, bus::runtime::version()};
    bus::http::counter& fetches_ok = metrics.add_counter("fetches_total", "fetch jobs finished", {{"result", "ok"}});
    bus::http::counter& fetches_failed = metrics.add_counter("fetches_total", "fetch jobs finished", {{"result", "failed"}});

    void register_metrics()
    {
        bus::runtime::register_consumer_metrics(metrics, common, client, out,
                                                [this] { return static_cast<double>(held.size()); });
        metrics.add_callback("fetches_running", "fetch jobs in progress", "gauge",
                             [this] { return static_cast<double>(running); });
    }

    std::map<std::string, std::uint64_t> heartbeat_counters() const
    {
        return {{"events", events}, {"fetches", fetches}, {"failures", failures}, {"ignored", ignored},
                {"pending", held.size()}, {"spooled", out.stats().spooled}};
    }

    void start(const std::vector<std::string>& repos)
    {
        if (svc.stopping()) return;  // left unacknowledged: the broker keeps them for the next start
        for (const auto& r : repos) svc.spawn(job(r), "stomp-git: fetch " + r);
    }

    void request_all(const char* why)
    {
        log.info("stomp-git: fetching every configured repository ({})", why);
        for (auto& [name, _] : cfg.repos) start(sched.request(name, 0));
    }

    // The worker, on the pool. Captures stay pointers: GCC 12 mis-destroys by-value captures of
    // coroutine lambdas run by co_spawn on another thread. `repo` outlives the call (awaited).
    net::awaitable<worker_result> fetch(const std::string* repo)
    {
        const std::string* self_p = &self;
        const std::string* config_p = &config_path;
        const auto timeout = cfg.fetch_timeout;
        co_return co_await net::co_spawn(
            svc.workers(),
            [self_p, config_p, repo, timeout]() -> net::awaitable<worker_result> {
                co_return run_worker(*self_p, *config_p, *repo, timeout);
            },
            net::use_awaitable);
    }

    net::awaitable<void> job(std::string repo)
    {
        ++running;
        const auto started = std::chrono::steady_clock::now();
        worker_result r;
        try {
            r = co_await fetch(&repo);
        } catch (const std::exception& e) {
            r.error = e.what();
        }
        ++fetches;
        (r.ok ? fetches_ok : fetches_failed).inc();
        common.finished("fetch", started, r.ok);
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
            if (auto c = commits.find(token); c != commits.end())
                reports.push_back({repo, c->second.ref, c->second.old_rev, c->second.new_rev, host, how, r.duration_s,
                                   r.ok, r.error});
        if (reports.empty() && (!r.ok || r.changed))
            reports.push_back({repo, r.ref, r.old_rev, r.new_rev, host, how, r.duration_s, r.ok, r.error});
        for (const auto& fe : reports) {
            auto frames = bus::encode(bus::make_event(fe, host), "/topic/" + cfg.report_topic, cfg.bus.format);
            auto sent = co_await out.publish(std::move(frames), milliseconds(5000));
            if (sent.kept()) {
                common.events_out.inc();
            } else {
                common.dropped("report_not_kept").inc();
                log.warn("stomp-git: report for {} not kept: {}", repo, sent.why);
            }
        }
        // The work is done, failed fetches included (their failure is reported above, and the
        // next push, reconnect or safety fetch fetches again): acknowledge every message this
        // fetch covered, coalesced bursts and copies of the same event included. Leaving a
        // failed one instead would let one broken clone fill the broker's unacked window.
        resolve(d.covered);
        start(d.start);
        if (--running == 0) idle.cancel();
    }

    void resolve(const std::vector<std::uint64_t>& tokens)
    {
        auto now = std::chrono::system_clock::now();
        for (auto token : tokens) {
            commits.erase(token);
            for (auto& a : held.resolve(token, true)) {
                client.acknowledge(a.msg, bus::disposition::ack);
                if (a.first) in.processed(a.event_id, now);
            }
        }
    }

    net::awaitable<bus::disposition> on_message(const bus::message& m)
    {
        auto r = in.accept(m.frame, std::chrono::system_clock::now());
        if (r.decision == bus::intake_decision::keepalive) co_return bus::disposition::ack;
        common.events_in.inc();
        if (!r.process()) {  // dropped: counted by reason (duplicate, signature, invalid) and answered
            common.dropped(bus::to_string(r.decision)).inc();
            log.warn("stomp-git: dropped message {}: {}", bus::log_escape(m.id()), r.reason);
            co_return bus::disposition::ack;
        }
        auto* commit = std::get_if<bus::commit_event>(&r.ev->data);
        if (!commit || !cfg.repos.count(commit->repo)) {
            ++ignored;  // not ours: quietly
            common.dropped(commit ? "not_our_repo" : "not_a_commit").inc();
            log.debug("stomp-git: not our repo: {}", commit ? commit->repo : std::string(r.ev->type()));
            in.processed(r.ev->id, std::chrono::system_clock::now());
            co_return bus::disposition::ack;
        }
        ++events;
        // Another copy of an event already waiting for its fetch (a producer sending both wire
        // forms, or the broker's redelivery after a reconnect) is covered by that fetch and
        // answered with the first copy; without this every dual-form push cost a second fetch.
        // While stopping, or with max_held messages waiting, nothing new is taken: left to the
        // broker, as everything not yet fetched at the stop.
        const bool covered = held.attach(r.ev->id, m);
        if (covered) log.debug("stomp-git: event {} is already being handled", r.ev->id);
        bool room = !covered && !svc.stopping();
        while (room && held.size() >= max_held) {
            bool waited = co_await svc.sleep_for(milliseconds(100));  // named first: GCC 12
            room = waited;
        }
        if (!room) co_return bus::disposition::leave;
        auto token = held.hold(m, r.ev->id);
        commits.emplace(token, announced{commit->ref, commit->old_rev, commit->new_rev});
        start(sched.request(commit->repo, token));
        co_return bus::disposition::leave;  // acknowledged when the fetch is done
    }

    net::awaitable<void> watch_connections()
    {
        std::uint64_t seen = 0;
        auto next_safety = std::chrono::steady_clock::now() + cfg.safety_fetch;
        for (;;) {
            bool waited = co_await svc.sleep_for(milliseconds(250));
            if (!waited) co_return;
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

    // SIGTERM: take no more messages, let the fetches in flight finish (each ends within
    // fetch-timeout: spawn() ends the worker's process group then) so their messages are
    // acknowledged before the DISCONNECT; what is still queued stays unacknowledged for the
    // broker to redeliver.
    net::awaitable<void> drain()
    {
        log.info("stomp-git: stopping; {} fetch(es) in flight", running);
        auto deadline = std::chrono::steady_clock::now() + cfg.fetch_timeout + std::chrono::seconds(5);
        while (running > 0 && std::chrono::steady_clock::now() < deadline) {
            idle.expires_at(deadline);
            co_await idle.async_wait(net::as_tuple(net::use_awaitable));
        }
        out.stop();
        client.stop();
    }
};

// What a reload applies (the repositories, fetch-timeout, safety-fetch-interval; the worker reads
// the rest of its settings from the file at every job) and what it names as needing a restart.
void reload(daemon_state& d)
{
    auto fresh = load_config(d.config_path, [&](std::string_view n) { d.log.info("stomp-git: {}", n); });
    bus::runtime::log_restart_needed(d.log, "stomp-git", needs_restart(d.cfg, fresh));
    d.cfg.repos = std::move(fresh.repos);
    d.cfg.post_fetch = std::move(fresh.post_fetch);
    d.cfg.post_fetch_timeout = fresh.post_fetch_timeout;
    d.cfg.fetch_timeout = fresh.fetch_timeout;
    d.cfg.safety_fetch = fresh.safety_fetch;
    d.cfg.file = std::move(fresh.file);
    d.log.info("Re-read {}: {} repositories", d.config_path, d.cfg.repos.size());
    d.request_all("configuration reloaded");
}

} // namespace

int run(const bus::runtime::common_options& opts, spdlog::logger& log)
{
    auto cfg = load_config(opts.config_path, [&](std::string_view n) { log.info("stomp-git: {}", n); });
    // libgit2 is loaded by the fetch workers (git_lazy.hpp), never by the daemon itself; that it
    // can be is checked now, so a missing library stops the start (and --check-config), not the
    // first fetch.
    if (auto e = deploykit::libgit2_check(); !e.empty()) throw std::runtime_error(e);
    if (opts.check_config) return 0;
    std::string self = std::filesystem::canonical("/proc/self/exe").string();
    std::string config_path = std::filesystem::absolute(opts.config_path).string();
    bus::runtime::service svc(opts, log,
                              {.drain_deadline = cfg.fetch_timeout + std::chrono::seconds(10), .workers = cfg.workers});
    daemon_state d(svc, std::move(self), std::move(config_path), std::move(cfg));
    log.info("stomp-git {} on {}: {} repositories, listening to {}", bus::runtime::version(), d.host, d.cfg.repos.size(),
             d.cfg.listen_topic);
    d.subscription = d.client.subscribe(
        bus::runtime::consumer_subscription(d.cfg.listen_topic, d.cfg.durable_name, d.cfg.bus.client.client_id, 0, log,
                                            "stomp-git"),
        [&](const bus::message& m) { return d.on_message(m); });
    d.register_metrics();
    if (d.cfg.admin_listen)
        svc.serve_admin(*d.cfg.admin_listen, d.metrics, [&d] {
            return bus::runtime::consumer_not_ready(d.client, d.subscription, d.cfg.listen_topic);
        });
    svc.on_reload([&] { reload(d); });
    svc.on_stop([&] { return d.drain(); });
    svc.spawn(d.client.run(), "stomp-git: bus client", bus::runtime::task::critical);
    svc.spawn(d.watch_connections(), "stomp-git: catch-up");
    svc.spawn(d.out.run(), "stomp-git: outbox");
    svc.spawn(bus::runtime::heartbeat(svc, d.client, d.cfg.heartbeat, "stomp-git", [&d] { return d.heartbeat_counters(); },
                                      d.cfg.bus.signing),
              "stomp-git: heartbeat");
    net::co_spawn(svc.io(),
                  bus::runtime::ready_when_subscribed(&svc, &d.client, d.subscription,
                                                      "connected and subscribed to /topic/" + d.cfg.listen_topic),
                  net::detached);  // not tracked: ends with io
    return svc.run();
}

} // namespace stomp_git
