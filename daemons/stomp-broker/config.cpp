#include "config.hpp"

#include "bus/url.hpp"

#include <arpa/inet.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>

#include <map>
#include <set>

namespace broker {

std::pair<std::string, std::uint16_t> parse_listen(const std::string& s, const std::string& key)
{
    std::string host;
    std::string_view port;
    if (!s.empty() && s.front() == '[') {
        auto close = s.find("]:");
        if (close == std::string::npos) throw bus::config_error(key + ": '" + s + "' is not [address]:port");
        host = s.substr(1, close - 1);
        port = std::string_view(s).substr(close + 2);
    } else {
        auto colon = s.rfind(':');
        if (colon == std::string::npos) throw bus::config_error(key + ": '" + s + "' is not address:port");
        host = s.substr(0, colon);
        port = std::string_view(s).substr(colon + 1);
    }
    unsigned p = 0;
    auto r = std::from_chars(port.data(), port.data() + port.size(), p);
    if (r.ec != std::errc{} || r.ptr != port.data() + port.size() || p > 65535)
        throw bus::config_error(key + ": bad port in '" + s + "'");
    unsigned char addr[16];
    if (::inet_pton(AF_INET, host.c_str(), addr) != 1 && ::inet_pton(AF_INET6, host.c_str(), addr) != 1)
        throw bus::config_error(key + ": '" + host + "' is not an IP address");
    return {host, static_cast<std::uint16_t>(p)};
}

namespace {

std::string where(const std::filesystem::path& p, const YAML::Node& n, std::string_view key)
{
    return p.string() + ":" + std::to_string(n.Mark().line + 1) + ": " + std::string(key);
}

// Keys as the file spells them (hyphens, as the original's files, or the broker's older
// underscores), by their underscore form.
thread_local std::map<std::string, std::string> spelled;

std::string spelling(std::string_view key)
{
    auto it = spelled.find(std::string(key));
    return it == spelled.end() ? std::string(key) : it->second;
}

template <class T>
T get(const std::filesystem::path& p, const YAML::Node& root, std::string_view key, T dflt)
{
    auto n = root[std::string(key)];
    if (!n) return dflt;
    try {
        return n.as<T>();
    } catch (const YAML::Exception&) {
        throw bus::config_error(where(p, n, spelling(key)) + ": bad value '" + n.Scalar() + "'");
    }
}

} // namespace

broker_config load_config(const std::filesystem::path& path)
{
    YAML::Node root;
    try {
        root = YAML::LoadFile(path.string());
    } catch (const YAML::BadFile&) {
        throw bus::config_error(path.string() + ": cannot read");
    } catch (const YAML::Exception& e) {
        throw bus::config_error(path.string() + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
    }
    if (!root.IsMap()) throw bus::config_error(path.string() + ": expected a map of settings");
    static const std::set<std::string> known{
        "listen", "tls_listen", "tls_cert", "tls_key", "admin_listen", "data_dir", "fsync", "users_file",
        "max_connections", "max_frame_size", "max_headers", "max_queue_depth", "max_unacked",
        "transient_topic_depth", "send_queue_bytes", "full_queue", "connect_timeout_ms", "heartbeat_min_ms", "server_name",
        "max_connect_frame", "max_unauthenticated", "max_queue_bytes", "max_memory", "max_destinations_per_user",
        "max_transaction_bytes", "tcp_keepalive_idle", "tcp_keepalive_interval", "tcp_keepalive_count",
        "heartbeat_grace", "auth_workers", "auth_fail_burst", "auth_fail_rate", "journal_retry_seconds"};
    // Every key in either spelling: `max-memory` or `max_memory`, never both.
    spelled.clear();
    YAML::Node norm(YAML::NodeType::Map);
    for (const auto& kv : root) {
        auto k = kv.first.as<std::string>();
        std::string u = k;
        std::replace(u.begin(), u.end(), '-', '_');
        if (!known.count(u)) throw bus::config_error(where(path, kv.first, k) + ": unknown setting");
        if (spelled.count(u))
            throw bus::config_error(where(path, kv.first, k) + ": set twice (as " + spelled[u] + " too)");
        spelled[u] = k;
        norm[u] = kv.second;
    }
    root = norm;
    broker_config c;
    auto& s = c.server;
    s.listen = get<std::string>(path, root, "listen", s.listen);
    s.tls_listen = get<std::string>(path, root, "tls_listen", "");
    s.tls_cert = get<std::string>(path, root, "tls_cert", "");
    s.tls_key = get<std::string>(path, root, "tls_key", "");
    if (!s.tls_listen.empty() && (s.tls_cert.empty() || s.tls_key.empty()))
        throw bus::config_error(path.string() + ": tls_listen needs tls_cert and tls_key");
    s.admin_listen = get<std::string>(path, root, "admin_listen", "");
    s.data_dir = get<std::string>(path, root, "data_dir", "");
    auto fs = get<std::string>(path, root, "fsync", "always");
    if (fs == "always") s.fsync = fsync_policy::always;
    else if (fs == "never") s.fsync = fsync_policy::never;
    else throw bus::config_error(where(path, root["fsync"], spelling("fsync")) + ": must be always or never");
    c.users_file = get<std::string>(path, root, "users_file", "");
    s.max_connections = get<std::size_t>(path, root, "max_connections", s.max_connections);
    s.limits.max_frame = get<std::size_t>(path, root, "max_frame_size", s.limits.max_frame);
    s.limits.max_body = s.limits.max_frame;
    s.limits.max_headers = get<std::size_t>(path, root, "max_headers", s.limits.max_headers);
    s.core.max_queue_depth = get<std::size_t>(path, root, "max_queue_depth", s.core.max_queue_depth);
    s.core.max_unacked = get<std::size_t>(path, root, "max_unacked", s.core.max_unacked);
    s.core.transient_topic_depth = get<std::size_t>(path, root, "transient_topic_depth", s.core.transient_topic_depth);
    auto full = get<std::string>(path, root, "full_queue", "block");
    if (full == "block") s.core.block_when_full = true;
    else if (full == "reject") s.core.block_when_full = false;
    else throw bus::config_error(where(path, root["full_queue"], spelling("full_queue")) + ": must be block or reject");
    s.send_queue_bytes = get<std::size_t>(path, root, "send_queue_bytes", s.send_queue_bytes);
    s.connect_timeout = std::chrono::milliseconds(get<long>(path, root, "connect_timeout_ms", 10000));
    s.core.heartbeat_min_ms = get<std::uint32_t>(path, root, "heartbeat_min_ms", s.core.heartbeat_min_ms);
    s.core.server_name = get<std::string>(path, root, "server_name", s.core.server_name);
    s.max_connect_frame = get<std::size_t>(path, root, "max_connect_frame", s.max_connect_frame);
    s.max_unauthenticated = get<std::size_t>(path, root, "max_unauthenticated", s.max_unauthenticated);
    s.core.max_queue_bytes = get<std::size_t>(path, root, "max_queue_bytes", s.core.max_queue_bytes);
    s.core.max_memory = get<std::size_t>(path, root, "max_memory", s.core.max_memory);
    s.core.max_destinations_per_user =
        get<std::size_t>(path, root, "max_destinations_per_user", s.core.max_destinations_per_user);
    s.core.max_transaction_bytes = get<std::size_t>(path, root, "max_transaction_bytes", s.core.max_transaction_bytes);
    s.tcp_keepalive_idle = std::chrono::seconds(get<unsigned>(path, root, "tcp_keepalive_idle", 60));
    s.tcp_keepalive_interval = std::chrono::seconds(get<unsigned>(path, root, "tcp_keepalive_interval", 10));
    s.tcp_keepalive_count = get<int>(path, root, "tcp_keepalive_count", s.tcp_keepalive_count);
    s.heartbeat_grace = get<double>(path, root, "heartbeat_grace", s.heartbeat_grace);
    s.auth_workers = get<unsigned>(path, root, "auth_workers", s.auth_workers);
    s.auth_fail_burst = get<std::size_t>(path, root, "auth_fail_burst", s.auth_fail_burst);
    s.auth_fail_rate = get<double>(path, root, "auth_fail_rate", s.auth_fail_rate);
    s.journal_retry = std::chrono::seconds(get<unsigned>(path, root, "journal_retry_seconds", 300));
    auto require = [&](bool ok, std::string_view key, std::string_view what) {
        if (!ok) throw bus::config_error(where(path, root[std::string(key)], spelling(key)) + ": " + std::string(what));
    };
    require(s.max_connect_frame >= 256 && s.max_connect_frame <= 1024 * 1024, "max_connect_frame",
            "must be between 256 and 1048576 bytes");
    require(s.max_unauthenticated >= 1, "max_unauthenticated", "must be at least 1");
    require(s.tcp_keepalive_idle.count() == 0 || (s.tcp_keepalive_interval.count() >= 1 && s.tcp_keepalive_count >= 1 &&
                                                  s.tcp_keepalive_idle.count() <= 32767 &&
                                                  s.tcp_keepalive_interval.count() <= 32767 && s.tcp_keepalive_count <= 127),
            "tcp_keepalive_interval", "tcp-keepalive-interval and -count must be at least 1 (idle 0 turns keepalive off)");
    require(s.heartbeat_grace >= 1.0 && s.heartbeat_grace <= 10.0, "heartbeat_grace", "must be between 1 and 10");
    require(s.auth_workers >= 1 && s.auth_workers <= 64, "auth_workers", "must be between 1 and 64");
    require(s.auth_fail_burst >= 1, "auth_fail_burst", "must be at least 1");
    require(s.auth_fail_rate > 0, "auth_fail_rate", "must be above 0");
    if (s.core.transient_topic_depth == 0 || s.core.max_unacked == 0 || s.core.max_queue_depth == 0)
        throw bus::config_error(path.string() + ": max_queue_depth, max_unacked and transient_topic_depth must be at least 1");
    if (s.limits.max_frame > 64 * 1024 * 1024)
        throw bus::config_error(path.string() + ": max_frame_size is at most 64 MiB (the journal's record limit)");
    parse_listen(s.listen, "listen");
    if (!s.tls_listen.empty()) parse_listen(s.tls_listen, "tls_listen");
    if (!s.admin_listen.empty()) parse_listen(s.admin_listen, "admin_listen");
    return c;
}

} // namespace broker
