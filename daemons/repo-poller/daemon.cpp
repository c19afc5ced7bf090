// repo-poller's glue between the bus, one poll (poller.hpp) and the runtime.
//
// One coroutine per (repository, suite) sleeps its interval (plus jitter, or an exponential
// backoff after failures) and runs the poll on the worker pool; the I/O thread only publishes and
// schedules. Changes become `package` events (docs/events.md), the very events the reprepro
// notifier publishes, so stomp-repo on every host consumes both unchanged; they go out through
// the spooling publisher (published = RECEIPT, else the disk outbox). The state is written only
// after that, so nothing is skipped by a crash or a broker outage: at worst an event is sent
// twice, and consumers compare versions.
#include "daemon.hpp"

#include "config.hpp"
#include "poller.hpp"

#include "curl_init.hpp"
#include "version_helper.hpp"

#include "bus/client.hpp"
#include "bus/event.hpp"
#include "bus/http/metrics.hpp"
#include "bus/publisher.hpp"
#include "bus/runtime/config_reader.hpp"
#include "bus/runtime/heartbeat.hpp"
#include "bus/runtime/service.hpp"
#include "bus/text.hpp"
#include "bus/wire.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <memory>
#include <random>

namespace repo_poller {

namespace net = boost::asio;
using std::chrono::milliseconds;

namespace {

struct target {
    const repository* repo = nullptr;
    std::string suite;
    std::string label;  ///< "URL (credentials removed) suite" for logs
    std::filesystem::path state_path;
    suite_state st;
    suite_state pending;  ///< the next state, while it is being written
    poll_context ctx;
    unsigned failures = 0;
};

// name_version_arch.deb, the file name auto-reprepro announced; Filename's basename when usable.
std::string file_of(const change& c)
{
    auto usable = [](const std::string& f) {
        if (f.empty() || f.size() > 300 || !f.ends_with(".deb")) return false;
        for (char ch : f)
            if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' || ch == '+' || ch == '~' ||
                  ch == '-' || ch == '%'))
                return false;
        return true;
    };
    if (usable(c.filename)) return c.filename;
    auto v = c.new_version;
    if (auto colon = v.find(':'); colon != std::string::npos) v.erase(0, colon + 1);
    return c.name + "_" + v + "_" + c.architecture + ".deb";
}

struct daemon_state {
    daemon_state(bus::runtime::service& svc_, config cfg_)
        : svc(svc_), cfg(std::move(cfg_)), log(svc.log()), client(svc.io().get_executor(), cfg.bus.client, log),
          out(svc.io().get_executor(), client, cfg.bus.spool, cfg.bus.signing, svc.workers(), log),
          host(bus::runtime::hostname())
    {
    }
    bus::runtime::service& svc;
    config cfg;
    spdlog::logger& log;
    bus::client client;
    bus::spooling_publisher out;
    std::string host;
    std::atomic<bool> stop_flag{false};
    std::filesystem::path gnupg_home;
    std::vector<std::unique_ptr<target>> targets;
    std::mt19937_64 rng{std::random_device{}()};

    bus::http::registry metrics{"repo_poller"};
    bus::http::daemon_metrics common{metrics, bus::runtime::version()};
    bus::http::counter& polls = metrics.add_counter("polls_total", "InRelease requests made");
    bus::http::counter& not_modified = metrics.add_counter("not_modified_total", "polls answered 304 Not Modified");
    bus::http::counter& changes = metrics.add_counter("changes_total", "package events for newer versions, kept (published or spooled)");
    bus::http::counter& signature_failures =
        metrics.add_counter("signature_failures_total", "InRelease files whose signature gpgv refused");
    bus::http::counter& failures = metrics.add_counter("poll_failures_total", "polls that failed (transfer, HTTP, format, hash)");
    bus::http::counter& indices = metrics.add_counter("indices_read_total", "Packages indices downloaded and checked");
    bus::http::counter& invalid = metrics.add_counter("invalid_stanzas_total", "Packages stanzas skipped as unusable");
    bus::http::counter& version_order_failures = metrics.add_counter(
        "version_order_failures_total", "polls failed because the version helper (stomp-repo-vercmp) did; nothing kept");

    double random01() { return std::uniform_real_distribution<double>(0, 1)(rng); }

    std::optional<std::string> not_ready() const
    {
        if (!client.connected()) return std::string("broker unreachable");
        return std::nullopt;
    }

    void register_metrics()
    {
        metrics.add_collector([this] { common.broker_connected.set(client.connected() ? 1 : 0); });
        metrics.add_callback("targets", "(repository, suite) pairs polled", "gauge",
                             [this] { return static_cast<double>(targets.size()); });
        metrics.add_callback("spooled_total", "events written to the outbox", "counter",
                             [this] { return static_cast<double>(out.stats().spooled); });
    }

    net::awaitable<void> drain()
    {
        log.info("repo-poller: stopping");
        stop_flag = true;  // ends fetch children in progress; their polls fail and save nothing
        out.stop();
        client.stop();
        co_return;
    }

    // Publishes one event per change; true when every one was kept (receipted or spooled).
    net::awaitable<bool> publish(const target& t, const poll_outcome& o)
    {
        std::vector<bus::stomp::frame> frames;
        for (const auto& c : o.changes) {
            bus::package_event p{c.name, c.old_version, c.new_version, o.codename, c.component, c.architecture, file_of(c)};
            auto ev = bus::make_event(std::move(p), host);
            for (auto& f : bus::encode(ev, "/topic/" + cfg.topic, cfg.bus.format)) frames.push_back(std::move(f));
        }
        auto sent = co_await out.publish(std::move(frames), milliseconds(5000));
        if (!sent.kept()) {
            common.dropped("not_kept").inc(static_cast<double>(o.changes.size()));
            log.error("repo-poller: {}: {} event(s) neither published nor spooled ({}); retried at the next poll", t.label,
                      o.changes.size(), sent.why);
            co_return false;
        }
        common.events_out.inc(static_cast<double>(o.changes.size()));
        changes.inc(static_cast<double>(o.changes.size()));
        co_return true;
    }

    net::awaitable<void> poll_loop(target* t)
    {
        const auto& when = t->repo->when;
        // The first poll spread over the jitter, so a restart does not hit every repository at once.
        if (!co_await svc.sleep_for(milliseconds(static_cast<std::int64_t>(static_cast<double>(when.jitter.count()) * random01()))))
            co_return;
        while (!svc.stopping()) {
            const auto started = std::chrono::steady_clock::now();
            poll_outcome o;
            polls.inc();
            try {
                // Only a pointer captured: GCC 12 destroys a coroutine's lambda captures twice.
                o = co_await svc.blocking([t] { return poll_once(t->ctx, t->st); });
            } catch (const version_order_error& e) {
                o = {};
                o.what = poll_outcome::kind::failed;
                o.why = e.what();
                o.version_order_failed = true;
            } catch (const std::exception& e) {
                o = {};
                o.what = poll_outcome::kind::failed;
                o.why = e.what();
            }
            if (svc.stopping()) break;
            bool ok = true;
            using k = poll_outcome::kind;
            switch (o.what) {
            case k::not_modified:
                not_modified.inc();
                log.debug("repo-poller: {}: not modified", t->label);
                break;
            case k::unchanged:
                if (o.same_release) {
                    log.debug("repo-poller: {}: the same InRelease as last time (not a 304)", t->label);
                    break;
                }
                log.debug("repo-poller: {}: InRelease changed, no newer version of interest ({} index(es) read)", t->label,
                          o.indices_read);
                break;
            case k::baseline:
                log.info("repo-poller: {}: baseline recorded: {} package version(s) in {} index(es); nothing published "
                         "for the first poll",
                         t->label, o.next.versions.size(), o.indices_read);
                break;
            case k::changed:
                for (const auto& c : o.changes)
                    log.info("repo-poller: {}: {} {} -> {} ({}/{}/{})", t->label, c.name,
                             c.old_version.empty() ? "(new)" : c.old_version, c.new_version, o.codename, c.component,
                             c.architecture);
                ok = co_await publish(*t, o);
                break;
            case k::bad_signature:
                ok = false;
                signature_failures.inc();
                log.error("repo-poller: {}: InRelease refused: {}; nothing published", t->label, o.why);
                break;
            case k::failed:
                ok = false;
                failures.inc();
                if (o.version_order_failed) {
                    version_order_failures.inc();
                    log.error("repo-poller: {}: version helper failed: {}; nothing of this poll published or recorded, "
                              "retried at the next poll",
                              t->label, bus::log_escape(o.why));
                    break;
                }
                log.warn("repo-poller: {}: poll failed: {}", t->label, bus::log_escape(o.why));
                break;
            }
            indices.inc(static_cast<double>(o.indices_read));
            invalid.inc(static_cast<double>(o.invalid_stanzas));
            if (ok && o.save) {
                try {
                    t->pending = std::move(o.next);
                    co_await svc.blocking([t] {
                        save_state(t->state_path, t->pending);
                        return true;
                    });
                    t->st = std::move(t->pending);
                } catch (const std::exception& e) {
                    ok = false;
                    log.error("repo-poller: {}: cannot save the state: {}", t->label, e.what());
                }
            }
            common.finished("poll", started, ok);
            if (ok) {
                if (t->failures > 0) log.info("repo-poller: {}: polling again after {} failure(s)", t->label, t->failures);
                t->failures = 0;
            } else {
                ++t->failures;
            }
            auto d = next_delay(when, t->failures, random01());
            if (!ok) log.info("repo-poller: {}: next attempt in {} ms", t->label, d.count());
            if (!co_await svc.sleep_for(d)) break;
        }
    }
};

void prepare_dir(const std::filesystem::path& p)
{
    std::filesystem::create_directories(p);
    std::filesystem::permissions(p, std::filesystem::perms::owner_all, std::filesystem::perm_options::replace);
}

net::awaitable<void> announce_ready(daemon_state* d)
{
    while (!d->svc.stopping()) {
        bool up = co_await d->client.wait_connected(std::chrono::seconds(1));
        if (up) {
            d->svc.ready("connected; polling " + std::to_string(d->targets.size()) + " suite(s)");
            co_return;
        }
    }
}

} // namespace

int run(const bus::runtime::common_options& opts, spdlog::logger& log)
{
    auto cfg = load_config(opts.config_path, [&](std::string_view n) { log.info("repo-poller: {}", n); });
    // libcurl is loaded only in the fetch children (fetch_child.hpp), libapt-pkg's order comes
    // from the helper per changed index: that both work is checked now (libcurl in a child), so
    // a missing one stops the start and --check-config, not the first poll.
    if (auto e = deploykit::curl_library_check(); !e.empty()) throw std::runtime_error(e);
    if (auto e = deploykit::check_version_helper(cfg.version_helper); !e.empty())
        throw bus::runtime::config_error(opts.config_path + ": version-helper: " + e);
    if (opts.check_config) return 0;
    prepare_dir(cfg.state_dir);
    // The fetch child is this binary (`--fetch-worker`), as stomp-git's workers are.
    const std::string self = std::filesystem::canonical("/proc/self/exe").string();
    bus::runtime::service svc(opts, log,
                              {.drain_deadline = std::chrono::seconds(3), .workers = cfg.workers});
    daemon_state d(svc, std::move(cfg));
    d.gnupg_home = d.cfg.state_dir / "gnupg";
    prepare_dir(d.gnupg_home);
    for (const auto& repo : d.cfg.repositories)
        for (const auto& suite : repo.suites) {
            auto t = std::make_unique<target>();
            t->repo = &repo;
            t->suite = suite;
            t->label = redact_url(repo.url) + " " + suite;
            t->state_path = d.cfg.state_dir / state_file_name(repo.url, suite);
            t->ctx = poll_context{&d.cfg, &repo, suite, d.gnupg_home, self, &d.stop_flag};
            try {
                t->st = load_state(t->state_path);
            } catch (const std::exception& e) {
                // Unreadable state: start with a fresh baseline rather than flood the bus.
                log.error("repo-poller: {}: {}; recording a new baseline", t->label, e.what());
            }
            log.info("repo-poller: {}: every {} s (jitter {} s){}{}", t->label, repo.when.interval.count() / 1000.0,
                     repo.when.jitter.count() / 1000.0, repo.keyring.empty() ? ", signature not checked" : ", keyring " + repo.keyring,
                     t->st.baseline ? "" : ", no state yet (first poll records a baseline)");
            d.targets.push_back(std::move(t));
        }
    log.info("repo-poller {} on {}: {} suite(s), publishing to /topic/{} ({}), state in {}", bus::runtime::version(), d.host,
             d.targets.size(), d.cfg.topic, d.cfg.bus.format == bus::wire_format::native ? "native" : d.cfg.bus.format == bus::wire_format::legacy ? "legacy" : "both", d.cfg.state_dir.string());
    d.register_metrics();
    if (d.cfg.admin_listen) svc.serve_admin(*d.cfg.admin_listen, d.metrics, [&d] { return d.not_ready(); });
    svc.on_reload([&] { log.warn("repo-poller: SIGHUP: configuration changes take effect after a restart"); });
    svc.on_stop([&] { return d.drain(); });
    svc.spawn(d.client.run(), "repo-poller: bus client", bus::runtime::task::critical);
    svc.spawn(d.out.run(), "repo-poller: outbox");
    for (auto& t : d.targets) svc.spawn(d.poll_loop(t.get()), "repo-poller: " + t->label);
    svc.spawn(bus::runtime::heartbeat(svc, d.client, d.cfg.heartbeat, "repo-poller",
                                      [&] {
                                          return std::map<std::string, std::uint64_t>{
                                              {"polls", static_cast<std::uint64_t>(d.polls.value())},
                                              {"not_modified", static_cast<std::uint64_t>(d.not_modified.value())},
                                              {"changes", static_cast<std::uint64_t>(d.changes.value())},
                                              {"signature_failures", static_cast<std::uint64_t>(d.signature_failures.value())},
                                              {"spooled", d.out.stats().spooled}};
                                      },
                                      d.cfg.bus.signing),
              "repo-poller: heartbeat");
    net::co_spawn(svc.io(), announce_ready(&d), net::detached);
    return svc.run();
}

} // namespace repo_poller
