#include "bus/url.hpp"
#include "bus/numeric.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace bus {

std::optional<std::string> percent_decode(std::string_view s)
{
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out.push_back(s[i]);
            continue;
        }
        unsigned v = 0;
        if (i + 2 >= s.size()) return std::nullopt;
        auto r = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
        if (r.ec != std::errc{} || r.ptr != s.data() + i + 3) return std::nullopt;
        out.push_back(static_cast<char>(v));
        i += 2;
    }
    return out;
}

namespace {

std::string percent_decode(std::string_view s, std::string_view what)
{
    auto d = bus::percent_decode(s);
    if (!d) throw config_error(std::string(what) + ": bad or truncated %-escape");
    return *d;
}

endpoint parse_endpoint(std::string_view url)
{
    endpoint ep;
    auto scheme_end = url.find("://");
    if (scheme_end == std::string_view::npos)
        throw config_error("broker URL has no scheme (expected stomp:// or stomp+ssl://)");
    std::string_view scheme = url.substr(0, scheme_end);
    if (scheme == "stomp" || scheme == "tcp")
        ep.tls = false;
    else if (scheme == "stomp+ssl" || scheme == "stomps" || scheme == "ssl" || scheme == "stomp+tls")
        ep.tls = true;
    else
        throw config_error("unsupported broker URL scheme '" + std::string(scheme) + "'");
    std::string_view rest = url.substr(scheme_end + 3);
    if (auto slash = rest.find('/'); slash != std::string_view::npos) rest = rest.substr(0, slash);
    if (auto at = rest.rfind('@'); at != std::string_view::npos) {
        std::string_view userinfo = rest.substr(0, at);
        rest = rest.substr(at + 1);
        auto colon = userinfo.find(':');
        ep.login = percent_decode(userinfo.substr(0, colon), "broker URL login");
        if (colon != std::string_view::npos)
            ep.passcode = percent_decode(userinfo.substr(colon + 1), "broker URL password");
    }
    std::string_view host = rest;
    std::string_view port;
    if (!rest.empty() && rest.front() == '[') {
        auto close = rest.find(']');
        if (close == std::string_view::npos) throw config_error("broker URL: unterminated [IPv6] host");
        host = rest.substr(1, close - 1);
        std::string_view after = rest.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') throw config_error("broker URL: junk after [IPv6] host");
            port = after.substr(1);
        }
    } else if (auto colon = rest.rfind(':'); colon != std::string_view::npos) {
        host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
    }
    if (host.empty()) throw config_error("broker URL has no host");
    ep.host = std::string(host);
    if (!port.empty()) {
        unsigned v = 0;
        auto r = std::from_chars(port.data(), port.data() + port.size(), v);
        if (r.ec != std::errc{} || r.ptr != port.data() + port.size() || v == 0 || v > 65535)
            throw config_error("broker URL " + ep.display() + ": bad port '" + std::string(port) + "'");
        ep.port = static_cast<std::uint16_t>(v);
    } else if (ep.tls) {
        ep.port = 61614;
    }
    return ep;
}

double parse_number(std::string_view key, std::string_view v)
{
    auto d = parse_decimal(v);
    if (!d)
        throw config_error("stomp option " + std::string(key) + ": '" + std::string(v) +
                           "' is not a number");
    return *d;
}

bool parse_bool(std::string_view key, std::string_view v)
{
    if (v == "true" || v == "True" || v == "TRUE" || v == "1" || v == "yes") return true;
    if (v == "false" || v == "False" || v == "FALSE" || v == "0" || v == "no") return false;
    throw config_error("stomp option " + std::string(key) + ": '" + std::string(v) +
                       "' is not true or false");
}

std::chrono::milliseconds to_ms(double v)
{
    if (v < 0) v = 0;
    if (v > 86'400'000.0) v = 86'400'000.0;
    return std::chrono::milliseconds(round_to_int64(v));
}

void apply_option(broker_url& out, std::string_view key, std::string_view value)
{
    auto& p = out.reconnect;
    // lower-camel: the gem's and ActiveMQ's keys, delays in ms.
    // Capitalised: the original's shipped spellings, delays in seconds (see header).
    if (key == "initialReconnectDelay") p.initial_delay = to_ms(parse_number(key, value));
    else if (key == "InitialReconnectDelay") p.initial_delay = to_ms(parse_number(key, value) * 1000);
    else if (key == "maxReconnectDelay") p.max_delay = to_ms(parse_number(key, value));
    else if (key == "MaxReconnectDelay") p.max_delay = to_ms(parse_number(key, value) * 1000);
    else if (key == "useExponentialBackOff" || key == "UseExponentialBackOff")
        p.exponential = parse_bool(key, value);
    else if (key == "backOffMultiplier" || key == "BackOffMultiplier") {
        double m = parse_number(key, value);
        if (m < 1.0) throw config_error("stomp option " + std::string(key) + " must be >= 1");
        p.multiplier = m;
    } else if (key == "maxReconnectAttempts" || key == "MaxReconnectAttempts") {
        double n = parse_number(key, value);
        p.max_attempts = n <= 0 ? 0 : static_cast<int>(std::min(n, 1e9));
    } else if (key == "randomize" || key == "Randomize") p.randomize = parse_bool(key, value);
    else if (key == "backup" || key == "Backup" || key == "timeout" || key == "Timeout" ||
             key == "startupMaxReconnectAttempts")
        out.notes.push_back("stomp option " + std::string(key) +
                            " ignored (connect, write and receipt deadlines are always applied)");
    else
        out.notes.push_back("unknown stomp option " + std::string(key) + " ignored");
}

void apply_query(broker_url& out, std::string_view q)
{
    while (!q.empty()) {
        auto amp = q.find('&');
        std::string_view kv = q.substr(0, amp);
        q = amp == std::string_view::npos ? std::string_view{} : q.substr(amp + 1);
        if (kv.empty()) continue;
        auto eq = kv.find('=');
        if (eq == std::string_view::npos)
            throw config_error("stomp option '" + std::string(kv) + "' has no '=value'");
        apply_option(out, kv.substr(0, eq), kv.substr(eq + 1));
    }
}

std::string_view trim(std::string_view s)
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n')) s.remove_suffix(1);
    return s;
}

} // namespace

std::string endpoint::display() const
{
    std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return std::string(tls ? "stomp+ssl://" : "stomp://") + h + ":" + std::to_string(port);
}

broker_url parse_broker_url(std::string_view url, std::string_view options)
{
    url = trim(url);
    options = trim(options);
    if (!options.empty() && options.front() == '?') options.remove_prefix(1);
    broker_url out;
    std::string_view query;
    std::string_view list;
    if (url.starts_with("failover:")) {
        std::string_view rest = url.substr(9);
        if (rest.starts_with("//")) rest.remove_prefix(2);
        if (rest.empty() || rest.front() != '(')
            throw config_error("failover URL must be failover://(url1,url2,...)");
        auto close = rest.find(')');
        if (close == std::string_view::npos) throw config_error("failover URL: missing ')'");
        list = rest.substr(1, close - 1);
        std::string_view after = rest.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != '?') throw config_error("failover URL: junk after ')'");
            query = after.substr(1);
        }
    } else {
        auto q = url.find('?');
        list = url.substr(0, q);
        if (q != std::string_view::npos) query = url.substr(q + 1);
    }
    while (!list.empty()) {
        auto comma = list.find(',');
        std::string_view one = trim(list.substr(0, comma));
        list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
        if (!one.empty()) out.endpoints.push_back(parse_endpoint(one));
    }
    if (out.endpoints.empty()) throw config_error("broker URL names no broker");
    apply_query(out, query);
    apply_query(out, options);
    auto& p = out.reconnect;
    if (p.initial_delay < std::chrono::milliseconds(10)) p.initial_delay = std::chrono::milliseconds(10);
    if (p.max_delay < p.initial_delay) p.max_delay = p.initial_delay;
    return out;
}

} // namespace bus
