// stompctl: publish to and subscribe from a STOMP destination through libbus — the tool to
// debug the bus with, in the spirit of mosquitto_pub/mosquitto_sub.
//
// Exit codes: 0 success; 1 not accepted (no receipt before the deadline, connection failed);
// 2 usage or configuration error; 3 the broker answered ERROR (or refused a subscription for
// a reason waiting will not change); 128+N ended by signal N (SIGINT 130, SIGTERM 143).
#include "bus/client.hpp"
#include "bus/config.hpp"
#include "bus/delivery.hpp"
#include "bus/intake.hpp"
#include "bus/signing.hpp"

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
#include <yaml-cpp/yaml.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <fstream>
#include <iostream>
#include <iterator>
#include <optional>
#include <sstream>

namespace net = boost::asio;
using std::chrono::milliseconds;

namespace {

struct common_args {
    std::string url = "stomp://127.0.0.1:61613";
    std::string options;
    std::string login;
    std::string passcode_file;
    std::string vhost;
    std::string client_id;
    std::string protocol = "negotiate";
    double timeout = 10;
    bool verbose = false;
    bool insecure = false;
    std::string ca_file;
    // Liveness (docs/brokers.md "Keepalive tuning"); unset = libbus's defaults.
    std::optional<long> heartbeat_ms, keepalive_ms, probe_ms, probe_timeout_ms;
    std::optional<double> dead_link_grace;
};

struct publish_args {
    std::string spool;
    std::string key_file;
    std::string key_id;
    std::string destination;
    std::vector<std::string> headers;
    std::string message;
    std::string file;
    int count = 1;
    int window = 1000;
    bool stats = false;
};

struct subscribe_args {
    std::string destination;
    std::string ack = "auto";
    std::string durable;
    std::string durable_style = "both";
    int count = 0;
    double wait = 0;
    bool json = false;
    bool headers = false;
    bool keepalives = false;
    std::string ready_file;
    unsigned prefetch = 0;
    bool events = false;
    bool require_signatures = false;
    std::string key_file;
    std::vector<std::string> extra_headers;
};

struct drain_args {
    std::string spool;
    std::string config;
};

// Set by the first SIGINT/SIGTERM: every command then ends promptly and reports what is unfinished.
int interrupted = 0;

std::string read_secret(const std::string& path)
{
    std::ifstream in(path);
    if (!in) throw bus::config_error("cannot read passcode file " + path);
    std::string s((std::istreambuf_iterator<char>(in)), {});
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
}

void apply_liveness(const common_args& a, bus::client_options& o)
{
    auto ms = [](std::optional<long> v, std::chrono::milliseconds& out) {
        if (!v) return;
        if (*v < 0) throw bus::config_error("keepalive settings must not be negative");
        out = milliseconds(*v);
    };
    if (a.heartbeat_ms) o.heartbeat_send = o.heartbeat_receive = milliseconds(std::max(0L, *a.heartbeat_ms));
    ms(a.heartbeat_ms, o.heartbeat_send);
    ms(a.keepalive_ms, o.synthetic_keepalive);
    ms(a.probe_ms, o.liveness_probe);
    ms(a.probe_timeout_ms, o.probe_timeout);
    if (a.dead_link_grace) {
        if (!(*a.dead_link_grace >= 1.0 && *a.dead_link_grace <= 100.0))
            throw bus::config_error("--dead-link-grace must be from 1 to 100");
        o.dead_link_grace = *a.dead_link_grace;
    }
}

bus::client_options make_options(const common_args& a)
{
    auto o = bus::options_from_url(a.url, a.options);
    for (auto& ep : o.url.endpoints) {
        if (!a.login.empty()) ep.login = a.login;
        if (!a.passcode_file.empty()) ep.passcode = read_secret(a.passcode_file);
    }
    o.vhost = a.vhost;
    o.client_id = a.client_id;
    if (a.protocol == "1.0") o.protocol = bus::protocol_mode::v1_0;
    else if (a.protocol != "negotiate") throw bus::config_error("--protocol must be negotiate or 1.0");
    o.receipt_timeout = milliseconds(static_cast<long>(a.timeout * 1000));
    o.connect_timeout = std::min(o.connect_timeout, o.receipt_timeout);
    o.tls.ca_file = a.ca_file;
    o.tls.verify = !a.insecure;
    apply_liveness(a, o);
    return o;
}

std::pair<std::string, std::string> split_header(const std::string& h)
{
    auto colon = h.find(':');
    if (colon == std::string::npos || colon == 0)
        throw bus::config_error("header '" + h + "' must be name:value");
    return {h.substr(0, colon), h.substr(colon + 1)};
}

// A one-shot signal: set once, waited for with an optional deadline.
struct latch {
    explicit latch(net::any_io_executor ex) : timer(ex) {}
    net::steady_timer timer;
    bool set = false;
    void fire()
    {
        set = true;
        timer.cancel();
    }
    net::awaitable<void> wait(std::chrono::steady_clock::time_point deadline)
    {
        if (set) co_return;
        timer.expires_at(deadline);
        co_await timer.async_wait(net::as_tuple(net::use_awaitable));
    }
};

// Runs the client; when it ends (stopped, or attempts exhausted) cancels `finished`, which the
// publish/subscribe task waits on besides its own condition.
// The exit code is the task's to set: a publish that was spooled succeeded even though the
// client gave up connecting.
net::awaitable<void> run_client(bus::client& c, latch& finished)
{
    try {
        co_await c.run();
    } catch (const std::system_error& e) {
        std::cerr << "stompctl: " << e.what()
                  << (c.last_error().empty() ? "" : " (" + c.last_error() + ")") << "\n";
    }
    finished.fire();
}

struct publish_state {
    explicit publish_state(net::any_io_executor ex) : wake(std::move(ex)) {}
    net::steady_timer wake;
    int done = 0, receipted = 0, unknown = 0;
    std::error_code first_error;
};

// A free coroutine with shared state: it may outlive an interrupted do_publish.
net::awaitable<void> publish_one(bus::client* c, bus::stomp::frame f, milliseconds timeout,
                                 std::shared_ptr<publish_state> st)
{
    auto r = co_await c->send(std::move(f), timeout);
    if (r) ++st->receipted;
    else {
        if (r.status == bus::publish_status::unknown) ++st->unknown;
        if (!st->first_error) st->first_error = r.error;
    }
    ++st->done;
    st->wake.cancel();
}

net::awaitable<void> do_publish(bus::client& c, const common_args& a, const publish_args& p,
                                std::string body, int& rc, latch&)
{
    bus::stomp::frame f("SEND");
    f.add("destination", p.destination);
    for (auto& h : p.headers) {
        auto [k, v] = split_header(h);
        f.add(k, v);
    }
    f.body = std::move(body);
    if (!p.key_file.empty()) {
        auto keys = bus::keyring::load_file(p.key_file);
        const bus::signing_key* k = keys.find(p.key_id);
        if (!k) throw bus::config_error("key id '" + p.key_id + "' is not in " + p.key_file);
        bus::sign(f, *k, std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch()).count());
    }
    auto start = std::chrono::steady_clock::now();
    if (!p.spool.empty()) {
        // Producer mode: never lose it. Receipted now, or spooled for `stompctl drain` — at
        // most --window in flight, and a copy whose first attempt was written without a receipt
        // is spooled marked possibly sent.
        bus::outbox box({.dir = p.spool});
        net::thread_pool pool(1);
        auto deadline = start + milliseconds(static_cast<long>(a.timeout * 1000));
        std::vector<bus::stomp::frame> frames(static_cast<std::size_t>(p.count), f);
        auto rep = co_await bus::publish_or_spool(c, box, std::move(frames), pool.get_executor(), deadline,
                                                  static_cast<std::size_t>(p.window));
        pool.join();
        if (rep.spooled > 0)
            std::cerr << "stompctl: " << rep.spooled << " message(s) spooled in " << p.spool
                      << " for later delivery (" << rep.possibly_sent
                      << " of them possibly sent already: written without a receipt, marked "
                      << bus::possibly_sent_header << ")\n";
        if (interrupted)
            std::cerr << "stompctl: interrupted: " << rep.published << " of " << p.count << " receipted, "
                      << rep.spooled << " spooled\n";
        c.stop();
        co_return;
    }
    // Keep up to `window` publishes in flight; each completes on its own receipt (or deadline).
    auto st = std::make_shared<publish_state>(co_await net::this_coro::executor);
    const auto timeout = milliseconds(static_cast<long>(a.timeout * 1000));
    int next = 0;
    for (;;) {
        while (!interrupted && next < p.count && next - st->done < p.window) {
            ++next;
            net::co_spawn(st->wake.get_executor(), publish_one(&c, f, timeout, st), net::detached);
        }
        // A publish may complete inside co_spawn (a stopped client answers at once): wait only
        // while one is in flight, so no wake-up is lost.
        if (next == st->done) {
            if (interrupted || next >= p.count) break;
            continue;
        }
        st->wake.expires_at(std::chrono::steady_clock::time_point::max());
        co_await st->wake.async_wait(net::as_tuple(net::use_awaitable));
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    int failed = p.count - st->receipted;
    if (interrupted) {
        std::cerr << "stompctl: interrupted: " << failed << " of " << p.count << " message(s) not receipted ("
                  << st->unknown << " written without a receipt, " << failed - st->unknown
                  << " not sent)\n";
    } else if (failed) {
        std::cerr << "stompctl: " << failed << " of " << p.count
                  << " not accepted: " << st->first_error.message()
                  << (c.last_error().empty() ? "" : " (" + c.last_error() + ")") << "\n";
        rc = st->first_error == bus::errc::broker_error ? 3 : 1;
    }
    if (p.stats)
        std::cout << nlohmann::json{{"client", "stompctl"}, {"count", p.count},
                                    {"size", f.body.size()}, {"seconds", secs},
                                    {"msgs_per_s", p.count / secs}, {"failed", failed}}
                         .dump()
                  << std::endl;
    c.stop();
}

bus::ack_mode parse_ack(const std::string& s)
{
    if (s == "auto") return bus::ack_mode::automatic;
    if (s == "client") return bus::ack_mode::client;
    if (s == "client-individual") return bus::ack_mode::client_individual;
    throw bus::config_error("--ack must be auto, client or client-individual");
}

bus::durable_style parse_style(const std::string& s)
{
    if (s == "rabbitmq") return bus::durable_style::rabbitmq;
    if (s == "activemq") return bus::durable_style::activemq;
    if (s == "both") return bus::durable_style::both;
    throw bus::config_error("--durable-style must be rabbitmq, activemq or both");
}

void print_message(const bus::message& m, const subscribe_args& s)
{
    if (s.json) {
        nlohmann::json h = nlohmann::json::array();
        for (auto& [k, v] : m.frame.headers) h.push_back({k, v});
        nlohmann::json j{{"destination", m.destination()},
                         {"message_id", m.id()},
                         {"redelivered", m.redelivered},
                         {"headers", h},
                         {"body", m.body()}};
        std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    } else {
        if (s.headers) {
            for (auto& [k, v] : m.frame.headers) std::cout << k << ":" << v << "\n";
            std::cout << "\n";
        }
        std::cout << m.body();
        if (m.body().empty() || m.body().back() != '\n') std::cout << "\n";
    }
    std::cout.flush();
}

net::awaitable<void> do_subscribe(bus::client& c, const common_args& a, const subscribe_args& s,
                                  int& rc, latch& done)
{
    int received = 0;
    bus::subscription_options o;
    o.destination = s.destination;
    o.ack = parse_ack(s.ack);
    o.durable_name = s.durable;
    o.durable = s.durable.empty() ? bus::durable_style::none : parse_style(s.durable_style);
    o.deliver_keepalives = s.keepalives;
    o.prefetch = s.prefetch;
    for (auto& h : s.extra_headers) o.headers.push_back(split_header(h));
    std::optional<bus::intake> in;
    if (s.events) {
        bus::keyring keys;
        if (!s.key_file.empty()) keys = bus::keyring::load_file(s.key_file);
        in.emplace(bus::intake_options{.require_signatures = s.require_signatures}, std::move(keys));
    }
    auto id = c.subscribe(o, [&](const bus::message& m) -> net::awaitable<bus::disposition> {
        if (in) {
            // Decoded events, as a deploykit consumer sees them.
            auto now = std::chrono::system_clock::now();
            auto r = in->accept(m.frame, now);
            if (!r.process()) {
                if (r.decision != bus::intake_decision::keepalive) std::cerr << "stompctl: dropped " << m.id() << ": " << r.reason << "\n";
                co_return bus::disposition::ack;
            }
            if (s.count > 0 && received >= s.count) co_return bus::disposition::leave;
            auto j = bus::to_json(*r.ev);
            j["legacy"] = r.legacy;
            std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
            in->processed(r.ev->id, now);
            if (s.count > 0 && ++received >= s.count) done.fire();
            co_return bus::disposition::ack;
        }
        // Messages the broker delivered beyond --count stay unacknowledged: it redelivers them
        // to the next consumer once we disconnect.
        if (s.count > 0 && received >= s.count) co_return bus::disposition::leave;
        print_message(m, s);
        if (s.count > 0 && ++received >= s.count) done.fire();
        co_return bus::disposition::ack;
    });
    // With --wait the whole window may go to getting subscribed (a refused subscription is
    // retried on its own short schedule); it ends non-zero if that never happens.
    const auto started = std::chrono::steady_clock::now();
    const auto until = started + milliseconds(static_cast<long>(s.wait * 1000));
    auto confirm = s.wait > 0 ? std::chrono::duration_cast<milliseconds>(until - started)
                              : milliseconds(static_cast<long>(a.timeout * 1000));
    if (!co_await c.wait_subscribed(id, confirm)) {
        auto st = c.subscription(id);
        if (interrupted) {
            std::cerr << "stompctl: interrupted before the subscription to " << s.destination << " was confirmed\n";
        } else if (st.permanent) {
            std::cerr << "stompctl: the broker refused the subscription to " << s.destination << ": " << st.refused
                      << " (not retried: this will not change by waiting)\n";
            rc = 3;
        } else {
            std::cerr << "stompctl: never subscribed to " << s.destination;
            if (st.refusals > 0) std::cerr << ": refused " << st.refusals << " time(s), last: " << st.refused;
            else if (!c.last_error().empty()) std::cerr << " (" << c.last_error() << ")";
            std::cerr << "\n";
            rc = 1;
        }
        c.unsubscribe(id);  // the handler refers to this frame's locals
        c.stop();
        co_return;
    }
    if (!s.ready_file.empty()) std::ofstream(s.ready_file) << "ready\n";
    co_await done.wait(s.wait > 0 ? until : std::chrono::steady_clock::time_point::max());
    if (s.count > 0 && received < s.count) {
        std::cerr << "stompctl: " << (interrupted ? "interrupted: " : "") << "received " << received << " of "
                  << s.count << " messages\n";
        rc = 1;
    }
    c.unsubscribe(id);  // the handler refers to this frame's locals: no call after we return
    c.stop();
}

net::awaitable<void> do_drain(bus::client& c, const common_args& a, const drain_args& d, int& rc)
{
    bus::outbox box({.dir = d.spool});
    net::thread_pool pool(1);
    auto deadline = std::chrono::steady_clock::now() + milliseconds(static_cast<long>(a.timeout * 1000));
    bus::drain_result r;
    if (co_await c.wait_connected(milliseconds(static_cast<long>(a.timeout * 1000))))
        r = co_await bus::drain(c, box, pool.get_executor(), deadline);
    else
        r.remaining = box.pending().size();
    pool.join();
    if (interrupted)
        std::cerr << "stompctl: interrupted: " << r.remaining << " spooled message(s) not delivered\n";
    std::cout << nlohmann::json{{"delivered", r.delivered}, {"remaining", r.remaining},
                                {"quarantined", r.quarantined}, {"locked_out", r.locked_out}}
                     .dump()
              << std::endl;
    if (r.remaining > 0) rc = 1;
    c.stop();
}

} // namespace

int main(int argc, char** argv)
{
    CLI::App app{"stompctl - publish to and subscribe from STOMP destinations (deploykit libbus)"};
    app.require_subcommand(1);
    common_args a;
    app.add_option("-u,--url", a.url,
                   "broker URL: stomp://[user:pass@]host:port, stomp+ssl://..., or "
                   "failover://(url1,url2)?options")
        ->envname("STOMP_URL");
    app.add_option("--options", a.options, "stomp-options string appended to the URL (original configs)");
    app.add_option("--login", a.login, "login (overrides the URL)");
    app.add_option("--passcode-file", a.passcode_file, "read the passcode from this file");
    app.add_option("--vhost", a.vhost, "CONNECT host header (virtual host)");
    app.add_option("--client-id", a.client_id, "CONNECT client-id (ActiveMQ durable subscriptions)");
    app.add_option("--protocol", a.protocol, "negotiate (1.0-1.2 with heart-beats) or 1.0");
    app.add_option("--timeout", a.timeout, "seconds to wait for receipts and connections");
    app.add_option("--ca-file", a.ca_file, "CA bundle for stomp+ssl");
    app.add_flag("--insecure", a.insecure, "do not verify the broker's TLS certificate");
    app.add_flag("-v,--verbose", a.verbose, "log connection events to stderr");
    app.add_option("--heartbeat-ms", a.heartbeat_ms,
                   "STOMP 1.1+ heart-beat asked for in both directions (0 = none); below half the idle "
                   "timeout of any firewall on the path");
    app.add_option("--keepalive-ms", a.keepalive_ms, "STOMP 1.0: write an EOL after this much idle sending (0 = off)");
    app.add_option("--probe-ms", a.probe_ms, "STOMP 1.0: probe a silent broker after this long (0 = off)");
    app.add_option("--probe-timeout-ms", a.probe_timeout_ms, "STOMP 1.0: an unanswered probe means a dead link");
    app.add_option("--dead-link-grace", a.dead_link_grace,
                   "heart-beat intervals of broker silence that mean a dead link (default 3)");

    publish_args p;
    auto* pub = app.add_subcommand("publish", "send a message and wait for the broker's receipt");
    pub->add_option("-t,--destination", p.destination, "e.g. /topic/future.git.commits")->required();
    pub->add_option("-H,--header", p.headers, "extra header name:value (repeatable)");
    pub->add_option("-m,--message", p.message, "body (default: read stdin)");
    pub->add_option("-f,--file", p.file, "read the body from this file");
    pub->add_option("--count", p.count, "send the message this many times (pipelined)")->check(CLI::Range(1, 100000000));
    pub->add_option("--window", p.window, "publishes in flight at once")->check(CLI::Range(1, 100000));
    pub->add_flag("--stats", p.stats, "print a JSON line with the publish rate");
    pub->add_option("--spool", p.spool,
                    "outbox directory: what gets no receipt within --timeout is spooled there (exit 0) "
                    "and sent, in order, by the next run or 'stompctl drain'");
    auto* pub_keys =
        pub->add_option("--key-file", p.key_file, "sign with a key from this file (lines '<id> <secret>', mode 0600)");
    pub->add_option("--key-id", p.key_id, "id of the signing key")->needs(pub_keys);

    subscribe_args s;
    auto* sub = app.add_subcommand("subscribe", "print messages from a destination");
    sub->alias("tail");
    sub->add_option("-t,--destination", s.destination, "e.g. /topic/future.git.commits")->required();
    sub->add_option("--ack", s.ack, "auto, client or client-individual");
    sub->add_option("--durable", s.durable, "durable subscription name");
    sub->add_option("--durable-style", s.durable_style, "rabbitmq, activemq or both");
    sub->add_option("--prefetch", s.prefetch, "broker-side unacked window");
    sub->add_option("-n,--count", s.count, "exit after this many messages");
    sub->add_option("--wait", s.wait, "exit after this many seconds");
    sub->add_flag("--json", s.json, "one JSON object per message");
    sub->add_flag("--headers", s.headers, "print headers before each body");
    sub->add_flag("--keepalives", s.keepalives, "also print the original's newline keepalives");
    sub->add_option("-H,--header", s.extra_headers,
                    "extra SUBSCRIBE header name:value (repeatable), e.g. x-queue-type:quorum");
    sub->add_option("--ready-file", s.ready_file, "create this file once the subscription is confirmed");
    sub->add_flag("--events", s.events, "decode deploykit events (native or legacy) and print them as JSON");
    auto* sub_keys =
        sub->add_option("--key-file", s.key_file, "with --events: verification keys (lines '<id> <secret>', mode 0600)");
    sub->add_flag("--require-signatures", s.require_signatures, "with --events: drop unsigned or forged messages")
        ->needs(sub_keys);

    drain_args dr;
    auto* drn = app.add_subcommand("drain", "deliver a producer's spooled messages in order (run from a timer)");
    drn->add_option("--spool", dr.spool, "outbox directory (default: the config's spool-dir)");
    drn->add_option("-c,--config", dr.config,
                    "take the broker settings and spool-dir from this daemon or hook config (rserver, "
                    "stomp-options, passcode-file, keepalive and header settings)");

    CLI11_PARSE(app, argc, argv);

    auto log = spdlog::stderr_color_mt("stompctl");
    log->set_level(a.verbose ? spdlog::level::debug : spdlog::level::warn);
    int rc = 0;
    try {
        std::string body;
        if (*pub) {
            if (!p.file.empty()) {
                std::ifstream in(p.file, std::ios::binary);
                if (!in) throw bus::config_error("cannot read " + p.file);
                body.assign(std::istreambuf_iterator<char>(in), {});
            } else if (pub->count("--message") > 0) {
                body = p.message;
            } else {
                body.assign(std::istreambuf_iterator<char>(std::cin), {});
            }
        }
        net::io_context io(1);
        bus::client_options opts;
        if (*drn && !dr.config.empty()) {
            // The spool's own config: its broker settings are not repeated on the command line.
            auto cfg = bus::read_bus_config(bus::load_yaml(dr.config), dr.config);
            opts = std::move(cfg.client);
            if (dr.spool.empty() && cfg.spool) dr.spool = cfg.spool->dir.string();
            opts.receipt_timeout = milliseconds(static_cast<long>(a.timeout * 1000));
            opts.connect_timeout = std::min(opts.connect_timeout, opts.receipt_timeout);
            apply_liveness(a, opts);
        } else {
            opts = make_options(a);
        }
        if (*drn && dr.spool.empty()) throw bus::config_error("drain: --spool or a config with spool-dir is required");
        // A one-shot publish gives up after a few attempts; a tail keeps reconnecting (unless
        // the URL says otherwise) and ends on a signal.
        if (!*sub && opts.url.reconnect.max_attempts == 0)
            opts.url.reconnect.max_attempts = static_cast<int>(2 * opts.url.endpoints.size() + 1);
        bus::client c(io.get_executor(), std::move(opts), *log);
        latch done(io.get_executor());  // the task is complete, or the client ended
        // SIGINT/SIGTERM: stop at once — a graceful DISCONNECT gets 300 ms, then the connection
        // is dropped; unreceipted publishes end as not receipted and are reported.
        net::signal_set signals(io, SIGINT, SIGTERM);
        net::steady_timer hard_stop(io);
        signals.async_wait([&](auto ec, int signo) {
            if (ec) return;
            interrupted = signo;
            c.stop();
            done.fire();
            hard_stop.expires_after(milliseconds(300));
            hard_stop.async_wait([&](auto e) {
                if (!e) c.abort();
            });
        });
        // The signal handler stays armed until both the client and the task have ended.
        int running = 2;
        auto ended = [&] {
            if (--running == 0) {
                signals.cancel();
                hard_stop.cancel();
            }
        };
        net::co_spawn(io, run_client(c, done), [&](std::exception_ptr e) {
            ended();
            if (e) std::rethrow_exception(e);
        });
        auto on_task = [&](std::exception_ptr e) {
            ended();
            if (!e) return;
            try {
                std::rethrow_exception(e);
            } catch (const bus::config_error& ce) {
                std::cerr << "stompctl: " << ce.what() << "\n";
                rc = 2;
            } catch (const std::exception& ex) {
                std::cerr << "stompctl: " << ex.what() << "\n";
                rc = 1;
            }
            c.stop();
        };
        if (*pub) net::co_spawn(io, do_publish(c, a, p, std::move(body), rc, done), on_task);
        else if (*sub) net::co_spawn(io, do_subscribe(c, a, s, rc, done), on_task);
        else net::co_spawn(io, do_drain(c, a, dr, rc), on_task);
        io.run();
        if (interrupted) return 128 + interrupted;
    } catch (const bus::config_error& e) {
        std::cerr << "stompctl: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "stompctl: " << e.what() << "\n";
        return 1;
    }
    return rc;
}
