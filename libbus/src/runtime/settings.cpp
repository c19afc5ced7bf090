#include "bus/runtime/settings.hpp"
#include "bus/runtime/program.hpp"

#include <cctype>

namespace bus::runtime {

heartbeat_options read_heartbeat_options(const section& s)
{
    heartbeat_options o;
    o.topic = s.str("heartbeat-topic", o.topic);
    if (o.topic.empty() || o.topic.find_first_of("/ \t\r\n") != std::string::npos)
        s.fail("heartbeat-topic", "expected a bare topic name (deploykit.heartbeats), no '/' or spaces");
    o.interval = s.duration("heartbeat-interval", o.interval, std::chrono::milliseconds(0), std::chrono::hours(24));
    if (o.interval.count() > 0 && o.interval < std::chrono::seconds(1))
        s.fail("heartbeat-interval", "expected 0 (off) or at least 1 s");
    return o;
}

std::optional<http::listen_address> read_admin_listen(const section& s)
{
    auto v = s.str("admin-listen", "");
    if (v.empty()) return std::nullopt;
    auto a = http::parse_listen(v);
    if (!a) s.fail("admin-listen", "expected ADDRESS:PORT (127.0.0.1:9100, [::1]:9100), not '" + v + "'");
    return a;
}

daemon_settings read_daemon_settings(const section& s)
{
    return daemon_settings{read_heartbeat_options(s), read_admin_listen(s)};
}

std::string read_durable_name(const section& s, std::string_view daemon)
{
    auto k = s.kind_of("durable-name");
    if (k != section::kind::absent && k != section::kind::null) return s.str("durable-name", "");
    std::string h = hostname();
    for (auto& ch : h)
        if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.')) ch = '_';
    return std::string(daemon) + "-" + (h.empty() ? std::string("localhost") : h);
}

} // namespace bus::runtime
