// stomp-jenkins: trigger Jenkins jobs when commits are announced on the bus.
//
//   stomp-jenkins [-c /etc/stomp-jenkins/stomp-jenkins.yaml] [-d]
//
// The receive loop only decides (stomp_jenkins.hpp) and hands triggers to the scheduler; HTTP
// runs on a thread pool with timeouts; a message is acknowledged once Jenkins has accepted every
// request it asked for (or refused one for good: 400/404/405). Failures are retried in-process
// with capped backoff for as long as it takes (401/403 are held until accepted or SIGHUP); the
// message stays unacknowledged meanwhile, and only shutdown leaves it to the broker.
#include "config.hpp"
#include "jenkins_http.hpp"
#include "stomp_jenkins.hpp"

#include "bus/client.hpp"
#include "bus/intake.hpp"
#include "bus/outbox.hpp"
#include "bus/publisher.hpp"
#include "bus/signing.hpp"
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
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <random>
#include <set>

namespace net = boost::asio;
using std::chrono::milliseconds;
using namespace stomp_jenkins;

namespace {

std::string hostname()
{
    char buf[256] = {};
    ::gethostname(buf, sizeof buf - 1);
    return buf;
}

std::string short_rev(const std::string& r) { return r.substr(0, 12); }

struct exchange_result {
    http_response r;
    bool refetched = false;
    unsigned requests = 0;
};

struct daemon_state {
    daemon_state(net::io_context& io_, std::string config_path_, config cfg_, spdlog::logger& log_)
        : io(io_), config_path(std::move(config_path_)), cfg(std::move(cfg_)), log(log_), pool(cfg.http.workers),
          sessions(cfg.http, cfg.creds, &stop_flag), client(io.get_executor(), cfg.bus.client, log),
          out(io.get_executor(), client, cfg.bus.spool, cfg.bus.signing, pool.get_executor(), log),
          in(bus::intake_options{.require_signatures = cfg.bus.require_signatures}, cfg.bus.verify_keys), host(hostname()),
          wake(io)
    {
    }
    net::io_context& io;
    std::string config_path;
    config cfg;
    spdlog::logger& log;
    std::atomic<bool> stop_flag{false};
    net::thread_pool pool;
    session_pool sessions;
    bus::client client;
    bus::spooling_publisher out;
    bus::intake in;
    scheduler sched;
    std::string host;
    net::steady_timer wake;
    std::map<std::uint64_t, std::pair<bus::message, std::string>> waiting;  // token -> (message, event id); copies too
    std::uint64_t next_token = 0;
    bool stopping = false;
    std::set<net::steady_timer*> timers;  // every wait in progress, cancelled on stop
    std::size_t followers = 0;
    std::size_t polling = 0;   // queue GETs on the pool right now (at most workers/2)
    std::size_t running = 0;   // run_batch coroutines in progress (drained on stop)
    std::string jenkins_version;
    std::mt19937_64 rng{std::random_device{}()};

    std::string build_destination() const
    {
        return "/topic/" + (cfg.build_topic.empty() ? cfg.report_topic : cfg.build_topic);
    }

    // A wait that shutdown can cut short. False when cut short.
    net::awaitable<bool> sleep_for(milliseconds d)
    {
        if (stopping) co_return false;
        net::steady_timer t(io);
        t.expires_after(d);
        timers.insert(&t);
        auto [ec] = co_await t.async_wait(net::as_tuple(net::use_awaitable));
        timers.erase(&t);
        co_return !ec && !stopping;
    }

    // Stop taking messages; let the requests in flight finish (bounded by request-timeout) so
    // their messages are acknowledged before the DISCONNECT (no double builds on restart); abort
    // transfers only after that deadline. Pending batches stay unacknowledged: the broker keeps
    // them for the next start (durable subscription).
    void stop()
    {
        if (stopping) return;
        stopping = true;
        for (auto* t : timers) t->cancel();
        wake.cancel();
        net::co_spawn(io, drain(), net::detached);
    }

    net::awaitable<void> drain()
    {
        auto deadline = std::chrono::steady_clock::now() + cfg.http.connect_timeout + cfg.http.request_timeout;
        net::steady_timer t(io);
        while (running > 0 && std::chrono::steady_clock::now() < deadline) {
            t.expires_after(milliseconds(50));
            co_await t.async_wait(net::as_tuple(net::use_awaitable));
        }
        if (running > 0) log.warn("stomp-jenkins: {} request(s) still in flight at the drain deadline; aborting them", running);
        stop_flag = true;  // aborts transfers still in progress (and queue polls)
        auto hard = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        while (running > 0 && std::chrono::steady_clock::now() < hard) {
            t.expires_after(milliseconds(20));
            co_await t.async_wait(net::as_tuple(net::use_awaitable));
        }
        out.stop();
        client.stop();
    }

    void kick() { wake.cancel(); }

    // ---- HTTP, on the pool ----
    // Lambdas run by co_spawn on the pool capture only pointers (GCC 12, see stomp-git).

    net::awaitable<exchange_result> perform_trigger(const http_request* req)
    {
        session_pool* sp = &sessions;
        const config* c = &cfg;
        co_return co_await net::co_spawn(
            pool,
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
            pool,
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
        auto r = co_await out.publish(std::move(frames), milliseconds(5000));
        if (!r.kept()) log.warn("stomp-jenkins: report not kept: {}", r.why);
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

    void resolve(const std::vector<scheduler::resolution>& rs)
    {
        auto now = std::chrono::system_clock::now();
        for (const auto& r : rs) {
            auto w = waiting.find(r.token);
            if (w == waiting.end()) continue;
            client.acknowledge(w->second.first, r.ack ? bus::disposition::ack : bus::disposition::leave);
            if (r.ack) in.processed(w->second.second, now);
            waiting.erase(w);
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
            log.error("stomp-jenkins: {} for event {}: cannot build the request: {} (message acknowledged)", job,
                      b.data.event_id, bad_request);
            resolve(sched.complete(b, scheduler::outcome::rejected));
            kick();
            const std::string why = "cannot build the request: " + bad_request;
            co_await report_failure(b, why);
            --running;
            co_return;
        }
        if (b.attempts == 0)
            log.info("stomp-jenkins: {} {} for {} {} {} (event {}{}): {}", to_string(b.job.mode), job, b.data.repo,
                     b.data.ref.empty() ? b.data.project : b.data.ref, short_rev(b.data.commit), b.data.event_id,
                     b.requests > 1 ? ", " + std::to_string(b.requests) + " events coalesced" : "", req->describe());
        classification c;
        http_response r;
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
        if (c.v == verdict::accepted) {
            std::string what = c.queue ? "queue item " + c.queue->substr(0, c.queue->size() - 8)
                                       : (c.notified.empty() ? "no queue item" : [&] {
                                             std::string s;
                                             for (auto& n : c.notified) s += (s.empty() ? "" : "; ") + n;
                                             return s;
                                         }());
            log.info("stomp-jenkins: Jenkins accepted {} (HTTP {}{}): {}", job, r.status,
                     b.attempts > 1 ? ", attempt " + std::to_string(b.attempts) : "", what);
            resolve(sched.complete(b, scheduler::outcome::accepted));
            kick();  // the key is free: a batch that waited behind this one may be due
            --running;
            co_await report_queued(b, c);
            if (c.queue && cfg.http.queue_follow.count() > 0 && !stopping) {
                try {
                    co_await follow_queue(b, *c.queue);
                } catch (const std::exception& e) {
                    log.warn("stomp-jenkins: {}: following the queue item failed: {}", job, e.what());
                }
            }
            co_return;
        }
        if (c.v == verdict::permanent) {
            log.error("stomp-jenkins: Jenkins refused {} for event {}: {} (not retried; message acknowledged)", job,
                      b.data.event_id, c.reason);
            resolve(sched.complete(b, scheduler::outcome::rejected));
            kick();
            --running;
            co_await report_failure(b, c.reason);
            co_return;
        }
        const bool held = c.v == verdict::held;
        milliseconds d = held ? cfg.http.retry_max
                              : retry_delay(cfg.http, b.attempts, std::uniform_real_distribution<double>(0, 1)(rng), r.retry_after);
        bool notice = false;
        if (held) {
            log.error("stomp-jenkins: Jenkins refused {} for event {}: {}; held: retried every {} ms until accepted or "
                      "the configuration is reloaded (SIGHUP); message not acknowledged",
                      job, b.data.event_id, c.reason, d.count());
            notice = !b.noticed;
        } else if (b.attempts <= cfg.http.retries) {
            log.warn("stomp-jenkins: {}: {}; retry {} of {} in {} ms", job, c.reason, b.attempts, cfg.http.retries, d.count());
        } else {
            if (b.attempts == cfg.http.retries + 1)
                log.error("stomp-jenkins: {} for event {}: {}; still failing after {} attempt(s), retrying every {} ms "
                          "(message not acknowledged)",
                          job, b.data.event_id, c.reason, b.attempts, cfg.http.retry_max.count());
            else
                log.warn("stomp-jenkins: {}: {}; attempt {} failed, next in {} ms", job, c.reason, b.attempts, d.count());
            notice = !b.noticed;
        }
        if (notice) b.noticed = true;
        std::optional<scheduler::batch> copy;
        if (notice) copy = b;
        sched.requeue(std::move(b), std::chrono::steady_clock::now() + d, held);
        kick();
        --running;
        if (copy && !stopping) {
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
            if (stopping) break;
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
        while (!stopping) {
            auto now = std::chrono::steady_clock::now();
            for (auto& b : sched.take_due(now)) net::co_spawn(io, run_batch(std::move(b)), net::detached);
            auto next = sched.next_due();
            wake.expires_at(next ? *next : now + std::chrono::hours(1));
            co_await wake.async_wait(net::as_tuple(net::use_awaitable));
        }
    }

    // ---- intake ----

    net::awaitable<bus::disposition> on_message(const bus::message& m)
    {
        auto r = in.accept(m.frame, std::chrono::system_clock::now());
        if (!r.process) {
            if (r.reason.starts_with("duplicate")) log.debug("stomp-jenkins: {}", r.reason);
            else if (r.reason != "keepalive") log.warn("stomp-jenkins: dropped message {}: {}", m.id(), r.reason);
            co_return bus::disposition::ack;
        }
        auto* commit = std::get_if<bus::commit_event>(&r.ev->data);
        if (!commit) {
            log.debug("stomp-jenkins: ignoring a {} event", r.ev->type());
            co_return bus::disposition::ack;
        }
        if (stopping) co_return bus::disposition::leave;
        if (auto token = next_token + 1; sched.attach(r.ev->id, token)) {
            // Another copy of an event being worked on: the other wire format, or the broker's
            // redelivery after a reconnect (the first copy's ack would go to a dead connection).
            // Answered together with the first copy, never before Jenkins accepted.
            next_token = token;
            waiting.emplace(token, std::pair{m, r.ev->id});
            log.debug("stomp-jenkins: event {} is already in progress; this copy is answered with it", r.ev->id);
            co_return bus::disposition::leave;
        }
        // Bounded: with this many messages in progress, wait (the broker holds the rest).
        while (sched.messages() >= cfg.max_pending)
            if (!co_await sleep_for(milliseconds(100))) co_return bus::disposition::leave;
        auto sel = select_jobs(cfg.projects, *commit);
        if (!sel.known_repo) {
            log.debug("stomp-jenkins: Not our repo: {}", commit->repo);
            in.processed(r.ev->id, std::chrono::system_clock::now());
            co_return bus::disposition::ack;
        }
        for (const auto& s : sel.skipped) log.info("stomp-jenkins: event {}: skipped {}", r.ev->id, s);
        if (sel.jobs.empty()) {
            in.processed(r.ev->id, std::chrono::system_clock::now());
            co_return bus::disposition::ack;
        }
        auto data = make_trigger_data(*commit, r.ev->id);
        std::vector<scheduler::trigger> triggers;
        for (const auto* j : sel.jobs) triggers.push_back(scheduler::trigger{*j, data});
        auto token = ++next_token;
        auto n = sched.submit(token, r.ev->id, std::move(triggers), std::chrono::steady_clock::now());
        log.info("stomp-jenkins: event {}: {} {} {} -> {} job(s){}", r.ev->id, commit->repo,
                 commit->ref.empty() ? commit->svn_project : commit->ref, short_rev(commit->new_rev), sel.jobs.size(),
                 n < sel.jobs.size() ? " (" + std::to_string(sel.jobs.size() - n) + " already triggered)" : "");
        if (n == 0) {
            in.processed(r.ev->id, std::chrono::system_clock::now());
            co_return bus::disposition::ack;
        }
        waiting.emplace(token, std::pair{m, r.ev->id});
        kick();
        co_return bus::disposition::leave;  // acknowledged when Jenkins has taken the requests
    }
};

} // namespace

int main(int argc, char** argv)
{
    CLI::App app{"stomp-jenkins - trigger Jenkins jobs for commits announced on the bus"};
    std::string config_path = "/etc/stomp-jenkins/stomp-jenkins.yaml";
    bool debug = false;
    app.add_option("-c,--config", config_path, "configuration file");
    app.add_flag("-d,--debug", debug, "debug logging (runs in the foreground, as always)");
    CLI11_PARSE(app, argc, argv);

    http_global_init();
    auto log = spdlog::stderr_color_mt("stomp-jenkins");
    log->set_level(debug ? spdlog::level::debug : spdlog::level::info);
    try {
        auto cfg = load_config(config_path);
        net::io_context io(1);
        daemon_state d(io, config_path, std::move(cfg), *log);
        log->info("stomp-jenkins on {}: {} repositories, Jenkins at {} ({}), listening to {}", d.host, d.cfg.projects.size(),
                  d.cfg.jenkins_url, d.cfg.creds.empty() ? "anonymous" : "as " + d.cfg.creds.user, d.cfg.listen_topic);
        bus::subscription_options so;
        so.destination = "/topic/" + d.cfg.listen_topic;
        so.ack = bus::ack_mode::client_individual;
        so.prefetch = static_cast<unsigned>(std::min<std::size_t>(d.cfg.max_pending, 65535));
        if (!d.cfg.durable_name.empty()) {
            // Both header sets (RabbitMQ's durable queue, ActiveMQ's subscriptionName with the
            // client-id, which load_config defaults to the same name); stomp-broker takes either.
            so.durable_name = d.cfg.durable_name;
            so.durable = bus::durable_style::both;
            log->info("stomp-jenkins: durable subscription '{}' (client-id '{}'): messages are kept while stopped and "
                      "redelivered after a reconnect",
                      d.cfg.durable_name, d.cfg.bus.client.client_id);
        } else {
            log->warn("stomp-jenkins: durable-name is empty: a plain subscription; messages published while stopped or "
                      "unacknowledged at a reconnect may be lost");
        }
        if (!d.cfg.creds.empty() && d.cfg.jenkins_url.starts_with("http://"))
            log->warn("stomp-jenkins: credentials-file is set and jenkins-url is http://: the API token travels in clear "
                      "(Basic auth); use https://");
        d.client.subscribe(so, [&](const bus::message& m) { return d.on_message(m); });
        net::co_spawn(io, d.client.run(), [&](std::exception_ptr e) {
            if (e) log->error("stomp-jenkins: bus client ended");
            d.stop();
            io.stop();
        });
        net::co_spawn(io, d.dispatch_loop(), net::detached);
        net::co_spawn(io, d.out.run(), net::detached);
        net::signal_set term(io, SIGTERM, SIGINT);
        term.async_wait([&](auto ec, int) {
            if (!ec) {
                log->info("stomp-jenkins: stopping; unacknowledged messages go back to the broker");
                d.stop();
            }
        });
        net::signal_set hup(io, SIGHUP);
        std::function<void()> on_hup = [&] {
            hup.async_wait([&](auto ec, int) {
                if (ec) return;
                try {
                    // jenkins-projects and the credentials; connection settings need a restart.
                    auto fresh = load_config(config_path);
                    d.cfg.projects = std::move(fresh.projects);
                    d.cfg.creds = fresh.creds;
                    d.sessions.reset(std::move(fresh.creds));
                    log->info("Re-read {}: {} repositories", config_path, d.cfg.projects.size());
                    if (auto n = d.sched.kick_held(std::chrono::steady_clock::now())) {
                        log->info("stomp-jenkins: retrying {} held request(s) now", n);
                        d.kick();
                    }
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
        std::cerr << "stomp-jenkins: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "stomp-jenkins: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
