#include "deploy/protocol.hpp"

#include "bus/json_fields.hpp"
#include "bus/text.hpp"

#include <algorithm>
#include <charconv>
#include <ctime>

namespace deploy {

using nlohmann::json;

namespace {

constexpr std::size_t max_output = 256 * 1024;

// The stages of a reply or audit line, bounded (100 stages, 256 KiB of output each).
std::vector<stage> read_stages(bus::json_fields& r, std::string_view field)
{
    std::vector<stage> out;
    r.objects(field, 100, "stages", [&](bus::json_fields& sr) {
        stage s;
        s.name = bus::strip_control(sr.str("name", 64), false);
        s.exit_code = static_cast<int>(std::clamp<std::int64_t>(sr.integer("exit_code"), -1000, 1000));
        s.output = bus::strip_control(sr.str("output", max_output), true);
        s.duration_s = sr.number("duration_s");
        out.push_back(std::move(s));
    });
    return out;
}

json stages_json(const std::vector<stage>& stages, bool with_output)
{
    json a = json::array();
    for (const auto& s : stages) {
        json j{{"name", s.name}, {"exit_code", s.exit_code}, {"duration_s", s.duration_s}};
        if (with_output) j["output"] = s.output;
        a.push_back(std::move(j));
    }
    return a;
}

bool id_char(char c) noexcept
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
}

template <class T, class F>
decoded<T> from_extension(const bus::event& e, std::string_view type, F&& f)
{
    decoded<T> out;
    if (e.type() != type) {
        out.error = "type: not " + std::string(type);
        return out;
    }
    const auto& x = std::get<bus::extension_event>(e.data);
    json d = json::parse(x.data, nullptr, false);
    if (d.is_discarded() || !d.is_object()) {
        out.error = "data: not an object";
        return out;
    }
    return f(d);
}

bus::event extension(std::string_view type, const json& d, std::string host)
{
    return bus::make_event(bus::extension_event{std::string(type), d.dump(-1, ' ', false, json::error_handler_t::replace)},
                           std::move(host));
}

} // namespace

std::string_view to_string(status s) noexcept
{
    switch (s) {
    case status::ok: return "ok";
    case status::aborted: return "aborted";
    case status::unknown_action: return "unknown action";
    case status::missing_data: return "missing data";
    case status::invalid_data: return "invalid data";
    case status::error: return "error";
    }
    return "error";
}

std::string_view to_string(phase p) noexcept
{
    switch (p) {
    case phase::direct: return "direct";
    case phase::vote: return "vote";
    case phase::commit: return "commit";
    case phase::release: return "release";
    }
    return "direct";
}

std::optional<phase> parse_phase(std::string_view s) noexcept
{
    for (auto p : {phase::direct, phase::vote, phase::commit, phase::release})
        if (to_string(p) == s) return p;
    return std::nullopt;
}

bool known_action(std::string_view a) noexcept
{
    return std::find(std::begin(actions), std::end(actions), a) != std::end(actions);
}

// ---- JSON ----

json to_json(const request_args& a)
{
    json j = json::object();
    if (!a.repo.empty()) j["repo"] = a.repo;
    if (!a.tag.empty()) j["tag"] = a.tag;
    if (!a.command.empty()) j["command"] = a.command;
    if (a.count) j["count"] = *a.count;
    return j;
}

json to_json(const request& r)
{
    json j{{"request_id", r.request_id}, {"job_id", r.job_id},     {"action", r.action},
           {"phase", to_string(r.ph)},   {"args", to_json(r.args)}, {"caller", r.caller},
           {"deadline", r.deadline},     {"reply_to", r.reply_to}};
    if (!r.nodes.empty()) j["nodes"] = r.nodes;
    return j;
}

json to_json(const reply& r)
{
    return json{{"request_id", r.request_id},
                {"job_id", r.job_id},
                {"identity", r.identity},
                {"action", r.action},
                {"phase", to_string(r.ph)},
                {"status", static_cast<int>(r.code)},
                {"message", r.message},
                {"vote", r.vote},
                {"data", r.data.is_object() ? r.data : json::object()},
                {"stages", stages_json(r.stages, true)},
                {"duration_s", r.duration_s}};
}

json to_json(const agent_info& a)
{
    json repos = json::array();
    for (const auto& r : a.repos) repos.push_back(json{{"name", r.name}, {"tag", r.tag}, {"commit", r.commit}});
    return json{{"identity", a.identity}, {"version", a.version}, {"facts", a.facts},
                {"classes", a.classes},   {"repos", repos},       {"interval_s", a.interval_s}};
}

json to_json(const job& j)
{
    json out{{"job_id", j.job_id}, {"state", j.state},   {"action", j.action},   {"repo", j.repo},
             {"tag", j.tag},       {"caller", j.caller}, {"options", j.options}, {"batch", j.batch},
             {"batches", j.batches}, {"nodes", j.nodes}, {"summary", nullptr}};
    if (j.summary)
        out["summary"] = json{{"discovered", j.summary->discovered}, {"responded", j.summary->responded},
                              {"ok", j.summary->ok},                 {"failed", j.summary->failed},
                              {"no_reply", j.summary->no_reply},     {"duration_s", j.summary->duration_s}};
    return out;
}

json to_json(const audit& a)
{
    return json{{"request_id", a.request_id}, {"job_id", a.job_id},   {"caller", a.caller},
                {"verified", a.verified},     {"action", a.action},   {"args", a.args},
                {"phase", a.phase},           {"status", static_cast<int>(a.code)},
                {"message", a.message},       {"stages", stages_json(a.stages, false)},
                {"duration_s", a.duration_s}};
}

decoded<request> request_from_json(const json& d)
{
    decoded<request> out;
    bus::json_fields r{d, out.error, "data."};
    request q;
    q.request_id = r.str("request_id", 128);
    q.job_id = r.str("job_id", 128);
    q.action = r.str("action", 64);
    auto ph = r.str("phase", 64);
    if (ph.empty()) q.ph = phase::direct;
    else if (auto p = parse_phase(ph)) q.ph = *p;
    else r.fail("phase", "must be direct, vote, commit or release");
    q.caller = r.str("caller", 256);
    q.deadline = r.str("deadline", 64);
    q.nodes = r.strings("nodes");
    q.reply_to = r.str("reply_to", 512);
    json args = r.object("args");
    bus::json_fields a{args, out.error, "data.args."};
    // Tags are length-checked by validate (status 4), so decode keeps up to 64 KiB of one.
    q.args.repo = a.str("repo", 64 * 1024);
    q.args.tag = a.str("tag", 64 * 1024);
    q.args.command = a.str("command", 64 * 1024);
    if (auto* c = a.find("count")) {
        if (c->is_number_integer()) {
            q.args.count = c->get<std::int64_t>();
        } else if (c->is_string()) {
            const auto& s = c->get_ref<const std::string&>();
            std::int64_t n = 0;
            auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
            if (ec != std::errc{} || p != s.data() + s.size()) a.fail("count", "not a number");
            else q.args.count = n;
        } else {
            a.fail("count", "not a number");
        }
    }
    if (out.error.empty()) out.value = std::move(q);
    return out;
}

decoded<reply> reply_from_json(const json& d)
{
    decoded<reply> out;
    bus::json_fields r{d, out.error, "data."};
    reply p;
    p.request_id = r.str("request_id", 128);
    p.job_id = r.str("job_id", 128);
    p.identity = r.str("identity", 128);
    p.action = r.str("action", 64);
    auto ph = r.str("phase", 64);
    if (ph.empty()) p.ph = phase::direct;
    else if (auto x = parse_phase(ph)) p.ph = *x;
    else r.fail("phase", "must be direct, vote, commit or release");
    auto code = r.integer("status");
    if (code < 0 || code > 5) r.fail("status", "not 0..5");
    p.code = static_cast<status>(code);
    p.message = bus::strip_control(r.str("message", 64 * 1024), true);
    p.vote = r.str("vote", 64);
    p.data = r.object("data");
    p.stages = read_stages(r, "stages");
    p.duration_s = r.number("duration_s");
    if (out.error.empty() && !valid_identity(p.identity)) out.error = "data.identity: invalid identity";
    if (out.error.empty()) out.value = std::move(p);
    return out;
}

decoded<agent_info> agent_info_from_json(const json& d)
{
    decoded<agent_info> out;
    bus::json_fields r{d, out.error, "data."};
    agent_info a;
    a.identity = r.str("identity", 128);
    a.version = r.str("version", 128);
    a.facts = r.string_map("facts");
    a.classes = r.strings("classes");
    a.interval_s = r.number("interval_s");
    r.objects("repos", 1000, "repos", [&](bus::json_fields& rr) {
        a.repos.push_back(repo_state{rr.str("name", 256), rr.str("tag", 256), rr.str("commit", 64)});
    });
    if (out.error.empty() && !valid_identity(a.identity)) out.error = "data.identity: invalid identity";
    if (out.error.empty()) out.value = std::move(a);
    return out;
}

decoded<job> job_from_json(const json& d)
{
    decoded<job> out;
    bus::json_fields r{d, out.error, "data."};
    job j;
    j.job_id = r.str("job_id", 128);
    j.state = r.str("state", 64);
    j.action = r.str("action", 64);
    j.repo = r.str("repo", 256);
    j.tag = r.str("tag", 256);
    j.caller = r.str("caller", 256);
    j.options = r.string_map("options");
    j.batch = r.integer("batch");
    j.batches = r.integer("batches");
    j.nodes = r.string_map("nodes");
    if (auto* s = r.find("summary")) {
        if (!s->is_object()) {
            r.fail("summary", "not an object");
        } else {
            bus::json_fields sr{*s, out.error, "data.summary."};
            job_summary sum;
            sum.discovered = sr.integer("discovered");
            sum.responded = sr.integer("responded");
            sum.ok = sr.integer("ok");
            sum.failed = sr.integer("failed");
            sum.no_reply = sr.strings("no_reply");
            sum.duration_s = sr.number("duration_s");
            j.summary = std::move(sum);
        }
    }
    if (out.error.empty() && !valid_id(j.job_id)) out.error = "data.job_id: invalid id";
    if (out.error.empty() && std::find(std::begin(job_states), std::end(job_states), j.state) == std::end(job_states))
        out.error = "data.state: unknown job state";
    if (out.error.empty()) out.value = std::move(j);
    return out;
}

decoded<audit> audit_from_json(const json& d)
{
    decoded<audit> out;
    bus::json_fields r{d, out.error, "data."};
    audit a;
    a.request_id = r.str("request_id", 128);
    a.job_id = r.str("job_id", 128);
    a.caller = r.str("caller", 256);
    a.verified = r.boolean("verified");
    a.action = r.str("action", 64);
    a.args = r.object("args");
    a.phase = r.str("phase", 64);
    auto code = r.integer("status");
    if (code < 0 || code > 5) r.fail("status", "not 0..5");
    a.code = static_cast<status>(code);
    a.message = bus::strip_control(r.str("message", 64 * 1024), true);
    a.stages = read_stages(r, "stages");
    a.duration_s = r.number("duration_s");
    if (out.error.empty()) out.value = std::move(a);
    return out;
}

bus::event to_event(const request& r, std::string host) { return extension(request_type, to_json(r), std::move(host)); }
bus::event to_event(const reply& r, std::string host) { return extension(reply_type, to_json(r), std::move(host)); }
bus::event to_event(const job& j, std::string host) { return extension(job_type, to_json(j), std::move(host)); }
bus::event to_event(const audit& a, std::string host) { return extension(audit_type, to_json(a), std::move(host)); }

bus::event to_heartbeat(const agent_info& a, std::chrono::duration<double> uptime,
                        std::map<std::string, std::uint64_t> counters, std::string host)
{
    bus::heartbeat_event h;
    h.host = host.empty() ? a.identity : host;
    h.daemon = "deploy-agent";
    h.version = a.version;
    h.uptime_s = uptime.count();
    h.counters = std::move(counters);
    h.extra = to_json(a).dump(-1, ' ', false, json::error_handler_t::replace);
    return bus::make_event(std::move(h), std::move(host));
}

decoded<request> request_from(const bus::event& e)
{
    return from_extension<request>(e, request_type, [](const json& d) { return request_from_json(d); });
}
decoded<reply> reply_from(const bus::event& e)
{
    return from_extension<reply>(e, reply_type, [](const json& d) { return reply_from_json(d); });
}
decoded<job> job_from(const bus::event& e)
{
    return from_extension<job>(e, job_type, [](const json& d) { return job_from_json(d); });
}
decoded<audit> audit_from(const bus::event& e)
{
    return from_extension<audit>(e, audit_type, [](const json& d) { return audit_from_json(d); });
}

decoded<agent_info> agent_info_from(const bus::event& e)
{
    decoded<agent_info> out;
    const auto* h = std::get_if<bus::heartbeat_event>(&e.data);
    if (!h || h->daemon != "deploy-agent") {
        out.error = "type: not a deploy-agent heartbeat";
        return out;
    }
    json d = h->extra.empty() ? json::object() : json::parse(h->extra, nullptr, false);
    if (d.is_discarded() || !d.is_object()) {
        out.error = "data: not an object";
        return out;
    }
    // `version` is the heartbeat's own field, so it is not among the extra keys.
    if (!d.contains("version")) d["version"] = h->version;
    return agent_info_from_json(d);
}

audit make_audit(const request& r, const reply& rep, std::string caller, bool verified)
{
    audit a;
    a.request_id = r.request_id;
    a.job_id = r.job_id;
    a.caller = std::move(caller);
    a.verified = verified;
    a.action = r.action;
    a.args = to_json(r.args);
    // A refused tag may be 10 kB of attack: the audit keeps a bounded, clean prefix.
    for (auto& [k, v] : a.args.items())
        if (v.is_string() && v.get_ref<const std::string&>().size() > 256)
            v = bus::strip_control(v.get<std::string>().substr(0, 256), false) + "…[truncated]";
    a.phase = std::string(to_string(r.ph));
    a.code = rep.code;
    a.message = rep.message;
    for (const auto& s : rep.stages) a.stages.push_back(stage{s.name, s.exit_code, {}, s.duration_s});
    a.duration_s = rep.duration_s;
    return a;
}

// ---- validation ----

bool valid_identity(std::string_view s) noexcept
{
    if (s.empty() || s.size() > 64) return false;
    char f = s.front();
    if (!((f >= 'a' && f <= 'z') || (f >= 'A' && f <= 'Z') || (f >= '0' && f <= '9'))) return false;
    return std::all_of(s.begin(), s.end(), id_char);
}

bool valid_id(std::string_view s) noexcept
{
    return !s.empty() && s.size() <= 64 && std::all_of(s.begin(), s.end(), id_char);
}

bool valid_tag(std::string_view s) noexcept
{
    if (s.empty() || s.size() > 255 || s.starts_with("-")) return false;
    std::string full = "refs/tags/";
    full += s;
    return bus::valid_ref_name(full);
}

bool valid_reply_to(std::string_view dest, std::string_view prefix) noexcept
{
    if (prefix.empty() || !dest.starts_with(prefix)) return false;
    auto rest = dest.substr(prefix.size());
    return valid_id(rest);
}

verdict validate(const request& r, std::string_view reply_prefix)
{
    auto missing = [](std::string what) { return verdict{status::missing_data, what + " missing"}; };
    auto invalid = [](std::string what) { return verdict{status::invalid_data, what}; };
    if (r.request_id.empty()) return missing("request_id");
    if (!valid_id(r.request_id)) return invalid("request_id: invalid");
    if (!r.job_id.empty() && !valid_id(r.job_id)) return invalid("job_id: invalid");
    if (r.action.empty()) return missing("action");
    if (!known_action(r.action)) return verdict{status::unknown_action, "unknown action"};
    if (r.deadline.empty()) return missing("deadline");
    if (!parse_time(r.deadline)) return invalid("deadline: not RFC 3339 UTC");
    for (const auto& n : r.nodes)
        if (!valid_identity(n)) return invalid("nodes: invalid identity");
    if (r.caller.size() > 256 || bus::has_control(r.caller)) return invalid("caller: invalid");
    bool mutating = r.action == "deploy" || r.action == "rollback" || r.action == "run";
    if ((r.ph == phase::vote || r.ph == phase::commit || r.ph == phase::release) && r.job_id.empty())
        return missing("job_id");
    if (mutating && r.ph == phase::direct) return invalid("phase: " + r.action + " runs only on vote and commit");
    if (!mutating && r.ph != phase::direct) return invalid("phase: " + r.action + " is direct only");
    if (r.ph == phase::release) return {};  // only the job id matters; nothing is answered
    if (r.reply_to.empty()) return missing("reply_to");
    if (!valid_reply_to(r.reply_to, reply_prefix)) return invalid("reply_to: not under the reply prefix");
    if (r.action == "tags" || r.action == "state" || r.action == "deploy" || r.action == "rollback") {
        if (r.args.repo.empty()) return missing("args.repo");
        if (!bus::valid_repo_name(r.args.repo) || r.args.repo.find('/') != std::string::npos)
            return invalid("args.repo: invalid repository name");
    }
    if (r.action == "deploy") {
        if (r.args.tag.empty()) return missing("args.tag");
        if (!valid_tag(r.args.tag)) return invalid("args.tag: invalid tag name");
    }
    if (r.action == "tags" && r.args.count && (*r.args.count < 1 || *r.args.count > 1000))
        return invalid("args.count: not 1..1000");
    if (r.action == "run") {
        if (r.args.command.empty()) return missing("args.command");
        if (!valid_id(r.args.command)) return invalid("args.command: invalid command name");
    }
    return {};
}

std::optional<std::chrono::system_clock::time_point> parse_time(std::string_view s) noexcept
{
    // YYYY-MM-DDTHH:MM:SS[.fff]Z
    if (s.size() < 20 || s.size() > 40 || s.back() != 'Z') return std::nullopt;
    auto num = [&](std::size_t pos, std::size_t len, int& out) {
        out = 0;
        for (std::size_t i = pos; i < pos + len; ++i) {
            if (s[i] < '0' || s[i] > '9') return false;
            out = out * 10 + (s[i] - '0');
        }
        return true;
    };
    int Y, M, D, h, m, sec;
    if (!num(0, 4, Y) || s[4] != '-' || !num(5, 2, M) || s[7] != '-' || !num(8, 2, D) ||
        (s[10] != 'T' && s[10] != 't') || !num(11, 2, h) || s[13] != ':' || !num(14, 2, m) || s[16] != ':' ||
        !num(17, 2, sec))
        return std::nullopt;
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60) return std::nullopt;
    double frac = 0;
    std::size_t i = 19;
    if (s[i] == '.') {
        double scale = 0.1;
        ++i;
        if (i >= s.size() - 1) return std::nullopt;
        for (; i < s.size() - 1; ++i) {
            if (s[i] < '0' || s[i] > '9') return std::nullopt;
            frac += (s[i] - '0') * scale;
            scale /= 10;
        }
    }
    if (i != s.size() - 1) return std::nullopt;
    std::tm tm{};
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    std::time_t t = timegm(&tm);
    return std::chrono::system_clock::from_time_t(t) +
           std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(frac));
}

std::string format_time(std::chrono::system_clock::time_point t)
{
    std::time_t tt = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// ---- policy ----

policy_decision evaluate(const std::vector<policy_rule>& rules, std::string_view caller, std::string_view action,
                         std::string_view object) noexcept
{
    for (std::size_t i = 0; i < rules.size(); ++i) {
        const auto& r = rules[i];
        if (r.caller != "*" && r.caller != caller) continue;
        if (r.action != "*" && r.action != action) continue;
        if (r.repo != "*" && (object.empty() || r.repo != object)) continue;
        return {r.allow, static_cast<int>(i)};
    }
    return {};
}

std::string bound_output(std::string s, std::size_t limit)
{
    if (s.size() <= limit) return s;
    static constexpr std::string_view mark = "…[truncated]\n";
    std::size_t cut = s.size() - limit;
    // Do not start inside a UTF-8 sequence.
    while (cut < s.size() && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) ++cut;
    return std::string(mark) + s.substr(cut);
}

} // namespace deploy
