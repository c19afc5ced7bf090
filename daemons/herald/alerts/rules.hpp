#pragma once

// herald's alert rules (the `alerts:` section of herald's config, docs/herald.md#alerts): what
// neelix did for ps.herald — act on a lost heartbeat and on special messages — as data. Pure: no
// Asio, no I/O besides reading the config section.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bus::runtime {
class section;
}

namespace herald::alerts {

using duration = std::chrono::milliseconds;

/// Where a decision goes (a rule's `actions:`; default: all configured).
enum channel : unsigned { to_bus = 1, to_mail = 2, to_webhook = 4 };

/// A compiled regular expression (PCRE2 with match and depth limits, so an event's text cannot
/// make a match run away). Copyable (shared, immutable).
class regex {
public:
    /// Throws std::invalid_argument with PCRE2's message and offset.
    explicit regex(std::string pattern);
    bool search(std::string_view text) const;
    const std::string& pattern() const noexcept { return pattern_; }

private:
    struct impl;
    std::string pattern_;
    std::shared_ptr<const impl> impl_;
};

/// `*` and `?` wildcards (the whole string), as systemd and Prometheus' Alertmanager matchers
/// read host and unit names.
bool glob_match(std::string_view pattern, std::string_view s) noexcept;

struct heartbeat_rule {
    std::string name;
    std::string daemon = "*";  ///< glob over the heartbeat's daemon
    std::string host = "*";    ///< glob over the heartbeat's host
    duration max_age{std::chrono::minutes(3)};
    duration cool_down{std::chrono::hours(1)};  ///< least time between two notices for one source
    unsigned channels = to_bus | to_mail | to_webhook;
};

/// One field condition: `field` is a key of the event's data (`ok`, `repo`, `error`), or `type`,
/// `host`, `id`; values compare as their JSON text without quotes (`false`, `12`).
struct field_match {
    std::string field;
    std::optional<std::string> equals;
    std::optional<regex> matches;
};

struct pattern_rule {
    std::string name;
    std::vector<std::string> types;   ///< event types (`fetch`, `build`, ...); empty = any but `alert`
    std::vector<field_match> fields;  ///< all must hold
    std::optional<regex> text;        ///< searched in the event's free text (every string of its data)
    duration cool_down{std::chrono::minutes(10)};  ///< least time between two notices of this rule
    duration recover_after{0};        ///< a recovery notice after this long without a match (0 = cool_down)
    unsigned channels = to_bus | to_mail | to_webhook;
};

struct mail_settings {
    std::string url;                ///< smtp://host:587 (STARTTLS required) or smtps://host:465
    std::string from;
    std::vector<std::string> to;
    std::string auth_file;          ///< `user:password` (or two lines), 0600; empty = no AUTH
    std::string user, password;     ///< read from auth_file by read_settings (never logged)
    std::string ca_file;            ///< extra CA bundle for the server's certificate
    duration timeout{std::chrono::seconds(30)};
    std::size_t queue = 100;        ///< mails waiting; beyond it the oldest is dropped
    int retries = 3;                ///< further attempts after a failure
    duration retry_delay{std::chrono::seconds(10)};
    bool enabled() const noexcept { return !url.empty(); }
};

struct webhook_settings {
    std::string url;                ///< http:// or https://
    std::string token_file;         ///< optional bearer token (0600)
    std::string token;              ///< read from token_file by read_settings (never logged)
    std::string ca_file;
    duration timeout{std::chrono::seconds(10)};
    std::size_t queue = 100;
    int retries = 3;
    duration retry_delay{std::chrono::seconds(5)};
    bool enabled() const noexcept { return !url.empty(); }
};

struct settings {
    duration check_interval{std::chrono::seconds(30)};
    std::string topic = "deploykit.alerts";  ///< where alert events go
    std::string state_file;                   ///< last-seen table; empty = herald's default
    std::size_t max_sources = 10000;          ///< heartbeat sources tracked; more are counted, not tracked
    duration forget_after{std::chrono::hours(24 * 30)};  ///< a source silent this long is dropped
    std::vector<heartbeat_rule> heartbeat;
    std::vector<pattern_rule> patterns;
    mail_settings mail;
    webhook_settings webhook;
};

/// Reads the `alerts:` section. Errors are bus::runtime::config_error with file, line and key
/// path (`alerts.patterns[1].match.ok: ...`).
settings parse_settings(const bus::runtime::section& alerts);

} // namespace herald::alerts
