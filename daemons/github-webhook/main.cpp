// github-webhook: receives forge webhooks (GitHub, GitHub Enterprise, GitLab, Gitea/Gogs/Forgejo,
// Bitbucket Cloud and Server) and publishes each push as a commit event. A delivery is answered
// 202 only once it is safe: receipted by the broker, or written to the disk outbox when the broker
// is slow or away (delivered from there later). The decisions are webhook.cpp's; this file moves
// bytes, dedupes deliveries and publishes.
//
//   github-webhook [-c /etc/github-webhook/github-webhook.yaml] [-d]
#include "config.hpp"
#include "webhook.hpp"

#include "bus/client.hpp"
#include "bus/dedupe.hpp"
#include "bus/publisher.hpp"
#include "bus/legacy.hpp"
#include "bus/wire.hpp"

#include <CLI/CLI.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <iostream>
#include <memory>
#include <mutex>
#include <set>

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
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

std::string lower(std::string_view s)
{
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

struct counters {
    std::map<int, std::uint64_t> responses;  // by status
    std::uint64_t deliveries_accepted = 0;
    std::uint64_t duplicates = 0;
    std::uint64_t refused_connections = 0;
    std::uint64_t read_timeouts = 0;
    std::uint64_t reloads = 0;
    std::uint64_t busy = 0;  // 503s because too many body bytes were in flight
};

struct service {
    service(net::io_context& io_, std::string config_path_, webhook::config cfg_, spdlog::logger& log_,
            spdlog::logger& access_)
        : io(io_), config_path(std::move(config_path_)), cfg(std::move(cfg_)), log(log_), access(access_),
          hooks(std::make_shared<const std::vector<webhook::hook_config>>(cfg.hooks)), pool(2),
          client(io.get_executor(), cfg.bus.client, log),
          out(io.get_executor(), client, cfg.bus.spool, cfg.bus.signing, pool.get_executor(), log),
          seen(cfg.dedupe_entries, cfg.dedupe_ttl), host(hostname())
    {
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
    bus::dedupe_window seen;
    std::set<std::string, std::less<>> in_flight;
    std::optional<ssl::context> tls;
    std::size_t inflight_body_bytes = 0;  // declared bodies of requests being read
    bool stopping = false;
    bool failed = false;
    std::size_t connections = 0;
    counters stats;
    std::string host;
    steady::time_point started = steady::now();

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

    struct reply {
        http::status status = http::status::ok;
        std::string body;
        std::string content_type = "application/json";
        bool close = false;
        std::vector<std::pair<http::field, std::string>> extra;
    };

    static std::string json_status(std::string_view status, std::string_view detail = {})
    {
        nlohmann::json j{{"status", status}};
        if (!detail.empty()) j["detail"] = detail;
        return j.dump() + "\n";
    }

    std::string metrics() const
    {
        std::string m;
        auto metric = [&](std::string_view name, std::string_view type, std::string_view help, auto v,
                          std::string labels = {}) {
            std::string full = "github_webhook_" + std::string(name);
            if (m.find("# TYPE " + full + " ") == std::string::npos) {
                m += "# HELP " + full + " " + std::string(help) + "\n";
                m += "# TYPE " + full + " " + std::string(type) + "\n";
            }
            m += full + labels + " " + std::to_string(v) + "\n";
        };
        for (auto& [code, n] : stats.responses)
            metric("responses_total", "counter", "HTTP responses by status code", n,
                   "{code=\"" + std::to_string(code) + "\"}");
        metric("deliveries_accepted_total", "counter", "deliveries answered 202", stats.deliveries_accepted);
        metric("duplicate_deliveries_total", "counter", "redeliveries recognised by delivery id", stats.duplicates);
        metric("events_published_total", "counter", "messages receipted by the broker before the answer",
               out.stats().published);
        metric("events_spooled_total", "counter", "messages written to the outbox for later delivery",
               out.stats().spooled);
        metric("events_delivered_from_spool_total", "counter", "spooled messages delivered later",
               out.stats().delivered);
        metric("events_lost_total", "counter", "messages neither receipted nor spooled (the delivery was answered 503)",
               out.stats().lost);
        metric("refused_connections_total", "counter", "connections closed at the connection limit",
               stats.refused_connections);
        metric("read_timeouts_total", "counter", "requests that did not arrive within read-timeout-seconds",
               stats.read_timeouts);
        metric("reloads_total", "counter", "configuration reloads", stats.reloads);
        metric("busy_total", "counter", "requests refused because too many body bytes were in flight", stats.busy);
        metric("open_connections", "gauge", "open client connections", connections);
        metric("broker_connected", "gauge", "1 when connected to the broker", client.connected() ? 1 : 0);
        metric("uptime_seconds", "gauge", "seconds since start",
               std::chrono::duration_cast<std::chrono::seconds>(steady::now() - started).count());
        return m;
    }

    void log_access(std::string_view remote, std::string_view method, std::string_view path, int status,
                    const webhook::decision* d, std::size_t bytes, steady::time_point t0)
    {
        ++stats.responses[status];
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

    // One POST to a hook, after its body arrived. `hook` belongs to `snapshot`, which the caller
    // keeps alive, so a reload meanwhile changes nothing for this request.
    net::awaitable<reply> answer(const http::request<http::string_body>& req, const webhook::hook_config& hook,
                                 std::string_view path, const std::string& remote, steady::time_point t0)
    {
        reply rep;
        webhook::header_map headers;
        for (const auto& f : req) headers.emplace(lower(f.name_string()), std::string(f.value()));
        webhook::request r{std::string_view(req.method_string()), path, &headers, req.body()};
        webhook::decision d;
        if (req.body().size() > 256 * 1024) {
            // Big payloads are parsed and hashed on the pool, not on the I/O thread.
            const webhook::hook_config* hp = &hook;
            const webhook::request* rp = &r;
            d = co_await net::co_spawn(
                pool, [hp, rp]() -> net::awaitable<webhook::decision> { co_return webhook::handle(*hp, *rp); },
                net::use_awaitable);
        } else {
            d = webhook::handle(hook, r);
        }
        if (d.status == 202) {
            std::string key = std::string(webhook::to_string(hook.kind)) + ":" + hook.path + ":" + d.delivery;
            // The same delivery already being processed (a quick redelivery): wait for its outcome,
            // then answer as it did - a duplicate, or process it ourselves if the first failed.
            net::steady_timer t(io);
            for (int i = 0; i < 500 && in_flight.count(key); ++i) {
                t.expires_after(milliseconds(20));
                co_await t.async_wait(tuple_awaitable);
            }
            auto now = std::chrono::system_clock::now();
            if (seen.seen(key, now)) {
                ++stats.duplicates;
                d.status = 200;
                d.reason = "duplicate delivery: already published";
                d.body = json_status("duplicate", d.delivery);
                d.commits.clear();
            } else if (in_flight.count(key)) {
                d.status = 503;
                d.reason = "the same delivery is still being processed";
                d.body = json_status("unavailable", "retry later");
                rep.extra.emplace_back(http::field::retry_after, "10");
                d.commits.clear();
            } else {
                in_flight.insert(key);
                std::string why;
                try {
                    auto sent = co_await out.publish(frames_for(hook, d), cfg.accept_timeout);
                    if (!sent.kept()) why = sent.why;
                    if (!why.empty()) log.error("github-webhook: delivery {} not accepted: {}", d.delivery, why);
                } catch (const std::exception& e) {
                    why = e.what();
                }
                in_flight.erase(key);
                if (why.empty()) {
                    seen.remember(key, std::chrono::system_clock::now());
                    ++stats.deliveries_accepted;
                    log.info("github-webhook: {} delivery {} for {}: {} event(s)", webhook::to_string(hook.kind),
                             d.delivery, d.repo, d.commits.size());
                } else {
                    d.status = 503;
                    d.reason = "not accepted: " + why;
                    d.body = json_status("unavailable", "cannot queue the event; retry later");
                    rep.extra.emplace_back(http::field::retry_after, "30");
                }
            }
        }
        rep.status = static_cast<http::status>(d.status);
        rep.body = d.body + "\n";
        log_access(remote, req.method_string(), path, d.status, &d, req.body().size(), t0);
        co_return rep;
    }

    reply early(http::status s, std::string_view status, std::string_view detail, bool close = true)
    {
        reply rep;
        rep.status = s;
        rep.body = json_status(status, detail);
        rep.close = close;
        return rep;
    }

    template <class Stream>
    net::awaitable<void> write(Stream& stream, const reply& rep, unsigned version, bool keep_alive, bool head = false)
    {
        http::response<http::string_body> res{rep.status, version};
        res.set(http::field::server, "deploykit-github-webhook");
        res.set(http::field::content_type, rep.content_type);
        for (auto& [f, v] : rep.extra) res.set(f, v);
        res.keep_alive(keep_alive && !rep.close);
        if (head) {
            res.content_length(rep.body.size());  // what GET would send; no body
        } else {
            res.body() = rep.body;
            res.prepare_payload();
        }
        beast::get_lowest_layer(stream).expires_after(cfg.read_timeout);
        co_await http::async_write(stream, res, net::use_awaitable);
    }

    std::optional<reply> health(const http::request_parser<http::string_body>& parser, std::string_view path)
    {
        const auto& req = parser.get();
        if (path != "/livez" && path != "/readyz" && path != "/metrics") return std::nullopt;
        if (req.method() != http::verb::get && req.method() != http::verb::head) {
            auto rep = early(http::status::method_not_allowed, "method not allowed", "use GET");
            rep.extra.emplace_back(http::field::allow, "GET, HEAD");
            return rep;
        }
        if (path == "/metrics") return reply{http::status::ok, metrics(), "text/plain; version=0.0.4", false, {}};
        if (path == "/livez") return reply{http::status::ok, "ok\n", "text/plain", false, {}};
        // Ready when a delivery can be made safe: broker connected, or spool usable.
        bool ready = !stopping && (client.connected() || ::access(cfg.bus.spool->dir.c_str(), W_OK) == 0);
        return reply{ready ? http::status::ok : http::status::service_unavailable,
                     std::string(ready ? "ready" : "not ready") +
                         (client.connected() ? "\n" : " (broker unreachable: spooling)\n"),
                     "text/plain", false, {}};
    }

    template <class Stream>
    net::awaitable<void> session(Stream& stream, std::string peer)
    {
        beast::flat_buffer buf;
        bool first = true;
        for (;;) {
            if (!first && buf.size() == 0) {
                // Between requests a keep-alive connection may idle up to idle-timeout; the next
                // request's clock starts with its first byte.
                beast::get_lowest_layer(stream).expires_after(cfg.idle_timeout);
                auto [iec, n] = co_await stream.async_read_some(buf.prepare(4096), tuple_awaitable);
                if (iec || n == 0) co_return;
                buf.commit(n);
            }
            first = false;
            http::request_parser<http::string_body> parser;
            parser.header_limit(static_cast<std::uint32_t>(cfg.max_header_bytes));
            parser.body_limit(cfg.max_body_bytes);
            // One deadline for the whole request, headers and body (slow-loris safe). On the first
            // request it runs from the accept.
            beast::get_lowest_layer(stream).expires_after(cfg.read_timeout);
            auto [ec, n] = co_await http::async_read_header(stream, buf, parser, tuple_awaitable);
            auto t0 = steady::now();
            if (ec == http::error::end_of_stream || ec == net::error::eof || ec == net::error::connection_reset)
                co_return;
            if (ec == beast::error::timeout) {
                ++stats.read_timeouts;
                co_return;
            }
            if (ec) {
                // Beast checks Content-Length against the body limit while parsing the header.
                auto rep = ec == http::error::header_limit
                               ? early(http::status::request_header_fields_too_large, "bad request", "headers too large")
                           : ec == http::error::body_limit
                               ? early(http::status::payload_too_large, "too large",
                                       "body over " + std::to_string(cfg.max_body_bytes) + " bytes")
                               : early(http::status::bad_request, "bad request", ec.message());
                log_access(peer, "-", "-", static_cast<int>(rep.status), nullptr, 0, t0);
                co_await write(stream, rep, 11, false);
                co_return;
            }
            auto& req = parser.get();
            std::string target(req.target());
            std::string path = target.substr(0, target.find('?'));
            // Every X-Forwarded-For line, in order: a proxy may add its own line rather than
            // extend the client's (which could then claim anything in the first one).
            std::string xff;
            for (auto [it, end] = req.equal_range("X-Forwarded-For"); it != end; ++it)
                xff += (xff.empty() ? "" : ",") + std::string(it->value());
            std::string remote = webhook::client_address(peer, xff, cfg.trusted_proxies);
            std::string method(req.method_string());
            // This request's hooks: a reload from here on does not affect it.
            auto snapshot = hooks;
            const webhook::hook_config* hook = nullptr;
            for (const auto& h : *snapshot)
                if (h.path == path) hook = &h;
            std::optional<reply> rep = health(parser, path);
            if (rep) {
            } else if (!hook) {
                rep = early(http::status::not_found, "not found", "no hook at this path");
            } else if (!cfg.allow_from.empty() && !webhook::in_any(cfg.allow_from, remote)) {
                rep = early(http::status::forbidden, "forbidden", "address not allowed");
            } else if (req.method() != http::verb::post) {
                rep = early(http::status::method_not_allowed, "method not allowed", "use POST");
                rep->extra.emplace_back(http::field::allow, "POST");
            } else if (parser.content_length() &&
                       inflight_body_bytes + *parser.content_length() > cfg.max_inflight_body_bytes) {
                ++stats.busy;
                rep = early(http::status::service_unavailable, "busy", "too many large requests at once; retry");
                rep->extra.emplace_back(http::field::retry_after, "5");
            }
            if (rep) {
                // Answer at once; an unread body means the connection cannot be reused.
                bool body_pending = !parser.is_done();
                log_access(remote, method, path, static_cast<int>(rep->status), nullptr, 0, t0);
                bool keep = req.keep_alive() && !body_pending && !rep->close;
                co_await write(stream, *rep, req.version(), keep, req.method() == http::verb::head);
                if (!keep) co_return;
                continue;
            }
            // Body bytes in flight are bounded: Beast reserves the declared length up front.
            std::size_t declared = parser.content_length() ? static_cast<std::size_t>(*parser.content_length()) : 0;
            inflight_body_bytes += declared;
            struct release {
                std::size_t& total;
                std::size_t n;
                ~release() { total -= n; }
            } guard{inflight_body_bytes, declared};
            if (req.version() >= 11 && lower(req[http::field::expect]) == "100-continue") {
                http::response<http::empty_body> cont{http::status::continue_, req.version()};
                co_await http::async_write(stream, cont, net::use_awaitable);
            }
            auto [bec, bn] = co_await http::async_read(stream, buf, parser, tuple_awaitable);
            if (bec == http::error::body_limit) {
                auto r = early(http::status::payload_too_large, "too large",
                               "body over " + std::to_string(cfg.max_body_bytes) + " bytes");
                log_access(remote, method, path, 413, nullptr, 0, t0);
                co_await write(stream, r, req.version(), false);
                co_return;
            }
            if (bec == beast::error::timeout) {
                ++stats.read_timeouts;
                co_return;
            }
            if (bec) co_return;
            auto r = co_await answer(req, *hook, path, remote, t0);
            co_await write(stream, r, req.version(), req.keep_alive());
            if (!req.keep_alive() || r.close || stopping) co_return;
        }
    }

    // After an early answer the client may still be sending a body; closing with unread bytes
    // makes the kernel send RST, which can destroy the answer before the client reads it. So
    // stop sending, then read and discard for a bounded time and size before closing.
    net::awaitable<void> linger(beast::tcp_stream& stream)
    {
        boost::system::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
        stream.expires_after(std::chrono::seconds(1));
        std::array<char, 16384> sink;
        std::size_t total = 0;
        while (total < 1024 * 1024) {
            auto [ec, n] = co_await stream.async_read_some(net::buffer(sink), tuple_awaitable);
            if (ec || n == 0) break;
            total += n;
        }
    }

    net::awaitable<void> serve(tcp::socket sock, std::string peer)
    {
        try {
            if (tls) {
                beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(sock)), *tls);
                beast::get_lowest_layer(stream).expires_after(cfg.read_timeout);
                co_await stream.async_handshake(ssl::stream_base::server, net::use_awaitable);
                co_await session(stream, peer);
                beast::get_lowest_layer(stream).expires_after(std::chrono::seconds(2));
                co_await stream.async_shutdown(tuple_awaitable);
            } else {
                beast::tcp_stream stream(std::move(sock));
                co_await session(stream, peer);
                co_await linger(stream);
            }
        } catch (const std::exception& e) {
            log.debug("github-webhook: connection from {}: {}", peer, e.what());
        }
        --connections;
    }

    net::awaitable<void> accept_loop(tcp::acceptor& acceptor)
    {
        for (;;) {
            auto [ec, sock] = co_await acceptor.async_accept(tuple_awaitable);
            if (ec == net::error::operation_aborted || stopping) co_return;
            if (ec) {
                // EMFILE and friends: back off briefly instead of spinning.
                log.warn("github-webhook: accept: {}", ec.message());
                net::steady_timer t(io, milliseconds(100));
                co_await t.async_wait(tuple_awaitable);
                continue;
            }
            boost::system::error_code pec;
            auto ep = sock.remote_endpoint(pec);
            std::string peer = pec ? "?" : ep.address().to_string();
            if (!pec && ep.address().is_v6() && ep.address().to_v6().is_v4_mapped())
                peer = net::ip::make_address_v4(net::ip::v4_mapped, ep.address().to_v6()).to_string();
            bool refuse = connections >= cfg.max_connections;
            // A direct client outside allow-from is turned away before it can send anything
            // (clients behind a trusted proxy are checked per request).
            if (!refuse && !cfg.allow_from.empty() && !webhook::in_any(cfg.trusted_proxies, peer) &&
                !webhook::in_any(cfg.allow_from, peer))
                refuse = true;
            if (refuse) {
                ++stats.refused_connections;
                boost::system::error_code ignored;
                sock.close(ignored);
                continue;
            }
            boost::system::error_code oec;
            sock.set_option(tcp::no_delay(true), oec);
            ++connections;  // counted here, so the limit holds however fast connections arrive
            net::co_spawn(io, serve(std::move(sock), std::move(peer)), net::detached);
        }
    }

    void reload()
    {
        try {
            auto fresh = webhook::load_config(config_path);
            cfg.trusted_proxies = fresh.trusted_proxies;
            cfg.allow_from = fresh.allow_from;
            cfg.access_log = fresh.access_log;
            cfg.max_inflight_body_bytes = fresh.max_inflight_body_bytes;
            hooks = std::make_shared<const std::vector<webhook::hook_config>>(std::move(fresh.hooks));
            ++stats.reloads;
            log.info("Re-read {}: {} hook(s) (listener and broker settings need a restart)", config_path, hooks->size());
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
        for (const auto& h : *s.hooks)
            if (h.secret.empty())
                log->warn("hook {} accepts UNSIGNED deliveries (allow-unsigned: true): anyone who can reach it can "
                          "trigger fetches and builds",
                          h.path);
        if (!s.cfg.tls_cert_file.empty()) {
            s.tls.emplace(ssl::context::tls_server);
            s.tls->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                               ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 | ssl::context::single_dh_use);
            s.tls->use_certificate_chain_file(s.cfg.tls_cert_file);
            s.tls->use_private_key_file(s.cfg.tls_key_file, ssl::context::pem);
        }
        tcp::endpoint ep(net::ip::make_address(s.cfg.listen_address), s.cfg.listen_port);
        tcp::acceptor acceptor(io);
        acceptor.open(ep.protocol());
        acceptor.set_option(tcp::acceptor::reuse_address(true));
        acceptor.bind(ep);
        acceptor.listen(net::socket_base::max_listen_connections);
        auto bound = acceptor.local_endpoint();
        log->info("github-webhook listening on {}{}:{} with {} hook(s)", s.tls ? "https://" : "http://",
                  bound.address().to_string(), bound.port(), s.hooks->size());

        net::co_spawn(io, s.client.run(), [&](std::exception_ptr e) {
            if (e && !s.stopping) log->error("github-webhook: bus client ended");
        });
        net::co_spawn(io, s.out.run(), net::detached);
        net::co_spawn(io, s.accept_loop(acceptor), [&](std::exception_ptr e) {
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
        term.async_wait([&](auto ec, int) {
            if (ec) return;
            // Stop taking requests, let the ones in progress finish (bounded), then disconnect.
            log->info("github-webhook: stopping");
            s.stopping = true;
            boost::system::error_code ignored;
            acceptor.close(ignored);
            s.out.stop();
            net::co_spawn(
                io,
                [&]() -> net::awaitable<void> {
                    net::steady_timer t(io);
                    for (int i = 0; i < 100 && s.connections > 0; ++i) {
                        t.expires_after(milliseconds(100));
                        co_await t.async_wait(tuple_awaitable);
                    }
                    s.client.stop();
                    t.expires_after(std::chrono::seconds(3));
                    co_await t.async_wait(tuple_awaitable);
                    io.stop();
                },
                net::detached);
        });
        net::signal_set hup(io, SIGHUP);
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
