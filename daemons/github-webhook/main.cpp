// github-webhook: receives forge webhooks (GitHub, GitHub Enterprise, GitLab, Gitea/Gogs/Forgejo,
// Bitbucket Cloud and Server) and publishes each push as a commit event. A delivery is answered
// 202 only once it is safe: receipted by the broker, or written to the disk outbox when the broker
// is slow or away (delivered from there later). The decisions are webhook.cpp's, the HTTP server
// is libbus's (bus/http/server.hpp); this file dedupes deliveries and publishes.
//
//   github-webhook [-c /etc/github-webhook/github-webhook.yaml] [-d]
#include "config.hpp"
#include "webhook.hpp"

#include "bus/client.hpp"
#include "bus/dedupe.hpp"
#include "bus/http/admin.hpp"
#include "bus/http/health.hpp"
#include "bus/http/metrics.hpp"
#include "bus/http/server.hpp"
#include "bus/legacy.hpp"
#include "bus/outbox.hpp"
#include "bus/publisher.hpp"
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
#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <iostream>
#include <memory>
#include <set>

#ifndef DEPLOYKIT_VERSION
#define DEPLOYKIT_VERSION "unknown"
#endif

namespace net = boost::asio;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

namespace {

constexpr auto tuple_awaitable = net::as_tuple(net::use_awaitable);

std::string hostname()
{
    char buf[256] = {};
    ::gethostname(buf, sizeof buf - 1);
    return buf;
}

std::string json_status(std::string_view status, std::string_view detail = {})
{
    nlohmann::json j{{"status", status}};
    if (!detail.empty()) j["detail"] = detail;
    return j.dump() + "\n";
}

bus::http::response json_reply(int status, std::string_view word, std::string_view detail)
{
    bus::http::response r;
    r.status = status;
    r.content_type = "application/json";
    r.body = json_status(word, detail);
    return r;
}

bus::http::server_options server_options(const webhook::config& cfg)
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

struct service {
    service(net::io_context& io_, std::string config_path_, webhook::config cfg_, spdlog::logger& log_,
            spdlog::logger& access_)
        : io(io_), config_path(std::move(config_path_)), cfg(std::move(cfg_)), log(log_), access(access_),
          hooks(std::make_shared<const std::vector<webhook::hook_config>>(cfg.hooks)), pool(2),
          client(io.get_executor(), cfg.bus.client, log),
          out(io.get_executor(), client, cfg.bus.spool, cfg.bus.signing, pool.get_executor(), log),
          seen(cfg.dedupe_entries, cfg.dedupe_ttl), host(hostname()), metrics("github_webhook"),
          common(metrics, DEPLOYKIT_VERSION),
          http(io.get_executor(), server_options(cfg), log, [this](const bus::http::request& h) { return check(h); },
               [this](bus::http::request& r) { return answer(r); },
               [this](const bus::http::request& r, const bus::http::response& res) { own_answer(r, res); })
    {
        if (cfg.bus.spool) spool_view.emplace(*cfg.bus.spool);
        register_metrics();
    }

    net::io_context& io;
    std::string config_path;
    webhook::config cfg;
    spdlog::logger& log;
    spdlog::logger& access;
    std::shared_ptr<const std::vector<webhook::hook_config>> hooks;  // replaced whole on SIGHUP
    net::thread_pool pool;
    bus::client client;
    bus::spooling_publisher out;  // receipted, or in the outbox (delivered later)
    std::optional<bus::outbox> spool_view;  // to see how full the spool is (readiness)
    bus::dedupe_window seen;
    std::set<std::string, std::less<>> in_flight;
    bool stopping = false;
    bool failed = false;
    std::string host;
    bus::http::registry metrics;
    bus::http::daemon_metrics common;
    bus::http::server http;

    // ---- metrics ----------------------------------------------------------------------------

    bus::http::counter* duplicates = nullptr;
    bus::http::counter* accepted = nullptr;
    bus::http::counter* reloads = nullptr;

    void register_metrics()
    {
        auto& m = metrics;
        accepted = &m.add_counter("deliveries_accepted_total", "deliveries answered 202");
        duplicates = &m.add_counter("duplicate_deliveries_total", "redeliveries recognised by delivery id");
        reloads = &m.add_counter("reloads_total", "configuration reloads");
        auto stat = [&](std::string_view name, std::string_view help, auto read) {
            m.add_callback(name, help, "counter", [read] { return static_cast<double>(read()); });
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
        m.add_callback("open_connections", "open client connections", "gauge",
                       [this] { return static_cast<double>(http.connections()); });
        m.add_callback("inflight_body_bytes", "request body bytes being read, all connections", "gauge",
                       [this] { return static_cast<double>(http.inflight_body_bytes()); });
        static const auto started = steady::now();
        m.add_callback("uptime_seconds", "seconds since start", "gauge",
                       [] { return std::chrono::duration<double>(steady::now() - started).count(); });
        m.add_collector([this] { common.broker_connected.set(client.connected() ? 1 : 0); });
    }

    // ---- readiness ----------------------------------------------------------------------------

    // Ready when a delivery can be made safe: the broker is connected, or the spool has room.
    // Whatever would answer a delivery 503 answers /readyz 503 too, with the reason.
    std::optional<std::string> not_ready()
    {
        if (stopping) return "stopping";
        if (client.connected()) return std::nullopt;
        if (!spool_view) return "broker unreachable and no spool-dir";
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

    std::vector<bus::stomp::frame> frames_for(const webhook::hook_config& h, const webhook::decision& d)
    {
        std::vector<bus::stomp::frame> frames;
        auto now = bus::now_rfc3339();
        auto add = [&](const bus::event& ev, const std::string& topic) {
            for (auto& f : bus::encode(ev, "/topic/" + topic, cfg.bus.format)) frames.push_back(std::move(f));
        };
        for (std::size_t i = 0; i < d.commits.size(); ++i) {
            bus::event ev{webhook::event_id_for(h.kind, d.delivery, i), host, now, d.commits[i]};
            add(ev, h.topic);
            if (!h.report_topic.empty()) {
                // The original's eventbot line, with a stable id too.
                bus::notice_event n{"Triggered fetch from Github: " + bus::legacy::commit_message(d.commits[i]).subject};
                bus::event rep{webhook::event_id_for(h.kind, d.delivery + "/report", i), host, now, n};
                add(rep, h.report_topic);
            }
        }
        return frames;
    }

    // ---- requests ---------------------------------------------------------------------------

    void log_access(std::string_view remote, std::string_view method, std::string_view path, int status,
                    const webhook::decision* d, std::size_t bytes, steady::time_point t0)
    {
        metrics.add_counter("responses_total", "HTTP responses by status code", {{"code", std::to_string(status)}})
            .inc();
        if (!cfg.access_log) return;
        nlohmann::json j{{"time", bus::now_rfc3339()}, {"remote", remote},     {"method", method},
                         {"path", path},               {"status", status},     {"bytes", bytes},
                         {"ms", std::chrono::duration<double, std::milli>(steady::now() - t0).count()}};
        if (d) {
            if (!d->delivery.empty()) j["delivery"] = d->delivery;
            if (!d->event.empty()) j["event"] = d->event;
            if (!d->repo.empty()) j["repo"] = d->repo;
            if (!d->reason.empty()) j["reason"] = d->reason;
            if (!d->commits.empty()) j["events"] = d->commits.size();
        }
        access.info("{}", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }

    void own_answer(const bus::http::request& r, const bus::http::response& res)
    {
        log_access(r.remote, r.method.empty() ? "-" : r.method, r.path.empty() ? "-" : r.path, res.status, nullptr, 0,
                   steady::now());
    }

    const webhook::hook_config* hook_for(const std::vector<webhook::hook_config>& hs, std::string_view path) const
    {
        for (const auto& h : hs)
            if (h.path == path) return &h;
        return nullptr;
    }

    // After the header: everything that needs no body is answered here.
    std::optional<bus::http::response> check(const bus::http::request& head)
    {
        std::optional<bus::http::response> rep;
        auto t0 = steady::now();
        if (bus::http::is_health_path(head.path)) {
            if (!cfg.health_allow_from.empty() && !webhook::in_any(cfg.health_allow_from, head.remote))
                rep = json_reply(403, "forbidden", "address not allowed");
            else
                rep = bus::http::health(head, metrics, [this] { return not_ready(); });
        } else if (!hook_for(*hooks, head.path)) {
            rep = json_reply(404, "not found", "no hook at this path");
        } else if (!cfg.allow_from.empty() && !webhook::in_any(cfg.allow_from, head.remote)) {
            rep = json_reply(403, "forbidden", "address not allowed");
        } else if (head.method != "POST") {
            rep = json_reply(405, "method not allowed", "use POST");
            rep->headers.emplace_back("Allow", "POST");
        } else {
            common.events_in.inc();
            return std::nullopt;
        }
        log_access(head.remote, head.method, head.path, rep->status, nullptr, 0, t0);
        return rep;
    }

    // One POST to a hook, with its body.
    net::awaitable<bus::http::response> answer(bus::http::request& req)
    {
        auto t0 = steady::now();
        bus::http::response rep;
        rep.content_type = "application/json";
        // This request's hooks: a reload from here on does not affect it.
        auto snapshot = hooks;
        const webhook::hook_config* hook = hook_for(*snapshot, req.path);
        if (!hook) {
            auto r = json_reply(404, "not found", "no hook at this path");
            log_access(req.remote, req.method, req.path, 404, nullptr, req.body.size(), t0);
            co_return r;
        }
        webhook::request r{req.method, req.path, &req.headers, req.body};
        webhook::decision d;
        if (req.body.size() > 256 * 1024) {
            // Big payloads are parsed and hashed on the pool, not on the I/O thread.
            const webhook::hook_config* hp = hook;
            const webhook::request* rp = &r;
            d = co_await net::co_spawn(
                pool, [hp, rp]() -> net::awaitable<webhook::decision> { co_return webhook::handle(*hp, *rp); },
                net::use_awaitable);
        } else {
            d = webhook::handle(*hook, r);
        }
        if (d.status == 202) {
            std::string key = std::string(webhook::to_string(hook->kind)) + ":" + hook->path + ":" + d.delivery;
            // The same delivery already being processed (a quick redelivery): wait for its outcome,
            // then answer as it did - a duplicate, or process it ourselves if the first failed.
            net::steady_timer t(io);
            for (int i = 0; i < 500 && in_flight.count(key); ++i) {
                t.expires_after(milliseconds(20));
                co_await t.async_wait(tuple_awaitable);
            }
            auto now = std::chrono::system_clock::now();
            if (seen.seen(key, now)) {
                duplicates->inc();
                common.dropped("duplicate").inc();
                d.status = 200;
                d.reason = "duplicate delivery: already published";
                d.body = json_status("duplicate", d.delivery);
                d.commits.clear();
            } else if (in_flight.count(key)) {
                d.status = 503;
                d.reason = "the same delivery is still being processed";
                d.body = json_status("unavailable", "retry later");
                rep.headers.emplace_back("Retry-After", "10");
                d.commits.clear();
            } else {
                in_flight.insert(key);
                std::string why;
                try {
                    auto sent = co_await out.publish(frames_for(*hook, d), cfg.accept_timeout);
                    if (!sent.kept()) why = sent.why;
                    if (!why.empty()) log.error("github-webhook: delivery {} not accepted: {}", d.delivery, why);
                } catch (const std::exception& e) {
                    why = e.what();
                }
                in_flight.erase(key);
                if (why.empty()) {
                    seen.remember(key, std::chrono::system_clock::now());
                    accepted->inc();
                    common.events_out.inc(static_cast<double>(d.commits.size()));
                    log.info("github-webhook: {} delivery {} for {}: {} event(s)", webhook::to_string(hook->kind),
                             d.delivery, d.repo, d.commits.size());
                } else {
                    common.dropped("not_accepted").inc();
                    d.status = 503;
                    d.reason = "not accepted: " + why;
                    d.body = json_status("unavailable", "cannot queue the event; retry later");
                    rep.headers.emplace_back("Retry-After", "30");
                }
            }
        } else if (d.status == 401 || d.status == 403) {
            common.dropped("signature").inc();
        } else if (d.status == 400) {
            common.dropped("bad_request").inc();
        } else if (d.status == 200 && d.reason != "ping") {
            common.dropped("ignored").inc();
        }
        common.finished("delivery", t0, d.status == 202);
        rep.status = d.status;
        rep.body = d.body + "\n";
        log_access(req.remote, req.method, req.path, d.status, &d, req.body.size(), t0);
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

    void reload()
    {
        try {
            auto fresh = webhook::load_config(config_path);
            cfg.trusted_proxies = fresh.trusted_proxies;
            cfg.allow_from = fresh.allow_from;
            cfg.health_allow_from = fresh.health_allow_from;
            cfg.access_log = fresh.access_log;
            cfg.max_inflight_body_bytes = fresh.max_inflight_body_bytes;
            cfg.max_connections_per_source = fresh.max_connections_per_source;
            cfg.legacy_unsigned = fresh.legacy_unsigned;
            auto o = server_options(cfg);
            auto& live = http.options();
            live.trusted_proxies = o.trusted_proxies;
            live.connect_allow = o.connect_allow;
            live.max_inflight_body_bytes = o.max_inflight_body_bytes;
            live.max_connections_per_source = o.max_connections_per_source;
            hooks = std::make_shared<const std::vector<webhook::hook_config>>(std::move(fresh.hooks));
            reloads->inc();
            log.info("Re-read {}: {} hook(s) (listener and broker settings need a restart)", config_path, hooks->size());
            warn_unsigned();
        } catch (const std::exception& e) {
            log.error("github-webhook: reload failed, keeping the old configuration: {}", e.what());
        }
    }
};

} // namespace

int main(int argc, char** argv)
{
    CLI::App app{"github-webhook - forge webhooks (GitHub, GitLab, Gitea, Bitbucket) to commit events on the bus"};
    std::string config_path = "/etc/github-webhook/github-webhook.yaml";
    bool debug = false;
    app.add_option("-c,--config", config_path, "configuration file");
    app.add_flag("-d,--debug", debug, "debug logging (runs in the foreground, as always)");
    app.set_version_flag("--version", "github-webhook " DEPLOYKIT_VERSION);
    CLI11_PARSE(app, argc, argv);

    auto log = spdlog::stderr_color_mt("github-webhook");
    log->set_level(debug ? spdlog::level::debug : spdlog::level::info);
    auto access = spdlog::stdout_logger_mt("access");
    access->set_pattern("%v");
    access->flush_on(spdlog::level::info);
    try {
        auto cfg = webhook::load_config(config_path);
        config_path = std::filesystem::absolute(config_path).string();
        net::io_context io(1);
        service s(io, config_path, std::move(cfg), *log, *access);
        s.warn_unsigned();
        s.http.listen();
        log->info("github-webhook listening on {}{}:{} with {} hook(s)", s.http.tls() ? "https://" : "http://",
                  s.cfg.listen_address, s.http.port(), s.hooks->size());
        std::optional<bus::http::admin_endpoint> admin;
        if (s.cfg.admin_listen) {
            admin.emplace(io.get_executor(), *s.cfg.admin_listen, s.metrics, [&s] { return s.not_ready(); }, *log);
            admin->start();
            log->info("github-webhook: admin endpoint on {}:{}", s.cfg.admin_listen->address, admin->port());
        }

        // Shutdown waits for the bus client to end (it sends DISCONNECT), never for a fixed time.
        bool client_done = false;
        net::steady_timer client_ended(io, steady::time_point::max());
        net::co_spawn(io, s.client.run(), [&](std::exception_ptr e) {
            if (e && !s.stopping) log->error("github-webhook: bus client ended");
            client_done = true;
            client_ended.cancel();
        });
        net::co_spawn(io, s.out.run(), net::detached);
        net::co_spawn(io, s.http.run(), [&](std::exception_ptr e) {
            if (!e || s.stopping) return;
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                log->critical("github-webhook: accepting stopped: {}", ex.what());
            }
            io.stop();  // exit non-zero, so the supervisor restarts us
            s.failed = true;
        });

        net::signal_set term(io, SIGTERM, SIGINT);
        net::signal_set hup(io, SIGHUP);
        term.async_wait([&](auto ec, int) {
            if (ec) return;
            // Stop taking requests, let the ones in progress finish (up to 10 s), then disconnect
            // and exit as soon as the client is done (2 s at most for its DISCONNECT).
            log->info("github-webhook: stopping");
            s.stopping = true;
            s.http.stop();
            if (admin) admin->stop();
            boost::system::error_code ignored;
            hup.cancel(ignored);
            net::co_spawn(
                io,
                [&]() -> net::awaitable<void> {
                    co_await s.http.drain(std::chrono::seconds(10));
                    s.out.stop();
                    s.client.stop();
                    if (!client_done) {
                        client_ended.expires_after(std::chrono::seconds(2));
                        co_await client_ended.async_wait(tuple_awaitable);
                    }
                    io.stop();
                },
                net::detached);
        });
        std::function<void()> on_hup = [&] {
            hup.async_wait([&](auto ec, int) {
                if (ec) return;
                s.reload();
                on_hup();
            });
        };
        on_hup();
        io.run();
        s.pool.join();
        if (s.failed) return 1;
    } catch (const bus::config_error& e) {
        std::cerr << "github-webhook: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "github-webhook: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
