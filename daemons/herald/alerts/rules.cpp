#include "rules.hpp"

#include "bus/runtime/config_reader.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <cerrno>
#include <cstring>
#include <set>
#include <stdexcept>

#include <unistd.h>

namespace herald::alerts {

namespace {

constexpr std::size_t max_regex = 1024;

}  // namespace

struct regex::impl {
    pcre2_code* code = nullptr;
    pcre2_match_context* ctx = nullptr;
    ~impl()
    {
        if (ctx) pcre2_match_context_free(ctx);
        if (code) pcre2_code_free(code);
    }
};

regex::regex(std::string pattern) : pattern_(std::move(pattern))
{
    if (pattern_.size() > max_regex) throw std::invalid_argument("longer than 1024 characters");
    auto p = std::make_shared<impl>();
    int err = 0;
    PCRE2_SIZE off = 0;
    p->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern_.data()), pattern_.size(), PCRE2_UTF | PCRE2_MATCH_INVALID_UTF,
                            &err, &off, nullptr);
    if (!p->code) {
        PCRE2_UCHAR buf[256];
        pcre2_get_error_message(err, buf, sizeof buf);
        throw std::invalid_argument(std::string(reinterpret_cast<const char*>(buf)) + " at offset " + std::to_string(off));
    }
    p->ctx = pcre2_match_context_create(nullptr);
    // Bounded work per match: an event's text cannot make a rule spin (catastrophic backtracking
    // ends in PCRE2_ERROR_MATCHLIMIT, counted as no match).
    pcre2_set_match_limit(p->ctx, 100000);
    pcre2_set_depth_limit(p->ctx, 1000);
    impl_ = std::move(p);
}

bool regex::search(std::string_view text) const
{
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(impl_->code, nullptr);
    if (!md) return false;
    int rc = pcre2_match(impl_->code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0, 0, md, impl_->ctx);
    pcre2_match_data_free(md);
    return rc >= 0;
}

bool glob_match(std::string_view p, std::string_view s) noexcept
{
    // Iterative with one backtrack point: linear in practice, no recursion.
    std::size_t pi = 0, si = 0, star = std::string_view::npos, mark = 0;
    while (si < s.size()) {
        if (pi < p.size() && (p[pi] == '?' || p[pi] == s[si])) {
            ++pi;
            ++si;
        } else if (pi < p.size() && p[pi] == '*') {
            star = pi++;
            mark = si;
        } else if (star != std::string_view::npos) {
            pi = star + 1;
            si = ++mark;
        } else {
            return false;
        }
    }
    while (pi < p.size() && p[pi] == '*') ++pi;
    return pi == p.size();
}

namespace {

using bus::runtime::section;

std::string rule_name(const section& r, std::set<std::string>& seen)
{
    auto name = r.required("name");
    if (name.empty() || name.size() > 100) r.fail("name", "must be 1 to 100 characters");
    for (unsigned char c : name)
        if (c < 0x21 || c == 0x7f) r.fail("name", "no spaces or control characters");
    if (!seen.insert(name).second) r.fail("name", "`" + name + "` is used by another rule");
    return name;
}

regex compile(const section& s, std::string_view key, const std::string& pattern)
{
    try {
        return regex(pattern);
    } catch (const std::invalid_argument& e) {
        s.fail(key, std::string("not a valid regular expression: ") + e.what());
    }
}

unsigned read_actions(const section& r, const settings& st)
{
    unsigned dflt = to_bus | (st.mail.enabled() ? to_mail : 0u) | (st.webhook.enabled() ? to_webhook : 0u);
    if (!r.has("actions")) return dflt;
    unsigned out = 0;
    for (const auto& a : r.list("actions")) {
        if (a == "bus") out |= to_bus;
        else if (a == "mail") {
            if (!st.mail.enabled()) r.fail("actions", "`mail` but alerts.mail.url is not set");
            out |= to_mail;
        } else if (a == "webhook") {
            if (!st.webhook.enabled()) r.fail("actions", "`webhook` but alerts.webhook.url is not set");
            out |= to_webhook;
        } else {
            r.fail("actions", "unknown action `" + a + "`; expected bus, mail or webhook");
        }
    }
    if (out == 0) r.fail("actions", "empty: a rule must act somewhere");
    return out;
}

// libcurl (and OpenSSL) is initialised at the first send, not at start (send.cpp): a CA file it
// could not read is reported here, at start and by --check-config, not at the first alert.
void check_ca_file(const section& s, const std::string& file)
{
    if (!file.empty() && ::access(file.c_str(), R_OK) != 0)
        s.fail("ca-file", "cannot read '" + file + "': " + std::strerror(errno));
}

void read_mail(const section& m, mail_settings& out)
{
    out.url = m.required("url");
    if (!out.url.starts_with("smtp://") && !out.url.starts_with("smtps://"))
        m.fail("url", "must start with smtp:// (STARTTLS is then required) or smtps://");
    out.from = m.required("from");
    out.to = m.list("to");
    if (out.to.empty()) m.fail("to", "missing: at least one recipient");
    auto header_safe = [&](std::string_view key, const std::string& v) {
        if (v.empty() || v.size() > 320 || v.find_first_of("\r\n<>,;\" ") != std::string::npos)
            m.fail(key, "not a plain mail address");
    };
    header_safe("from", out.from);
    for (const auto& t : out.to) header_safe("to", t);
    out.auth_file = m.str("auth-file", "");
    if (!out.auth_file.empty()) {
        // Read now so a file that is too open stops the start (and --check-config) with the
        // runtime's one secret-file policy (OpenSSH's: 0600, owned by us or root).
        auto secret = bus::runtime::read_secret_file(out.auth_file, m.where("auth-file"));
        auto cut = secret.find('\n');
        if (cut == std::string::npos) cut = secret.find(':');
        if (cut == std::string::npos || cut == 0) m.fail("auth-file", "must hold `user:password` (or user and password on two lines)");
        out.user = secret.substr(0, cut);
        out.password = secret.substr(cut + 1);
    }
    out.ca_file = m.str("ca-file", "");
    check_ca_file(m, out.ca_file);
    out.timeout = m.duration("timeout", out.timeout, std::chrono::seconds(1), std::chrono::minutes(10));
    out.queue = static_cast<std::size_t>(m.integer("queue", 100, 1, 100000));
    out.retries = static_cast<int>(m.integer("retries", 3, 0, 100));
    out.retry_delay = m.duration("retry-delay", out.retry_delay, std::chrono::milliseconds(10), std::chrono::hours(1));
}

void read_webhook(const section& w, webhook_settings& out)
{
    out.url = w.required("url");
    if (!out.url.starts_with("http://") && !out.url.starts_with("https://")) w.fail("url", "must start with http:// or https://");
    out.token_file = w.str("token-file", "");
    if (!out.token_file.empty()) {
        out.token = bus::runtime::read_secret_file(out.token_file, w.where("token-file"));
        if (out.token.empty()) w.fail("token-file", "is empty");
        for (unsigned char c : out.token)
            if (c < 0x20 || c == 0x7f) w.fail("token-file", "holds a control character (one line: the bearer token)");
    }
    out.ca_file = w.str("ca-file", "");
    check_ca_file(w, out.ca_file);
    out.timeout = w.duration("timeout", out.timeout, std::chrono::milliseconds(100), std::chrono::minutes(5));
    out.queue = static_cast<std::size_t>(w.integer("queue", 100, 1, 100000));
    out.retries = static_cast<int>(w.integer("retries", 3, 0, 100));
    out.retry_delay = w.duration("retry-delay", out.retry_delay, std::chrono::milliseconds(10), std::chrono::hours(1));
}

}  // namespace

settings parse_settings(const section& a)
{
    using namespace std::chrono;
    settings st;
    st.check_interval = a.duration("check-interval", st.check_interval, milliseconds(100), hours(1));
    st.topic = a.str("topic", st.topic);
    if (st.topic.empty() || st.topic.find_first_of("\r\n\0", 0, 3) != std::string::npos) a.fail("topic", "not a topic name");
    st.state_file = a.str("state-file", "");
    st.max_sources = static_cast<std::size_t>(a.integer("max-sources", 10000, 1, 1000000));
    st.forget_after = a.duration("forget-after", st.forget_after, minutes(1), hours(24 * 3650));
    if (auto m = a.sub("mail")) read_mail(*m, st.mail);
    if (auto w = a.sub("webhook")) read_webhook(*w, st.webhook);

    std::set<std::string> names;
    for (const auto& r : a.sections("heartbeat")) {
        heartbeat_rule h;
        h.name = rule_name(r, names);
        h.daemon = r.str("daemon", "*");
        h.host = r.str("host", "*");
        h.max_age = r.duration("max-age", h.max_age, milliseconds(100), hours(24 * 30));
        h.cool_down = r.duration("cool-down", h.cool_down, milliseconds(0), hours(24 * 30));
        h.channels = read_actions(r, st);
        st.heartbeat.push_back(std::move(h));
    }
    for (const auto& r : a.sections("patterns")) {
        pattern_rule p;
        p.name = rule_name(r, names);
        p.types = r.list("type");
        for (const auto& t : p.types)
            if (t == "alert") r.fail("type", "alert events cannot trigger alerts (a rule could feed itself)");
        for (auto& [k, v] : r.string_map("match")) {
            if (k.empty()) r.fail("match", "empty field name");
            p.fields.push_back(field_match{k, v, std::nullopt});
        }
        if (auto re = r.sub("regex")) {
            for (const auto& k : re->keys()) p.fields.push_back(field_match{k, std::nullopt, compile(*re, k, re->required(k))});
        }
        if (auto t = r.str("text")) p.text = compile(r, "text", *t);
        if (p.types.empty() && p.fields.empty() && !p.text)
            r.fail("name", "rule `" + p.name + "` has no condition (type, match, regex or text)");
        p.cool_down = r.duration("cool-down", p.cool_down, milliseconds(0), hours(24 * 30));
        p.recover_after = r.duration("recover-after", p.cool_down, milliseconds(100), hours(24 * 30));
        p.channels = read_actions(r, st);
        st.patterns.push_back(std::move(p));
    }
    return st;
}

} // namespace herald::alerts
