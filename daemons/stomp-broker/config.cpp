#include "config.hpp"

#include "bus/runtime/program.hpp"

#include <arpa/inet.h>

#include <cstdint>
#include <limits>

namespace broker {

namespace {

constexpr std::int64_t unlimited = std::numeric_limits<std::int64_t>::max();

// `ADDRESS:PORT` with a numeric address, or the reason it is not one.
std::string listen_problem(const std::string& v)
{
    auto a = bus::http::parse_listen(v);
    if (!a) return "expected ADDRESS:PORT (127.0.0.1:61613, [::1]:61613), not '" + v + "'";
    unsigned char buf[16];
    if (::inet_pton(AF_INET, a->address.c_str(), buf) != 1 && ::inet_pton(AF_INET6, a->address.c_str(), buf) != 1)
        return "expected a numeric IP address, not '" + a->address + "'";
    return {};
}

std::string listen_key(const bus::runtime::section& r, std::string_view key, std::string dflt)
{
    auto v = r.str(key, std::move(dflt));
    if (v.empty()) return v;
    if (auto why = listen_problem(v); !why.empty()) r.fail(key, why);
    return v;
}

template <class T>
T whole(const bus::runtime::section& r, std::string_view key, T dflt, std::int64_t min, std::int64_t max = unlimited)
{
    return static_cast<T>(r.integer(key, static_cast<std::int64_t>(dflt), min, max));
}

} // namespace

void check_listen(const std::string& value, const std::string& what)
{
    if (auto why = listen_problem(value); !why.empty()) throw bus::runtime::config_error(what + ": " + why);
}

broker_config default_config()
{
    broker_config c;
    c.server.core.server_name = "deploykit-stomp-broker/" + std::string(bus::runtime::version());
    return c;
}

broker_config load_config(const std::filesystem::path& path, bus::runtime::notice_fn notice)
{
    auto f = bus::runtime::config_file::load(path, std::move(notice));
    auto r = f.root();
    broker_config c = default_config();
    auto& s = c.server;
    s.listen = listen_key(r, "listen", s.listen);
    s.tls_listen = listen_key(r, "tls-listen", "");
    s.tls_cert = r.str("tls-cert", "");
    s.tls_key = r.str("tls-key", "");
    if (!s.tls_listen.empty() && (s.tls_cert.empty() || s.tls_key.empty()))
        r.fail("tls-listen", "needs tls-cert and tls-key");
    c.admin_listen = bus::runtime::read_admin_listen(r);
    c.heartbeat = bus::runtime::read_heartbeat_options(r);
    c.drain_timeout = r.duration("drain-timeout", c.drain_timeout, std::chrono::milliseconds(0), std::chrono::hours(1));
    s.data_dir = r.str("data-dir", "");
    auto fs = r.str("fsync", "always");
    if (fs == "always") s.fsync = fsync_policy::always;
    else if (fs == "never") s.fsync = fsync_policy::never;
    else r.fail("fsync", "expected always or never, not '" + fs + "'");
    c.users_file = r.str("users-file", "");
    s.max_connections = whole(r, "max-connections", s.max_connections, 1);
    s.limits.max_frame = whole(r, "max-frame-size", s.limits.max_frame, 1, 64 * 1024 * 1024);
    s.limits.max_body = s.limits.max_frame;
    s.limits.max_headers = whole(r, "max-headers", s.limits.max_headers, 1);
    s.core.max_queue_depth = whole(r, "max-queue-depth", s.core.max_queue_depth, 1);
    s.core.max_unacked = whole(r, "max-unacked", s.core.max_unacked, 1);
    s.core.transient_topic_depth = whole(r, "transient-topic-depth", s.core.transient_topic_depth, 1);
    auto full = r.str("full-queue", "block");
    if (full == "block") s.core.block_when_full = true;
    else if (full == "reject") s.core.block_when_full = false;
    else r.fail("full-queue", "expected block or reject, not '" + full + "'");
    s.send_queue_bytes = whole(r, "send-queue-bytes", s.send_queue_bytes, 1);
    s.connect_timeout = std::chrono::milliseconds(whole(r, "connect-timeout-ms", s.connect_timeout.count(), 1, 3600000));
    s.core.heartbeat_min_ms = whole(r, "heartbeat-min-ms", s.core.heartbeat_min_ms, 0, 0xffffffffLL);
    s.core.server_name = r.str("server-name", s.core.server_name);
    s.max_connect_frame = whole(r, "max-connect-frame", s.max_connect_frame, 256, 1024 * 1024);
    s.max_unauthenticated = whole(r, "max-unauthenticated", s.max_unauthenticated, 1);
    s.core.max_queue_bytes = whole(r, "max-queue-bytes", s.core.max_queue_bytes, 0);
    s.core.max_memory = whole(r, "max-memory", s.core.max_memory, 0);
    s.core.max_destinations_per_user = whole(r, "max-destinations-per-user", s.core.max_destinations_per_user, 0);
    s.core.max_transaction_bytes = whole(r, "max-transaction-bytes", s.core.max_transaction_bytes, 0);
    s.tcp_keepalive_idle = std::chrono::seconds(whole(r, "tcp-keepalive-idle", s.tcp_keepalive_idle.count(), 0, 32767));
    s.tcp_keepalive_interval =
        std::chrono::seconds(whole(r, "tcp-keepalive-interval", s.tcp_keepalive_interval.count(), 1, 32767));
    s.tcp_keepalive_count = whole(r, "tcp-keepalive-count", s.tcp_keepalive_count, 1, 127);
    s.heartbeat_grace = r.number("heartbeat-grace", s.heartbeat_grace, 1.0, 10.0);
    s.auth_workers = whole(r, "auth-workers", s.auth_workers, 1, 64);
    s.auth_fail_burst = whole(r, "auth-fail-burst", s.auth_fail_burst, 1);
    s.auth_fail_rate = r.number("auth-fail-rate", s.auth_fail_rate, 1e-6, 1e9);
    s.journal_retry = std::chrono::seconds(whole(r, "journal-retry-seconds", s.journal_retry.count(), 1, 86400 * 7));
    f.finish();
    c.file = std::move(f);
    return c;
}

std::vector<std::string> needs_restart(const broker_config& running, const broker_config& fresh)
{
    return bus::runtime::restart_needed(running.file, fresh.file, [](const std::string& k) {
        return k == "users-file" || k == "heartbeat-topic" || k == "heartbeat-interval";
    });
}

} // namespace broker
