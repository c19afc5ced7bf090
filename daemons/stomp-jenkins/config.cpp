#include "config.hpp"

#include "stomp_jenkins.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <set>

#include <unistd.h>

#include "bus/runtime/config_yaml.hpp"
#include "bus/runtime/program.hpp"
#include "bus/runtime/settings.hpp"

namespace stomp_jenkins {

std::string_view to_string(trigger_mode m) noexcept
{
    switch (m) {
    case trigger_mode::build: return "build";
    case trigger_mode::build_with_parameters: return "buildWithParameters";
    case trigger_mode::token: return "token";
    case trigger_mode::build_by_token: return "buildByToken";
    case trigger_mode::notify_commit: return "notifyCommit";
    }
    return "build";
}

std::optional<trigger_mode> parse_trigger_mode(std::string_view s) noexcept
{
    for (auto m : {trigger_mode::build, trigger_mode::build_with_parameters, trigger_mode::token,
                   trigger_mode::build_by_token, trigger_mode::notify_commit})
        if (to_string(m) == s) return m;
    return std::nullopt;
}

namespace {

using bus::config_error;
using bus::config_where;

[[maybe_unused]] std::string str(const YAML::Node& n, const std::string& file, std::string_view key)
{
    auto v = n[std::string(key)];
    if (!v || v.IsNull()) return {};
    if (!v.IsScalar()) throw config_error(config_where(file, v, key) + ": must be a single value");
    return v.Scalar();
}

double number(const YAML::Node& v, const std::string& file, std::string_view key, double lo, double hi)
{
    double d = 0;
    try {
        d = v.as<double>();
    } catch (const YAML::Exception&) {
        throw config_error(config_where(file, v, key) + ": '" + (v.IsScalar() ? v.Scalar() : std::string("?")) +
                           "' is not a number");
    }
    if (!std::isfinite(d) || d < lo || d > hi)
        throw config_error(config_where(file, v, key) + ": must be between " + std::to_string(static_cast<long>(lo)) +
                           " and " + std::to_string(static_cast<long>(hi)));
    return d;
}

[[maybe_unused]] long top_number(const YAML::Node& root, const std::string& file, std::string_view key, long dflt, long lo, long hi)
{
    auto v = root[std::string(key)];
    if (!v || v.IsNull()) return dflt;
    double d = number(v, file, key, static_cast<double>(lo), static_cast<double>(hi));
    if (d != std::floor(d)) throw config_error(config_where(file, v, key) + ": must be a whole number");
    return static_cast<long>(d);
}

// Keys a flat entry (or a `jobs:` item) may carry. A map with none of them is the nested form.
const std::set<std::string, std::less<>> entry_keys{
    "project", "ticket", "token", "ignore_refs", "mode", "jobs", "parameters", "quiet-seconds",
    "branches", "clone-url", "delay", "cause", "notify-sha1"};

// The settings a job inherits from its entry; overridden key by key.
struct job_defaults {
    std::optional<std::string> ticket, ignore_refs, mode, cause, clone_url;
    std::optional<std::vector<std::string>> branches;
    std::optional<std::vector<std::pair<std::string, std::string>>> parameters;
    std::optional<std::chrono::milliseconds> quiet;
    std::optional<std::chrono::seconds> delay;
    std::optional<bool> notify_sha1;
};

void read_defaults(const YAML::Node& n, const std::string& file, const std::string& where, job_defaults& d)
{
    for (const auto& kv : n) {
        auto key = kv.first.as<std::string>();
        if (!entry_keys.count(key)) {
            auto near = bus::runtime::nearest_key(key, std::vector<std::string>(entry_keys.begin(), entry_keys.end()));
            throw config_error(config_where(file, kv.first, where + "." + key) + ": unknown setting" +
                               (near.empty() ? std::string(" (expected project, ticket, ignore_refs, mode, jobs, "
                                                           "parameters, quiet-seconds, branches, clone-url, delay, "
                                                           "cause, notify-sha1)")
                                             : "; did you mean `" + near + "`?"));
        }
    }
    auto s = [&](const char* key) -> std::optional<std::string> {
        auto v = n[key];
        if (!v) return std::nullopt;
        if (v.IsNull()) return std::string();
        if (!v.IsScalar()) throw config_error(config_where(file, v, where + "." + key) + ": must be a single value");
        return v.Scalar();
    };
    if (auto t = s("ticket")) d.ticket = t;
    if (auto t = s("token")) {
        if (n["ticket"]) throw config_error(config_where(file, n["token"], where + ".token") + ": give ticket or token, not both");
        d.ticket = t;
    }
    if (auto r = s("ignore_refs")) d.ignore_refs = r;
    if (auto m = s("mode")) d.mode = m;
    if (auto c = s("cause")) d.cause = c;
    if (auto u = s("clone-url")) d.clone_url = u;
    if (auto b = n["branches"]) {
        std::vector<std::string> out;
        if (b.IsScalar()) out.push_back(b.Scalar());
        else if (b.IsSequence())
            for (const auto& x : b) {
                if (!x.IsScalar()) throw config_error(config_where(file, x, where + ".branches") + ": must be a list of patterns");
                out.push_back(x.Scalar());
            }
        else if (!b.IsNull())
            throw config_error(config_where(file, b, where + ".branches") + ": must be a list of patterns");
        for (auto& p : out)
            if (p.empty()) throw config_error(config_where(file, b, where + ".branches") + ": empty pattern");
        d.branches = std::move(out);
    }
    if (auto p = n["parameters"]) {
        std::vector<std::pair<std::string, std::string>> out;
        if (!p.IsMap() && !p.IsNull())
            throw config_error(config_where(file, p, where + ".parameters") + ": must be a map of NAME: template");
        if (p.IsMap())
            for (const auto& kv : p) {
                auto name = kv.first.as<std::string>();
                auto w = config_where(file, kv.first, where + ".parameters." + name);
                bool ok = !name.empty() && name.size() <= 100 &&
                          (std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_');
                for (char ch : name)
                    ok = ok && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '.' || ch == '-');
                if (!ok) throw config_error(w + ": not a usable parameter name");
                if (!kv.second.IsScalar() && !kv.second.IsNull()) throw config_error(w + ": must be a single value");
                std::string tmpl = kv.second.IsNull() ? std::string() : kv.second.Scalar();
                if (auto u = unknown_placeholder(tmpl); !u.empty())
                    throw config_error(w + ": unknown placeholder {" + u +
                                       "} (known: repo ref branch commit old_rev author project event_id subject)");
                out.emplace_back(std::move(name), std::move(tmpl));
            }
        d.parameters = std::move(out);
    }
    if (auto q = n["quiet-seconds"])
        d.quiet = std::chrono::milliseconds(
            static_cast<long>(number(q, file, where + ".quiet-seconds", 0, 3600) * 1000.0 + 0.5));
    if (auto dl = n["delay"]) {
        double v = number(dl, file, where + ".delay", 0, 86400);
        if (v != std::floor(v)) throw config_error(config_where(file, dl, where + ".delay") + ": whole seconds");
        d.delay = std::chrono::seconds(static_cast<long>(v));
    }
    if (auto ns = n["notify-sha1"]) {
        try {
            d.notify_sha1 = ns.as<bool>();
        } catch (const YAML::Exception&) {
            throw config_error(config_where(file, ns, where + ".notify-sha1") + ": must be true or false");
        }
    }
}

job_config make_job(const YAML::Node& at, const std::string& file, const std::string& where,
                    const std::optional<std::string>& project, const job_defaults& d,
                    std::chrono::milliseconds default_quiet)
{
    job_config j;
    auto fail = [&](const std::string& what) { throw config_error(config_where(file, at, where) + ": " + what); };
    j.token = d.ticket.value_or("");
    if (d.mode) {
        auto m = parse_trigger_mode(*d.mode);
        if (!m) fail("mode '" + *d.mode + "' is not build, buildWithParameters, token, buildByToken or notifyCommit");
        j.mode = *m;
    } else {
        // The original requested /job/<project>/build?token=<ticket>: with a ticket, token mode.
        j.mode = j.token.empty() ? trigger_mode::build : trigger_mode::token;
    }
    if (project && !project->empty()) {
        j.configured = *project;
        auto decoded = percent_decode(*project);
        if (!decoded) fail("project '" + *project + "' has a malformed %-escape");
        std::string name = *decoded;
        while (!name.empty() && name.back() == '/') name.pop_back();
        std::size_t start = 0;
        for (;;) {
            auto slash = name.find('/', start);
            auto seg = std::string_view(name).substr(start, slash == std::string::npos ? std::string::npos : slash - start);
            if (!valid_job_segment(seg))
                fail("project '" + *project + "': '" + std::string(seg) +
                     "' is not a valid Jenkins item name (empty, '.', '..', or one of ?*\\%!@#$^&|<>[]:;)");
            if (slash == std::string::npos) break;
            start = slash + 1;
        }
        j.name = name;
    }
    if (j.mode != trigger_mode::notify_commit && j.name.empty()) fail("project: missing (the Jenkins job to trigger)");
    if ((j.mode == trigger_mode::token || j.mode == trigger_mode::build_by_token) && j.token.empty())
        fail("mode " + std::string(to_string(j.mode)) + " needs ticket (the job's remote trigger token)");
    j.clone_url = d.clone_url.value_or("");
    if (j.mode == trigger_mode::notify_commit) {
        if (j.clone_url.empty()) fail("mode notifyCommit needs clone-url (the repository URL the jobs poll)");
        if (j.clone_url.size() > 1000 ||
            std::any_of(j.clone_url.begin(), j.clone_url.end(), [](char ch) { return static_cast<unsigned char>(ch) <= ' '; }))
            fail("clone-url: not a URL");
    }
    j.ignore_refs = d.ignore_refs.value_or("");
    if (!j.ignore_refs.empty()) {
        try {
            j.ignore_re = deploykit::refs::compile_ignore_refs(j.ignore_refs);
        } catch (const std::regex_error& e) {
            fail("ignore_refs '" + j.ignore_refs + "' is not a regular expression: " + e.what());
        }
    }
    j.branches = d.branches.value_or(std::vector<std::string>{});
    if (d.parameters) {
        j.parameters = *d.parameters;
        j.with_parameters = true;
    }
    if (j.mode == trigger_mode::build_with_parameters) j.with_parameters = true;
    if (j.mode == trigger_mode::build && j.with_parameters && j.parameters.empty())
        fail("mode build with parameters: list them under parameters (Jenkins refuses undefined ones in json=)");
    j.quiet = d.quiet.value_or(default_quiet);
    j.delay = d.delay;
    j.cause = d.cause.value_or(std::string(default_cause));
    if (auto u = unknown_placeholder(j.cause); !u.empty()) fail("cause: unknown placeholder {" + u + "}");
    j.notify_sha1 = d.notify_sha1.value_or(true);
    return j;
}

// A flat entry: `{project, ticket, ignore_refs, …}` or `{…, jobs: [ {project…}, … ]}`.
std::vector<job_config> read_entry(const YAML::Node& n, const std::string& file, const std::string& where,
                                   std::chrono::milliseconds default_quiet)
{
    job_defaults d;
    read_defaults(n, file, where, d);
    std::vector<job_config> jobs;
    auto list = n["jobs"];
    if (list && !list.IsNull()) {
        if (n["project"]) throw config_error(config_where(file, n["project"], where + ".project") + ": give project or jobs, not both");
        if (!list.IsSequence() || list.size() == 0)
            throw config_error(config_where(file, list, where + ".jobs") + ": must be a list of {project, mode, …}");
        std::size_t i = 0;
        for (const auto& item : list) {
            std::string w = where + ".jobs[" + std::to_string(i++) + "]";
            if (!item.IsMap()) throw config_error(config_where(file, item, w) + ": must be a map {project, mode, …}");
            if (item["jobs"]) throw config_error(config_where(file, item["jobs"], w + ".jobs") + ": jobs do not nest");
            job_defaults jd = d;
            read_defaults(item, file, w, jd);
            std::optional<std::string> project;
            if (auto p = item["project"]; p && p.IsScalar()) project = p.Scalar();
            jobs.push_back(make_job(item, file, w, project, jd, default_quiet));
        }
        return jobs;
    }
    std::optional<std::string> project;
    if (auto p = n["project"]) {
        if (!p.IsScalar()) throw config_error(config_where(file, p, where + ".project") + ": must be a single value");
        project = p.Scalar();
    }
    jobs.push_back(make_job(n, file, where, project, d, default_quiet));
    return jobs;
}

// The flat form has at least one entry key with a scalar or list value (`project: x`,
// `jobs: [...]`); in the nested form every value is a map, even under an SVN Project that is
// named like a key (`project: {project: x, ticket: y}`).
bool looks_flat(const YAML::Node& n)
{
    for (const auto& kv : n)
        if (kv.first.IsScalar() && entry_keys.count(kv.first.Scalar()) && !kv.second.IsMap()) return true;
    return false;
}

// The URL for an error message, without any user:password@.
std::string redact(const std::string& url)
{
    auto scheme = url.find("://");
    auto from = scheme == std::string::npos ? 0 : scheme + 3;
    auto end = url.find_first_of("/?#", from);
    auto at = url.rfind('@', end == std::string::npos ? std::string::npos : end);
    if (at == std::string::npos || at < from) return url;
    return url.substr(0, from) + "***@" + url.substr(at + 1);
}

std::string check_url(const std::string& raw, const std::string& where)
{
    const std::string url = redact(raw);
    std::string u = raw;
    while (!u.empty() && u.back() == '/') u.pop_back();
    auto scheme_end = u.find("://");
    std::string scheme = scheme_end == std::string::npos ? "" : u.substr(0, scheme_end);
    if (scheme != "http" && scheme != "https") throw config_error(where + ": '" + url + "' is not an http:// or https:// URL");
    auto rest = std::string_view(u).substr(scheme_end + 3);
    auto host_end = rest.find('/');
    auto authority = rest.substr(0, host_end);
    if (authority.empty()) throw config_error(where + ": '" + url + "' has no host");
    if (authority.find('@') != std::string_view::npos)
        throw config_error(where + ": no user or password in the URL; put them in credentials-file");
    if (u.find_first_of("?#") != std::string::npos) throw config_error(where + ": no query or fragment in the URL");
    if (std::any_of(u.begin(), u.end(), [](char ch) { return static_cast<unsigned char>(ch) <= ' '; }))
        throw config_error(where + ": '" + url + "' contains spaces or control characters");
    return u;
}

} // namespace

credentials read_credentials(const std::string& path, const std::string& what)
{
    std::string s = bus::runtime::read_secret_file(path, what);  // the one policy (OpenSSH's)
    auto nl = s.find('\n');
    if (nl != std::string::npos) s.resize(nl);
    if (!s.empty() && s.back() == '\r') s.pop_back();
    auto colon = s.find(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == s.size())
        throw config_error(what + ": " + path + " must hold one line user:apitoken");
    return credentials{s.substr(0, colon), s.substr(colon + 1)};
}

projects_map parse_projects(const YAML::Node& list, const std::string& file, std::chrono::milliseconds default_quiet)
{
    projects_map out;
    if (!list || list.IsNull()) return out;  // no projects: a valid, idle configuration
    if (!list.IsMap()) throw config_error(config_where(file, list, "jenkins-projects") + ": must be a map of repositories");
    for (const auto& kv : list) {
        project_entry e;
        e.repo = kv.first.as<std::string>();
        std::string where = "jenkins-projects." + e.repo;
        if (!bus::valid_repo_name(e.repo)) throw config_error(config_where(file, kv.first, where) + ": not a valid repository name");
        const auto& v = kv.second;
        if (v.IsScalar()) {
            // Before the original's commit 7910ff6: `repo: token`, job named like the repository.
            job_defaults d;
            d.ticket = v.Scalar();
            e.jobs.push_back(make_job(kv.first, file, where, e.repo, d, default_quiet));
        } else if (v.IsMap() && looks_flat(v)) {
            e.jobs = read_entry(v, file, where, default_quiet);
        } else if (v.IsMap() && v.size() > 0) {
            e.nested = true;
            for (const auto& sub : v) {
                auto project = sub.first.as<std::string>();
                std::string w = where + "." + project;
                if (!sub.second.IsMap())
                    throw config_error(config_where(file, sub.first, w) +
                                       ": a nested (SVN-by-Project) entry must be a map {project, ticket, …}");
                e.by_project.emplace(project, read_entry(sub.second, file, w, default_quiet));
            }
        } else {
            throw config_error(config_where(file, kv.first, where) +
                               ": must be {project, ticket, ignore_refs}, a map of SVN Projects to such entries, or a token");
        }
        out.emplace(e.repo, std::move(e));
    }
    return out;
}

config load_config(const std::filesystem::path& path, bus::runtime::notice_fn notice)
{
    auto f = bus::runtime::config_file::load(path, std::move(notice));
    const std::string& file = f.file();
    auto r = f.root();
    config c;
    r.known(bus::runtime::bus_config_keys());
    c.bus = bus::read_bus_config(r.node(), file);
    c.listen_topic = r.str("listen-topic", c.listen_topic);
    c.report_topic = r.str("report-topic", c.report_topic);
    c.build_topic = r.str("build-topic", "");
    // Durable by default (messages kept while stopped, redelivered after a reconnect): the
    // name `stomp-jenkins-<hostname>`; `durable-name: ""` turns it off.
    c.durable_name = bus::runtime::read_durable_name(r, "stomp-jenkins");
    // ActiveMQ's durable subscriptions need a client-id: the same name unless one is set.
    if (!c.durable_name.empty() && c.bus.client.client_id.empty()) c.bus.client.client_id = c.durable_name;
    for (auto [key, topic] : {std::pair{"listen-topic", &c.listen_topic}, std::pair{"report-topic", &c.report_topic},
                              std::pair{"build-topic", &c.build_topic}})
        if (topic->find_first_of("/ \t\r\n") != std::string::npos)
            r.fail(key, "topic '" + *topic + "' must be a bare name (future.git.commits), no '/' or spaces");
    c.jenkins_url = check_url(r.required("jenkins-url"), r.where("jenkins-url"));

    using std::chrono::milliseconds;
    auto ms = [&](const char* key, long dflt, long lo, long hi) {
        return milliseconds(r.integer(key, dflt, lo, hi));
    };
    auto& h = c.http;
    h.connect_timeout = ms("connect-timeout-ms", 5000, 100, 600000);
    h.request_timeout = ms("request-timeout-ms", 30000, 100, 3600000);
    h.retries = static_cast<unsigned>(r.integer("retries", 8, 0, 1000));
    h.retry_initial = ms("retry-initial-ms", 1000, 10, 3600000);
    h.retry_max = ms("retry-max-ms", 60000, 10, 86400000);
    if (h.retry_max < h.retry_initial) h.retry_max = h.retry_initial;
    h.workers = static_cast<unsigned>(r.integer("http-workers", 4, 1, 64));
    h.queue_follow = std::chrono::seconds(r.integer("queue-follow-seconds", 600, 0, 86400));
    h.ca_file = r.str("jenkins-ca-file", "");
    // libcurl (and with it OpenSSL) is initialised at the first request, not at start; a CA file
    // it could not read would only show then, so it is checked here, at start and on reload.
    if (!h.ca_file.empty() && ::access(h.ca_file.c_str(), R_OK) != 0)
        r.fail("jenkins-ca-file", "cannot read '" + h.ca_file + "': " + std::strerror(errno));
    if (auto cr = r.str("crumb", ""); !cr.empty()) {
        if (cr == "auto") h.crumbs = true;
        else if (cr == "off") h.crumbs = false;
        else r.fail("crumb", "expected auto or off, not '" + cr + "'");
    }
    c.max_pending = static_cast<std::size_t>(r.integer("max-pending", 1000, 1, 1000000));
    c.credentials_file = r.str("credentials-file", "");
    if (!c.credentials_file.empty()) c.creds = read_credentials(c.credentials_file, r.where("credentials-file"));
    c.heartbeat = bus::runtime::read_heartbeat_options(r);
    c.admin_listen = bus::runtime::read_admin_listen(r);
    if (c.replay_cache = r.str("replay-cache", ""); !c.replay_cache.empty() && c.replay_cache[0] != '/')
        r.fail("replay-cache", "expected an absolute path, not '" + c.replay_cache + "'");
    auto quiet = milliseconds(static_cast<long>(r.number("quiet-seconds", 0, 0, 3600) * 1000.0 + 0.5));
    r.known({"jenkins-projects"});  // read below, with its own checks of every entry
    c.projects = parse_projects(r.node()["jenkins-projects"], file, quiet);
    f.finish();
    c.file = std::move(f);
    return c;
}

std::vector<std::string> needs_restart(const config& running, const config& fresh)
{
    return bus::runtime::restart_needed(running.file, fresh.file, [](const std::string& k) {
        return k == "jenkins-projects" || k == "credentials-file" || k == "quiet-seconds";
    });
}

} // namespace stomp_jenkins
