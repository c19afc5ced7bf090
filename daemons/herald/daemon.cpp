// herald's glue between the bus, SQLite (store.hpp), the web side (web.hpp) and the runtime.
//
// Recording: every subscription is client-individual and durable; a message is decoded by
// bus::intake (or, for a native event of a type this build does not know, by its JSON
// envelope), held in the ledger and queued to the writer thread; the writer commits batches
// and only then is the message acknowledged (on the I/O thread). A failing database (corrupt,
// full, read-only) keeps the batch and retries it with backoff, acknowledges nothing, answers
// /readyz 503 and /ingest 503, and logs an error at each change.
#include "daemon.hpp"

#include "alert_seam.hpp"
#include "config.hpp"
#ifdef HERALD_ALERTS_USE_CURL
#include "curl_init.hpp"
#endif
#include "deploy_web.hpp"
#include "record.hpp"
#include "store.hpp"
#include "web.hpp"

#include "bus/client.hpp"
#include "bus/http/health.hpp"
#include "bus/http/metrics.hpp"
#include "bus/http/server.hpp"
#include "bus/intake.hpp"
#include "bus/password.hpp"
#include "bus/publisher.hpp"
#include "bus/runtime/consumer.hpp"
#include "bus/runtime/heartbeat.hpp"
#include "bus/runtime/ledger.hpp"
#include "bus/runtime/service.hpp"
#include "bus/text.hpp"

#include "core.hpp"   // deploy::cli: the deploy CLI's rollout engine (deploy_lib)
#include "shell.hpp"
#include "deploy/protocol.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <charconv>
#include <deque>
#include <map>
#include <set>
#include <sstream>

namespace herald {

namespace net = boost::asio;
using std::chrono::milliseconds;
using steady = std::chrono::steady_clock;

namespace {

std::int64_t now_ms()
{
    return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

bus::http::response reply(int status, std::string content_type, std::string body)
{
    bus::http::response r;
    r.status = status;
    r.content_type = std::move(content_type);
    r.body = std::move(body);
    r.headers.emplace_back("Cache-Control", "no-store");
    r.headers.emplace_back("X-Content-Type-Options", "nosniff");
    return r;
}

bus::http::response json_error(int status, std::string_view text)
{
    nlohmann::json j{{"error", text}};
    return reply(status, "application/json", j.dump() + "\n");
}

bus::http::response page(int status, std::string body)
{
    auto r = reply(status, "text/html; charset=utf-8", std::move(body));
    r.headers.emplace_back("Content-Security-Policy", std::string(page_csp()));
    r.headers.emplace_back("X-Frame-Options", "DENY");
    r.headers.emplace_back("Referrer-Policy", "same-origin");
    return r;
}

bus::http::server_options server_options(const config& cfg)
{
    bus::http::server_options o;
    o.address = cfg.listen_address;
    o.port = cfg.listen_port;
    o.tls_cert_file = cfg.tls_cert_file;
    o.tls_key_file = cfg.tls_key_file;
    o.max_body_bytes = cfg.ingest_max_body;
    o.trusted_proxies = cfg.trusted_proxies;
    o.server_name = "deploykit-herald";
    o.log_name = "herald";
    return o;
}

struct daemon_state {
    daemon_state(bus::runtime::service& svc_, std::string config_path_, config cfg_)
        : svc(svc_), config_path(std::move(config_path_)), cfg(std::move(cfg_)), log(svc.log()),
          client(svc.executor(), cfg.bus.client, log),
          out(svc.executor(), client, cfg.bus.spool, cfg.bus.signing, svc.workers(), log),
          in(bus::intake_options{.require_signatures = cfg.bus.require_signatures, .replay_cache = cfg.replay_cache},
             cfg.bus.verify_keys),
          host(bus::runtime::hostname()), news(svc.io()),
          sessions(cfg.session_ttl, cfg.max_sessions), limiter(cfg.ingest_rate, cfg.ingest_burst),
          http(svc.executor(), server_options(cfg), log, [this](const bus::http::request& h) { return check(h); },
               [this](bus::http::request& r) { return answer(r); })
    {
        if (!cfg.users_file.empty()) users = load_users(cfg.users_file);
        news.expires_at(steady::time_point::max());
    }

    bus::runtime::service& svc;
    std::string config_path;
    config cfg;
    spdlog::logger& log;
    bus::client client;
    bus::spooling_publisher out;
    bus::intake in;
    bus::runtime::ledger<bus::message> held;
    using ledger_token = bus::runtime::ledger<bus::message>::token;
    std::string host;
    std::unique_ptr<writer> db;
    std::unique_ptr<reader_pool> readers;
    std::unique_ptr<alerts::engine> alerting;
    std::string db_failure;  // on the I/O thread: the writer's current failure
    std::vector<std::string> sub_ids;
    std::size_t subscribed = 0;
    std::int64_t last_seq = 0;  // the newest committed row (live feed)
    net::steady_timer news;     // cancelled at every commit and every second: live-feed waiters wake
    std::map<std::pair<std::string, std::string>, std::int64_t> last_seen;  // (daemon, host) → event time ms
    session_store sessions;
    std::string server_secret = random_token();  // proxy users' CSRF tokens derive from it
    // unknown users cost the same: a random salt and digest in hash_password's format, so checking
    // against it runs the same 100,000 PBKDF2 iterations (and nothing initialises OpenSSL at start)
    std::string dummy_hash = "pbkdf2-sha256$100000$" + random_token(16) + "$" + random_token(32);
    rate_limiter limiter;
    user_table users;
    bus::http::registry metrics{"herald"};
    bus::http::daemon_metrics common{metrics, bus::runtime::version()};
    bus::http::counter& recorded = metrics.add_counter("events_recorded_total", "rows committed to the database");
    bus::http::counter& ingested = metrics.add_counter("ingest_records_total", "records accepted on /ingest");
    bus::http::counter& refused_ingest = metrics.add_counter("ingest_refused_total", "/ingest requests refused");
    bus::http::server http;

    // ---- rollouts started from the deploy page (deploy_lib's session on this io_context) ----
    struct rollout_run {
        std::string job_id, repo, tag, user;
        std::string stopped_by;  // the deployer who asked it to stop after the current batch
        std::shared_ptr<deploy::cli::session_request> req;
        std::ostringstream progress;
        nlohmann::json job = nlohmann::json::object();
        bool done = false;
        int rc = -1;
        std::int64_t version = 1;
    };
    std::map<std::string, std::shared_ptr<rollout_run>> rollouts;  // job id → (running, and the last finished)
    std::map<std::string, std::string> repo_busy;                  // repo → its running job
    std::deque<std::string> finished;
    std::size_t running_rollouts = 0;

    // ---- the database ----

    void open_store()
    {
        db = std::make_unique<writer>(
            cfg.store,
            [this](std::vector<recorded_event>&& rows) {
                net::post(svc.io(), [this, rows = std::move(rows)]() mutable { committed(std::move(rows)); });
            },
            [this](const std::string& failure) {
                net::post(svc.io(), [this, failure] {
                    if (failure.empty()) log.warn("herald: database {} works again", cfg.store.path.string());
                    else log.error("herald: DATABASE FAILURE ({}): {}; nothing is acknowledged until it is fixed",
                                   cfg.store.path.string(), failure);
                    db_failure = failure;
                });
            });
        readers = std::make_unique<reader_pool>(cfg.store.path, cfg.store.readers, cfg.store.search_budget);
        // where the live feed starts, and the sources' last-seen times
        auto first = readers->search(query{.limit = 1});
        if (!first.rows.empty()) last_seq = first.rows.front().seq;
        for (const auto& s : readers->sources()) last_seen[{s.daemon, s.host}] = s.last_ms;
    }

    void committed(std::vector<recorded_event>&& rows)
    {
        recorded.inc(static_cast<double>(rows.size()));
        for (const auto& r : rows) {
            last_seq = std::max(last_seq, r.seq);
            if (!r.daemon.empty() || !r.host.empty()) {
                auto& t = last_seen[{r.daemon, r.host}];
                t = std::max(t, r.received_ms);
            }
            if (alerting) alerting->on_event(r);
        }
        news.cancel();
    }

    std::optional<std::string> not_ready() const
    {
        if (svc.stopping()) return std::string("stopping");
        if (!db_failure.empty()) return "database failing: " + db_failure;
        if (!client.connected()) return std::string("broker unreachable");
        if (subscribed < sub_ids.size()) return "subscribed to " + std::to_string(subscribed) + " of " +
                                                std::to_string(sub_ids.size()) + " topics";
        return std::nullopt;
    }

    void register_metrics()
    {
        metrics.add_collector([this] { common.broker_connected.set(client.connected() ? 1 : 0); });
        metrics.add_callback("database_failing", "1 while the database cannot commit", "gauge",
                             [this] { return db_failure.empty() ? 0.0 : 1.0; });
        metrics.add_callback("pending_messages", "messages held until their commit", "gauge",
                             [this] { return static_cast<double>(held.size()); });
        metrics.add_callback("writer_queue", "records waiting for the writer", "gauge",
                             [this] { return static_cast<double>(db ? db->queued() : 0); });
        metrics.add_callback("duplicates_total", "records not inserted again (same event id)", "counter",
                             [this] { return static_cast<double>(db ? db->duplicate_rows() : 0); });
        metrics.add_callback("transactions_total", "write transactions committed", "counter",
                             [this] { return static_cast<double>(db ? db->transactions() : 0); });
        metrics.add_callback("sessions", "logged-in sessions", "gauge",
                             [this] { return static_cast<double>(sessions.size()); });
        metrics.add_family_callback(
            "source_last_seen_timestamp_seconds", "when each (daemon, host) was last heard from", "gauge", [this] {
                std::vector<std::pair<bus::http::labels, double>> v;
                for (const auto& [k, ms] : last_seen)
                    v.push_back({bus::http::labels{{"daemon", k.first}, {"host", k.second}}, static_cast<double>(ms) / 1000.0});
                return v;
            });
    }

    // ---- the bus ----

    void settle(ledger_token t, bool ok)
    {
        auto now = std::chrono::system_clock::now();
        for (auto& a : held.resolve(t, ok)) {
            client.acknowledge(a.msg, a.ack ? bus::disposition::ack : bus::disposition::leave);
            if (a.ack && a.first) in.processed(a.event_id, now);
        }
    }
    net::awaitable<bus::disposition> on_message(const bus::message& m)
    {
        auto r = in.accept(m.frame, std::chrono::system_clock::now());
        if (r.decision == bus::intake_decision::keepalive) co_return bus::disposition::ack;
        common.events_in.inc();
        std::optional<recorded_event> rec;
        if (r.process()) {
            rec = from_intake(r, m.frame, now_ms());
        } else if (r.decision == bus::intake_decision::invalid) {
            rec = from_unknown_native(m.frame, now_ms());  // a type this build does not know yet
        }
        if (!rec) {
            bus::runtime::screen(r, m.id(), common, log, "herald");
            co_return bus::disposition::ack;
        }
        if (svc.stopping()) co_return bus::disposition::leave;
        if (held.attach(rec->id, m)) co_return bus::disposition::leave;  // answered with the first copy
        auto t = held.hold(m, r.process() ? r.ev->id : rec->id);
        std::vector<recorded_event> one;
        one.push_back(std::move(*rec));
        for (;;) {
            bool queued = db->submit(std::move(one), true, [this, t](bool ok, const std::string&) {
                net::post(svc.io(), [this, t, ok] { settle(t, ok); });
            });
            if (queued) break;
            // the writer is full: wait (the broker's prefetch bounds what waits here)
            bool waited = co_await svc.sleep_for(milliseconds(50));
            if (!waited) {
                settle(t, false);
                co_return bus::disposition::leave;
            }
        }
        co_return bus::disposition::leave;  // acknowledged after the commit
    }

    void subscribe_all()
    {
        for (const auto& t : cfg.topics) {
            auto so = bus::runtime::consumer_subscription(t, cfg.durable_name.empty() ? "" : cfg.durable_name + "." + t,
                                                          cfg.bus.client.client_id, cfg.prefetch, log, "herald");
            sub_ids.push_back(client.subscribe(so, [this](const bus::message& m) { return on_message(m); }));
        }
    }

    // ---- HTTP ----

    std::optional<bus::http::response> check(const bus::http::request& head)
    {
        if (bus::http::is_health_path(head.path)) return bus::http::health(head, metrics, [this] { return not_ready(); });
        return std::nullopt;
    }

    net::awaitable<bus::http::response> answer(bus::http::request& req)
    {
        try {
            auto r = co_await route(req);
            co_return r;
        } catch (const search_timeout& e) {
            log.warn("herald: {} {}: {}", req.method, bus::log_escape(req.path), e.what());
            co_return json_error(503, e.what());
        } catch (const store_error& e) {
            log.error("herald: {} {}: database: {}", req.method, bus::log_escape(req.path), e.what());
            co_return json_error(503, "database unavailable");
        }
    }

    // A query on the worker pool. The query lives on the heap and the named lambda holds only a
    // shared_ptr: GCC 12 destroys a temporary lambda's by-value captures twice here.
    net::awaitable<search_result> search(query q)
    {
        auto qp = std::make_shared<query>(std::move(q));
        auto* rd = readers.get();
        auto job = [rd, qp] { return rd->search(*qp); };
        auto res = co_await svc.blocking(job);
        co_return res;
    }

    // ---- who is asking ----

    struct auth_result {
        std::optional<principal> who;
        std::optional<bus::http::response> refusal;  ///< a forged proxy header
        std::string session_id;
    };

    // The proxy's header counts only from an allow-listed peer (the TCP peer, never
    // X-Forwarded-For); sent by anyone else it is refused, loudly. Otherwise the session cookie.
    auth_result authenticate(const bus::http::request& req)
    {
        auth_result a;
        if (!cfg.proxy_user_header.empty() && req.headers.count(cfg.proxy_user_header)) {
            auto user = std::string(req.header(cfg.proxy_user_header));
            bool trusted = bus::http::in_any(cfg.trusted_proxies, req.peer);
            if (!trusted) {
                log.warn("herald: {} header from {}, which is not a trusted proxy: refused", cfg.proxy_user_header,
                         req.peer);
                a.refusal = page(403, error_page(403, "the authentication header is accepted only from the trusted proxy"));
                return a;
            }
            if (user.empty() || user.size() > 200) {
                a.refusal = page(403, error_page(403, "empty user name from the proxy"));
                return a;
            }
            std::optional<role> rl = cfg.proxy_default_role;
            if (auto it = cfg.proxy_roles.find(user); it != cfg.proxy_roles.end()) rl = it->second;
            if (!rl) {
                a.refusal = page(403, error_page(403, "no role for this user"));
                return a;
            }
            a.who = principal{user, *rl, sha256_hex(server_secret + "\n" + user), true};
            return a;
        }
        a.session_id = cookie_value(req.header("cookie"), "herald_session");
        a.who = sessions.find(a.session_id, steady::now());
        return a;
    }

    static bool wants_html(const bus::http::request& req) { return !req.path.starts_with("/api/"); }

    bus::http::response login_redirect()
    {
        auto r = reply(303, "text/plain; charset=utf-8", "log in first\n");
        r.headers.emplace_back("Location", "/login");
        return r;
    }

    // The CSRF token of a state-changing request: form field `csrf` or header X-CSRF-Token.
    static std::string csrf_of(const bus::http::request& req)
    {
        if (auto h = req.header("x-csrf-token"); !h.empty()) return std::string(h);
        if (auto f = decode_form(req.body))
            for (auto& [k, v] : *f)
                if (k == "csrf") return v;
        return {};
    }

    static std::string form_field(const bus::http::request& req, std::string_view key)
    {
        if (auto f = decode_form(req.body))
            for (auto& [k, v] : *f)
                if (k == key) return v;
        return {};
    }

    // ---- routes ----

    net::awaitable<bus::http::response> route(bus::http::request& req)
    {
        if (req.path == "/ingest") {
            auto r = co_await ingest(req);
            co_return r;
        }
        if (req.path == "/herald.js") co_return reply(200, "text/javascript; charset=utf-8", std::string(page_script()));
        if (req.path == "/favicon.ico") co_return reply(404, "text/plain; charset=utf-8", "");
        if (req.path == "/herald.css") co_return reply(200, "text/css; charset=utf-8", std::string(page_style()));
        if (req.path == "/login") {
            auto r = co_await login(req);
            co_return r;
        }
        auto a = authenticate(req);
        if (a.refusal) co_return *a.refusal;
        if (!a.who) {
            if (wants_html(req) && req.method == "GET") co_return login_redirect();
            co_return json_error(401, "log in first");
        }
        const principal& who = *a.who;
        if (req.method == "POST") {
            // every state-changing request carries the session's CSRF token
            auto token = csrf_of(req);
            if (token.empty() || !same_secret(token, who.csrf)) {
                log.warn("herald: {} {} by {} from {} without a valid CSRF token: refused", req.method,
                         bus::log_escape(req.path), bus::log_escape(who.user), req.remote);
                co_return page(403, error_page(403, "missing or wrong CSRF token"));
            }
            if (req.path == "/logout") {
                sessions.erase(a.session_id);
                auto r = reply(303, "text/plain; charset=utf-8", "logged out\n");
                r.headers.emplace_back("Location", "/login");
                r.headers.emplace_back("Set-Cookie", session_cookie("herald_session", "", std::chrono::seconds(0), cfg.cookie_secure));
                co_return r;
            }
            if (req.path == "/note") {
                auto r = co_await note(req, who);
                co_return r;
            }
            if (req.path == "/deploy") {
                auto r = co_await start_deploy(req, who);
                co_return r;
            }
            if (req.path.starts_with("/deploy/job/") && req.path.ends_with("/stop"))
                co_return stop_deploy(req.path.substr(12, req.path.size() - 12 - 5), who);
            co_return page(404, error_page(404, "no such action"));
        }
        if (req.method != "GET" && req.method != "HEAD") co_return json_error(405, "method not allowed");
        page_context ctx{&who, who.csrf};
        if (req.path == "/" || req.path == "/api/events") {
            auto params = params_of(req.target);
            if (!params) co_return json_error(400, "malformed query string");
            auto pq = parse_query(*params, cfg.max_page);
            if (req.path == "/api/events") {
                if (!pq.error.empty()) co_return json_error(400, pq.error);
                auto res = co_await search(pq.q);
                co_return reply(200, "application/json", search_json(res) + "\n");
            }
            search_result res;
            if (pq.error.empty()) res = co_await search(pq.q);
            co_return page(pq.error.empty() ? 200 : 400, search_page(ctx, pq.q, res, pq.error));
        }
        if (req.path.starts_with("/event/") || req.path.starts_with("/api/event/")) {
            bool api = req.path.starts_with("/api/");
            auto num = std::string_view(req.path).substr(api ? 11 : 7);
            std::int64_t seq = 0;
            auto [p, ec] = std::from_chars(num.data(), num.data() + num.size(), seq);
            if (ec != std::errc{} || p != num.data() + num.size()) co_return json_error(404, "not found");
            auto* rd = readers.get();
            auto job = [rd, seq] { return rd->get(seq); };
            auto e = co_await svc.blocking(job);
            if (!e) co_return api ? json_error(404, "no such event") : page(404, error_page(404, "no such event"));
            if (api) co_return reply(200, "application/json", event_json(*e, true) + "\n");
            std::vector<recorded_event> related;
            if (!e->repo.empty() && !e->revision.empty()) {
                query rq;
                rq.repo = e->repo;
                rq.revision = e->revision;
                rq.limit = 100;
                related = (co_await search(rq)).rows;
            }
            co_return page(200, event_page(ctx, *e, related));
        }
        if (req.path == "/live" || req.path == "/api/live") {
            auto r = co_await live(req);
            co_return r;
        }
        if (req.path == "/deploy") {
            auto r = co_await deploy_index(req, ctx);
            co_return r;
        }
        if (req.path.starts_with("/deploy/job/")) {
            auto id = req.path.substr(12);
            auto r = co_await job_show(id, ctx);
            co_return r;
        }
        if (req.path.starts_with("/deploy/live/")) {
            auto id = req.path.substr(13);
            auto r = co_await job_live(req, id);
            co_return r;
        }
        co_return wants_html(req) ? page(404, error_page(404, "not found")) : json_error(404, "not found");
    }

    // GET /login: the form, with a pre-session CSRF token in a cookie and in the form (double
    // submit); POST /login checks it, then the password on the worker pool (PBKDF2 is slow on
    // purpose); an unknown user costs what a known one does.
    net::awaitable<bus::http::response> login(bus::http::request& req)
    {
        if (req.method == "GET") {
            // the browser's other requests (favicon ...) land here too: keep the token it has
            auto token = cookie_value(req.header("cookie"), "herald_pre");
            if (token.size() != 32 || token.find_first_not_of("0123456789abcdef") != std::string::npos) token = random_token(16);
            auto r = page(200, login_page(token, {}));
            r.headers.emplace_back("Set-Cookie", session_cookie("herald_pre", token, std::chrono::seconds(3600), cfg.cookie_secure));
            co_return r;
        }
        if (req.method != "POST") co_return json_error(405, "method not allowed");
        auto pre = cookie_value(req.header("cookie"), "herald_pre");
        auto token = form_field(req, "csrf");
        if (pre.empty() || !same_secret(pre, token)) {
            log.warn("herald: login from {} without a valid CSRF token: refused", req.remote);
            co_return page(403, error_page(403, "missing or wrong CSRF token"));
        }
        auto user = std::make_shared<std::string>(form_field(req, "user"));
        auto pass = std::make_shared<std::string>(form_field(req, "password"));
        if (!limiter.take("login:" + req.remote, 1, steady::now()))
            co_return page(429, login_page(pre, "too many attempts; wait a little"));
        auto it = users.find(*user);
        auto hash = std::make_shared<std::string>(it != users.end() ? it->second.password_hash : dummy_hash);
        auto job = [pass, hash] { return bus::check_password(*pass, *hash); };
        bool ok = co_await svc.blocking(job);
        if (!ok || it == users.end()) {
            log.warn("herald: failed login for {} from {}", bus::log_escape(*user), req.remote);
            co_return page(401, login_page(pre, "wrong user or password"));
        }
        auto id = sessions.create(*user, it->second.r, steady::now());
        log.info("herald: {} logged in from {} ({})", bus::log_escape(*user), req.remote, to_string(it->second.r));
        auto r = reply(303, "text/plain; charset=utf-8", "logged in\n");
        r.headers.emplace_back("Location", "/");
        r.headers.emplace_back("Set-Cookie", session_cookie("herald_session", id, cfg.session_ttl, cfg.cookie_secure));
        co_return r;
    }

    // POST /note (deployers): writes a note into the log (maintenance windows, "deploy frozen"),
    // recorded with the user, like every other record.
    net::awaitable<bus::http::response> note(bus::http::request& req, const principal& who)
    {
        if (who.r != role::deployer) {
            log.warn("herald: {} ({}) tried a deployer action: refused", bus::log_escape(who.user), to_string(who.r));
            co_return page(403, error_page(403, "this needs the deployer role"));
        }
        auto text = form_field(req, "text");
        if (text.empty() || text.size() > 2000) co_return page(400, error_page(400, "a note of 1 to 2000 characters"));
        nlohmann::json j{{"type", "note"}, {"message", text}, {"daemon", "herald"}, {"host", host}, {"user", who.user},
                         {"level", "info"}, {"id", "note-" + random_token(16)}};
        auto batch = decode_ingest("application/json", j.dump(), ingest_origin{"web:" + who.user, req.remote, ""}, now_ms(), 1);
        auto ok = co_await record(std::move(batch.records));
        if (!ok) co_return page(503, error_page(503, "not recorded; retry later"));
        auto r = reply(303, "text/plain; charset=utf-8", "recorded\n");
        r.headers.emplace_back("Location", "/");
        co_return r;
    }

    // GET /live: server-sent events. Each request answers with what is newer than Last-Event-ID
    // (or `after`), waiting up to live-wait-seconds for something; the browser's EventSource
    // reconnects (retry: 500 ms) with the last id, so nothing is missed across reconnects.
    net::awaitable<bus::http::response> live(bus::http::request& req)
    {
        auto params = params_of(req.target);
        if (!params) co_return json_error(400, "malformed query string");
        auto pq = parse_query(*params, cfg.max_page);
        if (!pq.error.empty()) co_return json_error(400, pq.error);
        if (auto last = req.header("last-event-id"); !last.empty()) {
            std::int64_t v = 0;
            auto [p, ec] = std::from_chars(last.data(), last.data() + last.size(), v);
            if (ec == std::errc{} && p == last.data() + last.size()) pq.q.after = v;
        }
        if (!pq.q.after) pq.q.after = last_seq;
        pq.q.before.reset();
        pq.q.limit = std::min<std::size_t>(pq.q.limit, 200);
        const bool api = req.path.starts_with("/api/");
        auto deadline = steady::now() + cfg.sse_wait;
        std::string body = "retry: 500\n\n";
        while (!svc.stopping()) {
            if (*pq.q.after < last_seq) {
                auto res = co_await search(pq.q);
                for (const auto& e : res.rows) {
                    body += sse_event(e.seq, api ? "event" : "row", api ? event_json(e, false) : table_row(e));
                    pq.q.after = e.seq;
                }
                if (!res.rows.empty()) break;
                // newer rows exist but none match: skip past them
                pq.q.after = last_seq;
            }
            if (steady::now() >= deadline) break;
            co_await news.async_wait(net::as_tuple(net::use_awaitable));
        }
        if (body.size() < 20) body += ": nothing new\n\n";
        auto r = reply(200, "text/event-stream; charset=utf-8", std::move(body));
        co_return r;
    }

    // Records rows through the writer; true once committed.
    net::awaitable<bool> record(std::vector<recorded_event> rows)
    {
        if (!db_failure.empty()) co_return false;
        auto result = std::make_shared<bool>(false);
        auto done = std::make_shared<net::steady_timer>(svc.io(), steady::time_point::max());
        bool queued = db->submit(std::move(rows), false, [this, result, done](bool ok, const std::string&) {
            net::post(svc.io(), [result, done, ok] {
                *result = ok;
                done->cancel();
            });
        });
        if (!queued) co_return false;
        co_await done->async_wait(net::as_tuple(net::use_awaitable));
        co_return *result;
    }

    // POST /ingest: token, size (the server's max-body), rate, then the writer; answered after
    // the commit (200), or 503 when the database fails (the client may retry: same id).
    net::awaitable<bus::http::response> ingest(bus::http::request& req)
    {
        if (req.method != "POST") {
            auto r = json_error(405, "use POST");
            r.headers.emplace_back("Allow", "POST");
            co_return r;
        }
        const ingest_token* tok = ingest_auth(cfg.ingest_tokens, req.header("authorization"));
        if (!tok) {
            refused_ingest.inc();
            log.warn("herald: /ingest from {}: no valid token", req.remote);
            auto r = json_error(401, "a valid ingest token is required (Bearer, or Basic with the token's name)");
            r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"herald ingest\"");
            co_return r;
        }
        auto batch = decode_ingest(req.header("content-type"), req.body,
                                   ingest_origin{tok->name, req.remote, tok->system}, now_ms(), cfg.ingest_max_records);
        if (!batch.error.empty()) {
            refused_ingest.inc();
            co_return json_error(400, batch.error);
        }
        if (!limiter.take(tok->name, static_cast<double>(batch.records.size()), steady::now())) {
            refused_ingest.inc();
            auto r = json_error(429, "rate limit: slow down");
            r.headers.emplace_back("Retry-After", "1");
            co_return r;
        }
        if (!db_failure.empty()) co_return json_error(503, "database failing; retry later");
        const auto n = batch.records.size();
        bool ok = co_await record(std::move(batch.records));
        if (!ok) co_return json_error(503, "not recorded; retry later");
        ingested.inc(static_cast<double>(n));
        nlohmann::json j{{"recorded", n}};
        co_return reply(200, "application/json", j.dump() + "\n");
    }

    // ---- the deploy page ----

    // A session request as `user`: herald's bus settings on a connection of its own (no
    // client-id: nothing durable), the deploy section's destinations and defaults, and the
    // user's own signing key when user-keys-file has one (the agents then see the user as the
    // verified caller), else herald's key when signing is on. A rollout without the user's key
    // is refused before this (start_deploy); questions (discover, tags) fall back to herald's.
    std::shared_ptr<deploy::cli::session_request> deploy_request(const std::string& user)
    {
        auto req = std::make_shared<deploy::cli::session_request>();
        req->cfg = cfg.deploy.base;
        req->cfg.bus = cfg.bus;
        req->cfg.bus.client.client_id.clear();
        req->cfg.caller = user;
        if (cfg.deploy.per_user_keys) {
            const auto* k = cfg.deploy.user_keys.find(user);
            if (k) req->cfg.bus.signing = *k;
        }
        return req;
    }

    // `discover` (every node, its repos) or `tags` of a repo, as `user`; the answer or why not.
    net::awaitable<std::pair<nlohmann::json, std::string>> ask_agents(std::string name, std::string repo, std::string user)
    {
        auto req = deploy_request(user);
        req->cmd.name = std::move(name);
        req->cmd.repo = std::move(repo);
        auto answer = std::make_shared<nlohmann::json>();
        auto errors = std::make_shared<std::ostringstream>();
        req->sinks.err = errors.get();
        req->sinks.on_result = [answer](const nlohmann::json& j) { *answer = j; };
        auto ex = svc.executor();
        auto task = deploy::cli::run_session(ex, req, log);
        int rc = co_await std::move(task);
        std::string why;
        if (answer->is_null()) {
            why = errors->str();
            if (why.empty()) why = "no answer (exit " + std::to_string(rc) + ")";
        }
        co_return std::make_pair(std::move(*answer), std::move(why));
    }

    std::vector<std::string> running_jobs() const
    {
        std::vector<std::string> v;
        for (const auto& [id, ro] : rollouts)
            if (!ro->done) v.push_back(id);
        return v;
    }

    // GET /deploy[?repo=R]: the repos the agents have, a repo's tags on every node and its
    // nodes, the form, the running and the past deploys.
    net::awaitable<bus::http::response> deploy_index(bus::http::request& req, const page_context& ctx)
    {
        deploy_view v;
        v.defaults = cfg.deploy.base.defaults;
        if (auto params = params_of(req.target))
            for (auto& [k, val] : *params)
                if (k == "repo") v.repo = val;
        if (!v.repo.empty() && (!bus::valid_repo_name(v.repo) || v.repo.find('/') != std::string::npos))
            co_return page(400, error_page(400, "not a repository name"));
        std::string user = ctx.who->user;
        auto asked = co_await ask_agents(v.repo.empty() ? "discover" : "tags", v.repo, user);
        v.answer = std::move(asked.first);
        v.discovery_error = std::move(asked.second);
        std::set<std::string> repos;
        if (v.answer.is_object() && v.answer.contains("discovered"))
            for (const auto& [id, n] : v.answer["discovered"].items())
                for (const auto& r : n.value("repos", nlohmann::json::array()))
                    if (r.is_object() && r.value("name", nlohmann::json()).is_string()) repos.insert(r["name"].get<std::string>());
        if (!v.repo.empty()) repos.insert(v.repo);
        v.repos.assign(repos.begin(), repos.end());
        v.running = running_jobs();
        query q;
        q.type = "deploy.job";
        q.limit = 500;
        auto res = co_await search(q);
        v.past = past_jobs(res.rows, 50);
        co_return page(200, deploy_page(ctx, v));
    }

    // POST /deploy (deployers, CSRF checked by route()): the form through the CLI's checks;
    // refused before anything is sent; one rollout per repo, max-rollouts at once.
    net::awaitable<bus::http::response> start_deploy(bus::http::request& req, const principal& who)
    {
        if (who.r != role::deployer) {
            log.warn("herald: {} ({}) tried to deploy: refused", bus::log_escape(who.user), to_string(who.r));
            co_return page(403, error_page(403, "deploying needs the deployer role"));
        }
        auto fields = decode_form(req.body);
        if (!fields) co_return page(400, error_page(400, "malformed form"));
        auto f = parse_deploy_form(*fields, cfg.deploy.base.defaults);
        if (!f.error.empty()) {
            log.warn("herald: deploy by {} refused: {}", bus::log_escape(who.user), bus::log_escape(f.error));
            co_return page(400, error_page(400, "refused, nothing was sent: " + f.error));
        }
        if (cfg.deploy.per_user_keys && !cfg.deploy.user_keys.find(who.user))
            co_return page(403, error_page(403, "no signing key for " + who.user + " in the deploy user-keys-file"));
        if (auto it = repo_busy.find(f.cmd.repo); it != repo_busy.end())
            co_return page(409, error_page(409, "a rollout of " + f.cmd.repo + " is running: job " + it->second));
        if (running_rollouts >= cfg.deploy.max_rollouts)
            co_return page(503, error_page(503, "too many rollouts running; retry when one has finished"));
        auto ro = std::make_shared<rollout_run>();
        ro->job_id = "j-" + random_token(8);
        ro->repo = f.cmd.repo;
        ro->tag = f.cmd.tag;
        ro->user = who.user;
        ro->req = deploy_request(who.user);
        ro->req->cmd = std::move(f.cmd);
        ro->req->cmd.job_id = ro->job_id;
        ro->req->sinks.out = &ro->progress;
        ro->req->sinks.err = &ro->progress;
        rollout_run* raw = ro.get();  // the sinks live in *ro: they cannot outlive it
        ro->req->sinks.on_job = [this, raw](const nlohmann::json& j) {
            raw->job = j;
            ++raw->version;
            news.cancel();
        };
        ro->req->sinks.on_result = ro->req->sinks.on_job;
        rollouts[ro->job_id] = ro;
        repo_busy[ro->repo] = ro->job_id;
        ++running_rollouts;
        log.info("herald: {} deploys {} {} as job {}", bus::log_escape(who.user), ro->repo, ro->tag, ro->job_id);
        svc.spawn(run_rollout(ro), "herald: rollout " + ro->job_id);
        auto r = reply(303, "text/plain; charset=utf-8", "started\n");
        r.headers.emplace_back("Location", "/deploy/job/" + ro->job_id);
        co_return r;
    }

    // POST /deploy/job/<job>/stop (deployers, CSRF checked by route()): the rollout stops after
    // its current batch, as the CLI's first Ctrl-C; the nodes of that batch finish their deploy.
    bus::http::response stop_deploy(const std::string& id, const principal& who)
    {
        if (who.r != role::deployer) {
            log.warn("herald: {} ({}) tried to stop job {}: refused", bus::log_escape(who.user), to_string(who.r),
                     bus::log_escape(id));
            return page(403, error_page(403, "stopping a rollout needs the deployer role"));
        }
        auto it = deploy::valid_id(id) ? rollouts.find(id) : rollouts.end();
        if (it == rollouts.end()) return page(404, error_page(404, "no such rollout of this herald"));
        auto& ro = *it->second;
        if (ro.done) return page(409, error_page(409, "job " + id + " has already ended"));
        if (ro.stopped_by.empty()) {
            ro.stopped_by = who.user;
            ro.progress << "herald: " << who.user << " asked to stop: the rollout ends after the current batch\n";
            log.info("herald: {} stops job {} ({} {} by {}) after the current batch", bus::log_escape(who.user), id,
                     ro.repo, ro.tag, bus::log_escape(ro.user));
            if (ro.req->interrupt) ro.req->interrupt();
            ++ro.version;
            news.cancel();
        }
        auto r = reply(303, "text/plain; charset=utf-8", "stopping\n");
        r.headers.emplace_back("Location", "/deploy/job/" + id);
        return r;
    }

    net::awaitable<void> run_rollout(std::shared_ptr<rollout_run> ro)
    {
        auto ex = svc.executor();
        auto task = deploy::cli::run_session(ex, ro->req, log);
        int rc = deploy::cli::exit_failed;
        try {
            rc = co_await std::move(task);
        } catch (const std::exception& e) {
            ro->progress << "herald: " << e.what() << "\n";
        }
        ro->rc = rc;
        ro->done = true;
        ++ro->version;
        repo_busy.erase(ro->repo);
        --running_rollouts;
        finished.push_back(ro->job_id);
        while (finished.size() > cfg.deploy.keep_finished) {
            rollouts.erase(finished.front());
            finished.pop_front();
        }
        news.cancel();
        log.info("herald: job {} ({} {} by {}) ended: exit {}", ro->job_id, ro->repo, ro->tag, bus::log_escape(ro->user), rc);
        // The job with every node's stages and their output, and the progress lines, recorded
        // with the user: past deploys show them after a restart too.
        auto job = ro->job;
        if (job.contains("nodes_detail"))
            for (auto& [n, d] : job["nodes_detail"].items())
                if (d.contains("detail") && d["detail"].contains("stages") && d["detail"]["stages"].is_array())
                    for (auto& st : d["detail"]["stages"])
                        if (st.contains("output") && st["output"].is_string() && st["output"].get<std::string>().size() > 16384)
                            st["output"] = st["output"].get<std::string>().substr(0, 16384) + "…[truncated]";
        auto progress = ro->progress.str();
        if (progress.size() > 65536) progress = progress.substr(0, 65536) + "…[truncated]";
        auto state = job.value("state", std::string("failed"));
        nlohmann::json rec{{"type", "deploy.output"}, {"id", "deploy-output-" + ro->job_id}, {"daemon", "herald"},
                           {"host", host}, {"user", ro->user}, {"repo", ro->repo}, {"revision", ro->tag},
                           {"job_id", ro->job_id}, {"state", state}, {"exit", rc},
                           {"level", rc == 0 ? "info" : "error"},
                           {"message", "deploy " + ro->repo + " " + ro->tag + " by " + ro->user + ": " + state + " (job " +
                                           ro->job_id + ")"},
                           {"job", job}, {"progress", progress}};
        auto batch = decode_ingest("application/json", rec.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace),
                                   ingest_origin{"web:" + ro->user, "herald", ""}, now_ms(), 1);
        bool ok = co_await record(std::move(batch.records));
        if (!ok) log.error("herald: the output of job {} was not recorded", ro->job_id);
    }

    // What herald knows of a job: its own rollout, else the recorded deploy.output (a
    // rollout of this herald before a restart) or the newest deploy.job event; with the
    // agents' audit records of it.
    net::awaitable<std::optional<job_view>> job_of(const std::string& id)
    {
        job_view v;
        v.job_id = id;
        if (auto it = rollouts.find(id); it != rollouts.end()) {
            v.job = it->second->job;
            v.progress = it->second->progress.str();
            v.running = !it->second->done;
            v.stopped_by = it->second->stopped_by;
            co_return v;
        }
        query q;
        q.text = id;
        q.limit = 500;
        auto res = co_await search(q);
        bool found = false;
        for (const auto& e : res.rows) {  // newest first
            auto d = nlohmann::json::parse(e.data, nullptr, false);
            if (!d.is_object() || d.value("job_id", nlohmann::json()) != id) continue;
            if (e.type == "deploy.output" && !found) {
                v.job = d.value("job", nlohmann::json::object());
                v.progress = d.value("progress", std::string());
                found = true;
            } else if (e.type == "deploy.job" && v.job.is_null()) {
                v.job = d;
            } else if (e.type == "deploy.audit" && v.audits.size() < 1000) {
                v.audits.push_back(e);
            }
        }
        if (v.job.is_null() && v.audits.empty()) co_return std::nullopt;
        co_return v;
    }

    net::awaitable<bus::http::response> job_show(std::string id, const page_context& ctx)
    {
        if (!deploy::valid_id(id)) co_return page(404, error_page(404, "no such job"));
        auto v = co_await job_of(id);
        if (!v) co_return page(404, error_page(404, "no such job"));
        co_return page(200, job_page(ctx, *v));
    }

    // GET /deploy/live/<job>: server-sent events, the job's state (an HTML fragment) whenever it
    // changed since Last-Event-ID; "done" once the rollout has ended. As /live: one answer per
    // request, the browser reconnects.
    net::awaitable<bus::http::response> job_live(bus::http::request& req, std::string id)
    {
        auto it = rollouts.find(id);
        if (it == rollouts.end()) co_return json_error(404, "not a rollout of this herald");
        auto ro = it->second;
        std::int64_t seen = 0;
        if (auto last = req.header("last-event-id"); !last.empty())
            std::from_chars(last.data(), last.data() + last.size(), seen);
        auto deadline = steady::now() + cfg.sse_wait;
        std::string body = "retry: 500\n\n";
        while (!svc.stopping()) {
            if (ro->version != seen) {
                job_view v{ro->job_id, ro->job, ro->progress.str(), {}, !ro->done};
                body += sse_event(ro->version, ro->done ? "done" : "job", job_fragment(v));
                break;
            }
            if (steady::now() >= deadline) break;
            co_await news.async_wait(net::as_tuple(net::use_awaitable));
        }
        if (body.size() < 20) body += ": nothing new\n\n";
        co_return reply(200, "text/event-stream; charset=utf-8", std::move(body));
    }

    // ---- life cycle ----

    net::awaitable<void> ticker()
    {
        while (!svc.stopping()) {
            bool slept = co_await svc.sleep_for(milliseconds(1000));
            news.cancel();  // live-feed waiters look again (their deadline)
            if (alerting) alerting->tick(std::chrono::system_clock::now());
            if (!slept) break;
        }
    }

    net::awaitable<void> drain()
    {
        for (auto& [id, ro] : rollouts)  // stop after the current batch, as the CLI's Ctrl-C
            if (!ro->done && ro->req->interrupt) ro->req->interrupt();
        http.stop();
        news.cancel();
        co_await http.drain(std::chrono::seconds(5));
        out.stop();
        client.stop();
    }
};

net::awaitable<void> announce_ready(daemon_state* d)
{
    std::size_t n = 0;
    while (n < d->sub_ids.size() && !d->svc.stopping()) {
        bool ok = co_await d->client.wait_subscribed(d->sub_ids[n], std::chrono::seconds(1));
        if (ok) d->subscribed = ++n;
    }
    if (n == d->sub_ids.size() && !d->svc.stopping()) {
        d->log.info("herald: subscribed to {} topic(s)", n);
        d->svc.ready("recording " + std::to_string(n) + " topic(s); pages on " + d->cfg.listen_address + ":" +
                     std::to_string(d->http.port()));
    }
}

} // namespace

int run(const bus::runtime::common_options& opts, spdlog::logger& log)
{
    auto cfg = load_config(opts.config_path, [&](std::string_view n) { log.info("herald: {}", n); });
#ifdef HERALD_ALERTS_USE_CURL
    // The alerts' mail and webhooks load libcurl at their first send (curl_init.hpp); that it can
    // be loaded is checked now, so a missing library stops the start, not the first alert.
    if (cfg.alerts)
        if (auto e = deploykit::curl_library_check(); !e.empty()) throw std::runtime_error(e);
#endif
    if (opts.check_config) return 0;
    bus::runtime::service svc(opts, log, {.drain_deadline = std::chrono::seconds(8), .workers = 4});
    daemon_state d(svc, opts.config_path, std::move(cfg));
    d.open_store();
    d.register_metrics();
    if (d.cfg.alerts)
        d.alerting = alerts::make_engine(d.cfg.alerts, alerts::context{&svc, &d.client, &d.out, &d.cfg.bus, &d.metrics,
                                                                       d.host, "deploykit.alerts",
                                                                       d.cfg.store.path.string() + ".alerts.json"});
    if (d.alerting) {
        // the last heartbeat of each source, so a restart does not forget it
        for (const auto& s : d.readers->sources()) {
            recorded_event e;
            e.type = "heartbeat";
            e.daemon = s.daemon;
            e.host = s.host;
            e.time_ms = e.received_ms = s.last_ms;
            d.alerting->on_event(e);
        }
    }
    d.readers->release_memory();  // start-up's reads are done: their pages are not needed at idle
    d.subscribe_all();
    d.http.listen();
    log.info("herald {} recording {} topic(s) into {}; pages on {}{}:{}", bus::runtime::version(), d.cfg.topics.size(),
             d.cfg.store.path.string(), d.http.tls() ? "https://" : "http://", d.cfg.listen_address, d.http.port());
    if (d.cfg.admin_listen) svc.serve_admin(*d.cfg.admin_listen, d.metrics, [&d] { return d.not_ready(); });
    svc.on_stop([&] { return d.drain(); });
    svc.spawn(d.client.run(), "herald: bus client", bus::runtime::task::critical);
    svc.spawn(d.out.run(), "herald: outbox");
    svc.spawn(d.http.run(), "herald: accepting", bus::runtime::task::critical);
    svc.spawn(d.ticker(), "herald: ticker");
    svc.spawn(bus::runtime::heartbeat(svc, d.client, d.cfg.heartbeat, "herald",
                                      [&d] {
                                          return std::map<std::string, std::uint64_t>{
                                              {"recorded", d.db->committed_rows()},
                                              {"duplicates", d.db->duplicate_rows()},
                                              {"pending", d.held.size()}};
                                      },
                                      d.cfg.bus.signing),
              "herald: heartbeat");
    net::co_spawn(svc.io(), announce_ready(&d), net::detached);
    int rc = svc.run();
    d.db->stop();  // finishes the queue (acknowledgements no longer matter: the broker redelivers)
    return rc;
}

} // namespace herald
