// stompctl subscribe (alias tail): print messages from a destination, raw or as JSON, or decoded
// deploykit events as a consumer sees them.
#include "stompctl.hpp"

#include "bus/config.hpp"
#include "bus/intake.hpp"
#include "bus/signing.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>

namespace stompctl {

using std::chrono::milliseconds;

namespace {

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

void print_message(const bus::message& m, const subscribe_command& s)
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

// Says why the subscription never got confirmed; returns the exit status.
int report_unconfirmed(bus::client& c, const std::string& id, const std::string& destination)
{
    auto st = c.subscription(id);
    if (interrupted) {
        std::cerr << "stompctl: interrupted before the subscription to " << destination << " was confirmed\n";
        return 0;
    }
    if (st.permanent) {
        std::cerr << "stompctl: the broker refused the subscription to " << destination << ": " << st.refused
                  << " (not retried: this will not change by waiting)\n";
        return 3;
    }
    std::cerr << "stompctl: never subscribed to " << destination;
    if (st.refusals > 0) std::cerr << ": refused " << st.refusals << " time(s), last: " << st.refused;
    else if (!c.last_error().empty()) std::cerr << " (" << c.last_error() << ")";
    std::cerr << "\n";
    return 1;
}

net::awaitable<void> do_subscribe(bus::client& c, const common_args& a, const subscribe_command& s, int& rc,
                                  latch& done)
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
                if (r.decision != bus::intake_decision::keepalive)
                    std::cerr << "stompctl: dropped " << m.id() << ": " << r.reason << "\n";
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
    auto confirm = s.wait > 0 ? std::chrono::duration_cast<milliseconds>(until - started) : a.timeout_ms();
    if (!co_await c.wait_subscribed(id, confirm)) {
        rc = report_unconfirmed(c, id, s.destination);
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

} // namespace

void subscribe_command::add(CLI::App& app)
{
    sub = app.add_subcommand("subscribe", "print messages from a destination");
    sub->alias("tail");
    sub->add_option("-t,--destination", destination, "e.g. /topic/future.git.commits")->required();
    sub->add_option("--ack", ack, "auto, client or client-individual");
    sub->add_option("--durable", durable, "durable subscription name");
    sub->add_option("--durable-style", durable_style, "rabbitmq, activemq or both");
    sub->add_option("--prefetch", prefetch, "broker-side unacked window");
    sub->add_option("-n,--count", count, "exit after this many messages");
    sub->add_option("--wait", wait, "exit after this many seconds");
    sub->add_flag("--json", json, "one JSON object per message");
    sub->add_flag("--headers", headers, "print headers before each body");
    sub->add_flag("--keepalives", keepalives, "also print the original's newline keepalives");
    sub->add_option("-H,--header", extra_headers,
                    "extra SUBSCRIBE header name:value (repeatable), e.g. x-queue-type:quorum");
    sub->add_option("--ready-file", ready_file, "create this file once the subscription is confirmed");
    sub->add_flag("--events", events, "decode deploykit events (native or legacy) and print them as JSON");
    auto* keys =
        sub->add_option("--key-file", key_file, "with --events: verification keys (lines '<id> <secret>', mode 0600)");
    sub->add_flag("--require-signatures", require_signatures, "with --events: drop unsigned or forged messages")
        ->needs(keys);
}

task subscribe_command::make(const common_args& a)
{
    return [this, &a](bus::client& c, int& rc, latch& done) { return do_subscribe(c, a, *this, rc, done); };
}

} // namespace stompctl
