#include "stompctl.hpp"

#include "bus/config.hpp"
#include "bus/runtime/config_reader.hpp"

#include <CLI/CLI.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>

namespace stompctl {

using std::chrono::milliseconds;

int interrupted = 0;

net::awaitable<void> latch::wait(std::chrono::steady_clock::time_point deadline)
{
    if (set) co_return;
    timer.expires_at(deadline);
    co_await timer.async_wait(net::as_tuple(net::use_awaitable));
}

void add_common_options(CLI::App& app, common_args& a)
{
    app.add_option("-u,--url", a.url,
                   "broker URL: stomp://[user:pass@]host:port, stomp+ssl://..., or "
                   "failover://(url1,url2)?options")
        ->envname("STOMP_URL");
    app.add_option("--options", a.options, "stomp-options string appended to the URL (original configs)");
    app.add_option("--login", a.login, "login (overrides the URL)");
    app.add_option("--passcode-file", a.passcode_file,
                   "read the passcode from this file (mode 0600, owned by you or root)");
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
    // The runtime's secret policy, as for every daemon's passcode-file.
    std::string passcode;
    if (!a.passcode_file.empty()) passcode = bus::runtime::read_secret_file(a.passcode_file, "--passcode-file");
    for (auto& ep : o.url.endpoints) {
        if (!a.login.empty()) ep.login = a.login;
        if (!a.passcode_file.empty()) ep.passcode = passcode;
    }
    o.vhost = a.vhost;
    o.client_id = a.client_id;
    if (a.protocol == "1.0") o.protocol = bus::protocol_mode::v1_0;
    else if (a.protocol != "negotiate") throw bus::config_error("--protocol must be negotiate or 1.0");
    o.receipt_timeout = a.timeout_ms();
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

} // namespace stompctl
