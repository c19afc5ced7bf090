// herald's store on a real SQLite database in a temporary directory: the searches the page and
// the API build (each filter, free text, combinations, time ranges) against the same filter done
// by hand over the records; keyset pagination; the search time budget; the schema migration.
#include "record.hpp"
#include "store.hpp"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <algorithm>
#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>
#include <unistd.h>

using namespace herald;
namespace fs = std::filesystem;

namespace {

struct temp_dir {
    fs::path path;
    temp_dir()
    {
        std::string t = (fs::temp_directory_path() / "herald-store-XXXXXX").string();
        REQUIRE(mkdtemp(t.data()));
        path = t;
    }
    ~temp_dir() { fs::remove_all(path); }
};

// Submits the records and waits (with a deadline) until the writer has committed them.
void record_all(writer& w, std::vector<recorded_event> recs)
{
    std::mutex mu;
    std::condition_variable cv;
    bool done = false, ok = false;
    REQUIRE(w.submit(std::move(recs), false, [&](bool good, const std::string&) {
        std::lock_guard lk(mu);
        done = true;
        ok = good;
        cv.notify_all();
    }));
    std::unique_lock lk(mu);
    REQUIRE(cv.wait_for(lk, std::chrono::seconds(30), [&] { return done; }));
    REQUIRE(ok);
}

const char* types[] = {"log", "commit", "fetch", "build", "heartbeat"};
const char* hosts[] = {"web01", "web02", "db.example.com", "höst-ü", "WEB01"};
const char* daemons[] = {"stomp-git", "git-stomp", "stomp", "stomp-jenkins", "jenkins", "git"};
const char* repos[] = {"site", "site-admin", "", "repo/with/slash"};
const char* levels[] = {"debug", "info", "warning", "error", "critical"};
const char* words[] = {"deploy", "fetch", "timeout", "refused", "canary", "rollback", "zürich"};

std::vector<recorded_event> sample(int n)
{
    std::mt19937 rnd(42);
    auto pick = [&](auto& arr) { return std::string(arr[rnd() % std::size(arr)]); };
    std::vector<recorded_event> out;
    for (int i = 0; i < n; ++i) {
        recorded_event e;
        e.id = "ev-" + std::to_string(i);
        e.time_ms = 1'700'000'000'000 + i * 1000 + static_cast<int>(rnd() % 5000);  // roughly in order
        e.received_ms = 1'700'000'000'000 + i * 1000;
        e.type = pick(types);
        e.level = pick(levels);
        e.daemon = pick(daemons);
        e.host = pick(hosts);
        e.system = i % 3 ? "" : "payroll";
        e.repo = pick(repos);
        e.revision = e.repo.empty() ? "" : "rev" + std::to_string(i / 4);
        e.message = pick(words) + " " + pick(words) + " #" + std::to_string(i);
        e.source = i % 2 ? "ingest:app" : "/topic/deploykit.events";
        e.data = i % 2 ? R"({"id":"ev-)" + std::to_string(i) + R"(","message":"x","funcName":"run_)" + pick(words) + R"("})"
                       : R"({"ref":"refs/heads/)" + pick(words) + R"("})";
        e.raw = i % 4 == 3 ? "raw body " + std::to_string(i) : e.data;
        out.push_back(std::move(e));
    }
    return out;
}

// FTS5's unicode61 on this test's texts: case-folded runs of letters and digits (and the
// non-ASCII letters of "zürich", which both sides fold alike); every word of the query must be one.
std::set<std::string> words_of(const std::string& text)
{
    std::set<std::string> out;
    std::string cur;
    for (char c : text + " ") {
        if (std::isalnum(static_cast<unsigned char>(c)) || static_cast<unsigned char>(c) >= 0x80) {
            cur += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        } else if (!cur.empty()) {
            out.insert(cur);
            cur.clear();
        }
    }
    return out;
}

bool has_words(const recorded_event& e, const std::string& q)
{
    // an ingested record's data is indexed without the fields it has in columns (id, message ...)
    std::string data = e.data;
    if (e.source.starts_with("ingest:")) {
        auto j = data.find("\"funcName\"");
        data = j == std::string::npos ? "" : data.substr(j);
    }
    auto have = words_of(e.message + " " + e.daemon + " " + e.host + " " + e.system + " " + e.repo + " " + e.type + " " + data);
    for (const auto& w : words_of(q))
        if (!have.count(w)) return false;
    return true;
}

// The query done by hand: the seqs that match, newest first.
std::vector<std::int64_t> expected(const std::vector<recorded_event>& rows, const query& q)
{
    std::vector<std::int64_t> out;
    for (const auto& e : rows) {
        if (!q.type.empty() && e.type != q.type) continue;
        if (!q.host.empty() && e.host != q.host) continue;
        if (!q.daemon.empty() && e.daemon != q.daemon) continue;
        if (!q.repo.empty() && e.repo != q.repo) continue;
        if (!q.revision.empty() && e.revision != q.revision) continue;
        if (!q.system.empty() && e.system != q.system) continue;
        if (!q.level.empty() && level_rank(e.level) < level_rank(q.level)) continue;
        if (q.since_ms && e.time_ms < *q.since_ms) continue;
        if (q.until_ms && e.time_ms >= *q.until_ms) continue;
        if (q.before && e.seq >= *q.before) continue;
        if (q.after && e.seq <= *q.after) continue;
        if (!q.text.empty() && !has_words(e, q.text)) continue;
        out.push_back(e.seq);
    }
    std::sort(out.begin(), out.end(), std::greater<>());
    return out;
}

// Every page of a search (keyset: `before` the last seq of the previous page).
std::vector<std::int64_t> all_pages(reader_pool& rd, query q, std::size_t* pages = nullptr)
{
    std::vector<std::int64_t> got;
    std::size_t n = 0;
    for (;;) {
        auto r = rd.search(q);
        ++n;
        for (const auto& e : r.rows) got.push_back(e.seq);
        if (!r.next_before) break;
        q.before = r.next_before;
        REQUIRE(n < 10000);
    }
    if (pages) *pages = n;
    return got;
}

struct store_fixture {
    temp_dir dir;
    std::vector<recorded_event> rows = sample(1500);
    std::unique_ptr<writer> w;
    std::unique_ptr<reader_pool> rd;
    store_fixture()
    {
        store_options o;
        o.path = dir.path / "herald.db";
        o.retention.max_age = std::chrono::hours(0);
        w = std::make_unique<writer>(o, nullptr, [](const std::string&) {});
        record_all(*w, rows);
        rd = std::make_unique<reader_pool>(o.path, 2);
        // seqs as the database gave them (ids are unique: one row each, in order)
        auto all = all_pages(*rd, query{.limit = 500});
        REQUIRE(all.size() == rows.size());
        std::sort(all.begin(), all.end());
        for (std::size_t i = 0; i < rows.size(); ++i) rows[i].seq = all[i];
    }
};

} // namespace

TEST_CASE("herald store: each filter and each combination returns exactly the matching rows")
{
    store_fixture f;
    std::vector<query> qs;
    for (auto t : types) qs.push_back({.type = t});
    for (auto h : hosts) qs.push_back({.host = h});
    for (auto d : daemons) qs.push_back({.daemon = d});  // stomp-git is not git-stomp, nor stomp
    for (auto r : repos) qs.push_back({.repo = r});
    for (auto l : levels) qs.push_back({.level = l});  // that level or worse
    qs.push_back({.system = "payroll"});
    qs.push_back({.repo = "site", .revision = "rev10"});
    qs.push_back({.repo = "site", .revision = "rev10", .text = "deploy"});
    qs.push_back({.revision = "rev20"});
    for (auto w : words) qs.push_back({.text = w});
    qs.push_back({.text = "run_canary"});  // an ingested record's extra data field
    qs.push_back({.text = "refs heads"});  // a bus event's data
    qs.push_back({.type = "commit", .daemon = "stomp-git"});
    qs.push_back({.host = "web01", .daemon = "jenkins", .level = "warning"});
    qs.push_back({.host = "höst-ü", .text = "deploy"});
    qs.push_back({.type = "heartbeat", .host = "WEB01", .repo = "site-admin", .system = "payroll"});
    qs.push_back({.daemon = "git", .text = "timeout canary"});
    qs.push_back({.since_ms = 1'700'000'300'000, .until_ms = 1'700'000'400'000});
    qs.push_back({.since_ms = 1'700'000'300'000});
    qs.push_back({.until_ms = 1'700'000'100'000, .text = "fetch"});
    qs.push_back({.since_ms = 1'700'000'300'000, .until_ms = 1'700'000'900'000, .host = "web02", .level = "error"});
    qs.push_back({.type = "nothing-like-this"});
    qs.push_back({.level = "critical", .text = "zürich"});
    for (auto q : qs) {
        auto want = expected(f.rows, q);
        CAPTURE(build_sql(q).sql);
        auto got = all_pages(*f.rd, q);
        CHECK(got == want);
    }
}

TEST_CASE("herald store: non-ASCII free text is split and folded as the index was")
{
    store_fixture f;
    // an em dash and a no-break space separate words for FTS5's tokenizer; quoted whole they
    // would be a phrase, which the index (no positions) refuses
    CHECK(all_pages(*f.rd, query{.text = "deploy\u2014canary"}) == expected(f.rows, query{.text = "deploy canary"}));
    CHECK(all_pages(*f.rd, query{.text = "timeout\u00a0refused"}) == expected(f.rows, query{.text = "timeout refused"}));
    CHECK(all_pages(*f.rd, query{.text = "Zürich"}) == expected(f.rows, query{.text = "zürich"}));
    CHECK_FALSE(all_pages(*f.rd, query{.text = "Zürich"}).empty());
}

TEST_CASE("herald store: keyset pagination returns every row once and the live feed walks forward")
{
    store_fixture f;
    for (auto q : {query{.limit = 7}, query{.host = "web02", .limit = 7}, query{.text = "deploy", .limit = 7},
                   query{.since_ms = 1'700'000'200'000, .until_ms = 1'700'000'600'000, .limit = 7}}) {
        std::size_t pages = 0;
        auto got = all_pages(*f.rd, q, &pages);
        auto want = expected(f.rows, q);
        CHECK(got == want);
        CHECK(std::set<std::int64_t>(got.begin(), got.end()).size() == got.size());
        CHECK(pages == std::max<std::size_t>(1, (want.size() + 6) / 7));
        // deep pages (a cursor from the middle) are the rest of the same list
        if (want.size() > 20) {
            query deep = q;
            deep.before = want[want.size() / 2];
            auto r = f.rd->search(deep);
            REQUIRE(!r.rows.empty());
            CHECK(r.rows.front().seq == want[want.size() / 2 + 1]);
        }
    }
    // after: oldest first, from a seq on (what /live does)
    query live{.daemon = "stomp", .limit = 50};
    live.after = f.rows[100].seq;
    std::vector<std::int64_t> got;
    for (;;) {
        auto r = f.rd->search(live);
        for (const auto& e : r.rows) got.push_back(e.seq);
        if (r.rows.size() < live.limit) break;
        live.after = r.rows.back().seq;
    }
    query all = live;
    all.after = f.rows[100].seq;
    auto want = expected(f.rows, all);
    std::reverse(want.begin(), want.end());
    CHECK(got == want);
}

TEST_CASE("herald store: a search past its time budget answers an error and the reader works on")
{
    store_fixture f;
    // a deadline already past: the progress handler stops the statement at its first check
    // (every 1000 steps; a scan of 1500 rows takes many more)
    query q{.text = "deploy"};
    CHECK_THROWS_AS(f.rd->search(q, std::chrono::steady_clock::now() - std::chrono::seconds(1)), search_timeout);
    query scan{.revision = "nothing"};  // no index: a scan of every row
    CHECK_THROWS_AS(f.rd->search(scan, std::chrono::steady_clock::now() - std::chrono::seconds(1)), search_timeout);
    // the same connections answer afterwards (the handler is removed after each search)
    CHECK(f.rd->search(query{.limit = 5}).rows.size() == 5);
    CHECK(all_pages(*f.rd, q) == expected(f.rows, q));
}

TEST_CASE("herald store: duplicates are recorded once and retention keeps the FTS index consistent")
{
    store_fixture f;
    auto again = sample(10);
    record_all(*f.w, again);  // the same ids: nothing new
    CHECK(f.w->duplicate_rows() == 10);
    CHECK(all_pages(*f.rd, query{.limit = 500}).size() == f.rows.size());
    // raw equal to data is stored once and read back whole; a different raw as it was
    for (int i : {1, 3}) {
        auto got = f.rd->get(f.rows[i].seq);
        REQUIRE(got);
        CHECK(got->raw == f.rows[i].raw);
        CHECK(got->data == f.rows[i].data);
    }
    // delete the oldest half as retention does (the delete trigger removes their FTS entries)
    {
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open((f.dir.path / "herald.db").c_str(), &db) == SQLITE_OK);
        auto cut = std::to_string(f.rows[750].seq);
        CHECK(sqlite3_exec(db, ("DELETE FROM events WHERE seq < " + cut).c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
        CHECK(sqlite3_exec(db, "INSERT INTO events_fts(events_fts) VALUES('integrity-check')", nullptr, nullptr, nullptr) ==
              SQLITE_OK);
        sqlite3_close(db);
    }
    std::vector<recorded_event> rest(f.rows.begin() + 750, f.rows.end());
    for (auto q : {query{.text = "deploy"}, query{.host = "web01", .level = "error"}, query{.daemon = "stomp-git"}})
        CHECK(all_pages(*f.rd, q) == expected(rest, q));
}

TEST_CASE("herald store: a version 0 database gets the new FTS index at open")
{
    temp_dir dir;
    auto path = dir.path / "old.db";
    {
        sqlite3* db = nullptr;
        REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
        const char* old = R"(
CREATE TABLE events(seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, time INTEGER NOT NULL,
  received INTEGER NOT NULL, type TEXT NOT NULL, level TEXT NOT NULL, daemon TEXT NOT NULL, host TEXT NOT NULL,
  system TEXT NOT NULL, repo TEXT NOT NULL, revision TEXT NOT NULL, message TEXT NOT NULL, source TEXT NOT NULL,
  legacy INTEGER NOT NULL, authenticated INTEGER NOT NULL, data TEXT NOT NULL, raw TEXT NOT NULL);
CREATE VIRTUAL TABLE events_fts USING fts5(message, daemon, host, system, repo, type, data, content='events',
  content_rowid='seq', detail=column, columnsize=0);
CREATE TRIGGER events_ai AFTER INSERT ON events BEGIN
  INSERT INTO events_fts(rowid, message, daemon, host, system, repo, type, data)
  VALUES (new.seq, new.message, new.daemon, new.host, new.system, new.repo, new.type, new.data);
END;
INSERT INTO events(id, time, received, type, level, daemon, host, system, repo, revision, message, source, legacy,
  authenticated, data, raw) VALUES ('old-1', 5, 5, 'commit', 'error', 'stomp-git', 'git01', '', 'site', 'abc',
  'pushed frobnicator', '/topic/x', 0, 0, '{}', '{}');
)";
        REQUIRE(sqlite3_exec(db, old, nullptr, nullptr, nullptr) == SQLITE_OK);
        sqlite3_close(db);
    }
    store_options o;
    o.path = path;
    o.retention.max_age = std::chrono::hours(0);
    writer w(o, nullptr, [](const std::string&) {});
    reader_pool rd(path, 1);
    CHECK(rd.search(query{.text = "frobnicator"}).rows.size() == 1);
    CHECK(rd.search(query{.daemon = "stomp-git", .level = "warning"}).rows.size() == 1);
    CHECK(rd.search(query{.daemon = "stomp"}).rows.empty());
}
