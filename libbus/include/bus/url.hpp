#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bus {

/// A configuration value that cannot be used; `what()` names the key and the problem.
class config_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// One broker address from a `stomp://` or `stomp+ssl://` URL.
struct endpoint {
    std::string host;
    std::uint16_t port = 61613;
    bool tls = false;
    std::string login;
    std::string passcode;

    /// "stomp://host:port" without credentials: safe to log.
    std::string display() const;
};

/// How to reconnect, as the failover URL options say.
struct reconnect_policy {
    std::chrono::milliseconds initial_delay{10};
    std::chrono::milliseconds max_delay{30000};
    bool exponential = true;
    double multiplier = 2.0;
    int max_attempts = 0;        ///< consecutive failed attempts before giving up; 0 = never
    bool randomize = false;      ///< shuffle the broker list instead of rotating in order
    double jitter = 0.2;         ///< each delay is reduced by up to this fraction, at random
};

/// The broker list and reconnect policy of a connection.
struct broker_url {
    std::vector<endpoint> endpoints;
    reconnect_policy reconnect;
    /// Options recognised but deliberately not applied (e.g. the original's `Backup`,
    /// `Timeout`), or unknown; the caller logs them.
    std::vector<std::string> notes;
};

/// Parses the original's `rserver` value plus its separate `stomp-options` string.
///
/// Accepts `stomp://[user:pass@]host[:port]`, `stomp+ssl://…` (also `stomps://`),
/// `failover://(url1,url2,…)?opts` and `failover:(…)?opts`. `options` (may be empty) is appended
/// to the URL's own query, as the original did with `rserver + "?" + stomp-options`.
///
/// Option keys follow the Ruby stomp gem and ActiveMQ: `initialReconnectDelay` and
/// `maxReconnectDelay` in milliseconds, `useExponentialBackOff`, `backOffMultiplier`,
/// `maxReconnectAttempts` (0 or -1: never give up), `randomize`. The capitalised spellings
/// the original shipped (`MaxReconnectDelay=30`, `BackOffMultiplier`, `MaxReconnectAttempts`)
/// are accepted too; the gem ignored them, and the shipped `MaxReconnectDelay=30` meant
/// seconds (the gem's effective cap was its 30 s default), so capitalised delays are read as
/// seconds. The initial delay is floored at 10 ms so a tiny value cannot busy-loop.
///
/// Credentials are %-decoded. Throws config_error naming the offending part.
broker_url parse_broker_url(std::string_view url, std::string_view options = {});

/// RFC 3986 %-decoding, strict: nullopt for a truncated or non-hex escape. The one copy for
/// broker URLs, Jenkins project paths and git credentials in URLs.
std::optional<std::string> percent_decode(std::string_view s);

} // namespace bus
