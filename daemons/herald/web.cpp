#include "web.hpp"

#include "bus/crypto.hpp"
#include "bus/detail/hex.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <stdexcept>


namespace herald {

using json = nlohmann::json;

std::string_view query_of(std::string_view target)
{
    auto q = target.find('?');
    return q == std::string_view::npos ? std::string_view{} : target.substr(q + 1);
}

std::optional<std::vector<std::pair<std::string, std::string>>> params_of(std::string_view target)
{
    return decode_form(query_of(target));
}

namespace {
json to_json(const recorded_event& e, bool with_raw)
{
    json j{{"seq", e.seq},         {"id", e.id},           {"time", format_time_ms(e.time_ms)},
           {"received", format_time_ms(e.received_ms)},    {"type", e.type},
           {"level", e.level},     {"daemon", e.daemon},   {"host", e.host},
           {"system", e.system},   {"repo", e.repo},       {"revision", e.revision},
           {"message", e.message}, {"source", e.source},   {"legacy", e.legacy},
           {"authenticated", e.authenticated}};
    json d = json::parse(e.data, nullptr, false);
    j["data"] = d.is_discarded() ? json(e.data) : d;
    if (with_raw) j["raw"] = e.raw;
    return j;
}
} // namespace

std::string event_json(const recorded_event& e, bool with_raw)
{
    return to_json(e, with_raw).dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string search_json(const search_result& r)
{
    json a = json::array();
    for (const auto& e : r.rows) a.push_back(to_json(e, false));
    json j{{"events", std::move(a)}};
    j["next_before"] = r.next_before ? json(*r.next_before) : json(nullptr);
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string html_escape(std::string_view s)
{
    std::string o;
    o.reserve(s.size() + s.size() / 8);
    for (char c : s) {
        switch (c) {
        case '&': o += "&amp;"; break;
        case '<': o += "&lt;"; break;
        case '>': o += "&gt;"; break;
        case '"': o += "&quot;"; break;
        case '\'': o += "&#39;"; break;
        default: o.push_back(c);
        }
    }
    return o;
}

std::string cookie_value(std::string_view h, std::string_view name)
{
    while (!h.empty()) {
        auto semi = h.find(';');
        auto part = h.substr(0, semi);
        h = semi == std::string_view::npos ? std::string_view{} : h.substr(semi + 1);
        while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
        auto eq = part.find('=');
        if (eq != std::string_view::npos && part.substr(0, eq) == name) return std::string(part.substr(eq + 1));
    }
    return {};
}

std::string random_token(std::size_t bytes)
{
    // The kernel's CSPRNG (getrandom(2), bus/crypto.hpp): nothing to initialise at start.
    const std::string b = bus::crypto::random_bytes(bytes);
    return bus::detail::to_hex(reinterpret_cast<const unsigned char*>(b.data()), b.size());
}

bool same_secret(std::string_view a, std::string_view b) noexcept { return bus::crypto::equal_constant_time(a, b); }

std::string session_store::create(const std::string& user, role r, std::chrono::steady_clock::time_point now)
{
    // expired first, then the oldest when still full
    for (auto it = s_.begin(); it != s_.end();) it = it->second.expires <= now ? s_.erase(it) : std::next(it);
    while (s_.size() >= max_ && !s_.empty()) {
        auto oldest = std::min_element(s_.begin(), s_.end(),
                                       [](const auto& a, const auto& b) { return a.second.created < b.second.created; });
        s_.erase(oldest);
    }
    auto id = random_token();
    s_[id] = entry{principal{user, r, random_token(), false}, now + ttl_, now};
    return id;
}

std::optional<principal> session_store::find(std::string_view id, std::chrono::steady_clock::time_point now)
{
    if (id.empty()) return std::nullopt;
    auto it = s_.find(id);
    if (it == s_.end()) return std::nullopt;
    if (it->second.expires <= now) {
        s_.erase(it);
        return std::nullopt;
    }
    return it->second.p;
}

void session_store::erase(std::string_view id)
{
    if (auto it = s_.find(id); it != s_.end()) s_.erase(it);
}

std::string session_cookie(std::string_view name, std::string_view value, std::chrono::seconds max_age, bool secure)
{
    return std::string(name) + "=" + std::string(value) + "; Path=/; Max-Age=" + std::to_string(max_age.count()) +
           "; HttpOnly; SameSite=Strict" + (secure ? "; Secure" : "");
}

namespace {
std::optional<std::string> base64_decode(std::string_view s)
{
    if (s.size() % 4 || s.size() > 4096) return std::nullopt;  // padded, as RFC 7617 credentials are
    return bus::crypto::base64_decode(s);
}
} // namespace

const ingest_token* ingest_auth(const std::vector<ingest_token>& tokens, std::string_view a)
{
    auto scheme = a.substr(0, a.find(' '));
    auto rest = a.size() > scheme.size() ? a.substr(scheme.size() + 1) : std::string_view{};
    while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
    std::string lower(scheme);
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const ingest_token* found = nullptr;
    if (lower == "bearer") {
        for (const auto& t : tokens)  // every one compared: no early exit on a match
            if (same_secret(t.secret, rest)) found = &t;
    } else if (lower == "basic") {
        auto d = base64_decode(rest);
        if (!d) return nullptr;
        auto colon = d->find(':');
        if (colon == std::string::npos) return nullptr;
        std::string_view user(d->data(), colon), pass(d->data() + colon + 1, d->size() - colon - 1);
        for (const auto& t : tokens)
            if (same_secret(t.secret, pass) && t.name == user) found = &t;
    }
    return found;
}

bool rate_limiter::take(const std::string& key, double n, std::chrono::steady_clock::time_point now)
{
    auto [it, fresh] = b_.try_emplace(key, bucket{burst_, now});
    auto& b = it->second;
    if (!fresh) {
        b.tokens = std::min(burst_, b.tokens + rate_ * std::chrono::duration<double>(now - b.at).count());
        b.at = now;
    }
    if (b.tokens < n) return false;
    b.tokens -= n;
    return true;
}

std::string sse_event(std::int64_t id, std::string_view name, std::string_view data)
{
    std::string o = "id: " + std::to_string(id) + "\nevent: " + std::string(name) + "\n";
    std::size_t i = 0;
    while (i <= data.size()) {
        auto nl = data.find('\n', i);
        o += "data: " + std::string(data.substr(i, nl == std::string_view::npos ? std::string_view::npos : nl - i)) + "\n";
        if (nl == std::string_view::npos) break;
        i = nl + 1;
    }
    return o + "\n";
}

} // namespace herald
