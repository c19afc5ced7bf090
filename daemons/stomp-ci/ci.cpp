#include "ci.hpp"
#include "bus/numeric.hpp"

#include "jenkins_helper.hpp"

#include "bus/crypto.hpp"
#include "bus/url.hpp"
#include "bus/wire.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fnmatch.h>
#include <cmath>
#include <cstdio>

namespace stomp_ci {

using json = nlohmann::json;

namespace {

bool is_hex(std::string_view s)
{
    return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool full_object_id(std::string_view s)
{
    return (s.size() == 40 || s.size() == 64) && is_hex(s) && !bus::is_zero_revision(s);
}


} // namespace

std::string make_run_id(std::string_view repo, std::string_view job, std::string_view commit, std::string_view event_id)
{
    std::string in;
    for (auto f : {repo, job, commit, event_id}) {
        in += std::to_string(f.size()) + ":";
        in += f;
    }
    return bus::crypto::sha256_hex(in).substr(0, 32);
}

bool valid_run_id(std::string_view s) noexcept { return s.size() == 32 && is_hex(s); }

std::string encode_job(const job_request& r)
{
    return json{{"type", "ci.job"}, {"run_id", r.run_id}, {"repo", r.repo},         {"job", r.job},
                {"ref", r.ref},     {"commit", r.commit}, {"event_id", r.event_id}, {"queued_ms", r.queued_ms}}
        .dump();
}

std::optional<job_request> decode_job(std::string_view body, std::string& error)
{
    if (body.size() > 16384) {
        error = "job message too large";
        return std::nullopt;
    }
    auto j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        error = "job message is not a JSON object";
        return std::nullopt;
    }
    if (j.value("type", "") != "ci.job") {
        error = "not a ci.job message";
        return std::nullopt;
    }
    job_request r;
    for (auto [k, v] : {std::pair{"run_id", &r.run_id}, std::pair{"repo", &r.repo}, std::pair{"job", &r.job},
                        std::pair{"ref", &r.ref}, std::pair{"commit", &r.commit}, std::pair{"event_id", &r.event_id}}) {
        auto it = j.find(k);
        if (it == j.end() || !it->is_string()) {
            error = std::string("job message: ") + k + " missing or not a string";
            return std::nullopt;
        }
        *v = it->get<std::string>();
    }
    if (auto it = j.find("queued_ms"); it != j.end() && it->is_number_integer()) r.queued_ms = it->get<std::int64_t>();
    return r;
}

const job_config* find_job(const config& cfg, std::string_view repo, std::string_view job)
{
    auto it = cfg.repos.find(repo);
    if (it == cfg.repos.end()) return nullptr;
    for (const auto& j : it->second.jobs)
        if (j.name == job) return &j;
    return nullptr;
}

std::string check_request(const config& cfg, const job_request& r)
{
    if (!valid_run_id(r.run_id)) return "run id is not 32 hex digits";
    if (!bus::valid_repo_name(r.repo)) return "invalid repository name";
    auto it = cfg.repos.find(r.repo);
    if (it == cfg.repos.end()) return "repository " + r.repo + " is not configured";
    const job_config* j = find_job(cfg, r.repo, r.job);
    if (!j) return "job '" + r.job + "' is not configured for " + r.repo;
    if (!bus::valid_ref_name(r.ref) || !r.ref.starts_with("refs/")) return "invalid ref";
    if (auto why = deploykit::refs::rejects(j->refs, r.ref); !why.empty()) return why;
    if (!full_object_id(r.commit)) return "commit is not a full object id";
    if (r.event_id.size() > 128) return "event id too long";
    return {};
}

selection select_jobs(const config& cfg, const bus::commit_event& c, std::string_view event_id, std::int64_t now_ms)
{
    selection s;
    if (!bus::valid_repo_name(c.repo)) {
        s.refused = "invalid repository name";
        return s;
    }
    auto it = cfg.repos.find(c.repo);
    if (it == cfg.repos.end()) {
        s.refused = "repository " + c.repo + " is not configured";
        s.unknown_repo = true;
        return s;
    }
    if (c.source == bus::commit_source::svn) {
        s.refused = "an SVN commit (stomp-ci checks out git revisions)";
        return s;
    }
    if (!bus::valid_ref_name(c.ref) || !c.ref.starts_with("refs/")) {
        s.refused = "invalid ref";
        return s;
    }
    if (bus::is_zero_revision(c.new_rev)) {
        s.refused = c.ref + " was deleted";
        return s;
    }
    if (!full_object_id(c.new_rev)) {
        s.refused = "new revision is not a full object id";
        return s;
    }
    for (const auto& j : it->second.jobs) {
        if (auto why = deploykit::refs::rejects(j.refs, c.ref); !why.empty()) {
            s.skipped.push_back(j.name + ": " + why);
            continue;
        }
        s.requests.push_back(job_request{make_run_id(c.repo, j.name, c.new_rev, event_id), c.repo, j.name, c.ref,
                                         c.new_rev, std::string(event_id), now_ms});
    }
    return s;
}

selection select_recheck(const config& cfg, std::string_view body, std::string_view event_id, std::int64_t now_ms)
{
    selection s;
    auto j = json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object() || body.size() > 16384) {
        s.refused = "recheck request is not a JSON object";
        return s;
    }
    auto str = [&](const char* k, std::string dflt) {
        auto it = j.find(k);
        return it != j.end() && it->is_string() ? it->get<std::string>() : dflt;
    };
    bus::commit_event c;
    c.repo = str("repo", "");
    c.ref = str("ref", "refs/heads/master");
    c.new_rev = str("commit", "");
    std::string job = str("job", "");
    s = select_jobs(cfg, c, event_id, now_ms);
    if (!job.empty()) {
        std::erase_if(s.requests, [&](const job_request& r) { return r.job != job; });
        if (s.refused.empty() && s.requests.empty()) s.refused = "job '" + job + "' is not configured or does not take " + c.ref;
    }
    return s;
}

std::string run_status(const std::vector<step_result>& steps, bool preparation_failed)
{
    if (preparation_failed) return "FAILURE";
    for (const auto& s : steps) {
        if (s.end == step_end::timed_out) return "TIMEOUT";
        if (s.end == step_end::cancelled) return "ABORTED";
        if (s.end == step_end::failed) return "FAILURE";
    }
    return "SUCCESS";
}

std::vector<bus::build_step> to_build_steps(const std::vector<step_result>& steps)
{
    std::vector<bus::build_step> out;
    for (const auto& s : steps) {
        const char* st = s.end == step_end::ok          ? "SUCCESS"
                         : s.end == step_end::failed    ? "FAILURE"
                         : s.end == step_end::timed_out ? "TIMEOUT"
                         : s.end == step_end::cancelled ? "ABORTED"
                                                        : "SKIPPED";
        out.push_back(bus::build_step{s.name, st, s.exit_code, bus::round_half_away(s.duration_s * 1000) / 1000});
    }
    return out;
}

double median(std::vector<double> v)
{
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    auto n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::optional<std::string> slow_warning(const std::vector<double>& history, double duration_s, double factor,
                                        double absolute_s)
{
    char buf[256];
    if (absolute_s > 0 && duration_s > absolute_s) {
        std::snprintf(buf, sizeof buf, "slow run: %.2f s is over the bound of %.2f s", duration_s, absolute_s);
        return std::string(buf);
    }
    if (history.size() >= 3) {
        double m = median(history);
        if (duration_s > factor * m) {
            std::snprintf(buf, sizeof buf, "slow run: %.2f s is more than %.1f x the median of %.2f s over %zu runs",
                          duration_s, factor, m, history.size());
            return std::string(buf);
        }
    }
    return std::nullopt;
}

void history::add(const std::string& key, double duration_s)
{
    auto& d = d_[key];
    d.push_back(duration_s);
    while (d.size() > keep_) d.pop_front();
    ++n_[key];
}

std::vector<double> history::of(const std::string& key) const
{
    auto it = d_.find(key);
    return it == d_.end() ? std::vector<double>{} : std::vector<double>(it->second.begin(), it->second.end());
}

std::uint64_t history::runs(const std::string& key) const
{
    auto it = n_.find(key);
    return it == n_.end() ? 0 : it->second;
}

std::string history::to_json() const
{
    json j = json::object();
    for (const auto& [k, d] : d_) j[k] = json{{"durations", std::vector<double>(d.begin(), d.end())}, {"runs", runs(k)}};
    return j.dump();
}

bool history::from_json(std::string_view text)
{
    auto j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return false;
    decltype(d_) d;
    decltype(n_) n;
    for (auto& [k, v] : j.items()) {
        if (!v.is_object() || !v.contains("durations") || !v["durations"].is_array()) return false;
        for (auto& x : v["durations"]) {
            if (!x.is_number()) return false;
            d[k].push_back(x.get<double>());
        }
        while (d[k].size() > keep_) d[k].pop_front();
        n[k] = v.value("runs", static_cast<std::uint64_t>(d[k].size()));
    }
    d_ = std::move(d);
    n_ = std::move(n);
    return true;
}

std::string log_link(std::string_view log_url, std::string_view run_id)
{
    return std::string(log_url) + "/logs/" + std::string(run_id) + ".log";
}

std::optional<std::string> log_path_run_id(std::string_view path)
{
    if (!path.starts_with("/logs/") || !path.ends_with(".log")) return std::nullopt;
    auto id = path.substr(6, path.size() - 10);
    if (!valid_run_id(id)) return std::nullopt;
    return std::string(id);
}

std::string artifact_link(std::string_view log_url, std::string_view run_id, std::string_view rel)
{
    static const char hex[] = "0123456789ABCDEF";
    std::string out = std::string(log_url) + "/artifacts/" + std::string(run_id) + "/";
    for (unsigned char c : rel) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || c == '/') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    return out;
}

std::optional<std::pair<std::string, std::string>> artifact_path(std::string_view path)
{
    constexpr std::string_view prefix = "/artifacts/";
    if (!path.starts_with(prefix)) return std::nullopt;
    path.remove_prefix(prefix.size());
    auto slash = path.find('/');
    if (slash == std::string_view::npos || !valid_run_id(path.substr(0, slash))) return std::nullopt;
    auto rel = bus::percent_decode(path.substr(slash + 1));
    if (!rel || rel->empty() || rel->size() > 4096 || rel->find('\0') != std::string::npos) return std::nullopt;
    std::size_t i = 0;
    while (i <= rel->size()) {
        auto j = rel->find('/', i);
        if (j == std::string::npos) j = rel->size();
        auto c = std::string_view(*rel).substr(i, j - i);
        if (c.empty() || c == "." || c == "..") return std::nullopt;
        i = j + 1;
    }
    return std::pair{std::string(path.substr(0, slash)), std::move(*rel)};
}

bool artifact_wanted(const std::vector<std::string>& globs, std::string_view rel)
{
    const std::string r(rel);
    for (const auto& g : globs) {
        // The file itself, or a directory above it ("reports" keeps everything under reports/).
        for (std::size_t end = r.size(); end > 0;) {
            if (::fnmatch(g.c_str(), r.substr(0, end).c_str(), FNM_PATHNAME) == 0) return true;
            auto k = r.rfind('/', end - 1);
            end = k == std::string::npos ? 0 : k;
        }
    }
    return false;
}

topics topics_of(const config& cfg)
{
    return topics{cfg.report_topic, cfg.legacy_begin_topic, cfg.legacy_success_topic, cfg.legacy_failure_topic,
                  cfg.events_topic};
}

bus::build_event make_build(const job_request& r, bus::build_phase phase, std::int64_t number, std::string url,
                            std::string worker)
{
    bus::build_event b;
    b.job = r.job;
    b.number = number;
    b.url = std::move(url);
    b.phase = phase;
    b.commit = r.commit;
    b.ref = r.ref;
    b.branch = r.ref.starts_with("refs/heads/") ? r.ref.substr(11) : r.ref;
    b.repo = r.repo;
    b.run_id = r.run_id;
    b.worker = std::move(worker);
    return b;
}

std::vector<bus::stomp::frame> build_frames(const bus::build_event& b, const topics& t, bus::wire_format fmt,
                                            const std::string& host)
{
    std::vector<bus::stomp::frame> out;
    auto ev = bus::make_event(b, host);
    if (b.phase == bus::build_phase::completed && !b.run_id.empty()) ev.id = "ci-" + b.run_id + "-completed";
    for (auto& f : bus::encode(ev, "/topic/" + t.report, bus::wire_format::native)) out.push_back(std::move(f));
    if (fmt == bus::wire_format::native || b.phase == bus::build_phase::queued) return out;
    // jenkins-helper's own messages, from its own code: -b at start, -p / -c at the end, with the
    // values Jenkins would have put in its environment (GIT_BRANCH as REPO/BRANCH, as Jenkins'
    // origin/BRANCH, so the one-liner's Repo: names the repository).
    jenkins_helper::stage st = b.phase == bus::build_phase::started ? jenkins_helper::stage::begin
                               : b.status == "SUCCESS"             ? jenkins_helper::stage::success
                                                                   : jenkins_helper::stage::failure;
    std::map<std::string, std::string> env{{"JOB_NAME", b.job},
                                           {"BUILD_NUMBER", std::to_string(b.number)},
                                           {"BUILD_URL", b.url},
                                           {"GIT_BRANCH", b.repo + "/" + b.branch},
                                           {"GIT_COMMIT", b.commit}};
    jenkins_helper::topics jt;
    jt.begin = t.begin;
    jt.success = t.success;
    jt.failure = t.failure;
    jt.events = t.events;
    jt.builds.clear();  // the native event above carries stomp-ci's fields
    auto plan = jenkins_helper::make_plan(
        st, [&](const std::string& k) -> std::optional<std::string> {
            auto it = env.find(k);
            return it == env.end() ? std::nullopt : std::optional<std::string>(it->second);
        },
        jt, bus::wire_format::legacy, host);
    if (plan.value)
        for (auto& f : plan.value->frames) out.push_back(std::move(f));
    return out;
}

std::vector<std::string> runs_to_remove(std::vector<std::pair<std::string, std::int64_t>> runs, std::size_t keep)
{
    std::sort(runs.begin(), runs.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    std::vector<std::string> out;
    for (std::size_t i = keep; i < runs.size(); ++i) out.push_back(runs[i].first);
    return out;
}

std::vector<std::string> job_environment(const job_config& j, const job_request& r, const std::string& workdir)
{
    std::map<std::string, std::string> e{{"HOME", workdir},
                                         {"PATH", "/usr/local/bin:/usr/bin:/bin"},
                                         {"LANG", "C.UTF-8"},
                                         {"CI", "true"},
                                         {"CI_REPO", r.repo},
                                         {"CI_JOB", r.job},
                                         {"CI_REF", r.ref},
                                         {"CI_COMMIT", r.commit},
                                         {"CI_RUN_ID", r.run_id},
                                         {"CI_WORKDIR", workdir}};
    std::string ds;
    for (const auto& d : j.datasets) ds += (ds.empty() ? "" : ":") + d;
    if (!ds.empty()) e["CI_DATASETS"] = ds;
    for (const auto& [k, v] : j.env) e[k] = v;
    std::vector<std::string> out;
    for (const auto& [k, v] : e) out.push_back(k + "=" + v);
    return out;
}

} // namespace stomp_ci
