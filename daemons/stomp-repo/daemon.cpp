// stomp-repo's glue between the bus, its pure logic (stomp_repo.hpp) and the runtime.
//
// The receive loop validates and decides (stomp_repo.hpp); events for watched packages newer than
// apt's candidate join the coalescer; one apt update runs at a time, on the worker pool through
// bus::runtime::spawn (argv, clean environment, deadline). apt-get update does not wait for
// lists/lock (apt 2.6 ignores DPkg::Lock::Timeout there), so the wait is ours: short jittered
// re-runs until lock-timeout. After the update the candidate is read again (apt-cache policy with
// the same options): still older than announced (the repository's export not visible yet) is a
// "stale" attempt, retried like a failure on the retry schedule, bounded. Every attempt publishes
// a package.result event (and the original-style one-liner); the messages are acknowledged after
// the update succeeded, or after the last retry failed (the failure is then on the bus).
//
// Debian version order: libapt-pkg's, but not in this process. stomp-repo-vercmp (linked with
// libapt-pkg) ranks the versions an event or a batch needs to compare, one run per event (and per
// batch after the update), with a deadline; the daemon itself is lean-linked and idles without
// libapt-pkg or the shared C++ runtime mapped (bench/results/perf-4-repo4.md). The helper is
// checked at start and by --check-config. When it fails, nothing is acknowledged: an event that
// cannot be ordered is held and joins an update as if newer; an update whose versions cannot be
// ordered is retried on the retry schedule, and after its last retry its messages are left
// unacknowledged (delivered again at the next connection), never acknowledged.
#include "daemon.hpp"

#include "repo_config.hpp"
#include "stomp_repo.hpp"

#include "bus/client.hpp"
#include "bus/http/metrics.hpp"
#include "bus/intake.hpp"
#include "bus/publisher.hpp"
#include "bus/runtime/heartbeat.hpp"
#include "bus/runtime/ledger.hpp"
#include "bus/runtime/consumer.hpp"
#include "bus/runtime/service.hpp"
#include "bus/runtime/spawn.hpp"
#include "bus/text.hpp"
#include "bus/wire.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <random>

namespace stomp_repo {

namespace net = boost::asio;
using std::chrono::milliseconds;
using clock_type = std::chrono::steady_clock;

namespace {

// Text for logs and results, outside the coroutines (GCC 12 miscompiles ?: temporaries there).
std::string wanted_text(const coalescer::batch& b)
{
    std::string list;
    for (const auto& [n, v] : b.wanted) list += (list.empty() ? "" : ", ") + n + " " + v;
    return list + " (" + std::to_string(b.items.size()) + " event(s)" +
           (b.attempt > 1 ? ", attempt " + std::to_string(b.attempt) : "") + ")";
}

std::string to_outcome(update_outcome oc) { return oc == update_outcome::lock_busy ? "lock-timeout" : "failed"; }

std::string candidates_text(const bus::package_result& r)
{
    std::string s;
    for (const auto& c : r.packages) s += (s.empty() ? "" : ", ") + c.name + " " + (c.candidate.empty() ? "(none)" : c.candidate);
    return s + (r.upgrade_pending ? " (upgrade pending)" : "");
}

std::string failure_text(update_outcome oc, const bus::runtime::spawn_result& r, std::chrono::milliseconds lock_timeout)
{
    if (oc == update_outcome::lock_busy)
        return "apt lists still locked by another process after " + std::to_string(lock_timeout.count()) + " ms";
    auto e = first_error(r.out, r.err);
    return r.describe() + (e.empty() ? "" : ": " + e);
}

// ---- the version helper ----

using deploykit::check_version_helper;
using deploykit::ranked;
using deploykit::rank_versions;

struct daemon_state {
    daemon_state(bus::runtime::service& svc_, std::string config_path_, config cfg_)
        : svc(svc_), io(svc.io()), config_path(std::move(config_path_)), cfg(std::move(cfg_)), log(svc.log()),
          client(io.get_executor(), cfg.bus.client, log),
          out(io.get_executor(), client, cfg.bus.spool, cfg.bus.signing, svc.workers(), log),
          in(bus::intake_options{.require_signatures = cfg.bus.require_signatures, .replay_cache = cfg.replay_cache},
             cfg.bus.verify_keys),
          host(bus::runtime::hostname()), coal(cfg.coalesce, cfg.coalesce_max), wake(io), idle(io)
    {
    }
    bus::runtime::service& svc;
    net::io_context& io;
    std::string config_path;
    config cfg;
    spdlog::logger& log;
    bus::client client;
    bus::spooling_publisher out;
    bus::intake in;
    bus::runtime::ledger<bus::message> held;
    std::string host;
    coalescer coal;
    std::optional<coalescer::batch> retrying;  // a failed batch waiting for its next attempt
    clock_type::time_point retry_at{};
    bool busy = false;  // an update is running
    std::map<std::string, policy_entry> known;  // apt's view, from the last apt-cache policy
    net::steady_timer wake;
    net::steady_timer idle;
    std::mt19937_64 rng{std::random_device{}()};
    bool subscribed = false;
    // counters (heartbeat and /metrics)
    std::uint64_t events = 0, updates = 0, failures = 0, gave_up = 0, unwatched = 0, not_newer = 0, refused = 0,
                  removals = 0, order_failures = 0;
    bus::http::registry metrics{"stomp_repo"};
    bus::http::daemon_metrics common{metrics, bus::runtime::version()};

    std::optional<std::string> not_ready() const
    {
        if (!client.connected()) return std::string("broker unreachable");
        if (!subscribed) return std::string("not subscribed to /topic/" + cfg.listen_topic + " yet");
        return std::nullopt;
    }

    void register_metrics()
    {
        metrics.add_collector([this] { common.broker_connected.set(client.connected() ? 1 : 0); });
        metrics.add_counter_of("updates_total",
                               "apt lists updates that made the announced versions candidates", updates);
        metrics.add_counter_of("update_failures_total",
                               "failed, stale or lock-timed-out update attempts", failures);
        metrics.add_counter_of("gave_up_total", "batches given up after the last retry", gave_up);
        metrics.add_counter_of("ignored_unwatched_total", "events for packages no watch entry matches", unwatched);
        metrics.add_counter_of("ignored_not_newer_total", "events not newer than the candidate", not_newer);
        metrics.add_counter_of("refused_total", "events refused by the Debian policy checks", refused);
        metrics.add_counter_of("version_order_failures_total",
                               "failed runs of the version helper (stomp-repo-vercmp); nothing acknowledged",
                               order_failures);
        metrics.add_callback("pending_messages", "messages held until their update ended", "gauge",
                             [this] { return static_cast<double>(held.size()); });
    }

    void kick() { wake.cancel(); }

    // ---- children, on the worker pool ----

    net::awaitable<bus::runtime::spawn_result> run(std::vector<std::string> argv, milliseconds timeout)
    {
        // The options live on the heap and the lambda holds only a shared_ptr, named before the
        // co_await: GCC 12 destroyed a temporary lambda with moved-in vectors twice here.
        auto so = std::make_shared<bus::runtime::spawn_options>();
        so->argv = std::move(argv);
        so->env = apt_env(cfg.apt);
        so->timeout = timeout;
        so->cwd = "/";
        so->die_with_parent = true;
        auto job = [so] { return bus::runtime::spawn(*so); };
        auto r = co_await svc.blocking(job);
        co_return r;
    }

    // apt's candidates for these names (valid package names only); merged into `known`.
    net::awaitable<std::map<std::string, policy_entry>> policy(std::vector<std::string> names)
    {
        auto r = co_await run(policy_argv(cfg.apt, names), milliseconds(60000));
        if (!r.ok()) {
            log.warn("stomp-repo: apt-cache policy: {}: {}", r.describe(), bus::log_escape(first_error(r.out, r.err)));
            co_return std::map<std::string, policy_entry>{};
        }
        auto p = parse_policy(r.out);
        for (const auto& n : names) known[n] = p.count(n) ? p[n] : policy_entry{};
        co_return p;
    }

    // The order of the versions these pairs compare, from the helper on the worker pool (no run
    // when every pair is two equal strings).
    net::awaitable<ranked> rank(std::vector<std::pair<std::string, std::string>> pairs)
    {
        auto versions = std::make_shared<std::vector<std::string>>(versions_to_rank(pairs));
        if (versions->empty()) co_return ranked{version_order{}, {}};
        auto helper = std::make_shared<std::string>(cfg.version_helper);
        auto job = [helper, versions] { return rank_versions(*helper, *versions); };
        auto r = co_await svc.blocking(job);
        if (!r.order) ++order_failures;
        co_return r;
    }

    // ---- the bus ----

    net::awaitable<void> publish(const bus::event& ev)
    {
        std::vector<bus::stomp::frame> frames;
        if (cfg.bus.format != bus::wire_format::legacy)
            for (auto& f : bus::encode(ev, "/topic/" + cfg.result_topic, bus::wire_format::native)) frames.push_back(std::move(f));
        if (cfg.bus.format != bus::wire_format::native)
            for (auto& f : bus::encode(ev, "/topic/" + cfg.report_topic, bus::wire_format::legacy)) frames.push_back(std::move(f));
        const auto n = frames.size();
        auto sent = co_await out.publish(std::move(frames), milliseconds(5000));
        if (!sent.kept()) {
            common.dropped("report_not_kept").inc();
            log.warn("stomp-repo: result not kept: {}", sent.why);
        } else {
            common.events_out.inc(static_cast<double>(n));
        }
    }

    void resolve(const coalescer::batch& b, bool ack)
    {
        auto now = std::chrono::system_clock::now();
        for (const auto& i : b.items)
            for (auto& a : held.resolve(i.token, ack)) {
                client.acknowledge(a.msg, a.ack ? bus::disposition::ack : bus::disposition::leave);
                if (a.ack && a.first) in.processed(a.event_id, now);
            }
    }

    // ---- one update ----

    net::awaitable<void> run_batch(coalescer::batch b)
    {
        busy = true;
        ++b.attempt;
        const auto started = clock_type::now();
        // The highest version announced per package: needs an order only when one batch carries
        // several versions of one package.
        std::string order_error;
        auto bp = batch_pairs(b.items);
        auto first = co_await rank(std::move(bp));
        b.wanted.clear();
        if (first.order) {
            b.wanted = highest_versions(b.items, *first.order);
        } else {
            order_error = first.error;
            for (const auto& i : b.items) b.wanted.try_emplace(i.pkg.name, i.pkg.new_version);
        }
        std::vector<std::string> names;
        for (const auto& [n, v] : b.wanted) names.push_back(n);
        std::string list = wanted_text(b);
        log.info("stomp-repo: updating apt lists for {}", list);

        // apt-get update; a held lock is waited for here, up to lock-timeout.
        bus::runtime::spawn_result r;
        update_outcome oc = update_outcome::failed;
        const auto lock_deadline = clock_type::now() + cfg.apt.lock_timeout;
        bool waited = false;
        while (order_error.empty()) {
            r = co_await run(update_argv(cfg.apt), cfg.apt.update_timeout);
            oc = r.started && !r.timed_out ? classify_update(r.exit_code, r.out, r.err) : update_outcome::failed;
            if (oc != update_outcome::lock_busy || svc.stopping()) break;
            if (!waited) log.info("stomp-repo: apt lists are locked by another process; waiting up to {} ms", cfg.apt.lock_timeout.count());
            waited = true;
            auto pause = milliseconds(200 + std::uniform_int_distribution<int>(0, 300)(rng));
            if (clock_type::now() + pause > lock_deadline) break;
            bool slept = co_await svc.sleep_for(pause);
            if (!slept) break;
        }

        bus::package_result res;
        res.host = host;
        res.attempt = b.attempt;
        for (const auto& i : b.items) res.events.push_back(i.event_id);
        bool done = false;
        if (order_error.empty() && oc == update_outcome::ok) {
            auto p = co_await policy(names);
            std::vector<std::pair<std::string, std::string>> pairs;
            for (const auto& [n, v] : b.wanted) {
                bus::package_candidate c{n, v, {}, {}};
                if (auto it = p.find(n); it != p.end()) {
                    c.candidate = it->second.candidate;
                    c.installed = it->second.installed;
                }
                if (!c.candidate.empty()) pairs.emplace_back(c.candidate, v);
                if (!c.installed.empty() && !c.candidate.empty()) pairs.emplace_back(c.candidate, c.installed);
                res.packages.push_back(std::move(c));
            }
            auto after = co_await rank(std::move(pairs));
            bool stale = false;
            if (after.order) {
                for (const auto& c : res.packages) {
                    if (c.candidate.empty() || after.order->compare(c.candidate, c.version) < 0) stale = true;
                    if (!c.installed.empty() && !c.candidate.empty() && after.order->compare(c.candidate, c.installed) > 0)
                        res.upgrade_pending = true;
                }
            } else {
                order_error = after.error;
            }
            if (!order_error.empty()) {
                res.ok = false;
                res.outcome = "version-order-failed";
                res.error = "updated, but the versions could not be ordered: " + order_error;
            } else if (stale) {
                res.ok = false;
                res.outcome = "stale";
                res.error = "updated, but the candidate is still older than announced (repository not exported yet?)";
            } else {
                res.outcome = "updated";
                done = true;
            }
        } else if (!order_error.empty()) {
            res.ok = false;
            res.outcome = "version-order-failed";
            res.error = "the announced versions could not be ordered: " + order_error;
            for (const auto& [n, v] : b.wanted) res.packages.push_back(bus::package_candidate{n, v, known[n].candidate, known[n].installed});
        } else {
            res.ok = false;
            res.outcome = to_outcome(oc);
            res.error = failure_text(oc, r, cfg.apt.lock_timeout);
            for (const auto& [n, v] : b.wanted) res.packages.push_back(bus::package_candidate{n, v, known[n].candidate, known[n].installed});
        }
        res.duration_s = std::chrono::duration<double>(clock_type::now() - started).count();
        common.finished("apt_update", started, done);
        std::string summary = candidates_text(res);

        if (done) {
            ++updates;
            log.info("stomp-repo: apt lists updated in {:.2f} s; candidates: {}", res.duration_s, summary);
            resolve(b, true);
            co_await publish(bus::make_event(res, host));
            if (!cfg.post_update_command.empty()) {
                auto pr = co_await run(cfg.post_update_command, cfg.post_update_timeout);
                if (!pr.ok()) log.warn("stomp-repo: post-update-command: {}", pr.describe());
            }
        } else {
            ++failures;
            auto d = svc.stopping() ? std::nullopt
                                    : retry_delay(cfg.retry, b.attempt, std::uniform_real_distribution<double>(0, 1)(rng));
            if (d) {
                log.warn("stomp-repo: apt lists update {} ({}): {}; retry {} of {} in {} ms", res.outcome, summary,
                         bus::log_escape(res.error), b.attempt, cfg.retry.retries, d->count());
                retrying = b;
                retry_at = clock_type::now() + *d;
            } else if (svc.stopping()) {
                log.warn("stomp-repo: stopping: the update's messages go back to the broker");
                resolve(b, false);
            } else if (!order_error.empty()) {
                // No verdict without libapt-pkg's order: the messages are not acknowledged. They
                // stay with the broker, which delivers them again when this connection ends (a
                // restart after fixing the helper). Not NACKed: ActiveMQ moves a NACKed message
                // to its dead-letter queue instead of delivering it again.
                ++gave_up;
                log.error("stomp-repo: {} after {} attempt(s): {}; messages not acknowledged (the broker delivers them "
                          "again at the next connection)",
                          res.outcome, b.attempt, bus::log_escape(res.error));
                resolve(b, false);
            } else {
                ++gave_up;
                log.error("stomp-repo: apt lists update {} after {} attempt(s): {}; giving up (messages acknowledged, "
                          "the failure is on the bus)",
                          res.outcome, b.attempt, bus::log_escape(res.error));
                resolve(b, true);
            }
            co_await publish(bus::make_event(res, host));
        }
        busy = false;
        idle.cancel();
        kick();
    }

    net::awaitable<void> dispatch_loop()
    {
        while (!svc.stopping()) {
            auto now = clock_type::now();
            if (!busy) {
                if (retrying && now >= retry_at) {
                    auto b = std::move(*retrying);
                    retrying.reset();
                    svc.spawn(run_batch(std::move(b)), "stomp-repo: update");
                } else if (!retrying) {
                    if (auto b = coal.take(now)) svc.spawn(run_batch(std::move(*b)), "stomp-repo: update");
                }
            }
            auto next = now + std::chrono::hours(1);
            if (!busy) {
                if (retrying) next = retry_at;
                else if (auto d = coal.due()) next = *d;
            }
            wake.expires_at(next);
            co_await wake.async_wait(net::as_tuple(net::use_awaitable));
        }
    }

    net::awaitable<void> drain()
    {
        log.info("stomp-repo: stopping; unacknowledged messages go back to the broker");
        wake.cancel();
        auto deadline = clock_type::now() + cfg.apt.update_timeout + milliseconds(2000);
        while (busy && clock_type::now() < deadline) {
            idle.expires_at(deadline);
            co_await idle.async_wait(net::as_tuple(net::use_awaitable));
        }
        out.stop();
        client.stop();
    }

    // ---- intake ----

    net::awaitable<bus::disposition> on_message(const bus::message& m)
    {
        auto r = in.accept(m.frame, std::chrono::system_clock::now());
        if (r.decision != bus::intake_decision::keepalive) common.events_in.inc();
        if (!bus::runtime::screen(r, m.id(), common, log, "stomp-repo")) co_return bus::disposition::ack;
        auto* pkg = std::get_if<bus::package_event>(&r.ev->data);
        if (!pkg) {
            common.dropped("not_a_package").inc();
            log.debug("stomp-repo: ignoring a {} event", r.ev->type());
            co_return bus::disposition::ack;
        }
        if (svc.stopping()) co_return bus::disposition::leave;
        ++events;
        if (held.attach(r.ev->id, m)) co_return bus::disposition::leave;  // answered with the first copy
        while (held.size() >= cfg.max_pending) {
            bool waited = co_await svc.sleep_for(milliseconds(100));
            if (!waited) co_return bus::disposition::leave;
        }
        const std::string id = r.ev->id;
        auto processed = [&] { in.processed(id, std::chrono::system_clock::now()); };
        // Validation and the watch list first: nothing unvalidated reaches apt-cache's argv.
        auto d = decide(cfg.watches, *pkg, std::nullopt);
        if (d.v == verdict::update) {
            if (!known.count(pkg->name)) {
                std::vector<std::string> one;  // no braced list here: GCC 12 coroutine frames
                one.push_back(pkg->name);
                co_await policy(std::move(one));
            }
            auto it = known.find(pkg->name);
            std::optional<std::string> cand;
            if (it != known.end() && !it->second.candidate.empty()) cand = it->second.candidate;
            std::vector<std::pair<std::string, std::string>> pairs;
            if (cand) pairs.emplace_back(pkg->new_version, *cand);
            auto ord = co_await rank(std::move(pairs));
            if (ord.order) {
                d = decide(cfg.watches, *pkg, cand, *ord.order);
            } else {
                // No verdict without libapt-pkg's order, and no acknowledgement: the event is held
                // and joins the next update as if newer; that update orders it against the new
                // candidate (the helper again), on the retry schedule while the helper fails.
                log.error("stomp-repo: event {}: {} {} cannot be ordered against the candidate: {}; held, not "
                          "acknowledged, for the update and its retries",
                          bus::log_escape(id), pkg->name, pkg->new_version, bus::log_escape(ord.error));
            }
        }
        switch (d.v) {
        case verdict::invalid:
            ++refused;
            common.dropped("refused").inc();
            log.warn("stomp-repo: event {} refused: {}", bus::log_escape(id), bus::log_escape(d.why));
            processed();
            co_return bus::disposition::ack;
        case verdict::removal:
            ++removals;
            log.debug("stomp-repo: event {}: {} removed; nothing to fetch", id, pkg->name);
            processed();
            co_return bus::disposition::ack;
        case verdict::unwatched:
            ++unwatched;
            log.debug("stomp-repo: event {}: {} is not watched", id, pkg->name);
            processed();
            co_return bus::disposition::ack;
        case verdict::not_newer:
            ++not_newer;
            log.debug("stomp-repo: event {}: {} {}: {}", id, pkg->name, pkg->new_version, d.why);
            processed();
            co_return bus::disposition::ack;
        case verdict::update: break;
        }
        // Named first: GCC 12 miscompiles ?: temporaries in a coroutine.
        std::string where = pkg->codename + "/" + pkg->component + "/" + pkg->architecture;
        std::string was = known[pkg->name].candidate;
        if (was.empty()) was = "(none)";
        log.info("stomp-repo: event {}: {} {} ({}) is newer than the candidate {}", id, pkg->name, pkg->new_version, where, was);
        auto token = held.hold(m, id);
        coal.add(coalescer::item{id, token, *pkg}, clock_type::now());
        kick();
        co_return bus::disposition::leave;  // acknowledged after the update
    }
};

void reload(daemon_state& d)
{
    auto fresh = load_config(d.config_path, [&](std::string_view n) { d.log.info("stomp-repo: {}", n); });
    bus::runtime::log_restart_needed(d.log, "stomp-repo", needs_restart(d.cfg, fresh));
    d.cfg.watches = std::move(fresh.watches);
    d.cfg.file = std::move(fresh.file);
    d.known.clear();  // the machine's apt state may have changed too
    d.log.info("Re-read {}: {} watch entries", d.config_path, d.cfg.watches.size());
}

bus::subscription_options subscription(const config& cfg, spdlog::logger& log)
{
    bus::subscription_options so;
    so.destination = "/topic/" + cfg.listen_topic;
    so.ack = bus::ack_mode::client_individual;
    so.prefetch = static_cast<unsigned>(std::min<std::size_t>(cfg.max_pending, 65535));
    if (!cfg.durable_name.empty()) {
        so.durable_name = cfg.durable_name;
        so.durable = bus::durable_style::both;
        log.info("stomp-repo: durable subscription '{}': events are kept while stopped", cfg.durable_name);
    } else {
        log.warn("stomp-repo: durable-name is empty: a plain subscription; events published while stopped are lost");
    }
    return so;
}

net::awaitable<void> announce_ready(daemon_state* d, std::string id)
{
    bool subscribed = false;
    while (!subscribed && !d->svc.stopping()) {
        bool ok = co_await d->client.wait_subscribed(id, std::chrono::seconds(1));
        subscribed = ok;
    }
    if (subscribed) {
        d->subscribed = true;
        d->log.info("stomp-repo: subscribed to /topic/{}", d->cfg.listen_topic);
        d->svc.ready("connected and subscribed to /topic/" + d->cfg.listen_topic);
    }
}

} // namespace

int run(const bus::runtime::common_options& opts, spdlog::logger& log)
{
    auto cfg = load_config(opts.config_path, [&](std::string_view n) { log.info("stomp-repo: {}", n); });
    // The version order is part of every decision: a missing or broken helper (or libapt-pkg) stops
    // the start and fails --check-config, as a config error does.
    if (auto e = check_version_helper(cfg.version_helper); !e.empty())
        throw bus::runtime::config_error(opts.config_path + ": version-helper: " + e);
    if (opts.check_config) return 0;
    bus::runtime::service svc(opts, log, {.drain_deadline = cfg.apt.update_timeout + std::chrono::seconds(3), .workers = 2});
    daemon_state d(svc, opts.config_path, std::move(cfg));
    log.info("stomp-repo {} on {}: {} watch entries, sources {}, listening to {}", bus::runtime::version(), d.host,
             d.cfg.watches.size(), d.cfg.apt.sources_list.empty() ? "(the machine's)" : d.cfg.apt.sources_list,
             d.cfg.listen_topic);
    auto id = d.client.subscribe(subscription(d.cfg, log), [&](const bus::message& m) { return d.on_message(m); });
    d.register_metrics();
    if (d.cfg.admin_listen) svc.serve_admin(*d.cfg.admin_listen, d.metrics, [&d] { return d.not_ready(); });
    svc.on_reload([&] { reload(d); });
    svc.on_stop([&] { return d.drain(); });
    svc.spawn(d.client.run(), "stomp-repo: bus client", bus::runtime::task::critical);
    svc.spawn(d.dispatch_loop(), "stomp-repo: dispatch");
    svc.spawn(d.out.run(), "stomp-repo: outbox");
    svc.spawn(bus::runtime::heartbeat(svc, d.client, d.cfg.heartbeat, "stomp-repo",
                                      [&] {
                                          return std::map<std::string, std::uint64_t>{
                                              {"events", d.events},       {"updates", d.updates},
                                              {"failures", d.failures},   {"refused", d.refused},
                                              {"unwatched", d.unwatched}, {"not_newer", d.not_newer},
                                              {"pending", d.held.size()}, {"spooled", d.out.stats().spooled}};
                                      },
                                      d.cfg.bus.signing),
              "stomp-repo: heartbeat");
    net::co_spawn(svc.io(), announce_ready(&d, id), net::detached);
    return svc.run();
}

} // namespace stomp_repo
