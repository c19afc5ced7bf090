#include "stomp_jenkins.hpp"
#include "bus/numeric.hpp"

#include "bus/legacy.hpp"
#include "bus/url.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <cmath>

namespace stomp_jenkins {

// ---- which jobs ----------------------------------------------------------------------------------

selection select_jobs(const projects_map& projects, const bus::commit_event& c)
{
    selection s;
    auto it = projects.find(c.repo);
    if (it == projects.end()) return s;
    s.known_repo = true;
    const project_entry& e = it->second;
    const std::vector<job_config>* jobs = &e.jobs;
    if (e.nested) {
        if (c.svn_project.empty()) {
            // The original crashed here (a git message for a nested entry).
            s.skipped.push_back(c.repo + ": configured by SVN Project, but the " + std::string(bus::to_string(c.source)) +
                                " message has no Project:");
            return s;
        }
        auto p = e.by_project.find(c.svn_project);
        if (p == e.by_project.end()) {
            s.skipped.push_back(c.repo + ": Project " + c.svn_project + " is not configured");
            return s;
        }
        jobs = &p->second;
    }
    const bool svn = c.source == bus::commit_source::svn;
    const bool deleted = !svn && bus::is_zero_revision(c.new_rev);
    for (const auto& j : *jobs) {
        if (deleted) {
            s.skipped.push_back(j.display() + ": " + c.ref + " was deleted");
            continue;
        }
        if (j.ignore_re && !c.ref.empty() && std::regex_search(c.ref, *j.ignore_re)) {
            s.skipped.push_back(j.display() + ": " + c.ref + " matches ignore_refs");
            continue;
        }
        if (!j.branches.empty()) {
            if (!c.ref.starts_with("refs/heads/")) {
                s.skipped.push_back(j.display() + ": " + (svn ? std::string("an SVN commit") : c.ref) +
                                    " is not a branch (branches filter)");
                continue;
            }
            std::string_view branch = std::string_view(c.ref).substr(11);
            if (std::none_of(j.branches.begin(), j.branches.end(), [&](const std::string& p) { return glob_match(p, branch); })) {
                s.skipped.push_back(j.display() + ": branch " + std::string(branch) + " is not in branches");
                continue;
            }
        }
        s.jobs.push_back(&j);
    }
    return s;
}

// ---- what goes into a request ------------------------------------------------------------------

trigger_data make_trigger_data(const bus::commit_event& c, std::string_view event_id)
{
    trigger_data t;
    t.repo = c.repo;
    t.ref = c.ref;
    t.branch = c.ref.starts_with("refs/heads/") ? c.ref.substr(11) : c.ref;
    t.commit = c.new_rev;
    t.old_rev = c.old_rev;
    t.author = c.author;
    t.project = c.svn_project;
    t.event_id = std::string(event_id);
    t.subject = bus::legacy::commit_message(c).subject;
    return t;
}

namespace {

const std::string* placeholder(std::string_view name, const trigger_data& t)
{
    if (name == "repo") return &t.repo;
    if (name == "ref") return &t.ref;
    if (name == "branch") return &t.branch;
    if (name == "commit") return &t.commit;
    if (name == "old_rev") return &t.old_rev;
    if (name == "author") return &t.author;
    if (name == "project") return &t.project;
    if (name == "event_id") return &t.event_id;
    if (name == "subject") return &t.subject;
    return nullptr;
}

} // namespace

std::string expand(std::string_view tmpl, const trigger_data& t)
{
    std::string out;
    std::size_t i = 0;
    while (i < tmpl.size()) {
        if (tmpl[i] == '{') {
            auto close = tmpl.find('}', i);
            if (close != std::string_view::npos) {
                if (const auto* v = placeholder(tmpl.substr(i + 1, close - i - 1), t)) {
                    out += *v;
                    i = close + 1;
                    continue;
                }
            }
        }
        out.push_back(tmpl[i++]);
    }
    return out;
}

std::string unknown_placeholder(std::string_view tmpl)
{
    static const trigger_data probe;
    for (std::size_t i = tmpl.find('{'); i != std::string_view::npos; i = tmpl.find('{', i + 1)) {
        auto close = tmpl.find('}', i);
        if (close == std::string_view::npos) break;
        auto name = tmpl.substr(i + 1, close - i - 1);
        if (!placeholder(name, probe)) return std::string(name);
    }
    return {};
}

const std::vector<std::pair<std::string, std::string>>& default_parameters()
{
    static const std::vector<std::pair<std::string, std::string>> p{
        {"COMMIT", "{commit}"}, {"BRANCH", "{branch}"}, {"REPO", "{repo}"}, {"EVENT_ID", "{event_id}"}};
    return p;
}

// ---- URLs and bodies --------------------------------------------------------------------------

std::string percent_encode(std::string_view s)
{
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(s.size());
    for (unsigned char ch : s) {
        if (std::isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~') {
            out.push_back(static_cast<char>(ch));
        } else {
            out.push_back('%');
            out.push_back(hex[ch >> 4]);
            out.push_back(hex[ch & 15]);
        }
    }
    return out;
}

std::optional<std::string> percent_decode(std::string_view s) { return bus::percent_decode(s); }

std::string form_encode(const std::vector<std::pair<std::string, std::string>>& fields)
{
    std::string out;
    for (const auto& [k, v] : fields) {
        if (!out.empty()) out.push_back('&');
        out += percent_encode(k);
        out.push_back('=');
        out += percent_encode(v);
    }
    return out;
}

bool valid_job_segment(std::string_view s) noexcept
{
    if (s.empty() || s == "." || s == ".." || s.size() > 255) return false;
    for (unsigned char ch : s) {
        if (ch < 0x20 || ch == 0x7f) return false;
        if (std::string_view("?*/\\%!@#$^&|<>[]:;").find(static_cast<char>(ch)) != std::string_view::npos) return false;
    }
    return true;
}

std::string job_path(std::string_view full_name)
{
    std::string out = "/";
    std::size_t start = 0;
    for (;;) {
        auto slash = full_name.find('/', start);
        auto seg = full_name.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
        out += "job/";
        out += percent_encode(seg);
        out += '/';
        if (slash == std::string_view::npos) break;
        start = slash + 1;
    }
    return out;
}

http_request trigger_request(std::string_view base, const job_config& j, const trigger_data& t)
{
    http_request r;
    std::vector<std::pair<std::string, std::string>> fields, params;
    if (j.with_parameters)
        for (const auto& [name, tmpl] : j.parameters.empty() ? default_parameters() : j.parameters)
            params.emplace_back(name, expand(tmpl, t));
    auto extras = [&] {
        if (j.delay) fields.emplace_back("delay", std::to_string(j.delay->count()) + "sec");
        // Jenkins shows the note only for token-triggered builds; elsewhere it is ignored.
        if (j.mode == trigger_mode::token || j.mode == trigger_mode::build_by_token)
            fields.emplace_back("cause", expand(j.cause, t));
    };
    const std::string action = j.with_parameters ? "buildWithParameters" : "build";
    switch (j.mode) {
    case trigger_mode::build:
        r.url = std::string(base) + job_path(j.name) + "build";
        r.wants_crumb = true;
        if (j.with_parameters) {
            nlohmann::json arr = nlohmann::json::array();
            for (const auto& [k, v] : params) arr.push_back({{"name", k}, {"value", v}});
            // Commit data is not guaranteed UTF-8 (an author name from an old hook): replace,
            // never throw (a throw here would fail the same message for ever).
            fields.emplace_back("json", nlohmann::json{{"parameter", arr}}.dump(-1, ' ', false,
                                                                                 nlohmann::json::error_handler_t::replace));
        }
        extras();
        break;
    case trigger_mode::build_with_parameters:
        r.url = std::string(base) + job_path(j.name) + "buildWithParameters";
        r.wants_crumb = true;
        fields = params;
        extras();
        break;
    case trigger_mode::token:
        r.url = std::string(base) + job_path(j.name) + action;
        r.wants_crumb = true;
        fields = params;
        fields.emplace_back("token", j.token);
        extras();
        break;
    case trigger_mode::build_by_token:
        // Crumb-exempt (the plugin's CrumbExclusion); the job goes by its full name.
        r.url = std::string(base) + "/buildByToken/" + action;
        fields.emplace_back("job", j.name);
        fields.emplace_back("token", j.token);
        for (auto& p : params) fields.push_back(std::move(p));
        extras();
        break;
    case trigger_mode::notify_commit:
        r.url = std::string(base) + "/git/notifyCommit";
        fields.emplace_back("url", j.clone_url);
        if (t.ref.starts_with("refs/heads/")) {
            fields.emplace_back("branches", t.branch);
            if (j.notify_sha1 && bus::valid_revision(t.commit) && !bus::is_zero_revision(t.commit))
                fields.emplace_back("sha1", t.commit);
        }
        if (!j.token.empty()) fields.emplace_back("token", j.token);
        break;
    }
    r.body = form_encode(fields);
    return r;
}

http_request crumb_request(std::string_view base)
{
    http_request r;
    r.method = "GET";
    r.url = std::string(base) + "/crumbIssuer/api/json";
    r.content_type.clear();
    return r;
}

http_request get_request(std::string url)
{
    http_request r;
    r.method = "GET";
    r.url = std::move(url);
    r.content_type.clear();
    return r;
}

// ---- the CSRF crumb ---------------------------------------------------------------------------

std::optional<std::pair<std::string, std::string>> parse_crumb(std::string_view json)
{
    auto j = nlohmann::json::parse(json, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    auto c = j.find("crumb");
    auto f = j.find("crumbRequestField");
    if (c == j.end() || f == j.end() || !c->is_string() || !f->is_string()) return std::nullopt;
    std::string crumb = c->get<std::string>(), field = f->get<std::string>();
    if (crumb.empty() || crumb.size() > 512 || field.empty() || field.size() > 100) return std::nullopt;
    // Both go into a header: nothing that could break out of it.
    for (unsigned char ch : field)
        if (!(std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.')) return std::nullopt;
    for (unsigned char ch : crumb)
        if (ch < 0x21 || ch == 0x7f) return std::nullopt;
    return std::pair{field, crumb};
}

namespace {

// Jenkins' CrumbFilter answers "No valid crumb was included in the request"; a proxy may strip
// the page. A 403 that names another reason (a wrong job token, a missing permission) is not
// helped by a new crumb.
bool crumb_refusal(std::string_view body)
{
    if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return true;
    std::string lower(body.substr(0, 4096));
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    return lower.find("crumb") != std::string::npos;
}

} // namespace

exchange::exchange(http_request trigger, std::string_view base, crumb_cache& cache, bool crumbs)
    : trigger_(std::move(trigger)), crumb_url_(std::string(base) + "/crumbIssuer/api/json"), cache_(cache),
      crumbs_(crumbs && trigger_.wants_crumb)
{
}

std::optional<http_request> exchange::next()
{
    if (phase_ == phase::done) return std::nullopt;
    if (phase_ == phase::crumb || phase_ == phase::post) return std::nullopt;  // awaiting an answer
    ++requests_;
    if (crumbs_ && cache_.st == crumb_cache::state::unknown && !skip_crumb_) {
        phase_ = phase::crumb;
        return get_request(crumb_url_);
    }
    phase_ = phase::post;
    http_request r = trigger_;
    if (crumbs_ && cache_.st == crumb_cache::state::have) r.headers.emplace_back(cache_.field, cache_.value);
    return r;
}

void exchange::on_response(http_response r)
{
    if (phase_ == phase::crumb) {
        phase_ = phase::start;
        if (r.status == 200) {
            if (auto c = parse_crumb(r.body)) {
                cache_.st = crumb_cache::state::have;
                cache_.field = c->first;
                cache_.value = c->second;
            } else {
                skip_crumb_ = true;
            }
        } else if (r.status == 404) {
            cache_.st = crumb_cache::state::disabled;  // CSRF protection is off
        } else if (r.status == 403) {
            skip_crumb_ = true;  // no Overall/Read for us; the POST may still pass (API token)
        } else {
            // Unreachable, 5xx, bad credentials, a redirect: no trigger was sent; the answer
            // is an error, never an acceptance (a 200 or 302 here says nothing about the job).
            phase_ = phase::done;
            result_ = std::move(r);
            result_.crumb_issuer = true;
        }
        return;
    }
    if (phase_ != phase::post) return;
    if (r.status == 403 && crumbs_ && !refetched_ && crumb_refusal(r.body)) {
        // A stale crumb (session expired, Jenkins restarted) or none where one is needed: one
        // fresh crumb and one more try. Any other 403 is an authorisation problem.
        refetched_ = true;
        skip_crumb_ = false;
        cache_ = crumb_cache{};
        phase_ = phase::start;
        return;
    }
    phase_ = phase::done;
    result_ = std::move(r);
}

// ---- what an answer means ------------------------------------------------------------------------

std::string error_text(const http_response& r)
{
    std::string_view b = r.body;
    std::string text;
    auto t0 = b.find("<title>");
    auto t1 = b.find("</title>");
    if (t0 != std::string_view::npos && t1 != std::string_view::npos && t1 > t0) {
        text = std::string(b.substr(t0 + 7, t1 - t0 - 7));
        std::string prefix = "Error " + std::to_string(r.status) + " ";
        if (text.starts_with(prefix)) text.erase(0, prefix.size());
    } else {
        auto start = b.find_first_not_of(" \t\r\n");
        if (start != std::string_view::npos) text = std::string(b.substr(start, 1000));
    }
    // Markup out (a page without a title), control characters to spaces, runs of spaces folded.
    std::string plain;
    bool in_tag = false;
    for (char ch : text) {
        if (ch == '<') in_tag = true;
        else if (ch == '>' && in_tag) in_tag = false;
        else if (!in_tag) plain.push_back(static_cast<unsigned char>(ch) < 0x20 || ch == 0x7f ? ' ' : ch);
    }
    text.clear();
    for (char ch : plain)
        if (ch != ' ' || (!text.empty() && text.back() != ' ')) text.push_back(ch);
    while (!text.empty() && text.back() == ' ') text.pop_back();
    if (text.size() > 200) text = text.substr(0, 200) + "…";
    return text;
}

namespace {

bool auth_status(long s) { return s == 401 || s == 403; }

// The path part of the configured base ("" for http://host).
std::string_view base_path(std::string_view base)
{
    auto scheme = base.find("://");
    if (scheme == std::string_view::npos) return {};
    auto slash = base.find('/', scheme + 3);
    return slash == std::string_view::npos ? std::string_view{} : base.substr(slash);
}

// A Location that is a page of this job (old Jenkins: 302 to the job after buildWithParameters).
bool under_job(std::string_view base, std::string_view job_name, std::string_view location)
{
    if (job_name.empty()) return false;
    const std::string jp = job_path(job_name);
    return location.starts_with(std::string(base) + jp) || location.starts_with(std::string(base_path(base)) + jp);
}

} // namespace

classification classify(trigger_mode mode, const http_response& r, std::string_view base, std::string_view job_name)
{
    classification c;
    const long s = r.status;
    auto reason = [&] {
        auto t = error_text(r);
        return "HTTP " + std::to_string(s) + (t.empty() ? "" : ": " + t);
    };
    if (s == 0) {
        c.v = verdict::transient;
        c.reason = std::string(r.crumb_issuer ? "crumb issuer: " : "") + "no answer from Jenkins: " +
                   (r.error.empty() ? std::string("connection failed") : r.error);
        return c;
    }
    if (r.crumb_issuer) {
        // The crumb GET's own answer: no trigger was sent.
        c.reason = "crumb issuer: " + reason();
        c.v = auth_status(s) || ((s == 302 || s == 303) && r.location.find("login") != std::string::npos) ? verdict::held
                                                                                                            : verdict::transient;
        return c;
    }
    if (mode == trigger_mode::notify_commit && s == 200) {
        std::string_view b = r.body;
        std::string unmatched;
        for (std::size_t pos = 0; pos < b.size();) {
            auto nl = b.find('\n', pos);
            auto line = b.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            if (line.starts_with("Scheduled ")) c.notified.emplace_back(line);
            else if (line.starts_with("No git jobs") || line.starts_with("No Git consumers")) unmatched = std::string(line);
            if (nl == std::string_view::npos) break;
            pos = nl + 1;
        }
        if (c.notified.empty() && !unmatched.empty()) {
            c.v = verdict::permanent;
            c.reason = "Jenkins has no job polling this repository: " + unmatched.substr(0, 300);
            return c;
        }
        if (c.notified.empty() && b.find('<') != std::string_view::npos) {
            // A page (a proxy's login form), not the git plugin's plain-text answer.
            c.v = verdict::held;
            c.reason = reason() + " (not a notifyCommit answer)";
            return c;
        }
        c.v = verdict::accepted;
        return c;
    }
    if (s == 201) {
        c.v = verdict::accepted;
        c.queue = queue_api_url(base, r.location);
        return c;
    }
    if (s == 302 || s == 303) {
        const bool login = r.location.find("/login") != std::string::npos || r.location.find("login?") != std::string::npos;
        if (login) {
            c.v = verdict::held;
            c.reason = "HTTP " + std::to_string(s) + ": redirected to the login page (authentication required)";
            return c;
        }
        auto queue = queue_api_url(base, r.location);
        // buildByToken's 303 (already queued); old Jenkins' 302 from buildWithParameters
        // (JENKINS-23235), with no Location or one at the job or its queue item.
        const bool ok = s == 303 ? mode == trigger_mode::build_by_token
                                 : (r.location.empty() || queue || under_job(base, job_name, r.location));
        if (ok) {
            c.v = verdict::accepted;
            c.queue = std::move(queue);
            return c;
        }
        // An SSO or proxy redirect elsewhere: nothing says Jenkins saw the request.
        c.v = verdict::held;
        c.reason = "HTTP " + std::to_string(s) + ": redirected to " +
                   (r.location.size() > 200 ? r.location.substr(0, 200) + "…" : r.location) + " (not a Jenkins acceptance)";
        return c;
    }
    c.reason = reason();
    if (s >= 200 && s < 300) {
        // A proxy's login page or a different Jenkins API: not acceptance.
        c.v = verdict::held;
        c.reason += " (not an acceptance: Jenkins answers 201)";
        return c;
    }
    if (auth_status(s)) {
        // A rotated API token or a missing permission: fixable without losing the build.
        c.v = verdict::held;
        return c;
    }
    if (s == 500) {
        // Jenkins answers a request it cannot take with an exception page: those will not get
        // better. Anything else at 500 may be a Jenkins in trouble: retry.
        static constexpr std::array<std::string_view, 5> hopeless{
            "IllegalArgumentException", "IllegalStateException", "not parameterized", "expects a form submission",
            "is not buildable"};
        bool permanent = std::any_of(hopeless.begin(), hopeless.end(),
                                     [&](std::string_view h) { return r.body.find(h) != std::string::npos; });
        c.v = permanent ? verdict::permanent : verdict::transient;
        return c;
    }
    if (s == 400 || s == 404 || s == 405 || s == 410) {
        c.v = verdict::permanent;
        return c;
    }
    c.v = verdict::transient;  // 408, 409, 429, 5xx, anything unexpected: retried with backoff
    return c;
}

std::optional<std::string> queue_api_url(std::string_view base, std::string_view location)
{
    constexpr std::string_view marker = "/queue/item/";
    auto at = location.find(marker);
    if (at == std::string_view::npos) return std::nullopt;
    auto rest = location.substr(at + marker.size());
    std::size_t n = 0;
    while (n < rest.size() && n < 18 && rest[n] >= '0' && rest[n] <= '9') ++n;
    if (n == 0 || (n < rest.size() && rest[n] != '/')) return std::nullopt;
    return std::string(base) + "/queue/item/" + std::string(rest.substr(0, n)) + "/api/json";
}

queue_state parse_queue_item(std::string_view json)
{
    queue_state q;
    auto j = nlohmann::json::parse(json, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return q;
    if (auto w = j.find("why"); w != j.end() && w->is_string()) q.why = w->get<std::string>();
    if (auto c = j.find("cancelled"); c != j.end() && c->is_boolean() && c->get<bool>()) {
        q.what = queue_state::kind::cancelled;
        return q;
    }
    if (auto e = j.find("executable"); e != j.end() && e->is_object()) {
        auto n = e->find("number");
        if (n == e->end() || !n->is_number_integer() || n->get<std::int64_t>() <= 0) return q;
        q.what = queue_state::kind::started;
        q.number = n->get<std::int64_t>();
        if (auto u = e->find("url"); u != e->end() && u->is_string() && u->get<std::string>().size() < 2000)
            q.url = u->get<std::string>();
        return q;
    }
    q.what = queue_state::kind::waiting;
    return q;
}

// ---- timing ---------------------------------------------------------------------------------------

std::chrono::milliseconds retry_delay(const http_settings& h, unsigned attempt, double jitter01, std::string_view retry_after)
{
    double d = static_cast<double>(h.retry_initial.count()) * bus::pow_int(2.0, attempt > 0 ? std::min(attempt - 1, 62U) : 0);
    const double cap = static_cast<double>(h.retry_max.count());
    d = std::min(d, cap);
    d *= 1.0 - 0.2 * std::clamp(jitter01, 0.0, 1.0);
    long ra = 0;
    auto res = std::from_chars(retry_after.data(), retry_after.data() + retry_after.size(), ra);
    if (res.ec == std::errc{} && res.ptr == retry_after.data() + retry_after.size() && ra > 0)
        d = std::max(d, std::min(static_cast<double>(ra) * 1000.0, cap));
    return std::chrono::milliseconds(static_cast<long>(d));
}

std::chrono::milliseconds poll_delay(unsigned attempt)
{
    double d = 500.0 * bus::pow_int(1.5, std::min(attempt, 20U));
    return std::chrono::milliseconds(static_cast<long>(std::min(d, 5000.0)));
}

// ---- reports --------------------------------------------------------------------------------------

std::string report_line(const trigger_data& t, const job_config& j)
{
    std::string project = j.configured.empty() ? j.display() : j.configured;
    for (std::size_t p = project.find("%20"); p != std::string::npos; p = project.find("%20", p + 1))
        project.replace(p, 3, "_");
    return "Requested Jenkins build: " + t.subject + " / " + project;
}

std::string failure_line(const trigger_data& t, const job_config& j, std::string_view reason)
{
    return "Jenkins build request failed: " + t.subject + " / " + j.display() + ": " + std::string(reason);
}

// ---- coalescing -----------------------------------------------------------------------------------

std::string coalesce_key(const job_config& j, const trigger_data& t)
{
    std::string k = std::string(to_string(j.mode)) + '\n' + j.display();
    if (j.with_parameters || j.mode == trigger_mode::notify_commit) k += '\n' + t.repo + '\n' + t.ref + '\n' + t.project;
    return k;
}

scheduler::scheduler(std::size_t remember) : remember_(std::max<std::size_t>(remember, 1)) {}

std::size_t scheduler::submit(std::uint64_t token, std::string_view event_id, std::vector<trigger> triggers,
                              clock::time_point now)
{
    message_state m;
    m.event_id = std::string(event_id);
    for (auto& t : triggers) {
        std::string key = coalesce_key(t.job, t.data);
        if (done_.count(m.event_id + '\0' + key)) continue;  // accepted before this redelivery
        auto it = pending_.find(key);
        if (it == pending_.end()) {
            pending_batch p;
            p.b.key = key;
            p.due = now + t.job.quiet;
            it = pending_.emplace(key, std::move(p)).first;
        }
        auto& b = it->second.b;
        if (!b.tokens.empty() && b.tokens.back() == token) continue;  // two jobs, one key
        b.job = std::move(t.job);
        b.data = std::move(t.data);
        b.tokens.push_back(token);
        b.event_ids.push_back(m.event_id);
        ++b.requests;
        ++m.remaining;
    }
    const std::size_t n = m.remaining;
    if (n > 0) {
        events_.emplace(m.event_id, token);
        messages_.emplace(token, std::move(m));
    }
    return n;
}

std::vector<scheduler::batch> scheduler::take_due(clock::time_point now)
{
    std::vector<batch> out;
    for (auto it = pending_.begin(); it != pending_.end();) {
        if (it->second.due <= now && !in_flight_.count(it->first)) {
            in_flight_.insert(it->first);
            out.push_back(std::move(it->second.b));
            it = pending_.erase(it);
        } else {
            ++it;
        }
    }
    return out;
}

std::optional<scheduler::clock::time_point> scheduler::next_due() const
{
    std::optional<clock::time_point> t;
    for (const auto& [key, p] : pending_) {
        if (in_flight_.count(key)) continue;  // due when its predecessor completes
        if (!t || p.due < *t) t = p.due;
    }
    return t;
}

void scheduler::remember(const std::string& done_key)
{
    if (!done_.insert(done_key).second) return;
    done_order_.push_back(done_key);
    while (done_order_.size() > remember_) {
        done_.erase(done_order_.front());
        done_order_.pop_front();
    }
}

std::vector<scheduler::resolution> scheduler::complete(const batch& b, outcome o)
{
    in_flight_.erase(b.key);
    std::vector<resolution> out;
    if (o == outcome::accepted)
        for (const auto& id : b.event_ids) remember(id + '\0' + b.key);
    for (auto token : b.tokens) {
        auto it = messages_.find(token);
        if (it == messages_.end()) continue;
        auto& m = it->second;
        if (o == outcome::gave_up) m.gave_up = true;
        if (m.remaining > 0) --m.remaining;
        if (m.remaining == 0) {
            out.push_back({token, !m.gave_up});
            for (auto copy : m.copies) out.push_back({copy, !m.gave_up});
            auto e = events_.find(m.event_id);
            if (e != events_.end() && e->second == token) events_.erase(e);
            messages_.erase(it);
        }
    }
    return out;
}

bool scheduler::in_progress(std::string_view event_id) const
{
    return events_.find(event_id) != events_.end();
}

bool scheduler::attach(std::string_view event_id, std::uint64_t token)
{
    auto e = events_.find(event_id);
    if (e == events_.end()) return false;
    auto m = messages_.find(e->second);
    if (m == messages_.end()) return false;
    if (m->first != token && std::find(m->second.copies.begin(), m->second.copies.end(), token) == m->second.copies.end())
        m->second.copies.push_back(token);
    return true;
}

void scheduler::requeue(batch b, clock::time_point due, bool held)
{
    in_flight_.erase(b.key);
    b.held = held;
    auto it = pending_.find(b.key);
    if (it == pending_.end()) {
        std::string key = b.key;
        pending_.emplace(std::move(key), pending_batch{std::move(b), due});
        return;
    }
    // Events that came in meanwhile: one request covers both, with the newer data.
    auto& p = it->second;
    p.b.tokens.insert(p.b.tokens.begin(), b.tokens.begin(), b.tokens.end());
    p.b.event_ids.insert(p.b.event_ids.begin(), b.event_ids.begin(), b.event_ids.end());
    p.b.requests += b.requests;
    p.b.attempts = std::max(p.b.attempts, b.attempts);
    p.b.held = held;
    p.b.noticed = p.b.noticed || b.noticed;
    p.due = std::max(p.due, due);
}

std::size_t scheduler::kick_held(clock::time_point now)
{
    std::size_t n = 0;
    for (auto& [key, p] : pending_)
        if (p.b.held) {
            p.due = std::min(p.due, now);
            p.b.held = false;
            ++n;
        }
    return n;
}

} // namespace stomp_jenkins
