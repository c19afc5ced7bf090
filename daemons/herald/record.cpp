#include "record.hpp"
#include "bus/numeric.hpp"

#include "bus/crypto.hpp"
#include "bus/event.hpp"
#include "bus/url.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>
#include <ctime>

namespace herald {

using json = nlohmann::json;

namespace {

constexpr std::array<std::string_view, 5> levels{"debug", "info", "warning", "error", "critical"};

std::string lower(std::string_view s)
{
    std::string o(s);
    for (auto& c : o) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return o;
}

// One line of at most `n` bytes (control characters to spaces), for the table.
std::string one_line(std::string_view s, std::size_t n = 400)
{
    std::string o;
    o.reserve(std::min(s.size(), n));
    for (char c : s) {
        if (o.size() >= n) break;
        o.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7f ? ' ' : c);
    }
    return o;
}

std::string str_field(const json& j, std::string_view key)
{
    auto it = j.find(key);
    if (it == j.end()) return {};
    if (it->is_string()) return it->get<std::string>();
    if (it->is_number_integer()) return std::to_string(it->get<std::int64_t>());
    return {};
}

std::string short_rev(std::string_view r) { return std::string(r.substr(0, 12)); }

// The daemon that produces a type (bus events name no producer but heartbeats).
std::string producer_of(std::string_view type, std::string_view destination, const json& data)
{
    if (type == "heartbeat") return str_field(data, "daemon");
    if (type == "commit") {
        auto src = str_field(data, "source");
        return src == "svn" ? "svn-stomp" : src == "git" ? "stomp-post-receive" : "github-webhook";
    }
    if (type == "build") return "jenkins";
    if (type == "fetch") return "stomp-git";
    if (type == "package") return "reprepro-stomp";
    if (type == "package.result") return "stomp-repo";
    if (type.starts_with("deploy")) return "deploy-agent";
    // notices and the like: the topic's last word (future.events.stomp-git -> stomp-git)
    auto d = destination;
    if (auto s = d.rfind('.'); s != std::string_view::npos) d = d.substr(s + 1);
    else if (auto p = d.rfind('/'); p != std::string_view::npos) d = d.substr(p + 1);
    return std::string(d);
}

// Table columns from an event's type and data (known and unknown types alike).
void summarise(recorded_event& r, const json& d)
{
    const auto& t = r.type;
    r.repo = str_field(d, "repo");
    r.level = "info";
    bool ok = !d.contains("ok") || !d["ok"].is_boolean() || d["ok"].get<bool>();
    if (t == "commit") {
        r.revision = str_field(d, "new_rev");
        auto msg = str_field(d, "message");
        r.message = "[" + r.repo + "] " + str_field(d, "ref") + " " + short_rev(r.revision) + " " +
                    str_field(d, "author") + ": " + msg.substr(0, msg.find('\n'));
    } else if (t == "build") {
        r.revision = str_field(d, "commit");
        auto status = str_field(d, "status");
        r.message = "build " + str_field(d, "job") + " #" + str_field(d, "number") + " " + str_field(d, "phase") +
                    (status.empty() ? "" : " " + status);
        if (status == "FAILURE" || status == "ABORTED") r.level = "error";
        else if (status == "UNSTABLE") r.level = "warning";
    } else if (t == "fetch") {
        r.revision = str_field(d, "new_rev");
        r.message = str_field(d, "host") + " fetched [" + r.repo + "] " + str_field(d, "ref") + " " +
                    short_rev(r.revision) + (ok ? "" : ": " + str_field(d, "error"));
    } else if (t == "package") {
        r.repo = str_field(d, "codename");
        r.revision = str_field(d, "new_version");
        r.message = "package " + str_field(d, "name") + " " + str_field(d, "old_version") + " -> " + r.revision;
    } else if (t == "package.result") {
        r.message = "apt lists " + str_field(d, "outcome") + (ok ? "" : ": " + str_field(d, "error"));
        if (!ok) r.level = "warning";
    } else if (t == "heartbeat") {
        r.message = "heartbeat " + str_field(d, "daemon") + " " + str_field(d, "version");
        r.level = "debug";
    } else if (t == "notice") {
        r.message = str_field(d, "text");
    } else {
        // deploy.request/result/job/audit, alerts, and types to come
        r.revision = str_field(d, "tag");
        if (r.revision.empty()) r.revision = str_field(d, "new_rev");
        if (r.revision.empty()) r.revision = str_field(d, "commit");
        std::string text;
        for (const char* k : {"message", "text", "summary", "state", "stage", "action"})
            if (auto v = str_field(d, k); !v.empty()) {
                text = v;
                break;
            }
        r.message = t + (r.repo.empty() ? "" : " [" + r.repo + "]") + (r.revision.empty() ? "" : " " + r.revision) +
                    (text.empty() ? "" : ": " + text) + (ok ? "" : " " + str_field(d, "error"));
        if (auto lv = normalise_level(str_field(d, "level")); !lv.empty()) r.level = lv;
        if (t.starts_with("alert")) r.level = r.level == "info" ? "warning" : r.level;
    }
    if (!ok && r.level == "info") r.level = "error";
    r.message = one_line(r.message);
}

// Broker-derived ids (legacy frames without dk-event-id) may be reused after a broker restart:
// the body's hash makes a new message with a reused id a new row, a redelivery the same one.
std::string stable_id(std::string_view id, const bus::stomp::frame& f)
{
    if (!id.starts_with("legacy-")) return std::string(id);
    return std::string(id) + "-" + sha256_hex(std::string(f.get("destination")) + "\n" + f.body).substr(0, 16);
}

} // namespace

int level_rank(std::string_view level) noexcept
{
    for (std::size_t i = 0; i < levels.size(); ++i)
        if (levels[i] == level) return static_cast<int>(i);
    return -1;
}

std::string normalise_level(std::string_view level)
{
    auto l = lower(level);
    if (l == "warn") return "warning";
    if (l == "fatal" || l == "crit") return "critical";
    if (l == "err") return "error";
    if (l == "notset") return "debug";
    if (level_rank(l) >= 0) return l;
    int n = 0;
    auto [p, ec] = std::from_chars(l.data(), l.data() + l.size(), n);
    if (ec == std::errc{} && p == l.data() + l.size() && !l.empty()) {
        if (n >= 50) return "critical";
        if (n >= 40) return "error";
        if (n >= 30) return "warning";
        if (n >= 20) return "info";
        return "debug";
    }
    return {};
}

std::optional<std::int64_t> parse_time_ms(std::string_view s)
{
    // YYYY-MM-DDTHH:MM:SS[.fff][Z|+hh:mm|-hh:mm]
    if (s.size() < 19 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ') || s[13] != ':' || s[16] != ':')
        return std::nullopt;
    auto num = [&](std::size_t pos, std::size_t len, int& out) {
        auto [p, ec] = std::from_chars(s.data() + pos, s.data() + pos + len, out);
        return ec == std::errc{} && p == s.data() + pos + len;
    };
    int Y, M, D, h, m, sec;
    if (!num(0, 4, Y) || !num(5, 2, M) || !num(8, 2, D) || !num(11, 2, h) || !num(14, 2, m) || !num(17, 2, sec))
        return std::nullopt;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60) return std::nullopt;
    std::size_t i = 19;
    int frac_ms = 0;
    if (i < s.size() && s[i] == '.') {
        ++i;
        int digits = 0;
        while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
            if (digits < 3) frac_ms = frac_ms * 10 + (s[i] - '0');
            ++digits;
            ++i;
        }
        if (digits == 0) return std::nullopt;
        for (int k = digits; k < 3; ++k) frac_ms *= 10;
    }
    int offset_min = 0;
    if (i < s.size()) {
        if (s[i] == 'Z' || s[i] == 'z') {
            ++i;
        } else if ((s[i] == '+' || s[i] == '-') && i + 6 == s.size() && s[i + 3] == ':') {
            int oh, om;
            if (!num(i + 1, 2, oh) || !num(i + 4, 2, om)) return std::nullopt;
            offset_min = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
            i += 6;
        }
    }
    if (i != s.size()) return std::nullopt;
    // days from civil (Howard Hinnant)
    int y = Y - (M <= 2);
    int era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = static_cast<unsigned>(y - era * 400);
    unsigned doy = static_cast<unsigned>((153 * (M + (M > 2 ? -3 : 9)) + 2) / 5 + D - 1);
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    std::int64_t days = static_cast<std::int64_t>(era) * 146097 + static_cast<std::int64_t>(doe) - 719468;
    std::int64_t secs = days * 86400 + h * 3600 + m * 60 + sec - offset_min * 60;
    return secs * 1000 + frac_ms;
}

std::string format_time_ms(std::int64_t ms)
{
    std::time_t t = static_cast<std::time_t>(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[40];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    char out[48];
    std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(((ms % 1000) + 1000) % 1000));
    return out;
}

std::string sha256_hex(std::string_view s) { return bus::crypto::sha256_hex(s); }

recorded_event from_intake(const bus::intake::result& r, const bus::stomp::frame& f, std::int64_t received_ms)
{
    recorded_event e;
    const auto& ev = *r.ev;
    auto j = bus::to_json(ev);
    const json& d = j["data"];
    e.id = stable_id(ev.id, f);
    e.type = std::string(ev.type());
    e.host = ev.host;
    e.received_ms = received_ms;
    e.time_ms = parse_time_ms(ev.time).value_or(received_ms);
    e.source = std::string(f.get("destination"));
    e.legacy = r.legacy;
    e.authenticated = r.authenticated;
    e.daemon = producer_of(e.type, e.source, d);
    summarise(e, d);
    e.data = d.dump(-1, ' ', false, json::error_handler_t::replace);
    e.raw = f.body;
    return e;
}

std::optional<recorded_event> from_unknown_native(const bus::stomp::frame& f, std::int64_t received_ms)
{
    if (f.body.empty() || f.body.front() != '{') return std::nullopt;
    json j = json::parse(f.body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    auto id = str_field(j, "id");
    auto type = str_field(j, "type");
    if (id.empty() || id.size() > 200 || type.empty() || type.size() > 64) return std::nullopt;
    if (!std::all_of(type.begin(), type.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-'; }))
        return std::nullopt;
    recorded_event e;
    e.id = one_line(id, 200);
    e.type = type;
    e.host = one_line(str_field(j, "host"), 255);
    e.received_ms = received_ms;
    e.time_ms = parse_time_ms(str_field(j, "time")).value_or(received_ms);
    e.source = std::string(f.get("destination"));
    json d = j.contains("data") && j["data"].is_object() ? j["data"] : json::object();
    e.daemon = producer_of(e.type, e.source, d);
    if (auto dd = str_field(d, "daemon"); !dd.empty()) e.daemon = one_line(dd, 100);
    if (e.host.empty()) e.host = one_line(str_field(d, "host"), 255);
    summarise(e, d);
    e.repo = one_line(e.repo, 200);
    e.revision = one_line(e.revision, 200);
    e.data = d.dump(-1, ' ', false, json::error_handler_t::replace);
    e.raw = f.body;
    return e;
}

std::optional<std::vector<std::pair<std::string, std::string>>> decode_form(std::string_view body)
{
    std::vector<std::pair<std::string, std::string>> out;
    auto dec = [](std::string_view s) -> std::optional<std::string> {
        std::string t(s);
        std::replace(t.begin(), t.end(), '+', ' ');
        return bus::percent_decode(t);
    };
    while (!body.empty()) {
        auto amp = body.find('&');
        auto part = body.substr(0, amp);
        body = amp == std::string_view::npos ? std::string_view{} : body.substr(amp + 1);
        if (part.empty()) continue;
        auto eq = part.find('=');
        auto k = dec(part.substr(0, eq));
        auto v = dec(eq == std::string_view::npos ? std::string_view{} : part.substr(eq + 1));
        if (!k || !v) return std::nullopt;
        out.emplace_back(std::move(*k), std::move(*v));
    }
    return out;
}

namespace {

// Python's repr of the args tuple ("('x', 3)") to a list of values, for the common case of
// str/int/float literals; nullopt for anything else (the message then keeps msg and args).
std::optional<std::vector<std::string>> python_args(std::string_view a)
{
    std::vector<std::string> out;
    if (a == "()" || a == "None" || a.empty()) return out;
    if (a.size() < 2 || a.front() != '(' || a.back() != ')') return std::nullopt;
    a = a.substr(1, a.size() - 2);
    std::size_t i = 0;
    while (i < a.size()) {
        while (i < a.size() && a[i] == ' ') ++i;
        if (i >= a.size()) break;
        if (a[i] == '\'' || a[i] == '"') {
            char q = a[i++];
            std::string v;
            while (i < a.size() && a[i] != q) {
                if (a[i] == '\\' && i + 1 < a.size()) {
                    char n = a[i + 1];
                    v.push_back(n == 'n' ? '\n' : n == 't' ? '\t' : n);
                    i += 2;
                } else {
                    v.push_back(a[i++]);
                }
            }
            if (i >= a.size()) return std::nullopt;
            ++i;
            out.push_back(std::move(v));
        } else {
            auto e = a.find(',', i);
            auto tok = a.substr(i, e == std::string_view::npos ? a.size() - i : e - i);
            while (!tok.empty() && tok.back() == ' ') tok.remove_suffix(1);
            if (!bus::parse_decimal(tok)) {
                if (tok != "True" && tok != "False" && tok != "None") return std::nullopt;
            }
            out.emplace_back(tok);
            i = e == std::string_view::npos ? a.size() : e;
        }
        while (i < a.size() && a[i] == ' ') ++i;
        if (i < a.size()) {
            if (a[i] != ',') return std::nullopt;
            ++i;
        }
    }
    return out;
}

// msg % args for %s/%d/%r/%f/%i conversions (no width/precision); nullopt when not that simple.
std::optional<std::string> python_format(std::string_view msg, const std::vector<std::string>& args)
{
    std::string o;
    std::size_t n = 0;
    for (std::size_t i = 0; i < msg.size(); ++i) {
        if (msg[i] != '%') {
            o.push_back(msg[i]);
            continue;
        }
        if (i + 1 >= msg.size()) return std::nullopt;
        char c = msg[++i];
        if (c == '%') {
            o.push_back('%');
            continue;
        }
        if (std::string_view("sdrfi").find(c) == std::string_view::npos || n >= args.size()) return std::nullopt;
        o += args[n++];
    }
    if (n != args.size()) return std::nullopt;
    return o;
}

std::string clip(std::string s, std::size_t n)
{
    if (s.size() > n) s.resize(n);
    return s;
}

// `dumped`: rec already serialised (the JSON path has it for raw and the id), else "".
recorded_event from_fields(const json& rec, const ingest_origin& o, std::int64_t received_ms, std::string_view body_id,
                           std::string dumped = {})
{
    recorded_event e;
    e.received_ms = received_ms;
    e.type = clip(one_line(str_field(rec, "type"), 64), 64);
    if (e.type.empty()) e.type = "log";
    e.time_ms = received_ms;
    if (auto it = rec.find("time"); it != rec.end()) {
        if (it->is_string()) e.time_ms = parse_time_ms(it->get<std::string>()).value_or(received_ms);
        else if (it->is_number()) e.time_ms = bus::round_to_int64(it->get<double>() * 1000);
    } else if (auto c = rec.find("created"); c != rec.end()) {
        double secs = 0;
        if (c->is_number()) secs = c->get<double>();
        else if (c->is_string()) {
            secs = bus::parse_decimal(c->get<std::string>()).value_or(0);
        }
        if (secs > 0) e.time_ms = bus::round_to_int64(secs * 1000);
    }
    std::string lv = str_field(rec, "level");
    if (lv.empty()) lv = str_field(rec, "levelname");
    e.level = normalise_level(lv);
    if (e.level.empty()) e.level = "info";
    for (const char* k : {"daemon", "service", "name"})
        if (auto v = str_field(rec, k); !v.empty()) {
            e.daemon = v;
            break;
        }
    for (const char* k : {"host", "hostname"})
        if (auto v = str_field(rec, k); !v.empty()) {
            e.host = v;
            break;
        }
    if (e.host.empty()) e.host = o.remote;
    e.system = str_field(rec, "system");
    if (e.system.empty()) e.system = o.system;
    e.repo = str_field(rec, "repo");
    e.revision = str_field(rec, "revision");
    std::string msg = str_field(rec, "message");
    if (msg.empty()) {
        msg = str_field(rec, "msg");
        auto args = str_field(rec, "args");
        if (auto a = python_args(args)) {
            if (auto f = python_format(msg, *a)) msg = *f;
            else if (!a->empty()) msg += " " + args;
        } else if (!args.empty()) {
            msg += " " + args;
        }
        if (auto exc = str_field(rec, "exc_text"); !exc.empty() && exc != "None") msg += "\n" + exc;
    }
    e.message = clip(one_line(msg), 2000);
    e.daemon = clip(one_line(e.daemon), 100);
    e.host = clip(one_line(e.host), 255);
    e.system = clip(one_line(e.system), 100);
    e.repo = clip(one_line(e.repo), 200);
    e.revision = clip(one_line(e.revision), 200);
    e.source = "ingest:" + o.token_name;
    e.data = dumped.empty() ? rec.dump(-1, ' ', false, json::error_handler_t::replace) : std::move(dumped);
    auto given = str_field(rec, "id");
    e.id = given.empty() ? "ingest-" + sha256_hex(o.token_name + "\n" + std::string(body_id)).substr(0, 32)
                         : clip(one_line(given), 200);
    return e;
}

} // namespace

ingest_batch decode_ingest(std::string_view content_type, std::string_view body, const ingest_origin& origin,
                           std::int64_t received_ms, std::size_t max_records)
{
    ingest_batch b;
    auto ct = lower(content_type.substr(0, content_type.find(';')));
    while (!ct.empty() && ct.back() == ' ') ct.pop_back();
    if (ct == "application/x-www-form-urlencoded") {
        auto pairs = decode_form(body);
        if (!pairs) {
            b.error = "malformed form body";
            return b;
        }
        json rec = json::object();
        for (auto& [k, v] : *pairs)
            if (!rec.contains(k)) rec[k] = v;  // first wins
        b.records.push_back(from_fields(rec, origin, received_ms, body));
        b.records.back().raw = std::string(body);
        return b;
    }
    if (ct == "application/json" || ct.empty()) {
        json j = json::parse(body, nullptr, false);
        if (j.is_discarded()) {
            b.error = "malformed JSON";
            return b;
        }
        if (j.is_object()) j = json::array({j});
        if (!j.is_array()) {
            b.error = "expected a JSON object or an array of objects";
            return b;
        }
        if (j.size() > max_records) {
            b.error = "more than " + std::to_string(max_records) + " records in one request";
            return b;
        }
        b.records.reserve(j.size());
        for (const auto& rec : j) {
            if (!rec.is_object()) {
                b.error = "expected a JSON object or an array of objects";
                b.records.clear();
                return b;
            }
            // serialised once: the id hash, data and raw (for a JSON record they are the same text)
            auto one = rec.dump(-1, ' ', false, json::error_handler_t::replace);
            b.records.push_back(from_fields(rec, origin, received_ms, one, one));
            b.records.back().raw = std::move(one);
        }
        return b;
    }
    b.error = "unsupported content type (use application/json or application/x-www-form-urlencoded)";
    return b;
}

} // namespace herald
