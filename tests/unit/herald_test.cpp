// herald's pure parts: records from events and ingest bodies (HTTPHandler's form), queries to
// SQL, FTS5 quoting, retention decisions, PBKDF2 checks, sessions, tokens and rate limits.
#include "record.hpp"
#include "store.hpp"
#include "web.hpp"

#include "bus/password.hpp"
#include "bus/wire.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace herald;

namespace {
ingest_origin origin{"pyapp", "10.0.0.5", "payroll"};

// What logging.handlers.HTTPHandler sends: urllib.parse.urlencode(record.__dict__).
const char* python_form =
    "name=payroll-batch&msg=paid+%25d+invoices+for+%25s&args=%2817%2C+%27ACME%27%29&levelname=WARNING&levelno=30"
    "&pathname=%2Fsrv%2Fpay.py&filename=pay.py&module=pay&exc_info=None&exc_text=None&stack_info=None&lineno=12"
    "&funcName=run&created=1733333333.25&msecs=250.0&relativeCreated=12.5&thread=1&threadName=MainThread"
    "&processName=MainProcess&process=42";
} // namespace

TEST_CASE("herald: HTTPHandler form records are decoded with the message formatted")
{
    auto b = decode_ingest("application/x-www-form-urlencoded", python_form, origin, 1000, 10);
    REQUIRE(b.error.empty());
    REQUIRE(b.records.size() == 1);
    const auto& r = b.records[0];
    CHECK(r.message == "paid 17 invoices for ACME");
    CHECK(r.level == "warning");
    CHECK(r.daemon == "payroll-batch");
    CHECK(r.host == "10.0.0.5");
    CHECK(r.system == "payroll");
    CHECK(r.time_ms == 1733333333250);
    CHECK(r.type == "log");
    CHECK(r.source == "ingest:pyapp");
    // the same record POSTed again has the same id (recorded once)
    auto again = decode_ingest("application/x-www-form-urlencoded", python_form, origin, 2000, 10);
    CHECK(again.records[0].id == r.id);
}

TEST_CASE("herald: form decoding refuses malformed escapes and keeps plus as space")
{
    auto f = decode_form("a=1+2&b=%41%42&c&=x");
    REQUIRE(f);
    CHECK((*f)[0] == std::pair<std::string, std::string>{"a", "1 2"});
    CHECK((*f)[1].second == "AB");
    CHECK((*f)[2] == std::pair<std::string, std::string>{"c", ""});
    CHECK_FALSE(decode_form("a=%4"));
    CHECK_FALSE(decode_form("a=%zz"));
    auto bad = decode_ingest("application/x-www-form-urlencoded", "msg=%G1", origin, 0, 10);
    CHECK_FALSE(bad.error.empty());
    CHECK(bad.records.empty());
}

TEST_CASE("herald: HTTPHandler args that are not simple literals keep msg and args")
{
    auto b = decode_ingest("application/x-www-form-urlencoded", "msg=x+%25s&args=%28%3Cobject%3E%2C%29", origin, 0, 10);
    REQUIRE(b.records.size() == 1);
    CHECK(b.records[0].message == "x %s (<object>,)");
}

TEST_CASE("herald: JSON ingest: one object or an array within the bound")
{
    auto one = decode_ingest("application/json; charset=utf-8",
                             R"({"message":"m","level":"ERR","host":"db01","time":"2026-12-04T10:00:00.5+01:00","repo":"site"})",
                             origin, 0, 2);
    REQUIRE(one.records.size() == 1);
    CHECK(one.records[0].level == "error");
    CHECK(one.records[0].host == "db01");
    CHECK(one.records[0].repo == "site");
    CHECK(one.records[0].time_ms == *parse_time_ms("2026-12-04T09:00:00.500Z"));
    CHECK(decode_ingest("application/json", "[{},{},{}]", origin, 0, 2).error.find("more than 2") != std::string::npos);
    CHECK_FALSE(decode_ingest("application/json", "[1]", origin, 0, 2).error.empty());
    CHECK_FALSE(decode_ingest("application/json", "{", origin, 0, 2).error.empty());
    CHECK_FALSE(decode_ingest("text/plain", "{}", origin, 0, 2).error.empty());
    // control characters never reach the one-line columns
    auto ctl = decode_ingest("application/json", R"({"message":"a\u001b[31mb\nc","host":"h\u0007"})", origin, 0, 2);
    CHECK(ctl.records[0].message == "a [31mb c");
    CHECK(ctl.records[0].host == "h ");
}

TEST_CASE("herald: levels from Python names and numbers")
{
    CHECK(normalise_level("WARN") == "warning");
    CHECK(normalise_level("CRITICAL") == "critical");
    CHECK(normalise_level("FATAL") == "critical");
    CHECK(normalise_level("40") == "error");
    CHECK(normalise_level("5") == "debug");
    CHECK(normalise_level("loud").empty());
}

TEST_CASE("herald: times parse as RFC 3339 and format back")
{
    CHECK(parse_time_ms("1970-01-01T00:00:00Z") == 0);
    CHECK(parse_time_ms("2026-11-22T10:00:00Z") == 1795341600000);
    CHECK(format_time_ms(1795341600123) == "2026-11-22T10:00:00.123Z");
    CHECK_FALSE(parse_time_ms("2026-13-01T00:00:00Z"));
    CHECK_FALSE(parse_time_ms("yesterday"));
    CHECK_FALSE(parse_time_ms("2026-11-22T10:00:00Zjunk"));
}

TEST_CASE("herald: records from bus events: legacy ids get the body's hash")
{
    bus::fetch_event fe{"site", "refs/heads/master", std::string(40, 'a'), std::string(40, 'b'), "web01", "trusting", 0.2, false, "boom"};
    auto ev = bus::make_event(fe, "web01");
    bus::intake in({});
    auto frames = bus::encode(ev, "/topic/future.events.stomp-git", bus::wire_format::native);
    REQUIRE(!frames.empty());
    auto f = frames[0];
    f.headers.emplace_back("destination", "/topic/future.events.stomp-git");
    auto r = in.accept(f, std::chrono::system_clock::now());
    REQUIRE(r.process());
    auto rec = from_intake(r, f, 5);
    CHECK(rec.id == ev.id);
    CHECK(rec.type == "fetch");
    CHECK(rec.daemon == "stomp-git");
    CHECK(rec.level == "error");
    CHECK(rec.repo == "site");
    CHECK(rec.revision == std::string(40, 'b'));
    CHECK(rec.message.find("boom") != std::string::npos);
}

TEST_CASE("herald: native events of unknown types are recorded by their envelope")
{
    bus::stomp::frame f;
    f.headers.emplace_back("destination", "/topic/deploykit.deploy.jobs");
    f.body = R"({"v":1,"id":"job-1","type":"deploy.job","host":"ops1","time":"2026-12-04T10:00:00Z","data":{"repo":"site","tag":"v1.2","state":"running","ok":true}})";
    auto rec = from_unknown_native(f, 7);
    REQUIRE(rec);
    CHECK(rec->id == "job-1");
    CHECK(rec->type == "deploy.job");
    CHECK(rec->revision == "v1.2");
    CHECK(rec->message == "deploy.job [site] v1.2: running");
    f.body = R"({"id":"x","type":"bad type!"})";
    CHECK_FALSE(from_unknown_native(f, 7));
    f.body = "not json";
    CHECK_FALSE(from_unknown_native(f, 7));
}

TEST_CASE("herald: queries from URL parameters")
{
    auto p = parse_query({{"type", "commit"}, {"since", "2026-11-22T10:00"}, {"limit", "9999"}, {"q", "x"}, {"bogus", "1"}}, 500);
    CHECK(p.error.empty());
    CHECK(p.q.type == "commit");
    CHECK(p.q.since_ms == parse_time_ms("2026-11-22T10:00:00Z"));
    CHECK(p.q.limit == 500);
    CHECK(parse_query({{"level", "loud"}}).error.find("level") == 0);
    CHECK(parse_query({{"before", "-1"}}).error.find("before") == 0);
    CHECK(parse_query({{"until", "soon"}}).error.find("until") == 0);
}

TEST_CASE("herald: SQL has only placeholders and level means that or worse")
{
    query q;
    q.host = "web01'; DROP TABLE events; --";
    q.level = "error";
    q.text = "frob \"quoted\" OR *";
    q.before = 100;
    auto st = build_sql(q);
    CHECK(st.sql.find("DROP") == std::string::npos);
    CHECK(st.sql.find("e.host = ?") != std::string::npos);
    CHECK(st.sql.find("e.level IN (?, ?)") != std::string::npos);
    CHECK(st.sql.find("events_fts.rowid < ?") != std::string::npos);
    CHECK(st.sql.find("ORDER BY events_fts.rowid DESC LIMIT ?") != std::string::npos);
    CHECK(st.sql.find("OFFSET") == std::string::npos);
    // the FTS5 expression: the free text quoted word by word on the word columns, the exact
    // values as hex keys (nothing the user typed is FTS5 syntax)
    auto m = std::get<std::string>(st.binds[0]);
    CHECK(m.starts_with("{message daemon host system repo type data} : (\"frob\" AND \"quoted\" AND \"OR\")"));
    CHECK(m.find("keys : \"h7765623031273b2044524f50") != std::string::npos);  // h + hex("web01'; DROP")
    CHECK(m.find("keys : (\"l6572726f72\" OR \"l637269746963616c\")") != std::string::npos);  // error or critical
    CHECK(std::get<std::string>(st.binds[2]) == q.host);
    CHECK(std::get<std::int64_t>(st.binds.back()) == 51);
    query live;
    live.after = 5;
    CHECK(build_sql(live).sql.find("ORDER BY e.seq ASC") != std::string::npos);
    // repo + revision: events_repo finds the rows, free text is checked per row
    query rev{.repo = "site", .revision = "abc", .text = "x"};
    CHECK(build_sql(rev).sql.find("FROM events AS e WHERE e.repo = ? AND e.revision = ? AND EXISTS") != std::string::npos);
    // a time range alone: the page's seqs from the time index first
    query tr{.since_ms = 1, .until_ms = 2};
    CHECK(build_sql(tr).sql.find("WHERE e.seq IN (SELECT seq FROM events AS e WHERE e.time >= ? AND e.time < ?") !=
          std::string::npos);
}

TEST_CASE("herald: free text is quoted word by word for FTS5")
{
    CHECK(fts_expression("  frob  nicator ") == "\"frob\" AND \"nicator\"");
    CHECK(fts_expression("a\"b OR *") == "\"a\" AND \"b\" AND \"OR\"");
    CHECK(fts_expression("refs/heads/master") == "\"refs\" AND \"heads\" AND \"master\"");
    CHECK(fts_expression("   ").empty());
}

TEST_CASE("herald: pagination links keep the filters")
{
    query q;
    q.repo = "site";
    q.text = "a b&c";
    CHECK(query_string(q, 42) == "repo=site&q=a%20b%26c&before=42");
}

TEST_CASE("herald: retention by age and by size")
{
    retention_policy p;
    p.max_age = std::chrono::hours(24);
    p.max_bytes = 1000;
    p.batch_rows = 50;
    const std::int64_t now = 10 * 86400000LL;
    // nothing to do
    CHECK(plan_retention(p, {500, 100, now - 1000}, now).done());
    CHECK(plan_retention(p, {500, 0, 0}, now).done());
    // too old: delete what was received before the cutoff
    auto a = plan_retention(p, {500, 100, now - 2 * 86400000LL}, now);
    REQUIRE(a.delete_received_before);
    CHECK(*a.delete_received_before == now - 86400000LL);
    CHECK(a.delete_oldest == 0);
    // 2000 bytes for 100 rows, limit 1000: down to 900 = 55 % of the rows, capped at the batch
    auto s = plan_retention(p, {2000, 100, now}, now);
    CHECK(s.delete_oldest == 50);
    p.batch_rows = 1000;
    CHECK(plan_retention(p, {2000, 100, now}, now).delete_oldest == 55);
    // just over: down to 90 % too (no deleting a row per minute at the limit)
    CHECK(plan_retention(p, {1001, 1000, now}, now).delete_oldest == 101);
    // no limits
    retention_policy none;
    none.max_age = std::chrono::hours(0);
    CHECK(plan_retention(none, {1 << 30, 100, 0}, now).done());
}

TEST_CASE("herald: PBKDF2 hashes from the shared libbus code")
{
    auto h = bus::hash_password("s3cret", 1000);
    CHECK(h.starts_with("pbkdf2-sha256$1000$"));
    CHECK(bus::check_password("s3cret", h));
    CHECK_FALSE(bus::check_password("s3cres", h));
    CHECK_FALSE(bus::check_password("s3cret", "pbkdf2-sha256$0$00$00"));
    CHECK_FALSE(bus::check_password("s3cret", "plain"));
}

TEST_CASE("herald: sessions expire and are bounded")
{
    session_store s(std::chrono::seconds(60), 2);
    auto t0 = std::chrono::steady_clock::now();
    auto a = s.create("alice", role::deployer, t0);
    auto b = s.create("bob", role::viewer, t0 + std::chrono::seconds(1));
    REQUIRE(s.find(a, t0));
    CHECK(s.find(a, t0)->r == role::deployer);
    CHECK(s.find(a, t0)->csrf.size() == 64);
    CHECK(s.find(a, t0)->csrf != s.find(b, t0)->csrf);
    s.create("carol", role::viewer, t0 + std::chrono::seconds(2));  // full: alice's (oldest) goes
    CHECK_FALSE(s.find(a, t0 + std::chrono::seconds(2)));
    CHECK(s.find(b, t0 + std::chrono::seconds(2)));
    CHECK_FALSE(s.find(b, t0 + std::chrono::seconds(62)));
    CHECK_FALSE(s.find("", t0));
}

TEST_CASE("herald: cookies and ingest tokens")
{
    CHECK(cookie_value("a=1; herald_session=abc; b=2", "herald_session") == "abc");
    CHECK(cookie_value("xherald_session=abc", "herald_session").empty());
    auto c = session_cookie("herald_session", "v", std::chrono::seconds(10), true);
    CHECK(c.find("HttpOnly") != std::string::npos);
    CHECK(c.find("SameSite=Strict") != std::string::npos);
    CHECK(c.find("; Secure") != std::string::npos);
    std::vector<ingest_token> toks{{"pyapp", "ingest-token-0123456789", ""}};
    CHECK(ingest_auth(toks, "Bearer ingest-token-0123456789") == &toks[0]);
    CHECK(ingest_auth(toks, "Bearer ingest-token-012345678") == nullptr);
    // Basic pyapp:ingest-token-0123456789 (HTTPHandler's credentials=)
    CHECK(ingest_auth(toks, "Basic cHlhcHA6aW5nZXN0LXRva2VuLTAxMjM0NTY3ODk=") == &toks[0]);
    // right token, wrong name
    CHECK(ingest_auth(toks, "Basic b3RoZXI6aW5nZXN0LXRva2VuLTAxMjM0NTY3ODk=") == nullptr);
    CHECK(ingest_auth(toks, "Basic !!!!") == nullptr);
    CHECK(ingest_auth(toks, "") == nullptr);
}

TEST_CASE("herald: the ingest rate limiter refills at its rate")
{
    rate_limiter l(10, 20);
    auto t = std::chrono::steady_clock::now();
    CHECK(l.take("a", 20, t));
    CHECK_FALSE(l.take("a", 1, t));
    CHECK(l.take("b", 1, t));  // per key
    CHECK(l.take("a", 5, t + std::chrono::milliseconds(500)));
    CHECK_FALSE(l.take("a", 1, t + std::chrono::milliseconds(500)));
}

TEST_CASE("herald: pages escape what events carry and SSE splits lines")
{
    recorded_event e;
    e.seq = 3;
    e.message = "<script>alert(1)</script>";
    e.repo = "site";
    e.revision = "abc";
    e.data = R"({"x":"<b>"})";
    auto row = table_row(e);
    CHECK(row.find("<script>") == std::string::npos);
    CHECK(row.find("&lt;script&gt;") != std::string::npos);
    CHECK(row.find("/?repo=site&amp;revision=abc") != std::string::npos);
    CHECK(sse_event(7, "row", "a\nb") == "id: 7\nevent: row\ndata: a\ndata: b\n\n");
}
