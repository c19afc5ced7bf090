// stomp-broker's process around its I/O (server.hpp): config, users, signals, the admin
// endpoint, heartbeats, readiness, on the runtime (docs/runtime.md) as every daemon.
//
// SIGHUP re-reads the config file and the users file: users and permissions (subscriptions the
// new permissions refuse end with an ERROR) and the heartbeat settings apply at once; every other
// changed setting is logged as needing a restart. SIGTERM stops accepting, lets every connection
// flush what is queued for it (bounded by drain-timeout), flushes the journal and exits 0; an
// idle broker exits at once. A journal that gave up stops the broker with exit status 1.
#include "daemon.hpp"

#include "auth.hpp"
#include "config.hpp"
#include "server.hpp"

#include "bus/http/metrics.hpp"
#include "bus/runtime/heartbeat.hpp"
#include "bus/runtime/service.hpp"
#include "bus/wire.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <iostream>

namespace broker {

namespace net = boost::asio;

namespace {

broker_config read_config(const bus::runtime::common_options& opts, const cli_options& cli, spdlog::logger& log)
{
    broker_config cfg = default_config();
    if (!opts.config_path.empty())
        cfg = load_config(opts.config_path, [&](std::string_view n) { log.info("stomp-broker: {}", n); });
    if (!cli.listen.empty()) {
        check_listen(cli.listen, "--listen");
        cfg.server.listen = cli.listen;
    }
    if (!cli.admin.empty()) {
        check_listen(cli.admin, "--admin");
        cfg.admin_listen = bus::http::parse_listen(cli.admin);
    }
    if (!cli.data_dir.empty()) cfg.server.data_dir = cli.data_dir;
    return cfg;
}

access_policy read_users(const broker_config& cfg)
{
    return cfg.users_file.empty() ? access_policy{} : access_policy::load_file(cfg.users_file);
}

struct daemon_state {
    bus::runtime::service& svc;
    const bus::runtime::common_options& opts;
    const cli_options& cli;
    broker_config cfg;
    server& srv;
    spdlog::logger& log;
};

void reload(daemon_state& d)
{
    auto fresh = d.opts.config_path.empty() ? d.cfg : read_config(d.opts, d.cli, d.log);
    auto users = read_users(fresh);  // a bad users file keeps the old one (and the old config)
    bus::runtime::log_restart_needed(d.log, "stomp-broker", needs_restart(d.cfg, fresh));
    d.cfg.users_file = fresh.users_file;
    d.cfg.heartbeat = fresh.heartbeat;
    d.cfg.file = std::move(fresh.file);
    d.srv.reload(std::move(users));
    d.log.info("stomp-broker: re-read {}{}", d.opts.config_path.empty() ? "the command line" : d.opts.config_path,
               d.cfg.users_file.empty() ? " (no users file: anonymous)" : " and " + d.cfg.users_file.string());
}

// The broker's own heartbeat event (bus/runtime/heartbeat.hpp), routed straight into its
// topics: no client connection to itself. Settings are read each round (SIGHUP may change them).
net::awaitable<void> heartbeats(daemon_state* d)
{
    const auto start = std::chrono::steady_clock::now();
    const std::string host = bus::runtime::hostname();
    std::uint64_t sent = 0, missed = 0;
    for (;;) {
        const auto hb = d->cfg.heartbeat;
        if (hb.interval.count() > 0) {
            auto ev = bus::runtime::make_heartbeat("stomp-broker", host, std::chrono::steady_clock::now() - start,
                                                   d->srv.counters());
            for (auto& f : bus::encode(ev, "/topic/" + hb.topic, bus::wire_format::native))
                ++(d->srv.publish(std::move(f)) ? sent : missed);
        }
        bool waited = co_await d->svc.sleep_for(hb.interval.count() > 0 ? hb.interval : std::chrono::milliseconds(10000));
        if (!waited) break;
    }
    d->log.debug("stomp-broker: heartbeats: {} published, {} not taken", sent, missed);
}

// SIGTERM: no new connections; every connection flushes what is queued for it and closes.
net::awaitable<void> drain(daemon_state* d)
{
    d->srv.stop();
    co_await d->srv.closed();
}

} // namespace

int run(const bus::runtime::common_options& opts, const cli_options& cli, spdlog::logger& log)
{
    if (cli.hash_password) {
        std::string pw;
        std::getline(std::cin, pw);
        std::cout << hash_password(pw) << "\n";
        return 0;
    }
    auto cfg = read_config(opts, cli, log);
    auto users = read_users(cfg);
    if (opts.check_config) return 0;
    // A file-size limit (RLIMIT_FSIZE) is a write error for the journal to report and retry,
    // not a signal that kills the broker.
    std::signal(SIGXFSZ, SIG_IGN);
    bus::runtime::service svc(opts, log, {.drain_deadline = cfg.drain_timeout, .workers = 1});
    server srv(svc.io(), cfg.server, std::move(users), log);
    daemon_state d{svc, opts, cli, std::move(cfg), srv, log};
    srv.start();
    bus::http::registry metrics{"stomp_broker"};
    bus::http::daemon_metrics common{metrics, bus::runtime::version()};
    srv.register_metrics(metrics);
    metrics.add_collector([&] {
        // For a broker: "connected" is "accepting connections"; events in/out are messages.
        common.broker_connected.set(srv.not_ready() ? 0 : 1);
        auto c = srv.counters();
        common.events_in.inc(static_cast<double>(c["messages_in"]) - common.events_in.value());
        common.events_out.inc(static_cast<double>(c["messages_out"]) - common.events_out.value());
    });
    const auto& s = d.cfg.server;
    log.info("stomp-broker {} listening on {} (port {}){}{}", bus::runtime::version(), s.listen, srv.port(),
             s.tls_listen.empty() ? "" : ", TLS on port " + std::to_string(srv.tls_port()),
             s.data_dir.empty() ? ", in memory" : ", journal in " + s.data_dir.string());
    if (d.cfg.admin_listen) svc.serve_admin(*d.cfg.admin_listen, metrics, [&] { return srv.not_ready(); });
    srv.on_fatal([&] { svc.stop(1); });
    svc.on_reload([&] { reload(d); });
    svc.on_stop([&] { return drain(&d); });
    svc.spawn(heartbeats(&d), "stomp-broker: heartbeat");
    net::post(svc.io(), [&] { svc.ready("listening on " + s.listen); });
    int rc = svc.run();
    if (srv.failed()) {
        log.error("stomp-broker: stopped: the journal failed; persistent messages since the failure were not acknowledged");
        return 1;
    }
    log.info("stomp-broker: stopped");
    return rc;
}

} // namespace broker
