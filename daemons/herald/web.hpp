#pragma once

// herald's web side, pure: URL parameters, JSON and HTML rendering, cookies, sessions and CSRF
// tokens, the ingest token check and its rate limiter. No sockets, no Asio, no SQLite.

#include "config.hpp"
#include "record.hpp"
#include "store.hpp"

#include "bus/http/message.hpp"

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace herald {

/// The query string of a target ("/a?b=c" → "b=c"), "" when none.
std::string_view query_of(std::string_view target);
/// Its key=value pairs (form decoding); nullopt when malformed.
std::optional<std::vector<std::pair<std::string, std::string>>> params_of(std::string_view target);

/// A record as the JSON API shows it (`raw` only when asked: it can be large).
std::string event_json(const recorded_event& e, bool with_raw);
/// {"events":[...],"next_before":N|null}
std::string search_json(const search_result& r);

/// HTML-escapes text (& < > " ').
std::string html_escape(std::string_view s);

/// Who is asking.
struct principal {
    std::string user;
    role r = role::viewer;
    std::string csrf;  ///< the session's CSRF token ("" for proxy logins: they use the cookie-less header form)
    bool via_proxy = false;
};

/// Cookie `name` from a Cookie header ("" when absent).
std::string cookie_value(std::string_view cookie_header, std::string_view name);

/// Sessions in memory: random 256-bit ids, each with its own CSRF token; bounded (the oldest is
/// dropped at the limit); expire after `ttl`.
class session_store {
public:
    session_store(std::chrono::seconds ttl, std::size_t max) : ttl_(ttl), max_(max) {}
    /// A new session; returns its id.
    std::string create(const std::string& user, role r, std::chrono::steady_clock::time_point now);
    std::optional<principal> find(std::string_view id, std::chrono::steady_clock::time_point now);
    void erase(std::string_view id);
    std::size_t size() const { return s_.size(); }

private:
    struct entry {
        principal p;
        std::chrono::steady_clock::time_point expires, created;
    };
    std::chrono::seconds ttl_;
    std::size_t max_;
    std::map<std::string, entry, std::less<>> s_;
};

/// A random token (hex of `bytes` random bytes from getrandom(2)).
std::string random_token(std::size_t bytes = 32);
/// Constant-time string comparison (length not secret).
bool same_secret(std::string_view a, std::string_view b) noexcept;

/// The Set-Cookie value for a session (HttpOnly; SameSite=Strict; Path=/; Secure unless off).
std::string session_cookie(std::string_view name, std::string_view value, std::chrono::seconds max_age, bool secure);

/// The ingest token a request carries: `Authorization: Bearer <token>` or `Basic` with the
/// token's name and the token as password (logging.handlers.HTTPHandler's credentials=).
/// nullptr when none matches.
const ingest_token* ingest_auth(const std::vector<ingest_token>& tokens, std::string_view authorization);

/// A token bucket per key (ingest tokens): `rate` per second, up to `burst`.
class rate_limiter {
public:
    rate_limiter(double rate, double burst) : rate_(rate), burst_(burst) {}
    /// Takes `n`; false (nothing taken) when fewer are left.
    bool take(const std::string& key, double n, std::chrono::steady_clock::time_point now);

private:
    struct bucket {
        double tokens;
        std::chrono::steady_clock::time_point at;
    };
    double rate_, burst_;
    std::map<std::string, bucket, std::less<>> b_;
};

// ---- pages ----

struct page_context {
    const principal* who = nullptr;
    std::string csrf;  ///< for forms on the page
};

/// Every page's head (title, style sheet, script) and top bar (user, log out, links).
std::string page_head(std::string_view title);
std::string page_topbar(const page_context& ctx);

/// The search page: filters, the table (details on click), pagination, the live-feed switch.
std::string search_page(const page_context& ctx, const query& q, const search_result& r, std::string_view error);
/// One event's page (all fields, raw body, links to related events).
std::string event_page(const page_context& ctx, const recorded_event& e, const std::vector<recorded_event>& related);
/// The login form (`csrf`: the pre-session token echoed in the form), with an error line.
std::string login_page(std::string_view csrf, std::string_view error);
/// A small error page.
std::string error_page(int status, std::string_view text);
/// One table row (the live feed inserts these).
std::string table_row(const recorded_event& e);
/// The page script and style (served at /herald.js and /herald.css: no inline script, CSP).
std::string_view page_script();
std::string_view page_style();
/// The Content-Security-Policy of every page.
std::string_view page_csp();

/// A server-sent event (id, event name, data lines).
std::string sse_event(std::int64_t id, std::string_view name, std::string_view data);

} // namespace herald
