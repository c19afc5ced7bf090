#include "config.hpp"

#include "bus/event.hpp"
#include "bus/runtime/config_yaml.hpp"

#include <yaml-cpp/yaml.h>

#include <regex>

namespace stomp_ci {

namespace {

using namespace std::chrono_literals;
using bus::runtime::section;

void bare_topic(const section& r, const char* key, const std::string& t)
{
    if (t.empty() || t.find_first_of("/ \t\r\n") != std::string::npos)
        r.fail(key, "'" + t + "' must be a bare name (future.git.commits), no '/' or spaces");
}

// A job name becomes part of paths and URLs: letters, digits, '.', '_', '-'; not starting with '.'.
bool valid_job_name(std::string_view s)
{
    if (s.empty() || s.size() > 100 || s[0] == '.' || s[0] == '-') return false;
    for (char c : s)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) return false;
    return true;
}

std::uint64_t size_value(const section& s, const char* key, std::uint64_t dflt)
{
    auto v = s.str(key);
    if (!v) return dflt;
    std::string t = *v;
    std::uint64_t mult = 1;
    if (!t.empty()) {
        char u = static_cast<char>(std::toupper(static_cast<unsigned char>(t.back())));
        if (u == 'K') mult = 1ull << 10;
        else if (u == 'M') mult = 1ull << 20;
        else if (u == 'G') mult = 1ull << 30;
        if (mult != 1) t.pop_back();
    }
    if (t.empty() || t.size() > 12 || t.find_first_not_of("0123456789") != std::string::npos)
        s.fail(key, "'" + *v + "' is not a size (a number of bytes, or with K, M or G)");
    return std::stoull(t) * mult;
}

// An artifact glob: relative, no empty, '.' or '..' component, at most 200 characters.
bool valid_artifact_glob(std::string_view g)
{
    if (g.empty() || g.size() > 200 || g[0] == '/' || g.find('\0') != std::string_view::npos) return false;
    std::size_t i = 0;
    while (i <= g.size()) {
        auto j = g.find('/', i);
        if (j == std::string_view::npos) j = g.size();
        auto c = g.substr(i, j - i);
        if (c.empty() || c == "." || c == "..") return false;
        i = j + 1;
    }
    return true;
}

limits read_limits(const section& s, const limits& dflt)
{
    limits l = dflt;
    l.cpu_seconds = static_cast<std::uint64_t>(s.integer("cpu-seconds", static_cast<std::int64_t>(dflt.cpu_seconds), 1, 86400 * 7));
    l.memory_bytes = size_value(s, "memory", dflt.memory_bytes);
    if (l.memory_bytes < (16ull << 20)) s.fail("memory", "at least 16M");
    l.processes = static_cast<std::uint64_t>(s.integer("processes", static_cast<std::int64_t>(dflt.processes), 1, 100000));
    l.file_bytes = size_value(s, "file-size", dflt.file_bytes);
    return l;
}

job_config read_job(const section& s, const limits& dflt_limits)
{
    job_config j;
    j.name = s.required("name");
    if (!valid_job_name(j.name)) s.fail("name", "'" + j.name + "' must be letters, digits, '.', '_' or '-'");
    // refs: full ref globs (refs/heads/*, refs/tags/v*); branches/tags: name globs as stomp-jenkins.
    j.ref_globs = s.list("refs");
    for (const auto& g : j.ref_globs) {
        if (g.starts_with("refs/heads/")) j.refs.branches.push_back(g.substr(11));
        else if (g.starts_with("refs/tags/")) j.refs.tags.push_back(g.substr(10));
        else s.fail("refs", "'" + g + "' must start with refs/heads/ or refs/tags/");
    }
    for (auto& b : s.list("branches")) j.refs.branches.push_back(b);
    for (auto& t : s.list("tags")) j.refs.tags.push_back(t);
    if (auto ig = s.str("ignore_refs"); ig && !ig->empty()) {
        try {
            j.refs.ignore = deploykit::refs::compile_ignore_refs(*ig);
        } catch (const std::regex_error& e) {
            s.fail("ignore_refs", "'" + *ig + "' is not a regular expression: " + e.what());
        }
    }
    if (s.kind_of("steps") != section::kind::list) s.fail("steps", "a list of argv lists is required");
    std::size_t i = 0;
    for (const auto& n : s.node()["steps"]) {
        std::vector<std::string> argv;
        if (n.IsSequence()) {
            for (const auto& a : n) {
                if (!a.IsScalar()) s.fail("steps", "step " + std::to_string(i + 1) + ": every argument must be a string");
                argv.push_back(a.as<std::string>());
            }
        }
        if (argv.empty()) s.fail("steps", "step " + std::to_string(i + 1) + " must be a non-empty argv list, e.g. [./run-tests, --fast]");
        const auto& p = argv[0];
        bool relative = p.starts_with("./") && p.find("/../") == std::string::npos && !p.ends_with("/..");
        if (!(p.starts_with("/") || relative))
            s.fail("steps", "step " + std::to_string(i + 1) + ": '" + p +
                                "' must be an absolute path or ./PATH inside the checkout (no shell: name one, e.g. [/bin/sh, -c, ...])");
        j.steps.push_back(std::move(argv));
        ++i;
    }
    if (j.steps.empty()) s.fail("steps", "a list of argv lists is required");
    j.timeout = s.duration("timeout", 3600s, 1s, 48h);
    j.step_timeout = s.duration("step-timeout", j.timeout, 1s, 48h);
    if (j.step_timeout > j.timeout) j.step_timeout = j.timeout;
    for (auto& [k, v] : s.string_map("env")) {
        if (k.empty() || k.find('=') != std::string::npos || k.find('\0') != std::string::npos)
            s.fail("env", "'" + k + "' is not a variable name");
        j.env.emplace_back(k, v);
    }
    j.datasets = s.list("datasets");
    for (const auto& d : j.datasets)
        if (d.empty() || d[0] != '/' || d.find(':') != std::string::npos) s.fail("datasets", "'" + d + "' must be an absolute path (no ':')");
    j.artifacts = s.list("artifacts");
    for (const auto& g : j.artifacts)
        if (!valid_artifact_glob(g))
            s.fail("artifacts", "'" + g + "' must be a glob relative to the checkout (build/*.xml), no '..' or leading '/'");
    limits l = dflt_limits;
    if (auto ls = s.sub("limits")) l = read_limits(*ls, dflt_limits);
    j.lim = l;
    j.slow_factor = s.number("slow-factor", 3.0, 1.0, 1000.0);
    j.slow_after = s.duration("slow-after", 0ms, 0ms, 48h);
    return j;
}

config read(bus::runtime::config_file& f)
{
    auto r = f.root();
    config c;
    r.known(bus::runtime::bus_config_keys());
    c.bus = bus::read_bus_config(r.node(), f.file());
    c.listen_topic = r.str("listen-topic", c.listen_topic);
    c.job_queue = r.str("job-queue", c.job_queue);
    c.recheck_topic = r.str("recheck-topic", c.recheck_topic);
    c.report_topic = r.str("report-topic", c.report_topic);
    c.legacy_begin_topic = r.str("legacy-begin-topic", c.legacy_begin_topic);
    c.legacy_success_topic = r.str("legacy-success-topic", c.legacy_success_topic);
    c.legacy_failure_topic = r.str("legacy-failure-topic", c.legacy_failure_topic);
    c.events_topic = r.str("events-topic", c.events_topic);
    for (auto [k, t] : {std::pair{"listen-topic", &c.listen_topic}, std::pair{"job-queue", &c.job_queue},
                        std::pair{"recheck-topic", &c.recheck_topic}, std::pair{"report-topic", &c.report_topic},
                        std::pair{"legacy-begin-topic", &c.legacy_begin_topic},
                        std::pair{"legacy-success-topic", &c.legacy_success_topic},
                        std::pair{"legacy-failure-topic", &c.legacy_failure_topic},
                        std::pair{"events-topic", &c.events_topic}})
        bare_topic(r, k, *t);
    c.dispatch = r.flag("dispatch", false);
    auto abs_path = [&](const char* key, std::filesystem::path& p) {
        p = r.str(key, p.string());
        if (!p.is_absolute()) r.fail(key, "'" + p.string() + "' must be an absolute path");
    };
    abs_path("work-dir", c.work_dir);
    abs_path("mirror-dir", c.mirror_dir);
    abs_path("state-dir", c.state_dir);
    c.workers = static_cast<unsigned>(r.integer("workers", 2, 0, 256));
    if (c.workers == 0 && !c.dispatch) r.fail("workers", "0 (dispatch only) needs dispatch: true");
    c.serialize_repos = r.flag("serialize-repos", false);
    c.user = r.str("user", c.user);
    if (c.user.empty()) r.fail("user", "the unprivileged user that runs jobs is required");
    if (c.user == "root" || c.user == "0") r.fail("user", "jobs never run as root");
    c.keep_runs = static_cast<unsigned>(r.integer("keep-runs", 10, 0, 10000));
    c.keep_artifacts = static_cast<unsigned>(r.integer("keep-artifacts", 100, 0, 100000));
    c.artifacts_max_bytes = size_value(r, "artifacts-max-size", c.artifacts_max_bytes);
    c.artifacts_max_files = static_cast<std::uint64_t>(r.integer("artifacts-max-files", 1000, 1, 100000));
    c.stop_grace = r.duration("stop-grace", 20s, 0s, 1h);
    c.cgroup_root = r.str("cgroup-root", c.cgroup_root.string());
    if (!c.cgroup_root.empty() && !c.cgroup_root.is_absolute())
        r.fail("cgroup-root", "'" + c.cgroup_root.string() + "' must be an absolute path (or \"\" for none)");
    c.fetch_timeout = r.duration("fetch-timeout", 300s, 1s, 1h);
    if (auto l = r.str("log-listen"); l && !l->empty()) {
        c.log_listen = bus::http::parse_listen(*l);
        if (!c.log_listen) r.fail("log-listen", "'" + *l + "' is not ADDRESS:PORT");
    }
    c.log_url = r.str("log-url", "");
    while (c.log_url.ends_with('/')) c.log_url.pop_back();
    if (!c.log_url.empty() && !c.log_url.starts_with("http://") && !c.log_url.starts_with("https://"))
        r.fail("log-url", "'" + c.log_url + "' must be an http:// or https:// prefix");
    if (c.log_url.empty() && c.log_listen)
        c.log_url = "http://" + c.log_listen->address + ":" + std::to_string(c.log_listen->port);
    c.durable_name = bus::runtime::read_durable_name(r, "stomp-ci");
    if (!c.durable_name.empty() && c.bus.client.client_id.empty()) c.bus.client.client_id = c.durable_name;

    limits dflt;
    if (auto ls = r.sub("limits")) dflt = read_limits(*ls, dflt);
    if (r.kind_of("repos") != section::kind::map) r.fail("repos", "a map of repository name to {url, jobs} is required");
    for (auto& [name, s] : r.named("repos")) {
        if (!bus::valid_repo_name(name)) r.fail("repos", "'" + name + "' is not a valid repository name");
        repo_config rc;
        rc.name = name;
        rc.url = s.required("url");
        if (rc.url.empty() || rc.url[0] == '-') s.fail("url", "'" + rc.url + "' is not a repository URL or path");
        for (auto& js : s.sections("jobs")) {
            auto j = read_job(js, dflt);
            for (const auto& other : rc.jobs)
                if (other.name == j.name) js.fail("name", "job '" + j.name + "' is defined twice for " + name);
            rc.jobs.push_back(std::move(j));
        }
        if (rc.jobs.empty()) s.fail("jobs", "at least one job is required");
        c.repos.emplace(name, std::move(rc));
    }
    c.heartbeat = bus::runtime::read_heartbeat_options(r);
    c.admin_listen = bus::runtime::read_admin_listen(r);
    f.finish();
    return c;
}

} // namespace

config load_config(const std::filesystem::path& path, bus::runtime::notice_fn notice)
{
    auto f = bus::runtime::config_file::load(path, std::move(notice));
    auto c = read(f);
    c.file = std::move(f);
    return c;
}

config parse_config(std::string_view text, std::string name)
{
    auto f = bus::runtime::config_file::parse(text, std::move(name));
    auto c = read(f);
    c.file = std::move(f);
    return c;
}

std::vector<std::string> needs_restart(const config& running, const config& fresh)
{
    return bus::runtime::restart_needed(running.file, fresh.file, [](const std::string& k) { return k == "repos"; });
}

} // namespace stomp_ci
