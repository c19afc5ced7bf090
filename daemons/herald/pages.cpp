// herald's pages: server-rendered HTML, one small script and style sheet served by herald
// itself (no CDN, no inline script: the CSP says script-src 'self').
#include "web.hpp"

#include <nlohmann/json.hpp>

namespace herald {

namespace {

std::string esc(std::string_view s) { return html_escape(s); }

} // namespace

std::string page_head(std::string_view title)
{
    return "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + esc(title) +
           "</title><meta name=\"viewport\" content=\"width=device-width\">"
           "<link rel=\"stylesheet\" href=\"/herald.css\"><script src=\"/herald.js\" defer></script></head><body>";
}

std::string page_topbar(const page_context& ctx)
{
    std::string s = "<header><a class=\"brand\" href=\"/\">herald</a> <span class=\"sub\">deploykit event log</span>"
                    " <a class=\"nav\" id=\"nav-deploy\" href=\"/deploy\">deploy</a>";
    if (ctx.who) {
        s += "<span class=\"who\">" + esc(ctx.who->user) + " (" + std::string(to_string(ctx.who->r)) + ")";
        if (!ctx.who->via_proxy)
            s += " <form method=\"post\" action=\"/logout\" class=\"inline\"><input type=\"hidden\" name=\"csrf\" value=\"" +
                 esc(ctx.csrf) + "\"><button id=\"logout\">log out</button></form>";
        s += "</span>";
    }
    return s + "</header>";
}

namespace {

std::string head(std::string_view title) { return page_head(title); }
std::string topbar(const page_context& ctx) { return page_topbar(ctx); }

std::string time_cell(std::int64_t ms)
{
    auto t = format_time_ms(ms);
    // 2026-11-22T10:00:00.000Z -> 2026-11-22 10:00:00
    return esc(t.substr(0, 10) + " " + t.substr(11, 8));
}

std::string filter_link(std::string_view key, std::string_view value)
{
    if (value.empty()) return "";
    return "<a href=\"/?" + std::string(key) + "=" + url_escape(value) + "\">" + esc(value) + "</a>";
}

std::string pretty_data(const std::string& data)
{
    auto j = nlohmann::json::parse(data, nullptr, false);
    if (j.is_discarded()) return data;
    return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

} // namespace

std::string table_row(const recorded_event& e)
{
    std::string rel;
    if (!e.repo.empty() && !e.revision.empty())
        rel = " <a class=\"rel\" title=\"related events\" href=\"/?repo=" + url_escape(e.repo) + "&amp;revision=" +
              url_escape(e.revision) + "\">related</a>";
    return "<tr class=\"lv-" + esc(e.level) + "\" data-seq=\"" + std::to_string(e.seq) + "\"><td class=\"t\">" +
           time_cell(e.time_ms) + "</td><td>" + esc(e.level) + "</td><td>" + filter_link("daemon", e.daemon) +
           "</td><td>" + filter_link("host", e.host) + "</td><td>" + filter_link("system", e.system) + "</td><td>" +
           filter_link("repo", e.repo) + "</td><td>" + filter_link("type", e.type) +
           "</td><td class=\"msg\"><details><summary>" + esc(e.message.empty() ? "(no message)" : e.message) +
           "</summary><div class=\"det\"><a href=\"/event/" + std::to_string(e.seq) + "\">event " + esc(e.id) +
           "</a>" + rel + " · " + esc(e.source) + (e.legacy ? " · legacy form" : "") +
           (e.authenticated ? " · signed" : "") + "<pre>" + esc(pretty_data(e.data)) +
           "</pre></div></details></td></tr>\n";
}

std::string search_page(const page_context& ctx, const query& q, const search_result& r, std::string_view error)
{
    auto field = [](std::string_view name, std::string_view label, const std::string& v, std::string_view type = "text") {
        return "<label>" + std::string(label) + " <input type=\"" + std::string(type) + "\" name=\"" + std::string(name) +
               "\" value=\"" + esc(v) + "\"></label> ";
    };
    auto dt = [](const std::optional<std::int64_t>& ms) { return ms ? format_time_ms(*ms).substr(0, 16) : std::string(); };
    std::string s = head("herald") + topbar(ctx);
    s += "<form id=\"filters\" method=\"get\" action=\"/\">";
    s += field("q", "text", q.text, "search");
    s += field("since", "from", dt(q.since_ms), "datetime-local");
    s += field("until", "to", dt(q.until_ms), "datetime-local");
    s += field("type", "type", q.type) + field("host", "host", q.host) + field("daemon", "daemon", q.daemon) +
         field("repo", "repo", q.repo) + field("revision", "revision", q.revision) + field("system", "system", q.system);
    s += "<label>level <select name=\"level\"><option value=\"\">any</option>";
    for (const char* l : {"debug", "info", "warning", "error", "critical"})
        s += std::string("<option") + (q.level == l ? " selected" : "") + ">" + l + "</option>";
    s += "</select></label> <button id=\"search\">search</button> <a href=\"/\">reset</a>";
    s += " <label class=\"live\"><input type=\"checkbox\" id=\"live\"" + std::string(q.before ? "" : " checked") +
         "> live</label></form>";
    if (!error.empty()) s += "<p class=\"error\">" + esc(error) + "</p>";
    // deployers write notes into the log (maintenance windows, freezes); the form is shown to
    // everyone, the server checks the role
    s += "<form id=\"noteform\" method=\"post\" action=\"/note\"><input type=\"hidden\" name=\"csrf\" value=\"" +
         esc(ctx.csrf) + "\"><input name=\"text\" id=\"notetext\" placeholder=\"note for the log\" maxlength=\"2000\">"
         " <button id=\"note\">add note</button></form>";
    s += "<table id=\"events\" data-query=\"" + esc(query_string(q, std::nullopt)) + "\"><thead><tr><th>time (UTC)</th>"
         "<th>level</th><th>daemon</th><th>host</th><th>system</th><th>repo</th><th>type</th><th>message</th></tr></thead>"
         "<tbody>";
    for (const auto& e : r.rows) s += table_row(e);
    s += "</tbody></table>";
    if (r.rows.empty()) s += "<p class=\"empty\">No events match.</p>";
    s += "<nav class=\"pages\">";
    if (q.before) s += "<a href=\"/?" + esc(query_string(q, std::nullopt)) + "\">newest</a> ";
    if (r.next_before) s += "<a id=\"older\" href=\"/?" + esc(query_string(q, r.next_before)) + "\">older</a>";
    s += "</nav></body></html>\n";
    return s;
}

std::string event_page(const page_context& ctx, const recorded_event& e, const std::vector<recorded_event>& related)
{
    std::string s = head("herald: event " + e.id) + topbar(ctx);
    s += "<h1>" + esc(e.type) + " " + esc(e.message) + "</h1><table class=\"kv\">";
    auto kv = [&](std::string_view k, std::string v) { s += "<tr><th>" + std::string(k) + "</th><td>" + v + "</td></tr>"; };
    kv("event id", esc(e.id));
    kv("time", esc(format_time_ms(e.time_ms)));
    kv("received", esc(format_time_ms(e.received_ms)));
    kv("level", esc(e.level));
    kv("daemon", filter_link("daemon", e.daemon));
    kv("host", filter_link("host", e.host));
    kv("system", filter_link("system", e.system));
    kv("repo", filter_link("repo", e.repo));
    kv("revision", filter_link("revision", e.revision));
    kv("source", esc(e.source));
    kv("form", e.legacy ? "legacy" : "native");
    kv("signature", e.authenticated ? "verified" : "none");
    s += "</table><h2>data</h2><pre>" + esc(pretty_data(e.data)) + "</pre><h2>raw</h2><pre>" + esc(e.raw) + "</pre>";
    if (!related.empty()) {
        s += "<h2>related (" + esc(e.repo) + " " + esc(e.revision) + ")</h2><table id=\"events\"><tbody>";
        for (const auto& r : related) s += table_row(r);
        s += "</tbody></table>";
    }
    return s + "</body></html>\n";
}

std::string login_page(std::string_view csrf, std::string_view error)
{
    std::string s = head("herald: log in") + "<header><a class=\"brand\" href=\"/\">herald</a></header>";
    s += "<form id=\"login\" method=\"post\" action=\"/login\" class=\"login\"><h1>Log in</h1>";
    if (!error.empty()) s += "<p class=\"error\">" + esc(error) + "</p>";
    s += "<input type=\"hidden\" name=\"csrf\" value=\"" + esc(csrf) + "\">"
         "<label>user <input name=\"user\" id=\"user\" autocomplete=\"username\"></label>"
         "<label>password <input type=\"password\" name=\"password\" id=\"password\" autocomplete=\"current-password\"></label>"
         "<button id=\"submit\">log in</button></form></body></html>\n";
    return s;
}

std::string error_page(int status, std::string_view text)
{
    return head("herald: " + std::to_string(status)) + "<header><a class=\"brand\" href=\"/\">herald</a></header><p class=\"error\">" +
           std::to_string(status) + ": " + esc(text) + "</p></body></html>\n";
}

std::string_view page_csp()
{
    return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
           "form-action 'self'; frame-ancestors 'none'; base-uri 'none'";
}

std::string_view page_style()
{
    return R"(body{font:14px/1.35 system-ui,sans-serif;margin:0;color:#222}
header{background:#234;color:#fff;padding:.5em 1em;display:flex;gap:1em;align-items:baseline}
header a{color:#fff;text-decoration:none}.brand{font-weight:bold;font-size:1.2em}.sub{opacity:.7}
.who{margin-left:auto}.inline{display:inline}
form#filters{padding:.6em 1em;background:#eef;display:flex;flex-wrap:wrap;gap:.4em;align-items:center}
form#filters input[type=text]{width:8em}
form#noteform{padding:.3em 1em}form#noteform input{width:30em}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.2em .5em;border-bottom:1px solid #ddd;vertical-align:top}
td.t{white-space:nowrap;font-family:monospace}td.msg{width:50%}summary{cursor:pointer}
pre{background:#f6f6f6;padding:.5em;overflow:auto;max-height:30em}
tr.lv-error td,tr.lv-critical td{background:#fdd}tr.lv-warning td{background:#ffd}tr.lv-debug td{color:#777}
tr.new td{animation:flash 2s}@keyframes flash{from{background:#cfc}}
.error{color:#a00;padding:0 1em}.pages{padding:1em}.login{max-width:20em;margin:3em auto;display:grid;gap:.6em}
table.kv{width:auto;margin:1em}h1,h2{margin:.6em 1em;font-size:1.2em}.empty{padding:1em}
.nav{margin-left:1em}.bar{padding:.3em 1em;display:flex;flex-wrap:wrap;gap:.5em;align-items:center;margin:0}
.bar input{width:6em}.bar input[name=health_url]{width:18em}textarea{width:14em;font:inherit}
tr.ok td,td.ok{background:#dfd}tr.bad td,td.bad{background:#fdd}tr.run td,td.run{background:#ffd}
.stage{margin-right:.6em;font-family:monospace}details.stage pre{max-height:15em}
)";
}

std::string_view page_script()
{
    return R"(// herald's live feed: EventSource on /live with the page's filters; new rows go on top.
'use strict';
document.addEventListener('DOMContentLoaded', function () {
  var table = document.getElementById('events');
  var box = document.getElementById('live');
  if (!table || !box || !window.EventSource) return;
  var body = table.tBodies[0];
  var first = body.rows.length ? body.rows[0].getAttribute('data-seq') : '';
  var src = null;
  function start() {
    if (src || !box.checked) return;
    var q = table.getAttribute('data-query') || '';
    src = new EventSource('/live?' + q + (q ? '&' : '') + 'after=' + (first || '0'));
    src.addEventListener('row', function (ev) {
      var tmp = document.createElement('tbody');
      tmp.innerHTML = ev.data;
      var row = tmp.rows[0];
      if (!row) return;
      row.classList.add('new');
      body.insertBefore(row, body.firstChild);
      first = row.getAttribute('data-seq');
      while (body.rows.length > 500) body.deleteRow(body.rows.length - 1);
    });
  }
  function stop() { if (src) { src.close(); src = null; } }
  box.addEventListener('change', function () { box.checked ? start() : stop(); });
  start();
});
// the deploy page: tick every node at once
document.addEventListener('DOMContentLoaded', function () {
  var all = document.getElementById('allnodes');
  if (!all) return;
  all.addEventListener('change', function () {
    document.querySelectorAll('input.node').forEach(function (b) { b.checked = all.checked; });
  });
});
// a running job: its state from /deploy/live/<job> until it has ended
document.addEventListener('DOMContentLoaded', function () {
  var job = document.getElementById('job');
  if (!job || !job.getAttribute('data-live') || !window.EventSource) return;
  var src = new EventSource(job.getAttribute('data-live'));
  src.addEventListener('job', function (ev) { job.innerHTML = ev.data; });
  src.addEventListener('done', function (ev) {
    job.innerHTML = ev.data; job.removeAttribute('data-live'); src.close();
    ['stopform', 'stopping'].forEach(function (id) { var e = document.getElementById(id); if (e) e.remove(); });
  });
});
)";
}

} // namespace herald
