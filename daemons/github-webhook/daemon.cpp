// github-webhook's glue between HTTP, its pure logic (webhook.hpp) and the runtime.
//
// A delivery is answered 202 only once it is safe: receipted by the broker, or written to the
// disk outbox when the broker is slow or away (delivered from there later). The decisions are
// webhook.cpp's, the HTTP server is libbus's (bus/http/server.hpp); this file dedupes
// deliveries, publishes, and answers /readyz with whatever would answer a delivery 503.
#include "daemon.hpp"

#include "config.hpp"
#include "delivery_window.hpp"
#include "webhook.hpp"

#include "bus/client.hpp"
#include "bus/http/metrics.hpp"
#include "bus/http/server.hpp"
#include "bus/legacy.hpp"
#include "bus/outbox.hpp"
#include "bus/publisher.hpp"
#include "bus/runtime/heartbeat.hpp"
#include "bus/runtime/service.hpp"
#include "bus/wire.hpp"

#include <boost/asio/detached.hpp>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <set>

namespace webhook {

namespace net = boost::asio;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

namespace {

bus::http::response json_reply(int status, std::string_view word, std::string_view detail)
{
    bus::http::response r;
    r.status = status;
    r.content_type = "application/json";
    r.body = status_body(word, detail) + "\n";
    return r;
}

bus::http::server_options server_options(const config& cfg)
{
    bus::http::server_options o;
    o.address = cfg.listen_address;
    o.port = cfg.listen_port;
    o.tls_cert_file = cfg.tls_cert_file;
    o.tls_key_file = cfg.tls_key_file;
    o.max_header_bytes = cfg.max_header_bytes;
    o.max_body_bytes = cfg.max_body_bytes;
    o.first_byte_timeout = cfg.first_byte_timeout;
    o.read_timeout = cfg.read_timeout;
    o.idle_timeout = cfg.idle_timeout;
    o.max_connections = cfg.max_connections;
    o.max_connections_per_source = cfg.max_connections_per_source;
    o.max_inflight_body_bytes = cfg.max_inflight_body_bytes;
    o.trusted_proxies = cfg.trusted_proxies;
    // Clients outside allow-from are turned away at connect, unless the health paths are open
    // to them (nginx's way: the health locations carry their own allow rules, here
    // health-allow-from, anyone by default); then hook paths answer them 403.
    if (!cfg.allow_from.empty() && !cfg.health_allow_from.empty()) {
        o.connect_allow = cfg.allow_from;
        o.connect_allow.insert(o.connect_allow.end(), cfg.health_allow_from.begin(), cfg.health_allow_from.end());
    }
    o.server_name = "deploykit-github-webhook";
    o.log_name = "github-webhook";
    return o;
}

using hook_list = std::shared_ptr<const std::vector<hook_config>>;

const hook_config* hook_for(const hook_list& hs, std::string_view path)
{
    for (const auto& h : *hs)
        if (h.path == path) return &h;
    return nullptr;
}

struct daemon_state {
    daemon_state(bus::runtime::service& svc_, std::string config_path_, config cfg_, spdlog::logger& access_)
        : svc(svc_), config_path(std::move(config_path_)), cfg(std::move(cfg_)), log(svc.log()), access(access_),
          hooks(std::make_shared<const std::vector<hook_config>>(cfg.hooks)),
          client(svc.executor(), cfg.bus.client, log),
          out(svc.executor(), client, cfg.bus.spool, cfg.bus.signing, svc.workers(), log),
          seen(cfg.dedupe_entries, cfg.dedupe_ttl), host(bus::runtime::hostname()),
          http(svc.executor(), server_options(cfg), log, [this](const bus::http::request& h) { return check(h); },
               [this](bus::http::request& r) { return answer(r); },
               [this](const bus::http::request& r, const bus::http::response& res) { own_answer(r, res); })
    {
        if (cfg.bus.spool) spool_view.emplace(*cfg.bus.spool);
        register_metrics();
    }

    bus::runtime::service& svc;
    std::string config_path;
    config cfg;
    spdlog::logger& log;
    spdlog::logger& access;
    hook_list hooks;  // replaced whole on SIGHUP; a request keeps the list it started with
    bus::client client;
    bus::spooling_publisher out;  // receipted, or in the outbox (delivered later)
    std::optional<bus::outbox> spool_view;  // to see how full the spool is (readiness)
    delivery_window seen;  // 16 B per delivery: keyed 96-bit digest + time (delivery_window.hpp)
    std::set<std::string, std::less<>> in_flight;
    std::string host;
    bus::http::registry metrics{"github_webhook"};
    bus::http::daemon_metrics common{metrics, bus::runtime::version()};
    bus::http::counter& accepted = metrics.add_counter("deliveries_accepted_total", "deliveries answered 202");
    bus::http::counter& duplicates =
        metrics.add_counter("duplicate_deliveries_total", "redeliveries recognised by delivery id");
    bus::http::counter& reloads = metrics.add_counter("reloads_total", "configuration reloads");
    // Looked up once, not per request (each lookup built label strings under the registry's lock).
    bus::http::histogram& delivery_time = common.action("delivery");
    std::map<int, bus::http::counter*> responses;  // by status code, filled as codes occur
    bus::http::server http;

    void register_metrics()
    {
        auto stat = [&](std::string_view name, std::string_view help, auto read) {
            metrics.add_callback(name, help, "counter", [read] { return static_cast<double>(read()); });
        };
        stat("events_published_total", "messages receipted by the broker before the answer",
             [this] { return out.stats().published; });
        stat("events_spooled_total", "messages written to the outbox for later delivery",
             [this] { return out.stats().spooled; });
        stat("events_delivered_from_spool_total", "spooled messages delivered later",
             [this] { return out.stats().delivered; });
        stat("events_lost_total", "messages neither receipted nor spooled (the delivery was answered 503)",
             [this] { return out.stats().lost; });
        stat("refused_connections_total", "connections refused at a connection limit or outside allow-from",
             [this] { return http.stats().refused_connections; });
        stat("evicted_connections_total", "idle connections closed to make room at a connection limit",
             [this] { return http.stats().evicted_connections; });
        stat("read_timeouts_total", "requests that did not arrive in time (first byte or whole request)",
             [this] { return http.stats().read_timeouts; });
        stat("busy_total", "requests refused because too many body bytes were in flight",
             [this] { return http.stats().busy; });
        metrics.add_callback("open_connections", "open client connections", "gauge",
                             [this] { return static_cast<double>(http.connections()); });
        metrics.add_callback("inflight_body_bytes", "request body bytes being read, all connections", "gauge",
                             [this] { return static_cast<double>(http.inflight_body_bytes()); });
        metrics.add_callback("uptime_seconds", "seconds since start", "gauge",
                             [t0 = steady::now()] { return std::chrono::duration<double>(steady::now() - t0).count(); });
        metrics.add_collector([this] { common.broker_connected.set(client.connected() ? 1 : 0); });
    }

    std::map<std::string, std::uint64_t> heartbeat_counters() const
    {
        return {{"accepted", static_cast<std::uint64_t>(accepted.value())},
                {"duplicates", static_cast<std::uint64_t>(duplicates.value())},
                {"published", out.stats().published},
                {"spooled", out.stats().spooled},
                {"lost", out.stats().lost}};
    }

    // ---- readiness ----------------------------------------------------------------------------

    // Ready when a delivery can be made safe: the broker is connected, or the spool has room.
    // Whatever would answer a delivery 503 answers /readyz 503 too, with the reason.
    std::optional<std::string> not_ready() const
    {
        if (svc.stopping()) return std::string("stopping");
        if (client.connected()) return std::nullopt;
        if (!spool_view) return std::string("broker unreachable and no spool-dir");
        const auto& o = spool_view->options();
        if (::access(o.dir.c_str(), W_OK) != 0) return "broker unreachable and spool " + o.dir.string() + " not writable";
        std::error_code ec;
        auto files = spool_view->pending();
        std::uintmax_t bytes = 0;
        for (const auto& p : files) bytes += std::filesystem::file_size(p, ec);
        // A delivery is a few kB; with less than 64 kB left it would not fit.
        std::uintmax_t room = o.max_bytes > bytes ? o.max_bytes - bytes : 0;
        if (files.size() >= o.max_messages || room < std::min<std::uintmax_t>(64 * 1024, o.max_bytes))
            return "broker unreachable and spool full (" + std::to_string(files.size()) + " messages, " +
                   std::to_string(bytes) + " bytes)";
        struct statvfs fs {};
        if (::statvfs(o.dir.c_str(), &fs) == 0 && static_cast<std::uintmax_t>(fs.f_bavail) * fs.f_frsize < 1024 * 1024)
            return "broker unreachable and no space left for the spool on " + o.dir.string();
        return std::nullopt;
    }

    // ---- publishing -------------------------------------------------------------------------

    std::vector<bus::stomp::frame> frames_for(const hook_config& h, const decision& d) const
    {
        std::vector<bus::stomp::frame> frames;
        auto now = bus::now_rfc3339();
        auto add = [&](const bus::event& ev, const std::string& topic) {
            for (auto& f : bus::encode(ev, "/topic/" + topic, cfg.bus.format)) frames.push_back(std::move(f));
        };
        for (std::size_t i = 0; i < d.commits.size(); ++i) {
            add(bus::event{event_id_for(h.kind, d.delivery, i), host, now, d.commits[i]}, h.topic);
            if (!h.report_topic.empty()) {
                // The original's eventbot line, with a stable id too.
                bus::notice_event n{"Triggered fetch from Github: " + bus::legacy::commit_message(d.commits[i]).subject};
                add(bus::event{event_id_for(h.kind, d.delivery + "/report", i), host, now, n}, h.report_topic);
            }
        }
        return frames;
    }

    // ---- requests ---------------------------------------------------------------------------

    void log_access(access_entry e, steady::time_point t0)
    {
        auto& c = responses[e.status];
        if (!c) c = &metrics.add_counter("responses_total", "HTTP responses by status code", {{"code", std::to_string(e.status)}});
        c->inc();
        if (!cfg.access_log) return;
        e.ms = std::chrono::duration<double, std::milli>(steady::now() - t0).count();
        access.info("{}", access_line(e, bus::now_rfc3339()));
    }

    void own_answer(const bus::http::request& r, const bus::http::response& res)
    {
        log_access({.remote = r.remote, .method = r.method.empty() ? "-" : r.method,
                    .path = r.path.empty() ? "-" : r.path, .status = res.status},
                   steady::now());
    }

    // After the header: everything that needs no body is answered here.
    std::optional<bus::http::response> check(const bus::http::request& head)
    {
        std::optional<bus::http::response> rep;
        auto t0 = steady::now();
        if (bus::http::is_health_path(head.path)) {
            if (!cfg.health_allow_from.empty() && !in_any(cfg.health_allow_from, head.remote))
                rep = json_reply(403, "forbidden", "address not allowed");
            else
                rep = bus::http::health(head, metrics, [this] { return not_ready(); });
        } else if (!hook_for(hooks, head.path)) {
            rep = json_reply(404, "not found", "no hook at this path");
        } else if (!cfg.allow_from.empty() && !in_any(cfg.allow_from, head.remote)) {
            rep = json_reply(403, "forbidden", "address not allowed");
        } else if (head.method != "POST") {
            rep = json_reply(405, "method not allowed", "use POST");
            rep->headers.emplace_back("Allow", "POST");
        } else {
            common.events_in.inc();
            return std::nullopt;
        }
        log_access({.remote = head.remote, .method = head.method, .path = head.path, .status = rep->status}, t0);
        return rep;
    }

    // Publishes an accepted delivery (or recognises it as a redelivery). Sets d's answer.
    net::awaitable<void> publish(const hook_config* hook, decision* d, bus::http::response* rep)
    {
        std::string key = std::string(to_string(hook->kind)) + ":" + hook->path + ":" + d->delivery;
        // The same delivery already being processed (a quick redelivery): wait for its outcome,
        // then answer as it did - a duplicate, or process it ourselves if the first failed.
        for (int i = 0; i < 500 && in_flight.count(key); ++i) {
            bool waited = co_await svc.sleep_for(milliseconds(20));
            if (!waited) break;
        }
        if (seen.seen(key, std::chrono::system_clock::now())) {
            duplicates.inc();
            common.dropped("duplicate").inc();
            d->status = 200;
            d->reason = "duplicate delivery: already published";
            d->body = status_body("duplicate", d->delivery);
            d->commits.clear();
            co_return;
        }
        if (in_flight.count(key)) {
            d->status = 503;
            d->reason = "the same delivery is still being processed";
            d->body = status_body("unavailable", "retry later");
            rep->headers.emplace_back("Retry-After", "10");
            d->commits.clear();
            co_return;
        }
        in_flight.insert(key);
        std::string why;
        try {
            auto sent = co_await out.publish(frames_for(*hook, *d), cfg.accept_timeout);
            if (!sent.kept()) why = sent.why;
        } catch (const std::exception& e) {
            why = e.what();
        }
        in_flight.erase(key);
        if (!why.empty()) {
            log.error("github-webhook: delivery {} not accepted: {}", d->delivery, why);
            common.dropped("not_accepted").inc();
            d->status = 503;
            d->reason = "not accepted: " + why;
            d->body = status_body("unavailable", "cannot queue the event; retry later");
            rep->headers.emplace_back("Retry-After", "30");
            co_return;
        }
        seen.remember(key, std::chrono::system_clock::now());
        accepted.inc();
        common.events_out.inc(static_cast<double>(d->commits.size()));
        // The access log's line already names the delivery, repository and events: one line per
        // delivery, not two (the write was a tenth of the daemon's system calls under load).
        if (!cfg.access_log)
            log.info("github-webhook: {} delivery {} for {}: {} event(s)", to_string(hook->kind), d->delivery, d->repo,
                     d->commits.size());
    }

    // One POST to a hook, with its body.
    net::awaitable<bus::http::response> answer(bus::http::request& req)
    {
        auto t0 = steady::now();
        bus::http::response rep;
        rep.content_type = "application/json";
        auto snapshot = hooks;  // this request's hooks: a reload from here on does not affect it
        const hook_config* hook = hook_for(snapshot, req.path);
        if (!hook) {
            auto r = json_reply(404, "not found", "no hook at this path");
            log_access({.remote = req.remote, .method = req.method, .path = req.path, .status = 404,
                        .bytes = req.body.size()},
                       t0);
            co_return r;
        }
        request r{req.method, req.path, &req.headers, req.body};
        decision d;
        if (req.body.size() > 256 * 1024) {
            // Big payloads are parsed and hashed on the worker pool, not on the I/O thread. Not
            // small ones: the two thread hops cost more than they free (11.5-11.7k req/s with
            // every request handed over, 12.9-13.8k without; perf-3-webhook3.md).
            const request* rp = &r;
            d = co_await svc.blocking([hook, rp] { return handle(*hook, *rp); });
        } else {
            d = handle(*hook, r);
        }
        if (d.status == 202) co_await publish(hook, &d, &rep);
        else if (d.status == 401 || d.status == 403) common.dropped("signature").inc();
        else if (d.status == 400) common.dropped("bad_request").inc();
        else if (d.status == 200 && d.reason != "ping") common.dropped("ignored").inc();
        delivery_time.observe_since(t0);
        if (d.status == 202) common.last_success.set_to_now();
        rep.status = d.status;
        rep.body = d.body + "\n";
        log_access({.remote = req.remote, .method = req.method, .path = req.path, .status = d.status,
                    .bytes = req.body.size(), .d = &d},
                   t0);
        co_return rep;
    }

    void warn_unsigned() const
    {
        if (cfg.legacy_unsigned)
            log.warn("github-webhook: {} is the original github-stomp config, which has no secret: POST / accepts "
                     "UNSIGNED deliveries, so anyone who can reach it can trigger fetches and builds. Add one line, "
                     "`secret-file: /etc/github-webhook/github.secret` (mode 0600, the secret set on the GitHub "
                     "hook), or `allow-unsigned: true` to keep it open knowingly",
                     config_path);
        for (const auto& h : *hooks)
            if (h.secret.empty() && !cfg.legacy_unsigned)
                log.warn("hook {} accepts UNSIGNED deliveries (allow-unsigned: true): anyone who can reach it can "
                         "trigger fetches and builds",
                         h.path);
    }

    // SIGHUP: the hooks (secrets re-read), filters, allow-lists, proxies, access log and the
    // per-source and in-flight limits; every other changed setting is named as needing a restart.
    // A bad file throws: the runtime logs it and the old configuration stays.
    void reload()
    {
        auto fresh = load_config(config_path, [&](std::string_view n) { log.info("github-webhook: {}", n); });
        bus::runtime::log_restart_needed(log, "github-webhook", needs_restart(cfg, fresh));
        cfg.trusted_proxies = fresh.trusted_proxies;
        cfg.allow_from = fresh.allow_from;
        cfg.health_allow_from = fresh.health_allow_from;
        cfg.access_log = fresh.access_log;
        cfg.max_inflight_body_bytes = fresh.max_inflight_body_bytes;
        cfg.max_connections_per_source = fresh.max_connections_per_source;
        cfg.legacy_unsigned = fresh.legacy_unsigned;
        cfg.file = std::move(fresh.file);
        auto o = server_options(cfg);
        auto& live = http.options();
        live.trusted_proxies = o.trusted_proxies;
        live.connect_allow = o.connect_allow;
        live.max_inflight_body_bytes = o.max_inflight_body_bytes;
        live.max_connections_per_source = o.max_connections_per_source;
        hooks = std::make_shared<const std::vector<hook_config>>(std::move(fresh.hooks));
        reloads.inc();
        log.info("Re-read {}: {} hook(s)", config_path, hooks->size());
        warn_unsigned();
    }

    // SIGTERM: stop accepting, let the requests in progress finish (their deliveries are made
    // safe before the answer), then disconnect. Idle: no wait at all.
    net::awaitable<void> drain()
    {
        http.stop();
        co_await http.drain(std::chrono::seconds(10));
        out.stop();
        client.stop();
    }
};

// READY=1 once listening (before this is spawned) and connected to the broker.
net::awaitable<void> announce_ready(daemon_state* d)
{
    bool connected = false;
    while (!connected && !d->svc.stopping()) {
        // Named first: GCC 12 miscompiles a co_await inside a condition here (docs/runtime.md).
        bool ok = co_await d->client.wait_connected(std::chrono::seconds(1));
        connected = ok;
    }
    if (connected) d->svc.ready("listening on " + d->cfg.listen_address + ":" + std::to_string(d->http.port()) +
                                " and connected to the broker");
}

} // namespace

int run(const bus::runtime::common_options& opts, spdlog::logger& log)
{
    auto cfg = load_config(opts.config_path, [&](std::string_view n) { log.info("github-webhook: {}", n); });
    if (opts.check_config) return 0;
    // One JSON line per request on stdout (`access-log: false` turns it off).
    auto access = spdlog::stdout_logger_mt("access");
    access->set_pattern("%v");
    access->flush_on(spdlog::level::info);
    bus::runtime::service svc(opts, log, {.drain_deadline = std::chrono::seconds(13), .workers = 2});
    daemon_state d(svc, std::filesystem::absolute(opts.config_path).string(), std::move(cfg), *access);
    d.warn_unsigned();
    d.http.listen();
    log.info("github-webhook {} listening on {}{}:{} with {} hook(s)", bus::runtime::version(),
             d.http.tls() ? "https://" : "http://", d.cfg.listen_address, d.http.port(), d.hooks->size());
    if (d.cfg.admin_listen) svc.serve_admin(*d.cfg.admin_listen, d.metrics, [&d] { return d.not_ready(); });
    svc.on_reload([&] { d.reload(); });
    svc.on_stop([&] { return d.drain(); });
    svc.spawn(d.client.run(), "github-webhook: bus client", bus::runtime::task::critical);
    svc.spawn(d.out.run(), "github-webhook: outbox");
    // Accepting stopped other than by SIGTERM: exit 1, so the supervisor restarts us.
    svc.spawn(d.http.run(), "github-webhook: accepting", bus::runtime::task::critical);
    svc.spawn(bus::runtime::heartbeat(svc, d.client, d.cfg.heartbeat, "github-webhook",
                                      [&d] { return d.heartbeat_counters(); }, d.cfg.bus.signing),
              "github-webhook: heartbeat");
    net::co_spawn(svc.io(), announce_ready(&d), net::detached);  // not tracked: ends with io
    return svc.run();
}

} // namespace webhook
