#include "webhook.hpp"

#include "bus/detail/hex.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <span>
#include <utility>

namespace webhook {

using json = nlohmann::json;

namespace {
// Each provider's config names: the first is its own (to_string), the others are accepted.
constexpr std::pair<std::string_view, provider> provider_names[] = {
    {"github", provider::github},           {"github-enterprise", provider::github},
    {"ghe", provider::github},              {"gitlab", provider::gitlab},
    {"gitea", provider::gitea},             {"gogs", provider::gitea},
    {"forgejo", provider::gitea},           {"bitbucket-cloud", provider::bitbucket_cloud},
    {"bitbucket", provider::bitbucket_cloud}, {"bitbucket-server", provider::bitbucket_server},
    {"bitbucket-datacenter", provider::bitbucket_server},
};
} // namespace

std::string_view to_string(provider p) noexcept
{
    for (const auto& [name, q] : provider_names)
        if (q == p) return name;
    return "github";
}

std::optional<provider> parse_provider(std::string_view s) noexcept
{
    for (const auto& [name, q] : provider_names)
        if (name == s) return q;
    return std::nullopt;
}

// ---- text ----

namespace {

std::string lower(std::string_view s)
{
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

} // namespace

// ---- form decoding ----

std::optional<std::string> form_value(std::string_view body, std::string_view key)
{
    auto decode = [](std::string_view s) -> std::optional<std::string> {
        std::string out;
        out.reserve(s.size());
        for (std::size_t i = 0; i < s.size(); ++i) {
            char c = s[i];
            if (c == '+') {
                out.push_back(' ');
            } else if (c == '%') {
                if (i + 2 >= s.size()) return std::nullopt;
                auto hex = [](char h) -> int {
                    if (h >= '0' && h <= '9') return h - '0';
                    if (h >= 'a' && h <= 'f') return h - 'a' + 10;
                    if (h >= 'A' && h <= 'F') return h - 'A' + 10;
                    return -1;
                };
                int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
                if (hi < 0 || lo < 0) return std::nullopt;
                out.push_back(static_cast<char>(hi * 16 + lo));
                i += 2;
            } else {
                out.push_back(c);
            }
        }
        return out;
    };
    while (!body.empty()) {
        auto amp = body.find('&');
        auto pair = body.substr(0, amp);
        body = amp == std::string_view::npos ? std::string_view{} : body.substr(amp + 1);
        auto eq = pair.find('=');
        auto k = decode(pair.substr(0, eq));
        if (!k) return std::nullopt;
        if (*k == key) return decode(eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1));
    }
    return std::nullopt;
}

// ---- payloads ----

std::size_t json_depth(std::string_view text, std::size_t limit) noexcept
{
    std::size_t depth = 0, deepest = 0;
    bool in_string = false, escaped = false;
    for (char c : text) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > deepest) deepest = depth;
            if (deepest > limit) return limit + 1;
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return deepest;
}

// ---- requests ----

std::string_view request::header(std::string_view name) const
{
    if (!headers) return {};
    auto it = headers->find(name);
    return it == headers->end() ? std::string_view{} : std::string_view(it->second);
}

std::string delivery_id(provider p, const request& req)
{
    auto first = [&](std::initializer_list<std::string_view> names) -> std::string {
        for (auto n : names)
            if (auto v = req.header(n); !v.empty()) return std::string(v);
        return {};
    };
    switch (p) {
    case provider::github: return first({"x-github-delivery"});
    case provider::gitlab: return first({"idempotency-key", "x-gitlab-event-uuid"});
    case provider::gitea: return first({"x-gitea-delivery", "x-gogs-delivery", "x-github-delivery"});
    case provider::bitbucket_cloud: return first({"x-request-uuid"});
    case provider::bitbucket_server: return first({"x-request-id"});
    }
    return {};
}

std::string event_id_for(provider p, std::string_view delivery, std::size_t n)
{
    std::string in = std::string(to_string(p)) + ":" + std::string(delivery) + ":" + std::to_string(n);
    auto d = bus::crypto::sha256(in);
    // Shaped like an RFC 4122 UUID (version 8: custom), so it looks like our other event ids.
    d[6] = static_cast<unsigned char>((d[6] & 0x0f) | 0x80);
    d[8] = static_cast<unsigned char>((d[8] & 0x3f) | 0x80);
    std::string h = bus::detail::to_hex(d.data(), 16);
    return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) + "-" + h.substr(20);
}

namespace {

enum class kind { push, ping, other };

struct classified {
    kind what = kind::other;
    std::string name;  ///< the provider's own event name
};

classified classify(provider p, const request& req)
{
    classified c;
    switch (p) {
    case provider::github:
        c.name = req.header("x-github-event");
        c.what = c.name == "push" ? kind::push : c.name == "ping" ? kind::ping : kind::other;
        break;
    case provider::gitlab:
        c.name = req.header("x-gitlab-event");
        c.what = (c.name == "Push Hook" || c.name == "Tag Push Hook") ? kind::push : kind::other;
        break;
    case provider::gitea: {
        for (auto h : {"x-gitea-event", "x-gogs-event", "x-github-event"})
            if (c.name = req.header(h); !c.name.empty()) break;
        c.what = c.name == "push" ? kind::push : c.name == "ping" ? kind::ping : kind::other;
        break;
    }
    case provider::bitbucket_cloud:
    case provider::bitbucket_server: {
        c.name = req.header("x-event-key");
        auto push_key = p == provider::bitbucket_cloud ? "repo:push" : "repo:refs_changed";
        c.what = c.name == push_key ? kind::push : c.name == "diagnostics:ping" ? kind::ping : kind::other;
        break;
    }
    }
    return c;
}

// 0 = ok, 401 = no credentials, 403 = wrong credentials.
std::pair<int, std::string> check_signature(const hook_config& h, const request& req)
{
    if (h.secret.empty()) {
        if (h.allow_unsigned) return {0, {}};
        return {403, "hook has no secret configured"};
    }
    auto sig_prefixed = [&](std::string_view header, std::string_view algo) -> std::optional<std::string> {
        auto v = req.header(header);
        if (v.empty()) return std::nullopt;
        std::string prefix = std::string(algo) + "=";
        if (!v.starts_with(prefix)) return std::string();  // present but not ours: a mismatch
        return lower(v.substr(prefix.size()));
    };
    switch (h.kind) {
    case provider::github: {
        if (auto s = sig_prefixed("x-hub-signature-256", "sha256"))
            return equal_constant_time(*s, hmac_sha256_hex(h.secret, req.body))
                       ? std::pair{0, std::string()}
                       : std::pair{403, std::string("X-Hub-Signature-256 does not match")};
        if (auto s = sig_prefixed("x-hub-signature", "sha1")) {
            if (!h.allow_sha1) return {403, "X-Hub-Signature (SHA-1) only, and allow-sha1 is off"};
            return equal_constant_time(*s, hmac_sha1_hex(h.secret, req.body))
                       ? std::pair{0, std::string()}
                       : std::pair{403, std::string("X-Hub-Signature does not match")};
        }
        return {401, "no X-Hub-Signature-256 header"};
    }
    case provider::gitlab: {
        auto t = req.header("x-gitlab-token");
        if (t.empty()) return {401, "no X-Gitlab-Token header"};
        // Compare digests, so not even the secret's length leaks through timing.
        return equal_constant_time(hmac_sha256_hex("gitlab-token", t), hmac_sha256_hex("gitlab-token", h.secret))
                   ? std::pair{0, std::string()}
                                                : std::pair{403, std::string("X-Gitlab-Token does not match")};
    }
    case provider::gitea: {
        auto s = req.header("x-gitea-signature");
        if (s.empty()) s = req.header("x-gogs-signature");
        if (s.empty()) return {401, "no X-Gitea-Signature header"};
        return equal_constant_time(lower(s), hmac_sha256_hex(h.secret, req.body))
                   ? std::pair{0, std::string()}
                   : std::pair{403, std::string("X-Gitea-Signature does not match")};
    }
    case provider::bitbucket_cloud:
    case provider::bitbucket_server: {
        auto s = sig_prefixed("x-hub-signature", "sha256");
        if (!s) return {401, "no X-Hub-Signature header"};
        return equal_constant_time(*s, hmac_sha256_hex(h.secret, req.body))
                   ? std::pair{0, std::string()}
                   : std::pair{403, std::string("X-Hub-Signature does not match")};
    }
    }
    return {403, "unknown provider"};
}

std::string answer(std::string_view status, std::string_view detail = {}, std::string_view delivery = {},
                   std::size_t events = 0)
{
    json j{{"status", status}};
    if (!detail.empty()) j["detail"] = detail;
    if (!delivery.empty()) j["delivery"] = delivery;
    if (status == "accepted") j["events"] = events;
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string str(const json& j, std::string_view key)
{
    if (!j.is_object()) return {};
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) return {};
    return it->get<std::string>();
}

const json& obj(const json& j, std::string_view key)
{
    static const json null_value;
    if (!j.is_object()) return null_value;
    auto it = j.find(key);
    return it == j.end() ? null_value : *it;
}

std::string zeros() { return std::string(40, '0'); }

std::string last_segment(std::string_view path)
{
    auto slash = path.rfind('/');
    return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

std::string who(std::string_view name, std::string_view email)
{
    if (email.empty()) return std::string(name);
    if (name.empty()) return std::string(email);
    return std::string(name) + " <" + std::string(email) + ">";
}

bus::commit_source source_of(provider p)
{
    switch (p) {
    case provider::github: return bus::commit_source::github;
    case provider::gitlab: return bus::commit_source::gitlab;
    case provider::gitea: return bus::commit_source::gitea;
    default: return bus::commit_source::bitbucket;
    }
}

// A commit's fields from GitHub/Gitea/GitLab commit objects.
void fill_commit(bus::commit_event& c, const json& commit)
{
    if (!commit.is_object()) return;
    c.message = str(commit, "message");
    c.date = str(commit, "timestamp");
    const json& a = obj(commit, "author");
    c.author = who(str(a, "name"), str(a, "email"));
    if (auto u = str(commit, "url"); !u.empty() && c.url.empty()) c.url = u;
}

const json* find_commit(const json& commits, std::string_view id)
{
    if (!commits.is_array()) return nullptr;
    for (const auto& c : commits)
        if (str(c, "id") == id) return &c;
    return nullptr;
}

std::vector<bus::commit_event> parse_github_like(provider p, const hook_config& h, const json& j)
{
    bus::commit_event c;
    c.source = source_of(p);
    const json& repo = obj(j, "repository");
    c.repo = str(repo, h.naming == repo_naming::full_name ? "full_name" : "name");
    c.ref = str(j, "ref");
    c.old_rev = str(j, "before");
    c.new_rev = str(j, "after");
    c.url = str(j, "compare");
    if (c.url.empty()) c.url = str(j, "compare_url");  // Gitea
    const json& head = obj(j, "head_commit");
    if (head.is_object()) {
        fill_commit(c, head);
    } else if (auto* hc = find_commit(obj(j, "commits"), c.new_rev)) {
        fill_commit(c, *hc);
    }
    if (c.author.empty()) {
        const json& pusher = obj(j, "pusher");
        c.author = who(str(pusher, "name").empty() ? str(pusher, "login") : str(pusher, "name"), str(pusher, "email"));
    }
    return {c};
}

std::vector<bus::commit_event> parse_gitlab(const hook_config& h, const json& j)
{
    bus::commit_event c;
    c.source = bus::commit_source::gitlab;
    const json& project = obj(j, "project");
    // The path, not `name` (a display name that may hold spaces): `path_with_namespace` whole, or
    // its last segment (the repository's own path).
    std::string full = str(project, "path_with_namespace");
    c.repo = h.naming == repo_naming::full_name ? full : last_segment(full);
    if (c.repo.empty()) c.repo = str(obj(j, "repository"), "name");  // older GitLab
    c.ref = str(j, "ref");
    c.old_rev = str(j, "before");
    c.new_rev = str(j, "after");
    if (auto* hc = find_commit(obj(j, "commits"), c.new_rev)) fill_commit(c, *hc);
    if (c.author.empty()) c.author = who(str(j, "user_name"), str(j, "user_email"));
    if (auto web = str(project, "web_url"); !web.empty() && !bus::is_zero_revision(c.new_rev))
        c.url = web + "/-/commit/" + c.new_rev;
    return {c};
}

std::string ref_for(std::string_view type, std::string_view name)
{
    // Bitbucket Cloud: branch, named_branch, bookmark (Mercurial), tag, annotated_tag.
    if (type == "tag" || type == "annotated_tag" || type == "TAG") return "refs/tags/" + std::string(name);
    return "refs/heads/" + std::string(name);
}

std::vector<bus::commit_event> parse_bitbucket_cloud(const hook_config& h, const json& j)
{
    std::vector<bus::commit_event> out;
    const json& repo = obj(j, "repository");
    // `full_name` is workspace/slug; `name` is a display name, so the slug is its last segment.
    std::string full = str(repo, "full_name");
    std::string name = h.naming == repo_naming::full_name ? full : last_segment(full);
    if (name.empty()) name = str(repo, "name");
    const json& actor = obj(j, "actor");
    const json& changes = obj(obj(j, "push"), "changes");
    if (!changes.is_array()) throw std::invalid_argument("push.changes: missing");
    for (const auto& ch : changes) {
        bus::commit_event c;
        c.source = bus::commit_source::bitbucket;
        c.repo = name;
        const json& nw = obj(ch, "new");
        const json& old = obj(ch, "old");
        const json& side = nw.is_object() ? nw : old;
        if (!side.is_object()) throw std::invalid_argument("push.changes[]: neither new nor old");
        c.ref = ref_for(str(side, "type"), str(side, "name"));
        c.old_rev = old.is_object() ? str(obj(old, "target"), "hash") : zeros();
        c.new_rev = nw.is_object() ? str(obj(nw, "target"), "hash") : zeros();
        if (nw.is_object()) {
            const json& t = obj(nw, "target");
            c.message = str(t, "message");
            c.date = str(t, "date");
            c.author = str(obj(t, "author"), "raw");
            c.url = str(obj(obj(t, "links"), "html"), "href");
        }
        if (c.author.empty()) c.author = str(actor, "display_name");
        out.push_back(std::move(c));
    }
    return out;
}

std::vector<bus::commit_event> parse_bitbucket_server(const hook_config& h, const json& j)
{
    std::vector<bus::commit_event> out;
    const json& repo = obj(j, "repository");
    std::string name = h.naming == repo_naming::full_name
                           ? str(obj(repo, "project"), "key") + "/" + str(repo, "slug")
                           : str(repo, "slug");
    const json& actor = obj(j, "actor");
    const json& changes = obj(j, "changes");
    if (!changes.is_array()) throw std::invalid_argument("changes: missing");
    for (const auto& ch : changes) {
        bus::commit_event c;
        c.source = bus::commit_source::bitbucket;
        c.repo = name;
        const json& ref = obj(ch, "ref");
        c.ref = str(ref, "id");
        if (c.ref.empty()) c.ref = str(ch, "refId");
        if (!c.ref.starts_with("refs/")) c.ref = ref_for(str(ref, "type"), str(ref, "displayId"));
        c.old_rev = str(ch, "fromHash");
        c.new_rev = str(ch, "toHash");
        c.author = who(str(actor, "displayName").empty() ? str(actor, "name") : str(actor, "displayName"),
                       str(actor, "emailAddress"));
        c.date = str(j, "date");
        out.push_back(std::move(c));
    }
    return out;
}

// The payload as a JSON tree of only what the parsers above read. A GitHub push is mostly
// `repository` (about 90 fields, URLs and counters) and `sender`; building all of it was a fifth
// of the daemon's CPU per delivery (bench/results/perf-3-webhook3.md). A SAX filter in front of
// the library's own tree builder: members nobody reads are lexed (the whole text is still checked
// to be JSON, so a malformed payload is rejected as before) but never built.
class payload_filter {
public:
    payload_filter(json& out, provider p) : dom_(out, false), gitlab_(p == provider::gitlab) {}

    bool null() { return drop() || dom_.null(); }
    bool boolean(bool v) { return drop() || dom_.boolean(v); }
    bool number_integer(json::number_integer_t v) { return drop() || dom_.number_integer(v); }
    bool number_unsigned(json::number_unsigned_t v) { return drop() || dom_.number_unsigned(v); }
    bool number_float(json::number_float_t v, const json::string_t& s) { return drop() || dom_.number_float(v, s); }
    bool string(json::string_t& v) { return drop() || dom_.string(v); }
    bool binary(json::binary_t& v) { return drop() || dom_.binary(v); }
    bool start_object(std::size_t n) { return open() || dom_.start_object(n); }
    bool start_array(std::size_t n) { return open() || dom_.start_array(n); }
    bool end_object() { return close() || dom_.end_object(); }
    bool end_array() { return close() || dom_.end_array(); }
    bool key(json::string_t& k)
    {
        if (skip_from_) return true;
        if (!wanted(k)) {
            drop_next_ = true;
            return true;
        }
        return dom_.key(k);
    }
    bool parse_error(std::size_t pos, const std::string& token, const nlohmann::detail::exception& e)
    {
        return dom_.parse_error(pos, token, e);
    }

private:
    // Each returns true when the event is swallowed (inside or at a dropped member).
    bool drop()
    {
        if (skip_from_) return true;
        if (!drop_next_) return false;
        drop_next_ = false;
        return true;
    }
    bool open()
    {
        ++depth_;
        if (skip_from_) return true;
        if (!drop_next_) return false;
        drop_next_ = false;
        skip_from_ = depth_;
        return true;
    }
    bool close()
    {
        bool swallowed = skip_from_ != 0;
        if (skip_from_ == depth_) skip_from_ = 0;
        --depth_;
        return swallowed;
    }
    bool wanted(std::string_view k)
    {
        // Objects whose members are read, by top-level key; members of the others are all kept.
        static constexpr std::string_view github_top[] = {"repository", "ref", "before", "after", "compare",
                                                          "compare_url", "head_commit", "commits", "pusher"};
        static constexpr std::string_view gitlab_top[] = {"project", "repository", "ref", "before",
                                                          "after", "commits", "user_name", "user_email"};
        if (depth_ == 1) {
            auto keys = gitlab_ ? std::span<const std::string_view>(gitlab_top)
                                : std::span<const std::string_view>(github_top);
            auto it = std::find(keys.begin(), keys.end(), k);
            top_ = it == keys.end() ? std::string_view{} : *it;
            return it != keys.end();
        }
        if (depth_ == 2 && top_ == "repository") return k == "name" || (!gitlab_ && k == "full_name");
        if (depth_ == 2 && top_ == "project") return k == "path_with_namespace" || k == "web_url";
        return true;
    }

    nlohmann::detail::json_sax_dom_parser<json> dom_;
    bool gitlab_;
    std::size_t depth_ = 0;      // open arrays and objects
    std::size_t skip_from_ = 0;  // depth of the dropped array or object being skipped; 0 = none
    bool drop_next_ = false;     // the value after a dropped key
    std::string_view top_;       // the top-level member being read
};

json parse_payload(provider p, std::string_view text)
{
    if (p != provider::github && p != provider::gitea && p != provider::gitlab) return json::parse(text, nullptr, false);
    json j;
    payload_filter f(j, p);
    if (!json::sax_parse(text, &f)) return json(json::value_t::discarded);
    return j;
}

bool repo_accepted(const hook_config& h, std::string_view repo)
{
    if (h.repos.empty()) return true;
    return std::any_of(h.repos.begin(), h.repos.end(), [&](const std::string& pat) {
        if (pat.ends_with('*')) return repo.starts_with(std::string_view(pat).substr(0, pat.size() - 1));
        return repo == pat;
    });
}

bool ref_accepted(const hook_config& h, const std::string& ref)
{
    if (h.refs.empty()) return true;
    return std::any_of(h.refs.begin(), h.refs.end(), [&](const std::regex& r) { return std::regex_search(ref, r); });
}

} // namespace

decision handle(const hook_config& h, const request& req)
{
    decision d;
    auto cls = classify(h.kind, req);
    d.event = cls.name;
    d.delivery = delivery_id(h.kind, req);
    if (d.delivery.size() > 200) d.delivery.resize(200);

    if (auto [code, why] = check_signature(h, req); code != 0) {
        d.status = code;
        d.reason = why;
        d.body = answer(code == 401 ? "unauthorized" : "forbidden", why);
        return d;
    }
    if (cls.name.empty()) {
        d.status = 400;
        d.reason = "no event type header for provider " + std::string(to_string(h.kind));
        d.body = answer("bad request", d.reason);
        return d;
    }
    if (cls.what == kind::ping) {
        d.status = 200;
        d.reason = "ping";
        d.body = answer("pong");
        return d;
    }
    if (cls.what == kind::other) {
        d.reason = "event type not published: " + cls.name;
        d.status = h.others == other_events::reject ? 400 : 200;
        d.body = answer(h.others == other_events::reject ? "rejected" : "ignored", d.reason);
        return d;
    }

    // The payload: JSON, or GitHub/Gitea's form encoding with the JSON in `payload`.
    std::string form_json;
    std::string_view text = req.body;
    auto ctype = lower(req.header("content-type"));
    if (ctype.starts_with("application/x-www-form-urlencoded")) {
        auto v = form_value(req.body, "payload");
        if (!v) {
            d.status = 400;
            d.reason = "form body without a payload field";
            d.body = answer("bad request", d.reason);
            return d;
        }
        form_json = std::move(*v);
        text = form_json;
    }
    // Bound the nesting before parsing: a parser builds every level (an 8-million-deep body
    // held 613 MB), whether or not the hook is signed.
    if (json_depth(text, max_json_depth) > max_json_depth) {
        d.status = 400;
        d.reason = "payload nested deeper than " + std::to_string(max_json_depth) + " levels";
        d.body = answer("bad request", d.reason);
        return d;
    }
    json j = parse_payload(h.kind, text);
    if (j.is_discarded() || !j.is_object()) {
        d.status = 400;
        d.reason = "payload is not a JSON object";
        d.body = answer("bad request", d.reason);
        return d;
    }
    std::vector<bus::commit_event> commits;
    try {
        switch (h.kind) {
        case provider::github:
        case provider::gitea: commits = parse_github_like(h.kind, h, j); break;
        case provider::gitlab: commits = parse_gitlab(h, j); break;
        case provider::bitbucket_cloud: commits = parse_bitbucket_cloud(h, j); break;
        case provider::bitbucket_server: commits = parse_bitbucket_server(h, j); break;
        }
    } catch (const std::exception& e) {
        d.status = 400;
        d.reason = std::string("payload: ") + e.what();
        d.body = answer("bad request", d.reason);
        return d;
    }
    if (d.delivery.empty()) {
        // No delivery id: the body's hash still makes an exact redelivery recognisable.
        d.delivery = "sha256:" + bus::crypto::sha256_hex(req.body);
    }
    // Every field that reaches the bus is validated as strictly as our own hooks' output.
    for (std::size_t i = 0; i < commits.size(); ++i) {
        auto& c = commits[i];
        if (c.message.size() > 64 * 1024) c.message.resize(64 * 1024);
        bus::event probe{event_id_for(h.kind, d.delivery, i), "webhook", "2000-01-01T00:00:00Z", c};
        if (c.repo.empty() || c.ref.empty() || c.new_rev.empty() || c.old_rev.empty()) {
            d.status = 400;
            d.reason = "payload lacks repository, ref, before or after";
            d.body = answer("bad request", d.reason);
            return d;
        }
        if (auto why = bus::validate(probe); !why.empty()) {
            d.status = 400;
            d.reason = "payload: " + why;
            d.body = answer("bad request", d.reason);
            d.repo = bus::valid_repo_name(c.repo) ? c.repo : "";
            return d;
        }
    }
    d.repo = commits.empty() ? std::string() : commits.front().repo;
    if (!commits.empty() && !repo_accepted(h, d.repo)) {
        // 2xx, not 4xx: a forge disables hooks that keep failing (GitLab does so automatically),
        // and a push of another repository to this hook is not an error of the forge's.
        d.status = 200;
        d.reason = "repository " + d.repo + " is not accepted by this hook";
        d.body = answer("ignored", d.reason, d.delivery);
        return d;
    }
    std::erase_if(commits, [&](const bus::commit_event& c) { return !ref_accepted(h, c.ref); });
    if (commits.empty()) {
        d.status = 200;
        d.reason = "no accepted refs in this push";
        d.body = answer("ignored", d.reason, d.delivery);
        return d;
    }
    d.status = 202;
    d.commits = std::move(commits);
    d.body = answer("accepted", {}, d.delivery, d.commits.size());
    return d;
}

std::string status_body(std::string_view status, std::string_view detail) { return answer(status, detail); }

std::string access_line(const access_entry& e, std::string_view time)
{
    json j{{"time", time}, {"remote", e.remote}, {"method", e.method}, {"path", e.path},
           {"status", e.status}, {"bytes", e.bytes}, {"ms", e.ms}};
    if (const auto* d = e.d) {
        if (!d->delivery.empty()) j["delivery"] = d->delivery;
        if (!d->event.empty()) j["event"] = d->event;
        if (!d->repo.empty()) j["repo"] = d->repo;
        if (!d->reason.empty()) j["reason"] = d->reason;
        if (!d->commits.empty()) j["events"] = d->commits.size();
    }
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

} // namespace webhook
