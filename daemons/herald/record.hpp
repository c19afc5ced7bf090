#pragma once

// herald's record: one row of the event log, whatever it came from (a bus event decoded by
// bus::intake, native or legacy; a native-looking event of a type this build does not know; a
// log record POSTed to /ingest). Pure: no SQLite, no Asio. The alert engine (alerts/) is fed
// these after they are committed.

#include "bus/intake.hpp"
#include "bus/stomp/frame.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace herald {

struct recorded_event {
    std::int64_t seq = 0;          ///< database row (monotonic, never reused): SSE ids, pagination
    std::string id;                ///< event id: the dedupe key (one row per id)
    std::int64_t time_ms = 0;      ///< the event's own time (ms since the epoch, UTC)
    std::int64_t received_ms = 0;  ///< when herald received it (retention by age uses this)
    std::string type;              ///< commit, build, fetch, heartbeat, ... ; "log" for ingested records
    std::string level;             ///< debug, info, warning, error, critical
    std::string daemon;            ///< producing service (heartbeat's daemon, logger name, ...)
    std::string host;
    std::string system;            ///< user-defined system name (ingest), else ""
    std::string repo;
    std::string revision;          ///< commit id / new revision / tag: links related events
    std::string message;           ///< one line for the table
    std::string source;            ///< the destination it came from (/topic/...), or "ingest:<token>"
    bool legacy = false;           ///< decoded from the original future-deploykit form
    bool authenticated = false;    ///< a v2 signature was verified
    std::string data;              ///< JSON object: the event's data / the log record's fields
    std::string raw;               ///< the body as received
};

/// The levels, lowest first; `level_rank` of anything else is -1.
int level_rank(std::string_view level) noexcept;
/// Python's level names (WARNING, WARN, CRITICAL, FATAL ...) and numbers to ours ("" if none).
std::string normalise_level(std::string_view level);

/// An RFC 3339 time (2026-11-22T10:00:00Z, fractions and offsets allowed) as ms since the epoch.
std::optional<std::int64_t> parse_time_ms(std::string_view rfc3339);
/// ms since the epoch as RFC 3339 UTC with milliseconds.
std::string format_time_ms(std::int64_t ms);

/// A record for an event bus::intake decided to process.
recorded_event from_intake(const bus::intake::result& r, const bus::stomp::frame& f, std::int64_t received_ms);

/// A frame intake refused as invalid: when its body is a native-looking JSON event of a type
/// this build does not know (deploy.job, deploy.audit, alert ...), recorded with its own id,
/// type and fields; otherwise nullopt (the caller counts and acks it).
std::optional<recorded_event> from_unknown_native(const bus::stomp::frame& f, std::int64_t received_ms);

/// Who POSTed a record (the ingest token's name and defaults).
struct ingest_origin {
    std::string token_name;
    std::string remote;  ///< client address: the host when the record names none
    std::string system;  ///< the token's default system
};

/// Result of decoding an /ingest body.
struct ingest_batch {
    std::vector<recorded_event> records;
    std::string error;  ///< non-empty: refused (400) with this reason
};

/// `application/json`: one object or an array of at most `max_records` objects with fields
/// id, time (RFC 3339 or epoch seconds), level, daemon|service|name, host, system, repo,
/// revision, type, message|msg, plus anything else (kept in data).
/// `application/x-www-form-urlencoded`: the record dict Python's logging.handlers.HTTPHandler
/// sends (name, levelname, created, msg, args, ...); see docs/herald.md.
ingest_batch decode_ingest(std::string_view content_type, std::string_view body, const ingest_origin& origin,
                           std::int64_t received_ms, std::size_t max_records);

/// All key=value pairs of an application/x-www-form-urlencoded body (or query string), in
/// order; '+' is a space. nullopt when a %-escape is malformed.
std::optional<std::vector<std::pair<std::string, std::string>>> decode_form(std::string_view body);

/// Hex SHA-256 of `s` (ids for records that carry none).
std::string sha256_hex(std::string_view s);

} // namespace herald
