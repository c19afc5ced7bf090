#include "bus/event.hpp"

#include "bus/crypto.hpp"
#include "bus/json_fields.hpp"
#include "bus/text.hpp"

#include <nlohmann/json.hpp>

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <ctime>
#include <stdexcept>

namespace bus {

using nlohmann::json;

namespace {

constexpr std::size_t max_field = 4096;
constexpr std::size_t max_message = 64 * 1024;

template <class... Ts>
struct overloaded : Ts... {
    using Ts::operator()...;
};
template <class... Ts>
overloaded(Ts...) -> overloaded<Ts...>;

std::string hostname()
{
    std::array<char, 256> buf{};
    if (::gethostname(buf.data(), buf.size() - 1) != 0) return "localhost";
    return buf.data();
}

json data_json(const payload& data)
{
    return std::visit(
        overloaded{
            [](const commit_event& c) {
                json j{{"source", to_string(c.source)}, {"repo", c.repo},     {"ref", c.ref},
                       {"old_rev", c.old_rev},          {"new_rev", c.new_rev}, {"author", c.author},
                       {"date", c.date},                {"message", c.message}};
                if (!c.svn_project.empty()) j["svn_project"] = c.svn_project;
                if (!c.changed_dirs.empty()) j["changed_dirs"] = c.changed_dirs;
                if (!c.url.empty()) j["url"] = c.url;
                return j;
            },
            [](const build_event& b) {
                json j{{"job", b.job},       {"number", b.number}, {"url", b.url},
                       {"phase", to_string(b.phase)}, {"status", b.status},
                       {"commit", b.commit}, {"branch", b.branch}, {"repo", b.repo}};
                // The same build in the Jenkins Notification plugin's shape, for tools that
                // already read that (ignored when decoding).
                std::string phase = b.phase == build_phase::queued    ? "QUEUED"
                                    : b.phase == build_phase::started ? "STARTED"
                                                                      : "COMPLETED";
                j["name"] = b.job;
                j["build"] = json{{"full_url", b.url},
                                  {"number", b.number},
                                  {"phase", phase},
                                  {"status", b.status},
                                  {"scm", json{{"branch", b.branch}, {"commit", b.commit}}}};
                if (!b.run_id.empty()) {
                    j["run_id"] = b.run_id;
                    j["worker"] = b.worker;
                    j["ref"] = b.ref;
                    j["duration_s"] = b.duration_s;
                    j["slow"] = b.slow;
                    j["warnings"] = b.warnings;
                    json steps = json::array();
                    for (const auto& st : b.steps)
                        steps.push_back(json{{"name", st.name}, {"status", st.status}, {"exit_code", st.exit_code},
                                             {"duration_s", st.duration_s}});
                    j["steps"] = std::move(steps);
                    if (!b.artifacts.empty()) j["artifacts"] = b.artifacts;
                }
                return j;
            },
            [](const fetch_event& f) {
                return json{{"repo", f.repo},       {"ref", f.ref},   {"old_rev", f.old_rev},
                            {"new_rev", f.new_rev}, {"host", f.host}, {"mode", f.mode},
                            {"duration_s", f.duration_s}, {"ok", f.ok}, {"error", f.error}};
            },
            [](const package_event& p) {
                return json{{"name", p.name},         {"old_version", p.old_version},
                            {"new_version", p.new_version}, {"codename", p.codename},
                            {"component", p.component}, {"architecture", p.architecture},
                            {"file", p.file}};
            },
            [](const deploy_request& d) {
                return json{{"repo", d.repo}, {"tag", d.tag}, {"request_id", d.request_id},
                            {"hosts", d.hosts}, {"requested_by", d.requested_by}};
            },
            [](const deploy_result& d) {
                return json{{"repo", d.repo},   {"tag", d.tag},     {"request_id", d.request_id},
                            {"host", d.host},   {"ok", d.ok},       {"stage", d.stage},
                            {"error", d.error}, {"previous_tag", d.previous_tag}};
            },
            [](const heartbeat_event& h) {
                json j;
                if (!h.extra.empty()) {
                    j = json::parse(h.extra, nullptr, false);
                    if (!j.is_object()) j = json::object();
                }
                j.update(json{{"host", h.host}, {"daemon", h.daemon}, {"version", h.version},
                              {"uptime_s", h.uptime_s}, {"counters", h.counters}});
                return j;
            },
            [](const extension_event& x) {
                json j = json::parse(x.data, nullptr, false);
                return j.is_object() ? j : json::object();
            },
            [](const notice_event& n) { return json{{"text", n.text}}; },
            [](const package_result& r) {
                json pk = json::array();
                for (const auto& p : r.packages)
                    pk.push_back(json{{"name", p.name}, {"version", p.version}, {"candidate", p.candidate},
                                      {"installed", p.installed}});
                return json{{"host", r.host},         {"ok", r.ok},
                            {"outcome", r.outcome},   {"error", r.error},
                            {"duration_s", r.duration_s}, {"attempt", r.attempt},
                            {"upgrade_pending", r.upgrade_pending}, {"packages", pk},
                            {"events", r.events}};
            },
            [](const alert_event& a) {
                return json{{"rule", a.rule},         {"kind", a.kind},
                            {"state", a.state},       {"daemon", a.daemon},
                            {"source_host", a.source_host}, {"text", a.text},
                            {"event_id", a.event_id}, {"last_seen", a.last_seen},
                            {"suppressed", a.suppressed}};
            },
        },
        data);
}

std::optional<payload> data_from_json(std::string_view type, const json& d, std::string& error)
{
    json_fields r{d, error, "data."};
    if (type == "commit") {
        commit_event c;
        auto src = r.required("source");
        auto s = parse_commit_source(src);
        if (!s) {
            r.fail("source", "unknown commit source");
            return std::nullopt;
        }
        c.source = *s;
        c.repo = r.required("repo");
        c.ref = r.str("ref");
        c.old_rev = r.str("old_rev");
        c.new_rev = r.str("new_rev");
        c.author = r.str("author");
        c.date = r.str("date");
        c.message = r.str("message", max_message);
        c.svn_project = r.str("svn_project");
        c.changed_dirs = r.strings("changed_dirs");
        c.url = r.str("url");
        return c;
    }
    if (type == "build") {
        build_event b;
        b.job = r.required("job");
        b.number = r.integer("number");
        b.url = r.str("url");
        auto phase = r.required("phase");
        if (phase == "queued") b.phase = build_phase::queued;
        else if (phase == "started") b.phase = build_phase::started;
        else if (phase == "completed") b.phase = build_phase::completed;
        else if (error.empty()) r.fail("phase", "must be queued, started or completed");
        b.status = r.str("status");
        b.commit = r.str("commit");
        b.branch = r.str("branch");
        b.repo = r.str("repo");
        b.run_id = r.str("run_id");
        b.worker = r.str("worker");
        b.ref = r.str("ref");
        b.duration_s = r.number("duration_s");
        b.slow = r.boolean("slow", false);
        b.warnings = r.strings("warnings", 100);
        b.artifacts = r.strings("artifacts", 1000);
        r.objects("steps", 1000, "steps", [&](json_fields& sr) {
            // A step's fields of another type are left out rather than refusing the whole build.
            const auto& s = sr.j;
            build_step st;
            if (auto n = s.find("name"); n != s.end() && n->is_string()) st.name = n->get<std::string>();
            if (auto n = s.find("status"); n != s.end() && n->is_string()) st.status = n->get<std::string>();
            if (auto n = s.find("exit_code"); n != s.end() && n->is_number_integer()) st.exit_code = n->get<int>();
            if (auto n = s.find("duration_s"); n != s.end() && n->is_number()) st.duration_s = n->get<double>();
            b.steps.push_back(std::move(st));
        });
        return b;
    }
    if (type == "fetch") {
        fetch_event f;
        f.repo = r.required("repo");
        f.ref = r.str("ref");
        f.old_rev = r.str("old_rev");
        f.new_rev = r.str("new_rev");
        f.host = r.str("host");
        f.mode = r.str("mode");
        f.duration_s = r.number("duration_s");
        f.ok = r.boolean("ok", true);
        f.error = r.str("error");
        return f;
    }
    if (type == "package") {
        package_event p;
        p.name = r.required("name");
        p.old_version = r.str("old_version");
        p.new_version = r.str("new_version");
        p.codename = r.str("codename");
        p.component = r.str("component");
        p.architecture = r.str("architecture");
        p.file = r.str("file");
        return p;
    }
    if (type == "deploy.request") {
        deploy_request q;
        q.repo = r.required("repo");
        q.tag = r.required("tag");
        q.request_id = r.str("request_id");
        q.hosts = r.strings("hosts");
        q.requested_by = r.str("requested_by");
        return q;
    }
    if (type == "deploy.result") {
        deploy_result q;
        q.repo = r.required("repo");
        q.tag = r.required("tag");
        q.request_id = r.str("request_id");
        q.host = r.str("host");
        q.ok = r.boolean("ok", true);
        q.stage = r.str("stage");
        q.error = r.str("error");
        q.previous_tag = r.str("previous_tag");
        return q;
    }
    if (type == "heartbeat") {
        heartbeat_event h;
        h.host = r.required("host");
        h.daemon = r.required("daemon");
        h.version = r.str("version");
        h.uptime_s = r.number("uptime_s");
        if (auto it = d.find("counters"); it != d.end() && !it->is_null()) {
            if (!it->is_object() || it->size() > 1000) {
                r.fail("counters", "not an object of counters");
            } else {
                for (auto& [k, v] : it->items()) {
                    if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<std::int64_t>() >= 0)) {
                        r.fail("counters", "values must be non-negative integers");
                        break;
                    }
                    h.counters[k] = v.get<std::uint64_t>();
                }
            }
        }
        json extra = json::object();
        for (auto& [k, v] : d.items())
            if (k != "host" && k != "daemon" && k != "version" && k != "uptime_s" && k != "counters") extra[k] = v;
        if (!extra.empty()) h.extra = extra.dump(-1, ' ', false, json::error_handler_t::replace);
        return h;
    }
    if (type == "notice") {
        notice_event n;
        n.text = r.required("text");
        return n;
    }
    if (type == "package.result") {
        package_result q;
        q.host = r.required("host");
        q.ok = r.boolean("ok", true);
        q.outcome = r.str("outcome");
        q.error = r.str("error");
        q.duration_s = r.number("duration_s");
        q.attempt = r.integer("attempt");
        q.upgrade_pending = r.boolean("upgrade_pending", false);
        q.events = r.strings("events", 1000);
        r.objects("packages", 1000, "packages", [&](json_fields& pr) {
            package_candidate c;
            c.name = pr.required("name");
            c.version = pr.str("version");
            c.candidate = pr.str("candidate");
            c.installed = pr.str("installed");
            q.packages.push_back(std::move(c));
        });
        return q;
    }
    if (type == "alert") {
        alert_event a;
        a.rule = r.required("rule", 200);
        a.kind = r.required("kind", 32);
        a.state = r.required("state", 32);
        a.daemon = r.str("daemon", 200);
        a.source_host = r.str("source_host", 255);
        a.text = r.str("text");
        a.event_id = r.str("event_id", 128);
        a.last_seen = r.str("last_seen", 64);
        a.suppressed = r.integer("suppressed");
        return a;
    }
    if (is_extension_type(type))
        return extension_event{std::string(type), d.dump(-1, ' ', false, json::error_handler_t::replace)};
    error = "type: unknown event type '" + std::string(type).substr(0, 64) + "'";
    return std::nullopt;
}

bool is_hex(std::string_view s) noexcept
{
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    });
}

} // namespace

std::string_view event::type() const noexcept
{
    switch (data.index()) {
    case 0: return "commit";
    case 1: return "build";
    case 2: return "fetch";
    case 3: return "package";
    case 4: return "deploy.request";
    case 5: return "deploy.result";
    case 6: return "heartbeat";
    case 7: return "notice";
    case 8: return "package.result";
    case 9: return "alert";
    case 10: return std::get<extension_event>(data).type;
    }
    return "unknown";
}

bool is_extension_type(std::string_view type) noexcept
{
    return std::find(std::begin(extension_types), std::end(extension_types), type) != std::end(extension_types);
}

std::string_view to_string(commit_source s) noexcept
{
    switch (s) {
    case commit_source::git: return "git";
    case commit_source::svn: return "svn";
    case commit_source::github: return "github";
    case commit_source::gitlab: return "gitlab";
    case commit_source::gitea: return "gitea";
    case commit_source::bitbucket: return "bitbucket";
    }
    return "git";
}

std::optional<commit_source> parse_commit_source(std::string_view s) noexcept
{
    for (auto c : {commit_source::git, commit_source::svn, commit_source::github, commit_source::gitlab,
                   commit_source::gitea, commit_source::bitbucket})
        if (to_string(c) == s) return c;
    return std::nullopt;
}

std::string_view to_string(build_phase p) noexcept
{
    switch (p) {
    case build_phase::queued: return "queued";
    case build_phase::started: return "started";
    case build_phase::completed: return "completed";
    }
    return "started";
}

std::string new_event_id()
{
    // The kernel's CSPRNG (getrandom(2), bus/crypto.hpp): ids are unguessable, and unique across
    // processes and forks (a forked mt19937_64 state would repeat its parent's ids). Nothing to
    // initialise: a one-shot hook's start pays for 16 bytes, not for a library's set-up.
    std::array<unsigned char, 16> r{};
    crypto::random_bytes(r.data(), r.size());
    r[6] = static_cast<unsigned char>((r[6] & 0x0f) | 0x40);  // version 4
    r[8] = static_cast<unsigned char>((r[8] & 0x3f) | 0x80);  // variant 10
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(36);
    for (std::size_t i = 0; i < r.size(); ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out.push_back('-');
        out.push_back(hex[r[i] >> 4]);
        out.push_back(hex[r[i] & 0x0f]);
    }
    return out;
}

std::string now_rfc3339()
{
    std::time_t t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

event make_event(payload data, std::string host)
{
    event e;
    e.id = new_event_id();
    e.host = host.empty() ? hostname() : std::move(host);
    e.time = now_rfc3339();
    e.data = std::move(data);
    sanitize(e);
    return e;
}

json to_json(const event& e)
{
    return json{{"v", native_version}, {"id", e.id},     {"type", e.type()},
                {"host", e.host},      {"time", e.time}, {"data", data_json(e.data)}};
}

std::string to_native(const event& e)
{
    return to_json(e).dump(-1, ' ', false, json::error_handler_t::replace);
}

decoded<event> from_native(std::string_view body)
{
    decoded<event> out;
    if (body.size() > 1024 * 1024) {
        out.error = "body larger than 1 MiB";
        return out;
    }
    json j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        out.error = "not a JSON object";
        return out;
    }
    json_fields r{j, out.error, ""};
    auto v = j.find("v");
    if (v == j.end() || !v->is_number_integer()) {
        out.error = "v: missing";
        return out;
    }
    if (v->get<int>() > native_version) {
        out.error = "v: version " + std::to_string(v->get<int>()) + " is newer than this daemon understands";
        return out;
    }
    event e;
    e.id = r.required("id", 128);
    e.host = r.str("host", 255);
    e.time = r.str("time", 64);
    std::string type = r.required("type", 64);
    auto d = j.find("data");
    if (out.error.empty() && (d == j.end() || !d->is_object())) out.error = "data: missing or not an object";
    if (!out.error.empty()) return out;
    auto p = data_from_json(type, *d, out.error);
    if (!p || !out.error.empty()) return out;
    e.data = std::move(*p);
    if (auto why = validate(e); !why.empty()) {
        out.error = why;
        return out;
    }
    out.value = std::move(e);
    return out;
}

bool valid_repo_name(std::string_view s) noexcept
{
    if (s.empty() || s.size() > 200 || s.front() == '-' || s.front() == '.' || s.front() == '/' ||
        s.back() == '/' || s.find("..") != std::string_view::npos || s.find("//") != std::string_view::npos)
        return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
               c == '_' || c == '+' || c == '-' || c == '/';
    });
}

bool valid_ref_name(std::string_view s) noexcept
{
    if (s.empty() || s.size() > 1024 || s == "@" || s.front() == '/' || s.front() == '-' || s.back() == '/' ||
        s.back() == '.')
        return false;
    if (s.find("..") != std::string_view::npos || s.find("@{") != std::string_view::npos ||
        s.find("//") != std::string_view::npos)
        return false;
    for (unsigned char c : s)
        if (c < 0x20 || c == 0x7f || c == ' ' || c == '~' || c == '^' || c == ':' || c == '?' || c == '*' ||
            c == '[' || c == '\\')
            return false;
    // Stricter than git: shell metacharacters are refused outright. Nothing here reaches a shell,
    // but a ref like `$(touch x)` is an attack, not a branch, and must not reach a log or a path.
    if (s.find_first_of("$`;&|<>()'\"!{}") != std::string_view::npos) return false;
    // Components: none may start with '.' or end with ".lock".
    std::size_t start = 0;
    while (start <= s.size()) {
        auto end = s.find('/', start);
        std::string_view comp = s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
        if (comp.empty() || comp.front() == '.' || comp.ends_with(".lock")) return false;
        if (end == std::string_view::npos) break;
        start = end + 1;
    }
    return true;
}

bool valid_revision(std::string_view s) noexcept
{
    if (s.empty()) return false;
    if (std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }) && s.size() <= 12)
        return true;  // SVN revision
    return (s.size() == 40 || s.size() == 64) && is_hex(s);
}

bool is_zero_revision(std::string_view s) noexcept
{
    return !s.empty() && s.size() >= 40 && std::all_of(s.begin(), s.end(), [](char c) { return c == '0'; });
}

void sanitize(event& e)
{
    auto line = [](std::string& s) { s = strip_control(s, false); };
    auto text = [](std::string& s) { s = strip_control(s, true); };
    std::visit(overloaded{
                   [&](commit_event& c) {
                       line(c.author);
                       line(c.date);
                       text(c.message);
                       line(c.svn_project);
                       for (auto& d : c.changed_dirs) line(d);
                       line(c.url);
                   },
                   [&](build_event& b) {
                       line(b.status);
                       line(b.url);
                       line(b.worker);
                       for (auto& w : b.warnings) line(w);
                       for (auto& st : b.steps) {
                           line(st.name);
                           line(st.status);
                       }
                       for (auto& a : b.artifacts) line(a);
                   },
                   [&](fetch_event& f) {
                       line(f.mode);
                       text(f.error);
                   },
                   [&](package_event&) {},
                   [&](deploy_request& d) { line(d.requested_by); },
                   [&](deploy_result& d) {
                       line(d.stage);
                       text(d.error);
                   },
                   [&](heartbeat_event& h) { line(h.version); },
                   [&](notice_event& n) { line(n.text); },
                   [&](package_result& r) {
                       line(r.outcome);
                       text(r.error);
                   },
                   [&](alert_event& a) { line(a.text); },
                   [&](extension_event&) {},  // structured: the owning library cleans its fields
               },
               e.data);
}

std::string validate(const event& e)
{
    if (e.id.empty() || e.id.size() > 128) return "id: missing or too long";
    for (char c : e.id)
        if (static_cast<unsigned char>(c) < 0x21 || c == '\\') return "id: invalid character";
    // Routing and identity fields decide what a consumer does and appear in its logs: control
    // characters there are an attack, refused rather than cleaned.
    if (has_control(e.host)) return "host: control character";
    if (has_control(e.time)) return "time: control character";
    auto controls = [](std::initializer_list<std::pair<const char*, const std::string*>> fields) -> std::string {
        for (auto& [name, value] : fields)
            if (has_control(*value)) return std::string("data.") + name + ": control character";
        return {};
    };
    return std::visit(
        overloaded{
            [&](const commit_event& c) -> std::string {
                if (!valid_repo_name(c.repo)) return "data.repo: invalid repository name";
                if (c.source != commit_source::svn) {
                    if (!valid_ref_name(c.ref)) return "data.ref: invalid ref name";
                    if (!c.old_rev.empty() && !valid_revision(c.old_rev)) return "data.old_rev: not a revision";
                    if (!valid_revision(c.new_rev)) return "data.new_rev: not a revision";
                } else {
                    if (!valid_revision(c.new_rev)) return "data.new_rev: not an SVN revision";
                    if (auto why = controls({{"ref", &c.ref}, {"old_rev", &c.old_rev}}); !why.empty()) return why;
                }
                if (c.message.size() > max_message) return "data.message: too long";
                return {};
            },
            [&](const build_event& b) -> std::string {
                if (b.job.empty() || b.job.size() > 512) return "data.job: missing or too long";
                if (b.number < 0) return "data.number: negative";
                return controls({{"job", &b.job}, {"commit", &b.commit}, {"branch", &b.branch}, {"repo", &b.repo},
                                 {"run_id", &b.run_id}, {"ref", &b.ref}});
            },
            [&](const fetch_event& f) -> std::string {
                if (!valid_repo_name(f.repo)) return "data.repo: invalid repository name";
                return controls({{"ref", &f.ref}, {"old_rev", &f.old_rev}, {"new_rev", &f.new_rev}, {"host", &f.host}});
            },
            [&](const package_event& p) -> std::string {
                if (p.name.empty() || p.name.size() > 255) return "data.name: missing or too long";
                return controls({{"name", &p.name},
                                 {"old_version", &p.old_version},
                                 {"new_version", &p.new_version},
                                 {"codename", &p.codename},
                                 {"component", &p.component},
                                 {"architecture", &p.architecture},
                                 {"file", &p.file}});
            },
            [&](const deploy_request& d) -> std::string {
                if (!valid_repo_name(d.repo)) return "data.repo: invalid repository name";
                if (!valid_ref_name(d.tag)) return "data.tag: invalid tag name";
                for (auto& h : d.hosts)
                    if (has_control(h)) return "data.hosts: control character";
                return controls({{"request_id", &d.request_id}});
            },
            [&](const deploy_result& d) -> std::string {
                if (!valid_repo_name(d.repo)) return "data.repo: invalid repository name";
                return controls({{"tag", &d.tag},
                                 {"request_id", &d.request_id},
                                 {"host", &d.host},
                                 {"previous_tag", &d.previous_tag}});
            },
            [&](const heartbeat_event& h) -> std::string {
                if (h.daemon.empty()) return "data.daemon: missing";
                for (auto& [k, v] : h.counters)
                    if (has_control(k)) return "data.counters: control character";
                return controls({{"host", &h.host}, {"daemon", &h.daemon}});
            },
            [&](const notice_event& n) -> std::string {
                if (n.text.size() > max_field) return "data.text: too long";
                return {};
            },
            [&](const package_result& r) -> std::string {
                if (r.host.empty()) return "data.host: missing";
                for (const auto& p : r.packages) {
                    if (p.name.empty() || p.name.size() > 255) return "data.packages: name missing or too long";
                    if (auto why = controls({{"packages.name", &p.name},
                                             {"packages.version", &p.version},
                                             {"packages.candidate", &p.candidate},
                                             {"packages.installed", &p.installed}});
                        !why.empty())
                        return why;
                }
                for (const auto& id : r.events)
                    if (has_control(id)) return "data.events: control character";
                return controls({{"host", &r.host}});
            },
            [&](const alert_event& a) -> std::string {
                if (a.rule.empty()) return "data.rule: missing";
                if (a.kind != "heartbeat" && a.kind != "pattern") return "data.kind: must be heartbeat or pattern";
                if (a.state != "firing" && a.state != "recovered") return "data.state: must be firing or recovered";
                if (a.suppressed < 0) return "data.suppressed: negative";
                if (a.text.size() > max_field) return "data.text: too long";
                return controls({{"rule", &a.rule},
                                 {"daemon", &a.daemon},
                                 {"source_host", &a.source_host},
                                 {"event_id", &a.event_id},
                                 {"last_seen", &a.last_seen}});
            },
            [&](const extension_event& x) -> std::string {
                if (!is_extension_type(x.type)) return "type: not an extension type";
                if (x.data.size() > 1024 * 1024) return "data: too long";
                return {};
            },
        },
        e.data);
}

} // namespace bus
