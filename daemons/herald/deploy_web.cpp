// herald's deploy page, pure (deploy_web.hpp). The form is read into the deploy CLI's own
// command and checked with its own checks (core.hpp's selector and amounts, options.hpp's
// check_rollout_options, the protocol's valid_tag): what the page accepts is what `deploy run`
// accepts.
#include "deploy_web.hpp"

#include "core.hpp"
#include "deploy/protocol.hpp"

#include "bus/event.hpp"

#include <charconv>
#include <map>
#include <set>

namespace herald {

using json = nlohmann::json;

namespace {

std::string esc(std::string_view s) { return html_escape(s); }

std::string trim(std::string_view s)
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r' || s.front() == '\n')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '\n')) s.remove_suffix(1);
    return std::string(s);
}

std::vector<std::string> lines_of(std::string_view s)
{
    std::vector<std::string> out;
    std::size_t i = 0;
    while (i <= s.size()) {
        auto nl = s.find('\n', i);
        auto l = trim(s.substr(i, nl == std::string_view::npos ? std::string_view::npos : nl - i));
        if (!l.empty()) out.push_back(std::move(l));
        if (nl == std::string_view::npos) break;
        i = nl + 1;
    }
    return out;
}

bool parse_long(const std::string& s, long lo, long hi, long& out)
{
    long v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size() || v < lo || v > hi) return false;
    out = v;
    return true;
}

std::string str(const json& j, const char* k)
{
    return j.is_object() && j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string();
}

std::string printable(std::string s, std::size_t max)
{
    for (auto& c : s)
        if (static_cast<unsigned char>(c) < 0x20 && c != '\n' && c != '\t') c = '?';
    return s.size() > max ? s.substr(0, max) + "…" : s;
}

} // namespace

deploy_form parse_deploy_form(const form_fields& fields, const deploy::cli::rollout_options& defaults)
{
    deploy_form f;
    auto& c = f.cmd;
    c.name = "run";
    c.ro = defaults;
    std::map<std::string, std::string> one;
    for (const auto& [k, v] : fields) {
        if (k == "node") {
            if (!v.empty()) c.nodes.push_back(v);
        } else if (k == "identity" || k == "fact" || k == "class") {
            for (auto& l : lines_of(v)) (k == "identity" ? c.identities : k == "fact" ? c.facts : c.classes).push_back(l);
        } else if (!one.emplace(k, v).second) {
            f.error = "field '" + k + "' given twice";
            return f;
        }
    }
    auto get = [&](const char* k) { auto it = one.find(k); return it == one.end() ? std::string() : trim(it->second); };
    c.repo = get("repo");
    c.tag = one.count("tag") ? one["tag"] : "";  // not trimmed: validated as sent
    if (!bus::valid_repo_name(c.repo) || c.repo.find('/') != std::string::npos) {
        f.error = "'" + printable(c.repo, 80) + "' is not a repository name";
        return f;
    }
    if (!deploy::valid_tag(c.tag)) {
        f.error = "'" + printable(c.tag, 80) + "' is not a valid tag name";
        return f;
    }
    for (const auto& n : c.nodes)
        if (!deploy::cli::valid_identity(n)) {
            f.error = "'" + printable(n, 80) + "' is not a node identity";
            return f;
        }
    if (c.nodes.size() > 10000 || c.identities.size() + c.facts.size() + c.classes.size() > 100) {
        f.error = "too many nodes or filters";
        return f;
    }
    if (c.nodes.empty() && c.identities.empty() && c.facts.empty() && c.classes.empty()) {
        f.error = "choose nodes (tick them, or give an identity, fact or class filter)";
        return f;
    }
    // --nodes entries are comma-split by the session: one identity per entry here
    long n = 0;
    auto& r = c.ro;
    if (auto s = get("canary"); !s.empty()) {
        if (!parse_long(s, 0, 100000, n)) return f.error = "canary: a number of nodes, 0 or more", f;
        r.canary = n;
    }
    if (auto s = get("tries"); !s.empty()) {
        if (!parse_long(s, 1, 100, n)) return f.error = "tries: 1 to 100", f;
        r.tries = static_cast<int>(n);
    }
    if (auto s = get("timeout"); !s.empty()) {
        if (!parse_long(s, 1, 86400, n)) return f.error = "timeout: 1 to 86400 seconds", f;
        r.timeout = static_cast<double>(n);
    }
    if (auto s = get("batch"); !s.empty()) r.batch = s;
    if (auto s = get("max_failures"); !s.empty()) r.max_failures = s;
    if (auto s = get("quorum"); !s.empty()) r.quorum = s;
    if (one.count("health_url")) r.health_url = get("health_url");
    if (!r.health_url.empty() && !r.health_url.starts_with("http://") && !r.health_url.starts_with("https://"))
        return f.error = "health URL: http:// or https:// only", f;
    if (r.health_url.size() > 2000) return f.error = "health URL: too long", f;
    try {
        deploy::cli::check_rollout_options(r);
        deploy::cli::selector sel(deploy::cli::selection_args{c.identities, c.facts, c.classes, c.nodes});
        (void)sel;
    } catch (const deploy::cli::usage_error& e) {
        f.error = e.what();
    }
    return f;
}

std::vector<job_row> past_jobs(const std::vector<recorded_event>& events, std::size_t max)
{
    std::vector<job_row> out;
    std::set<std::string> seen;
    for (const auto& e : events) {
        auto d = json::parse(e.data, nullptr, false);
        auto id = str(d, "job_id");
        if (id.empty() || seen.contains(id)) continue;
        if (out.size() >= max) break;
        seen.insert(id);
        job_row r;
        r.job_id = id;
        r.repo = str(d, "repo");
        r.tag = str(d, "tag");
        r.caller = str(d, "caller");
        r.state = str(d, "state");
        r.action = str(d, "action");
        r.time = format_time_ms(e.time_ms);
        r.seq = e.seq;
        if (d.is_object() && d.contains("summary")) r.summary = d["summary"];
        out.push_back(std::move(r));
    }
    return out;
}

namespace {

std::string option_field(std::string_view name, std::string_view label, const std::string& value, std::string_view hint)
{
    return "<label>" + std::string(label) + " <input name=\"" + std::string(name) + "\" id=\"f-" + std::string(name) +
           "\" value=\"" + esc(value) + "\" title=\"" + std::string(hint) + "\"></label> ";
}

std::string fmt_num(double v)
{
    auto s = std::to_string(v);
    while (!s.empty() && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
}

std::string state_class(const std::string& s)
{
    if (s == "complete" || s == "succeeded") return "ok";
    if (s == "aborted" || s == "quorum_failed" || s == "timed_out" || s == "failed" || s == "nacked" || s == "unavailable")
        return "bad";
    return "run";
}

} // namespace

std::string deploy_page(const page_context& ctx, const deploy_view& v)
{
    std::string s = page_head("herald: deploy") + page_topbar(ctx) + "<h1>Deploy</h1>";
    if (!v.error.empty()) s += "<p class=\"error\" id=\"deploy-error\">refused: " + esc(v.error) + "</p>";
    s += "<form id=\"pickrepo\" method=\"get\" action=\"/deploy\" class=\"bar\"><label>repository <select name=\"repo\" id=\"repo\">";
    s += "<option value=\"\">choose</option>";
    for (const auto& r : v.repos)
        s += "<option" + std::string(r == v.repo ? " selected" : "") + ">" + esc(r) + "</option>";
    s += "</select></label> <button id=\"pick\">show tags and nodes</button></form>";
    if (!v.discovery_error.empty()) s += "<p class=\"error\">" + esc(v.discovery_error) + "</p>";
    if (!v.running.empty()) {
        s += "<p class=\"bar\">running:";
        for (const auto& id : v.running) s += " <a href=\"/deploy/job/" + esc(id) + "\">" + esc(id) + "</a>";
        s += "</p>";
    }
    if (!v.repo.empty() && v.answer.is_object() && v.answer.contains("tags")) {
        const auto& a = v.answer;
        s += "<form id=\"deployform\" method=\"post\" action=\"/deploy\"><input type=\"hidden\" name=\"csrf\" value=\"" +
             esc(ctx.csrf) + "\"><input type=\"hidden\" name=\"repo\" value=\"" + esc(v.repo) + "\">";
        s += "<h2>tag</h2><p class=\"bar\"><select name=\"tag\" id=\"tag\">";
        std::size_t on_all = 0;
        for (const auto& t : a["tags"]) {
            if (!t.value("on_every_node", false)) continue;  // only tags present on every node
            ++on_all;
            auto name = t.value("name", std::string());
            s += "<option value=\"" + esc(name) + "\">" + esc(name) + " (" + esc(t.value("time", std::string())) + ")</option>";
        }
        s += "</select> " + std::to_string(on_all) + " tag(s) on every node";
        if (a.contains("no_reply") && !a["no_reply"].empty()) s += "; no answer from " + esc(a["no_reply"].dump());
        s += "</p><h2>nodes</h2><table id=\"nodes\"><thead><tr><th><input type=\"checkbox\" id=\"allnodes\" title=\"all\"></th>"
             "<th>identity</th><th>" + esc(v.repo) + " now</th><th>classes</th><th>facts</th></tr></thead><tbody>";
        if (a.contains("discovered"))
            for (const auto& [id, n] : a["discovered"].items()) {
                std::string now;
                bool has = false;
                for (const auto& r : n.value("repos", json::array()))
                    if (r.is_object() && r.value("name", std::string()) == v.repo) {
                        has = true;
                        now = r.value("tag", std::string());
                    }
                if (!has) continue;  // a node without the repo
                if (now.empty()) now = "-";
                std::string classes, facts;
                for (const auto& c : n.value("classes", json::array()))
                    if (c.is_string()) classes += (classes.empty() ? "" : " ") + c.get<std::string>();
                const json facts_j = n.value("facts", json::object());  // named: items() refers to it
                for (const auto& [k, fv] : facts_j.items())
                    facts += (facts.empty() ? "" : ", ") + k + "=" + (fv.is_string() ? fv.get<std::string>() : fv.dump());
                s += "<tr><td><input type=\"checkbox\" class=\"node\" name=\"node\" value=\"" + esc(id) + "\" id=\"node-" +
                     esc(id) + "\"></td><td>" + esc(id) + "</td><td>" + esc(now) + "</td><td>" + esc(classes) + "</td><td>" +
                     esc(facts) + "</td></tr>";
            }
        s += "</tbody></table><p class=\"bar\">or by filter (one per line; the CLI's -I, -F, -C; ticked nodes AND filters): "
             "<textarea name=\"identity\" id=\"f-identity\" rows=\"1\" placeholder=\"identity or /regex/\"></textarea>"
             "<textarea name=\"fact\" id=\"f-fact\" rows=\"1\" placeholder=\"key=value\"></textarea>"
             "<textarea name=\"class\" id=\"f-class\" rows=\"1\" placeholder=\"class\"></textarea></p>";
        const auto& d = v.defaults;
        s += "<h2>options</h2><p class=\"bar\">" + option_field("canary", "canary", std::to_string(d.canary), "nodes deployed first, on their own") +
             option_field("batch", "batch", d.batch, "N or N%") +
             option_field("max_failures", "max failures", d.max_failures, "stop once more than N or N% failed") +
             option_field("quorum", "quorum", d.quorum, "N or N% must vote ready") +
             option_field("tries", "tries", std::to_string(d.tries), "attempts per node") +
             option_field("timeout", "timeout (s)", fmt_num(d.timeout), "per node") +
             option_field("health_url", "health URL", d.health_url, "GET after each batch, 2xx required") +
             "</p><p class=\"bar\"><button id=\"deploy\">deploy</button></p></form>";
    } else if (!v.repo.empty()) {
        s += "<p class=\"empty\">No tags: no deploy-agent with " + esc(v.repo) + " answered.</p>";
    }
    s += "<h2>past deploys</h2><table id=\"past\"><thead><tr><th>time (UTC)</th><th>job</th><th>action</th><th>repo</th>"
         "<th>tag</th><th>by</th><th>state</th><th>ok / failed / no reply</th></tr></thead><tbody>";
    for (const auto& r : v.past) {
        std::string counts;
        if (r.summary.is_object())
            counts = std::to_string(r.summary.value("ok", 0L)) + " / " + std::to_string(r.summary.value("failed", 0L)) + " / " +
                     std::to_string(r.summary.value("no_reply", json::array()).size());
        s += "<tr class=\"" + state_class(r.state) + "\"><td class=\"t\">" + esc(r.time.substr(0, 19)) +
             "</td><td><a href=\"/deploy/job/" + esc(r.job_id) + "\">" + esc(r.job_id) + "</a></td><td>" + esc(r.action) +
             "</td><td>" + esc(r.repo) + "</td><td>" + esc(r.tag) + "</td><td>" + esc(r.caller) + "</td><td>" + esc(r.state) +
             "</td><td>" + esc(counts) + "</td></tr>";
    }
    s += "</tbody></table>";
    if (v.past.empty()) s += "<p class=\"empty\">No deploys recorded.</p>";
    return s + "</body></html>\n";
}

std::string job_fragment(const job_view& v)
{
    const auto& j = v.job;
    auto state = str(j, "state");
    std::string s = "<table class=\"kv\"><tr><th>state</th><td id=\"jobstate\" class=\"" + state_class(state) + "\">" +
                    esc(state.empty() ? "unknown" : state) + (v.running ? " (running)" : "") + "</td></tr>";
    auto kv = [&](const char* k, std::string val) { s += "<tr><th>" + std::string(k) + "</th><td>" + esc(val) + "</td></tr>"; };
    kv("repo", str(j, "repo"));
    kv("tag", str(j, "tag"));
    kv("by", str(j, "caller"));
    if (j.is_object() && j.contains("batches") && j["batches"].is_number())
        kv("batch", std::to_string(j.value("batch", 0)) + " of " + std::to_string(j.value("batches", 0)));
    if (j.is_object() && j.contains("options")) kv("options", j["options"].dump());
    if (auto r = str(j, "reason"); !r.empty()) kv("stopped", r);
    if (j.is_object() && j.contains("summary") && j["summary"].is_object()) kv("summary", j["summary"].dump());
    s += "</table><h2>nodes</h2><table id=\"jobnodes\"><thead><tr><th>node</th><th>state</th><th>message</th>"
         "<th>stages</th></tr></thead><tbody>";
    json nodes = j.is_object() && j.contains("nodes") && j["nodes"].is_object() ? j["nodes"] : json::object();
    json detail = j.is_object() && j.contains("nodes_detail") && j["nodes_detail"].is_object() ? j["nodes_detail"] : json::object();
    std::map<std::string, std::vector<const recorded_event*>> audits;  // node → its agent's audit records
    for (const auto& a : v.audits) audits[a.host].push_back(&a);
    std::set<std::string> names;
    for (const auto& [n, st] : nodes.items()) names.insert(n);
    for (const auto& [n, st] : detail.items()) names.insert(n);
    for (const auto& n : names) {
        auto st = nodes.contains(n) && nodes[n].is_string() ? nodes[n].get<std::string>()
                                                            : detail.contains(n) ? str(detail[n], "state") : "";
        std::string msg, stages;
        if (detail.contains(n)) {
            msg = str(detail[n], "message");
            const auto& dd = detail[n].contains("detail") ? detail[n]["detail"] : json();
            if (dd.is_object() && dd.contains("stages") && dd["stages"].is_array())
                for (const auto& stg : dd["stages"]) {
                    auto out = str(stg, "output");
                    stages += "<details class=\"stage\"><summary>" + esc(str(stg, "name")) + " exit " +
                              std::to_string(stg.value("exit_code", -1)) + "</summary><pre>" +
                              esc(printable(out.empty() ? "(no output)" : out, 64 * 1024)) + "</pre></details>";
                }
        }
        if (stages.empty())  // a rollout not run here: the agents' audit records (names and exit codes)
            for (const auto* a : audits[n]) {
                auto d = json::parse(a->data, nullptr, false);
                if (str(d, "phase") != "commit") continue;
                if (msg.empty()) msg = str(d, "message");
                for (const auto& stg : d.value("stages", json::array()))
                    stages += "<span class=\"stage\">" + esc(str(stg, "name")) + " exit " +
                              std::to_string(stg.value("exit_code", -1)) + "</span> ";
            }
        s += "<tr class=\"" + state_class(st) + "\"><td>" + esc(n) + "</td><td>" + esc(st) + "</td><td>" +
             esc(printable(msg, 300)) + "</td><td>" + stages + "</td></tr>";
    }
    s += "</tbody></table>";
    if (!v.progress.empty()) s += "<h2>progress</h2><pre id=\"progress\">" + esc(printable(v.progress, 256 * 1024)) + "</pre>";
    return s;
}

std::string job_page(const page_context& ctx, const job_view& v)
{
    std::string s = page_head("herald: deploy " + v.job_id) + page_topbar(ctx) + "<h1>" +
                    esc(str(v.job, "action").empty() ? "deploy" : str(v.job, "action")) + " job " + esc(v.job_id) +
                    "</h1><p class=\"bar\"><a href=\"/deploy\">all deploys</a> · <a href=\"/?q=" +
                    url_escape(v.job_id) + "\">its events</a></p>";
    if (v.running && !v.stopped_by.empty())
        s += "<p id=\"stopping\" class=\"bar\">stopping after the current batch (asked by " + esc(v.stopped_by) + ")</p>";
    else if (v.running && ctx.who && ctx.who->r == role::deployer)
        s += "<form id=\"stopform\" method=\"post\" action=\"/deploy/job/" + esc(v.job_id) +
             "/stop\" class=\"bar\"><input type=\"hidden\" name=\"csrf\" value=\"" + esc(ctx.csrf) +
             "\"><button id=\"stopjob\" type=\"submit\">stop after the current batch</button></form>";
    s += "<div id=\"job\"" + (v.running ? " data-live=\"/deploy/live/" + esc(v.job_id) + "\"" : std::string()) + ">" +
         job_fragment(v) + "</div>";
    return s + "</body></html>\n";
}

} // namespace herald
