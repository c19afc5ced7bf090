#pragma once

// github-webhook's logic, pure: which hook a request is for, whether the provider signed it with
// the hook's secret, what the provider's payload says, and what to answer. No sockets, no Asio;
// the server (main.cpp) only moves bytes, dedupes, publishes and spools.

#include "bus/crypto.hpp"
#include "bus/event.hpp"
#include "bus/http/address.hpp"
#include "bus/http/message.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

namespace webhook {

/// Who sends to a hook. The verifier is chosen by provider, never guessed from header names:
/// Bitbucket sends SHA-256 under the header name GitHub uses for SHA-1.
enum class provider {
    github,            ///< GitHub and GitHub Enterprise: X-Hub-Signature-256 (X-Hub-Signature sha1 if allowed)
    gitlab,            ///< X-Gitlab-Token: the secret itself
    gitea,             ///< Gitea, Gogs, Forgejo: X-Gitea-Signature / X-Gogs-Signature, bare hex SHA-256
    bitbucket_cloud,   ///< X-Hub-Signature: sha256=<hex>; X-Event-Key repo:push
    bitbucket_server,  ///< X-Hub-Signature: sha256=<hex>; X-Event-Key repo:refs_changed
};

std::string_view to_string(provider p) noexcept;
std::optional<provider> parse_provider(std::string_view s) noexcept;

/// What to do with event types other than pushes and pings.
enum class other_events {
    ignore,  ///< 200, logged, not published
    reject,  ///< 400
};

/// Which name a forge repository gets on the bus.
enum class repo_naming {
    name,       ///< `repository.name` (what the original github-stomp published)
    full_name,  ///< `owner/name` (`path_with_namespace` on GitLab, `project/slug` on Bitbucket Server)
};

// Networks and the client behind trusted proxies: the shared HTTP module's.
using bus::http::cidr;
using bus::http::client_address;
using bus::http::in_any;
using bus::http::parse_cidr;

struct hook_config {
    std::string path = "/";  ///< request path, exact match
    provider kind = provider::github;
    std::string secret;            ///< from `secret-file` or `secret-env`; empty only with allow_unsigned
    bool allow_unsigned = false;   ///< the original's unauthenticated hook; logged loudly at start
    bool allow_sha1 = false;       ///< accept GitHub's legacy X-Hub-Signature (HMAC-SHA1)
    std::vector<std::string> repos;  ///< accepted repositories (exact, or `prefix*`); empty = all
    std::vector<std::string> refs_text;  ///< accepted refs (ECMAScript regexes, searched); empty = all
    std::vector<std::regex> refs;
    std::string topic;          ///< destination topic for commit events
    std::string report_topic;   ///< "Triggered fetch from Github: …" one-liners; empty = none
    repo_naming naming = repo_naming::name;
    other_events others = other_events::ignore;
};

/// Header names lower-cased.
using header_map = bus::http::header_map;

struct request {
    std::string_view method;
    std::string_view path;  ///< without the query string
    const header_map* headers = nullptr;
    std::string_view body;
    std::string_view header(std::string_view name) const;  ///< lower-case name; "" if absent
};

/// The outcome for one delivery.
struct decision {
    int status = 500;
    std::string body;        ///< JSON answer
    std::string event;       ///< the provider's event name (push, ping, Push Hook, repo:push …)
    std::string delivery;    ///< the provider's delivery id (or a body hash when it sent none)
    std::string repo;        ///< repository as named on the bus, when known
    std::string reason;      ///< for the access log, when not accepted
    std::vector<bus::commit_event> commits;  ///< to publish (status 202)
};

/// Answers a POST to `hook`: checks the signature, reads the event type and delivery id, parses
/// the payload and applies the hook's filters. Publishes nothing; dedupe is the caller's.
decision handle(const hook_config& hook, const request& req);

/// The delivery id the provider put in the headers ("" when none).
std::string delivery_id(provider p, const request& req);

/// A stable event id for the n-th commit of a delivery: redeliveries of the same delivery get
/// the same ids, so every consumer's own dedupe also recognises them.
std::string event_id_for(provider p, std::string_view delivery, std::size_t n);

/// An answer's JSON body: {"status": status, "detail": detail} (detail left out when empty).
std::string status_body(std::string_view status, std::string_view detail = {});

/// One request, for the access log.
struct access_entry {
    std::string_view remote, method, path;
    int status = 0;
    std::size_t bytes = 0;  ///< request body bytes
    double ms = 0;          ///< time to the answer
    const decision* d = nullptr;  ///< the delivery's fields (id, event, repo, reason, events), when one was read
};
/// The access-log line: one JSON object (time, remote, method, path, status, bytes, ms, and the
/// delivery's fields). Names no secret: a decision carries none.
std::string access_line(const access_entry& e, std::string_view time);

// ---- building blocks, exposed for tests ----

/// Lower-case hex HMAC-SHA256 / HMAC-SHA1 of a body under a secret, and the constant-time
/// comparison of two strings (length is not secret): libbus's, over Nettle (bus/crypto.hpp).
using bus::crypto::equal_constant_time;
using bus::crypto::hmac_sha1_hex;
using bus::crypto::hmac_sha256_hex;

/// `application/x-www-form-urlencoded` value of `key` ("+" is a space, %XX decoded); nullopt
/// when absent or malformed.
std::optional<std::string> form_value(std::string_view body, std::string_view key);

/// The deepest JSON nesting a payload may have. The forges' pushes nest about 6 deep; the
/// bound is checked by a scan before any parser allocates for nesting.
inline constexpr std::size_t max_json_depth = 64;
/// The deepest nesting of arrays and objects in `text` (strings skipped), stopping once it
/// exceeds `limit` (then returns limit + 1). Linear, allocates nothing.
std::size_t json_depth(std::string_view text, std::size_t limit) noexcept;

} // namespace webhook
