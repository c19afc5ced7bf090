// stomp-jenkins' glue between the bus, its pure logic (stomp_jenkins.hpp) and the runtime.
//
// The receive loop only decides (stomp_jenkins.hpp) and hands triggers to the scheduler; HTTP
// runs on the service's worker pool with timeouts; a message is acknowledged once Jenkins has
// accepted every request it asked for (or refused one for good: 400/404/405), through the
// consumer ledger (bus/runtime/ledger.hpp). Failures are retried in-process with capped backoff
// for as long as it takes (401/403 are held until accepted or SIGHUP); the message stays
// unacknowledged meanwhile, and only shutdown leaves it to the broker.
#include "daemon.hpp"

#include "config.hpp"
#include "curl_init.hpp"
#include "jenkins_http.hpp"
#include "stomp_jenkins.hpp"

#include "bus/client.hpp"
#include "bus/http/metrics.hpp"
#include "bus/intake.hpp"
#include "bus/text.hpp"
#include "bus/publisher.hpp"
#include "bus/runtime/heartbeat.hpp"
#include "bus/runtime/log.hpp"
#include "bus/runtime/settings.hpp"
#include "bus/runtime/ledger.hpp"
#include "bus/runtime/consumer.hpp"
#include "bus/runtime/service.hpp"
#include "bus/wire.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <random>

namespace stomp_jenkins {

namespace net = boost::asio;
using std::chrono::milliseconds;

namespace {

std::string short_rev(const std::string& r) { return r.substr(0, 12); }

struct exchange_result {
    http_response r;
    bool refetched = false;
    unsigned requests = 0;
};

struct daemon_state {
    daemon_state(bus::runtime::service& svc_, std::string config_path_, config cfg_)
        : svc(svc_), io(svc.io()), config_path(std::move(config_path_)), cfg(std::move(cfg_)), log(svc.log()),
          sessions(cfg.http, cfg.creds, &stop_flag), client(io.get_executor(), cfg.bus.client, log),
          out(io.get_executor(), client, cfg.bus.spool, cfg.bus.signing, svc.workers(), log),
          in(bus::intake_options{.require_signatures = cfg.bus.require_signatures, .replay_cache = cfg.replay_cache},
             cfg.bus.verify_keys),
          host(bus::runtime::hostname()), wake(io), idle(io)
    {
    }
    bus::runtime::service& svc;
    net::io_context& io;
    std::string config_path;
    config cfg;
    spdlog::logger& log;
    std::atomic<bool> stop_flag{false};
    session_pool sessions;
    bus::client client;
    bus::spooling_publisher out;
    bus::intake in;
    scheduler sched;
    bus::runtime::ledger<bus::message> held;  // messages left until Jenkins took their requests
    std::string host;
    net::steady_timer wake;
    net::steady_timer idle;  // the drain's wait for the requests in flight; cancelled by the last one
    std::size_t followers = 0;
    std::uint64_t triggered = 0, refused = 0, events = 0;  // heartbeat counters
    bus::http::registry metrics{"stomp_jenkins"};
    bus::http::daemon_metrics common{metrics, bus::runtime::version()};
    std::string subscription_id;

    // /readyz: nullopt when it can do its job.
    std::optional<std::string> not_ready() const
    {
        return bus::runtime::consumer_not_ready(client, subscription_id, cfg.listen_topic);
    }

    void register_metrics()
    {
        bus::runtime::register_consumer_metrics(metrics, common, client, out,
                                                [this] { return static_cast<double>(held.size()); });
        metrics.add_callback("requests_in_flight", "Jenkins requests in progress", "gauge",
                             [this] { return static_cast<double>(running); });
        metrics.add_callback("triggered_total", "requests Jenkins accepted", "counter",
                             [this] { return static_cast<double>(triggered); });
        metrics.add_callback("refused_total", "requests Jenkins refused for good", "counter",
                             [this] { return static_cast<double>(refused); });
    }
    std::size_t polling = 0;   // queue GETs on the pool right now (at most workers/2)
    std::size_t running = 0;   // run_batch coroutines in progress (drained on stop)
    std::string jenkins_version;
    std::mt19937_64 rng{std::random_device{}()};

    std::string build_destination() const
    {
        return "/topic/" + (cfg.build_topic.empty() ? cfg.report_topic : cfg.build_topic);
    }

    net::awaitable<bool> sleep_for(milliseconds d) { return svc.sleep_for(d); }

    // SIGTERM: stop taking messages; let the requests in flight finish (bounded by
    // request-timeout) so their messages are acknowledged before the DISCONNECT (no double
    // builds on restart); abort transfers only after that deadline. Pending batches stay
    // unacknowledged: the broker keeps them for the next start (durable subscription).
    net::awaitable<void> drain()
    {
        log.info("stomp-jenkins: stopping; unacknowledged messages go back to the broker");
        wake.cancel();
        co_await wait_idle(std::chrono::steady_clock::now() + cfg.http.connect_timeout + cfg.http.request_timeout);
        if (running > 0) log.warn("stomp-jenkins: {} request(s) still in flight at the drain deadline; aborting them", running);
        stop_flag = true;  // aborts transfers still in progress (and queue polls)
        co_await wait_idle(std::chrono::steady_clock::now() + std::chrono::seconds(2));
        out.stop();
        client.stop();
    }

    net::awaitable<void> wait_idle(std::chrono::steady_clock::time_point deadline)
    {
        while (running > 0 && std::chrono::steady_clock::now() < deadline) {
            idle.expires_at(deadline);
            co_await idle.async_wait(net::as_tuple(net::use_awaitable));
        }
    }

    void batch_done()
    {
        if (--running == 0) idle.cancel();
    }

    void kick() { wake.cancel(); }

    // ---- HTTP, on the pool ----
    // Lambdas run by co_spawn on the pool capture only pointers (GCC 12, see stomp-git).

    net::awaitable<exchange_result> perform_trigger(const http_request* req)
    {
        session_pool* sp = &sessions;
        const config* c = &cfg;
        co_return co_await net::co_spawn(
            svc.workers(),
            [sp, req, c]() -> net::awaitable<exchange_result> {
                auto s = sp->acquire();
                exchange x(*req, c->jenkins_url, s->crumb, c->http.crumbs);
                exchange_result out;
                out.r = s->run(x);
                out.refetched = x.refetched();
                out.requests = x.requests();
                sp->release(std::move(s));
                co_return out;
            },
            net::use_awaitable);
    }

    net::awaitable<http_response> perform_get(const std::string* url)
    {
        session_pool* sp = &sessions;
        co_return co_await net::co_spawn(
            svc.workers(),
            [sp, url]() -> net::awaitable<http_response> {
                auto s = sp->acquire();
                auto r = s->perform(get_request(*url));
                sp->release(std::move(s));
                co_return r;
            },
            net::use_awaitable);
    }

    // ---- the bus ----

    net::awaitable<void> publish(std::vector<bus::stomp::frame> frames)
    {
        // Receipted, or spooled and delivered from the outbox later (spooling_publisher::run).
        const auto n = frames.size();
        auto sent = co_await out.publish(std::move(frames), milliseconds(5000));
        if (!sent.kept()) {
            const auto& why = sent.why;
            common.dropped("report_not_kept").inc();
            log.warn("stomp-jenkins: report not kept: {}", why);
        } else {
            common.events_out.inc(static_cast<double>(n));
        }
    }

    bus::build_event build_of(const scheduler::batch& b, bus::build_phase phase, std::string job, std::int64_t number,
                              std::string url) const
    {
        bus::build_event e;
        e.job = std::move(job);
        e.number = number;
        e.url = std::move(url);
        e.phase = phase;
        e.commit = b.data.commit;
        e.branch = b.data.branch;
        e.repo = b.data.repo;
        return e;
    }

    // Accepted: native build event(s) with phase queued, and the original's one-liner.
    net::awaitable<void> report_queued(const scheduler::batch& b, const classification& c)
    {
        std::vector<bus::stomp::frame> frames;
        std::vector<std::string> jobs;
        std::string url;
        if (b.job.mode == trigger_mode::notify_commit) {
            for (const auto& line : c.notified) {
                std::string_view n = line;
                n.remove_prefix(n.starts_with("Scheduled polling of ") ? 21 : 10);
                if (!n.empty() && n.size() <= 512) jobs.emplace_back(n);
            }
        } else {
            jobs.push_back(b.job.name);
            url = c.queue ? c.queue->substr(0, c.queue->size() - 8) : cfg.jenkins_url + job_path(b.job.name);
        }
        std::string first_id;
        if (cfg.bus.format != bus::wire_format::legacy)
            for (auto& job : jobs) {
                auto ev = bus::make_event(build_of(b, bus::build_phase::queued, job, 0, url), host);
                if (first_id.empty()) first_id = ev.id;
                for (auto& f : bus::encode(ev, build_destination(), bus::wire_format::native)) frames.push_back(std::move(f));
            }
        if (cfg.bus.format != bus::wire_format::native) {
            // Same id as the native event: deploykit consumers keep one of the two.
            auto line = bus::make_event(bus::notice_event{report_line(b.data, b.job)}, host);
            if (!first_id.empty()) line.id = first_id;
            for (auto& f : bus::encode(line, "/topic/" + cfg.report_topic, bus::wire_format::legacy))
                frames.push_back(std::move(f));
        }
        co_await publish(std::move(frames));
    }

    net::awaitable<void> report_failure(const scheduler::batch& b, const std::string& reason)
    {
        auto ev = bus::make_event(bus::notice_event{failure_line(b.data, b.job, reason)}, host);
        co_await publish(bus::encode(ev, "/topic/" + cfg.report_topic, cfg.bus.format));
    }

    // The scheduler answered these messages: acknowledge them and their copies (ledger.hpp).
    void resolve(const std::vector<scheduler::resolution>& rs)
    {
        auto now = std::chrono::system_clock::now();
        for (const auto& r : rs)
            for (auto& a : held.resolve(r.token, r.ack)) {
                client.acknowledge(a.msg, a.ack ? bus::disposition::ack : bus::disposition::leave);
                if (a.ack && a.first) in.processed(a.event_id, now);
            }
    }

    // ---- one request (a coalesced batch) ----

    // One attempt. Accepted or refused for good: the messages are answered (ack) first, then the
    // reports go out. Anything else: back to the scheduler, due after a capped backoff, messages
    // still unacknowledged; retried for as long as it takes (bounded by max-pending).
    net::awaitable<void> run_batch(scheduler::batch b)
    {
        ++running;
        const std::string job = b.job.display();
        std::optional<http_request> req;
        std::string bad_request;
        try {
            req = trigger_request(cfg.jenkins_url, b.job, b.data);
        } catch (const std::exception& e) {
            bad_request = e.what();  // deterministic: the same event fails the same way every time
        }
        if (!req) {
            bus::runtime::log_event(log, spdlog::level::err, b.data.event_id,
                                    "stomp-jenkins: {} for event {}: cannot build the request: {} (message acknowledged)", job,
                      b.data.event_id, bad_request);
            resolve(sched.complete(b, scheduler::outcome::rejected));
            kick();
            const std::string why = "cannot build the request: " + bad_request;
            co_await report_failure(b, why);
            batch_done();
            co_return;
        }
        if (b.attempts == 0)
            bus::runtime::log_event(log, spdlog::level::info, b.data.event_id,
                                    "stomp-jenkins: {} {} for {} {} {} (event {}{}): {}", to_string(b.job.mode), job, b.data.repo,
                     b.data.ref.empty() ? b.data.project : b.data.ref, short_rev(b.data.commit), b.data.event_id,
                     b.requests > 1 ? ", " + std::to_string(b.requests) + " events coalesced" : "", req->describe());
        classification c;
        http_response r;
        const auto started = std::chrono::steady_clock::now();
        try {
            auto x = co_await perform_trigger(&*req);
            r = std::move(x.r);
            if (!r.jenkins.empty() && r.jenkins != jenkins_version) {
                jenkins_version = r.jenkins;
                log.info("stomp-jenkins: Jenkins {} at {}", jenkins_version, cfg.jenkins_url);
            }
            if (x.refetched) log.info("stomp-jenkins: {}: 403 for the crumb; fetched a fresh one and retried", job);
            c = classify(b.job.mode, r, cfg.jenkins_url, b.job.name);
        } catch (const std::exception& e) {
            c.v = verdict::transient;
            c.reason = e.what();
        }
        ++b.attempts;
        common.finished("trigger", started, c.v == verdict::accepted);
        if (c.v == verdict::accepted) {
            std::string what = c.queue ? "queue item " + c.queue->substr(0, c.queue->size() - 8)
                                       : (c.notified.empty() ? "no queue item" : [&] {
                                             std::string s;
                                             for (auto& n : c.notified) s += (s.empty() ? "" : "; ") + n;
                                             return s;
                                         }());
            log.info("stomp-jenkins: Jenkins accepted {} (HTTP {}{}): {}", job, r.status,
                     b.attempts > 1 ? ", attempt " + std::to_string(b.attempts) : "", what);
            ++triggered;
            resolve(sched.complete(b, scheduler::outcome::accepted));
            kick();  // the key is free: a batch that waited behind this one may be due
            batch_done();
            co_await report_queued(b, c);
            if (c.queue && cfg.http.queue_follow.count() > 0 && !svc.stopping()) {
                try {
                    co_await follow_queue(b, *c.queue);
                } catch (const std::exception& e) {
                    log.warn("stomp-jenkins: {}: following the queue item failed: {}", job, e.what());
                }
            }
            co_return;
        }
        if (c.v == verdict::permanent) {
            bus::runtime::log_event(log, spdlog::level::err, b.data.event_id,
                                    "stomp-jenkins: Jenkins refused {} for event {}: {} (not retried; message acknowledged)", job,
                      b.data.event_id, c.reason);
            ++refused;
            resolve(sched.complete(b, scheduler::outcome::rejected));
            kick();
            batch_done();
            co_await report_failure(b, c.reason);
            co_return;
        }
        const bool held = c.v == verdict::held;
        milliseconds d = held ? cfg.http.retry_max
                              : retry_delay(cfg.http, b.attempts, std::uniform_real_distribution<double>(0, 1)(rng), r.retry_after);
        bool notice = false;
        if (held) {
            bus::runtime::log_event(log, spdlog::level::err, b.data.event_id,
                                    "stomp-jenkins: Jenkins refused {} for event {}: {}; held: retried every {} ms until accepted or "
                      "the configuration is reloaded (SIGHUP); message not acknowledged",
                      job, b.data.event_id, c.reason, d.count());
            notice = !b.noticed;
        } else if (b.attempts <= cfg.http.retries) {
            bus::runtime::log_event(log, spdlog::level::warn, b.data.event_id,
                                    "stomp-jenkins: {}: {}; retry {} of {} in {} ms", job, c.reason, b.attempts, cfg.http.retries, d.count());
        } else {
            if (b.attempts == cfg.http.retries + 1)
                bus::runtime::log_event(log, spdlog::level::err, b.data.event_id,
                                        "stomp-jenkins: {} for event {}: {}; still failing after {} attempt(s), retrying every {} ms "
                          "(message not acknowledged)",
                          job, b.data.event_id, c.reason, b.attempts, cfg.http.retry_max.count());
            else
                bus::runtime::log_event(log, spdlog::level::warn, b.data.event_id,
                                        "stomp-jenkins: {}: {}; attempt {} failed, next in {} ms", job, c.reason, b.attempts, d.count());
            notice = !b.noticed;
        }
        if (notice) b.noticed = true;
        std::optional<scheduler::batch> copy;
        if (notice) copy = b;
        sched.requeue(std::move(b), std::chrono::steady_clock::now() + d, held);
        kick();
        batch_done();
        if (copy && !svc.stopping()) {
            // Named first: GCC 12 destroys temporaries of a ?: inside co_await twice.
            std::string why = c.reason;
            if (held) why += " (held until accepted; fix the credentials and send SIGHUP)";
            else why += " (still retrying after " + std::to_string(copy->attempts) + " attempts)";
            co_await report_failure(*copy, why);
        }
    }

    // Queue item → build number, with backoff and a deadline; then a "started" build event.
    struct counted {
        std::size_t& n;
        explicit counted(std::size_t& n_) : n(n_) { ++n; }
        ~counted() { --n; }
        counted(const counted&) = delete;
        counted& operator=(const counted&) = delete;
    };

    net::awaitable<void> follow_queue(const scheduler::batch& b, std::string url)
    {
        if (followers >= 256) {
            log.debug("stomp-jenkins: not following {} (too many queue items followed)", url);
            co_return;
        }
        counted following(followers);
        // Polls share the HTTP threads with triggers: at most half of them poll at a time.
        const std::size_t max_polls = std::max<std::size_t>(1, cfg.http.workers / 2);
        auto deadline = std::chrono::steady_clock::now() + cfg.http.queue_follow;
        for (unsigned i = 0; std::chrono::steady_clock::now() < deadline; ++i) {
            if (!co_await sleep_for(poll_delay(i))) break;
            if (polling >= max_polls) continue;  // the next round
            http_response r;
            {
                counted poll(polling);
                r = co_await perform_get(&url);
            }
            if (svc.stopping()) break;
            if (r.status == 404) {
                log.info("stomp-jenkins: {}: queue item gone before it started", b.job.display());
                break;
            }
            if (r.status == 401 || r.status == 403) {
                log.warn("stomp-jenkins: {}: cannot read the queue item (HTTP {}); build number unknown", b.job.display(),
                         r.status);
                break;
            }
            if (r.status != 200) continue;  // unreachable or busy: try again until the deadline
            auto q = parse_queue_item(r.body);
            if (q.what == queue_state::kind::started) {
                log.info("stomp-jenkins: {} started: #{} {}", b.job.display(), q.number, q.url);
                co_await publish(bus::encode(bus::make_event(build_of(b, bus::build_phase::started, b.job.name, q.number, q.url), host),
                                             build_destination(), bus::wire_format::native));
                break;
            }
            if (q.what == queue_state::kind::cancelled) {
                log.warn("stomp-jenkins: {}: cancelled in the Jenkins queue", b.job.display());
                break;
            }
            log.debug("stomp-jenkins: {}: {}", b.job.display(), q.why);
        }
    }

    net::awaitable<void> dispatch_loop()
    {
        while (!svc.stopping()) {
            auto now = std::chrono::steady_clock::now();
            for (auto& b : sched.take_due(now)) svc.spawn(run_batch(std::move(b)), "request");
            auto next = sched.next_due();
            wake.expires_at(next ? *next : now + std::chrono::hours(1));
            co_await wake.async_wait(net::as_tuple(net::use_awaitable));
        }
    }

    // ---- intake ----

    net::awaitable<bus::disposition> on_message(const bus::message& m)
    {
        auto r = in.accept(m.frame, std::chrono::system_clock::now());
        if (r.decision != bus::intake_decision::keepalive) common.events_in.inc();
        if (!bus::runtime::screen(r, m.id(), common, log, "stomp-jenkins")) co_return bus::disposition::ack;
        auto* commit = std::get_if<bus::commit_event>(&r.ev->data);
        if (!commit) {
            common.dropped("not_a_commit").inc();
            log.debug("stomp-jenkins: ignoring a {} event", r.ev->type());
            co_return bus::disposition::ack;
        }
        if (svc.stopping()) co_return bus::disposition::leave;
        ++events;
        if (held.attach(r.ev->id, m)) {
            // Another copy of an event being worked on: the other wire format, or the broker's
            // redelivery after a reconnect (the first copy's ack would go to a dead connection).
            // Answered together with the first copy, never before Jenkins accepted.
            bus::runtime::log_event(log, spdlog::level::debug, r.ev->id,
                                    "stomp-jenkins: event {} is already in progress; this copy is answered with it", r.ev->id);
            co_return bus::disposition::leave;
        }
        // Bounded: with this many messages in progress, wait (the broker holds the rest).
        while (held.size() >= cfg.max_pending)
            if (!co_await sleep_for(milliseconds(100))) co_return bus::disposition::leave;
        auto sel = select_jobs(cfg.projects, *commit);
        if (!sel.known_repo) {
            log.debug("stomp-jenkins: Not our repo: {}", commit->repo);
            in.processed(r.ev->id, std::chrono::system_clock::now());
            co_return bus::disposition::ack;
        }
        for (const auto& s : sel.skipped) bus::runtime::log_event(log, spdlog::level::info, r.ev->id,
                                                                  "stomp-jenkins: event {}: skipped {}", r.ev->id, s);
        if (sel.jobs.empty()) {
            in.processed(r.ev->id, std::chrono::system_clock::now());
            co_return bus::disposition::ack;
        }
        auto data = make_trigger_data(*commit, r.ev->id);
        std::vector<scheduler::trigger> triggers;
        for (const auto* j : sel.jobs) triggers.push_back(scheduler::trigger{*j, data});
        auto token = held.hold(m, r.ev->id);
        auto n = sched.submit(token, r.ev->id, std::move(triggers), std::chrono::steady_clock::now());
        bus::runtime::log_event(log, spdlog::level::info, r.ev->id,
                                "stomp-jenkins: event {}: {} {} {} -> {} job(s){}", r.ev->id, commit->repo,
                 commit->ref.empty() ? commit->svn_project : commit->ref, short_rev(commit->new_rev), sel.jobs.size(),
                 n < sel.jobs.size() ? " (" + std::to_string(sel.jobs.size() - n) + " already triggered)" : "");
        if (n == 0) {
            held.resolve(token, true);
            in.processed(r.ev->id, std::chrono::system_clock::now());
            co_return bus::disposition::ack;
        }
        kick();
        co_return bus::disposition::leave;  // acknowledged when Jenkins has taken the requests
    }
};


// What a reload applies (jenkins-projects and the credentials) and what it names as needing a
// restart (connection, Jenkins URL, topics, timeouts...).
void reload(daemon_state& d)
{
    auto fresh = load_config(d.config_path, [&](std::string_view n) { d.log.info("stomp-jenkins: {}", n); });
    bus::runtime::log_restart_needed(d.log, "stomp-jenkins", needs_restart(d.cfg, fresh));
    d.cfg.projects = std::move(fresh.projects);
    d.cfg.creds = fresh.creds;
    d.sessions.reset(std::move(fresh.creds));
    d.cfg.file = std::move(fresh.file);
    d.log.info("Re-read {}: {} repositories", d.config_path, d.cfg.projects.size());
    if (auto n = d.sched.kick_held(std::chrono::steady_clock::now())) {
        d.log.info("stomp-jenkins: retrying {} held request(s) now", n);
        d.kick();
    }
}

bus::subscription_options subscription(const config& cfg, spdlog::logger& log)
{
    return bus::runtime::consumer_subscription(cfg.listen_topic, cfg.durable_name, cfg.bus.client.client_id,
                                               static_cast<unsigned>(std::min<std::size_t>(cfg.max_pending, 65535)),
                                               log, "stomp-jenkins");
}

} // namespace

int run(const bus::runtime::common_options& opts, spdlog::logger& log)
{
    auto cfg = load_config(opts.config_path, [&](std::string_view n) { log.info("stomp-jenkins: {}", n); });
    // libcurl is loaded at the first request (curl_init.hpp); that it can be is checked now, so a
    // missing library stops the start (and --check-config), not the first build.
    if (auto e = deploykit::curl_library_check(); !e.empty()) throw std::runtime_error(e);
    if (opts.check_config) return 0;
    bus::runtime::service svc(opts, log,
                              {.drain_deadline = cfg.http.connect_timeout + cfg.http.request_timeout + std::chrono::seconds(3),
                               .workers = cfg.http.workers});
    daemon_state d(svc, opts.config_path, std::move(cfg));
    log.info("stomp-jenkins {} on {}: {} repositories, Jenkins at {} ({}), listening to {}", bus::runtime::version(), d.host,
             d.cfg.projects.size(), d.cfg.jenkins_url, d.cfg.creds.empty() ? "anonymous" : "as " + d.cfg.creds.user,
             d.cfg.listen_topic);
    if (!d.cfg.creds.empty() && d.cfg.jenkins_url.starts_with("http://"))
        log.warn("stomp-jenkins: credentials-file is set and jenkins-url is http://: the API token travels in clear "
                 "(Basic auth); use https://");
    d.subscription_id =
        d.client.subscribe(subscription(d.cfg, log), [&](const bus::message& m) { return d.on_message(m); });
    d.register_metrics();
    if (d.cfg.admin_listen) svc.serve_admin(*d.cfg.admin_listen, d.metrics, [&d] { return d.not_ready(); });
    svc.on_reload([&] { reload(d); });
    svc.on_stop([&] { return d.drain(); });
    svc.spawn(d.client.run(), "stomp-jenkins: bus client", bus::runtime::task::critical);
    svc.spawn(d.dispatch_loop(), "stomp-jenkins: dispatch");
    svc.spawn(d.out.run(), "stomp-jenkins: outbox");
    svc.spawn(bus::runtime::heartbeat(svc, d.client, d.cfg.heartbeat, "stomp-jenkins",
                                      [&] {
                                          return std::map<std::string, std::uint64_t>{
                                              {"events", d.events},       {"triggered", d.triggered},
                                              {"refused", d.refused},     {"pending", d.held.size()},
                                              {"spooled", d.out.stats().spooled}};
                                      },
                                      d.cfg.bus.signing),
              "stomp-jenkins: heartbeat");
    net::co_spawn(svc.io(),
                  bus::runtime::ready_when_subscribed(&svc, &d.client, d.subscription_id,
                                                      "connected and subscribed to /topic/" + d.cfg.listen_topic),
                  net::detached);  // not tracked: ends with io
    return svc.run();
}

} // namespace stomp_jenkins
