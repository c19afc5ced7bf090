#include "store.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <charconv>
#include <cmath>

namespace herald {

namespace {

std::int64_t now_ms()
{
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

[[noreturn]] void fail(sqlite3* db, int rc, const std::string& what)
{
    store_error e(what + ": " + (db ? sqlite3_errmsg(db) : sqlite3_errstr(rc)) + " (" + sqlite3_errstr(rc) + ")");
    e.code = rc;
    throw e;
}

void exec(sqlite3* db, const char* sql)
{
    char* err = nullptr;
    int rc = sqlite3_exec(db, sql, nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
        std::string m = err ? err : sqlite3_errstr(rc);
        sqlite3_free(err);
        store_error e(std::string("sqlite: ") + m + " (" + sqlite3_errstr(rc) + ") in: " + std::string(sql).substr(0, 60));
        e.code = rc;
        throw e;
    }
}

struct stmt {
    sqlite3_stmt* s = nullptr;
    stmt(sqlite3* db, const std::string& sql)
    {
        int rc = sqlite3_prepare_v3(db, sql.c_str(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &s, nullptr);
        if (rc != SQLITE_OK) fail(db, rc, "sqlite prepare");
    }
    ~stmt() { sqlite3_finalize(s); }
    stmt(const stmt&) = delete;
    stmt& operator=(const stmt&) = delete;
    void text(int i, const std::string& v) { sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC); }
    void integer(int i, std::int64_t v) { sqlite3_bind_int64(s, i, v); }
    std::string col_text(int i)
    {
        auto p = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
        return p ? std::string(p, static_cast<std::size_t>(sqlite3_column_bytes(s, i))) : std::string();
    }
    std::int64_t col_int(int i) { return sqlite3_column_int64(s, i); }
};

const char* schema_sql = R"(
CREATE TABLE IF NOT EXISTS events(
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  time INTEGER NOT NULL,
  received INTEGER NOT NULL,
  type TEXT NOT NULL, level TEXT NOT NULL, daemon TEXT NOT NULL, host TEXT NOT NULL,
  system TEXT NOT NULL, repo TEXT NOT NULL, revision TEXT NOT NULL, message TEXT NOT NULL,
  source TEXT NOT NULL, legacy INTEGER NOT NULL, authenticated INTEGER NOT NULL,
  data TEXT NOT NULL, raw TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_time ON events(time);
CREATE INDEX IF NOT EXISTS events_repo ON events(repo, revision, seq);
CREATE VIRTUAL TABLE IF NOT EXISTS events_fts USING fts5(
  message, daemon, host, system, repo, type, data, content='events', content_rowid='seq', detail=column, columnsize=0);
CREATE TRIGGER IF NOT EXISTS events_ai AFTER INSERT ON events BEGIN
  INSERT INTO events_fts(rowid, message, daemon, host, system, repo, type, data)
  VALUES (new.seq, new.message, new.daemon, new.host, new.system, new.repo, new.type, new.data);
END;
CREATE TRIGGER IF NOT EXISTS events_ad AFTER DELETE ON events BEGIN
  INSERT INTO events_fts(events_fts, rowid, message, daemon, host, system, repo, type, data)
  VALUES ('delete', old.seq, old.message, old.daemon, old.host, old.system, old.repo, old.type, old.data);
END;
)";

const char* columns = "seq, id, time, received, type, level, daemon, host, system, repo, revision, message, source, "
                      "legacy, authenticated, data, raw";

recorded_event row(stmt& s)
{
    recorded_event e;
    e.seq = s.col_int(0);
    e.id = s.col_text(1);
    e.time_ms = s.col_int(2);
    e.received_ms = s.col_int(3);
    e.type = s.col_text(4);
    e.level = s.col_text(5);
    e.daemon = s.col_text(6);
    e.host = s.col_text(7);
    e.system = s.col_text(8);
    e.repo = s.col_text(9);
    e.revision = s.col_text(10);
    e.message = s.col_text(11);
    e.source = s.col_text(12);
    e.legacy = s.col_int(13) != 0;
    e.authenticated = s.col_int(14) != 0;
    e.data = s.col_text(15);
    e.raw = s.col_text(16);
    return e;
}

sqlite3* open_db(const std::filesystem::path& path, bool readonly)
{
    sqlite3* db = nullptr;
    int flags = (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(path.c_str(), &db, flags, nullptr);
    if (rc != SQLITE_OK) {
        std::string m = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
        sqlite3_close(db);
        store_error e("cannot open " + path.string() + ": " + m);
        e.code = rc;
        throw e;
    }
    sqlite3_busy_timeout(db, 5000);
    return db;
}

std::optional<std::int64_t> parse_int(std::string_view s)
{
    std::int64_t v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc{} || p != s.data() + s.size() || s.empty()) return std::nullopt;
    return v;
}


} // namespace

// ---- queries ----

parsed_query parse_query(const std::vector<std::pair<std::string, std::string>>& params, std::size_t max_limit)
{
    parsed_query r;
    auto& q = r.q;
    auto time_of = [&](const std::string& k, const std::string& v) -> std::optional<std::int64_t> {
        if (v.empty()) return std::nullopt;
        if (auto n = parse_int(v)) return *n;
        if (auto t = parse_time_ms(v)) return *t;
        // the HTML form's datetime-local: 2026-11-22T10:00 (UTC)
        if (v.size() == 16)
            if (auto t = parse_time_ms(v + ":00Z")) return *t;
        if (r.error.empty()) r.error = k + ": expected RFC 3339 time or epoch milliseconds, not '" + v.substr(0, 40) + "'";
        return std::nullopt;
    };
    for (const auto& [k, v] : params) {
        if (v.size() > 1000) {
            if (r.error.empty()) r.error = k + ": value too long";
            continue;
        }
        if (k == "since") q.since_ms = time_of(k, v);
        else if (k == "until") q.until_ms = time_of(k, v);
        else if (k == "type") q.type = v;
        else if (k == "host") q.host = v;
        else if (k == "daemon") q.daemon = v;
        else if (k == "repo") q.repo = v;
        else if (k == "revision") q.revision = v;
        else if (k == "system") q.system = v;
        else if (k == "q") q.text = v;
        else if (k == "level") {
            if (!v.empty() && level_rank(v) < 0 && r.error.empty()) r.error = "level: expected debug, info, warning, error or critical";
            else q.level = v;
        } else if (k == "before" || k == "after" || k == "limit") {
            if (v.empty()) continue;
            auto n = parse_int(v);
            if (!n || *n < 0) {
                if (r.error.empty()) r.error = k + ": expected a non-negative integer";
                continue;
            }
            if (k == "before") q.before = *n;
            else if (k == "after") q.after = *n;
            else q.limit = static_cast<std::size_t>(std::clamp<std::int64_t>(*n, 1, static_cast<std::int64_t>(max_limit)));
        }
    }
    return r;
}

std::string fts_expression(std::string_view text)
{
    // One quoted term per token of FTS5's unicode61 tokenizer (ASCII letters and digits, and
    // every non-ASCII byte): all must match. The index keeps no positions (detail=column:
    // a third of the insert cost), so there are no phrases to build.
    std::string out;
    auto token_char = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || static_cast<unsigned char>(c) >= 0x80; };
    std::size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && !token_char(text[i])) ++i;
        std::size_t st = i;
        while (i < text.size() && token_char(text[i])) ++i;
        if (i == st) break;
        if (!out.empty()) out += " AND ";
        out += '"';
        out += text.substr(st, i - st);
        out += '"';
    }
    return out;
}

sql_statement build_sql(const query& q)
{
    sql_statement st;
    std::vector<std::string> where;
    auto eq = [&](const char* col, const std::string& v) {
        if (v.empty()) return;
        where.push_back(std::string(col) + " = ?");
        st.binds.emplace_back(v);
    };
    eq("type", q.type);
    eq("host", q.host);
    eq("daemon", q.daemon);
    eq("repo", q.repo);
    eq("revision", q.revision);
    eq("system", q.system);
    if (!q.level.empty()) {
        // that level or worse
        std::string in;
        static const char* lv[] = {"debug", "info", "warning", "error", "critical"};
        for (int i = std::max(0, level_rank(q.level)); i < 5; ++i) {
            in += in.empty() ? "?" : ", ?";
            st.binds.emplace_back(std::string(lv[i]));
        }
        where.push_back("level IN (" + in + ")");
    }
    if (q.since_ms) {
        where.push_back("time >= ?");
        st.binds.emplace_back(*q.since_ms);
    }
    if (q.until_ms) {
        where.push_back("time < ?");
        st.binds.emplace_back(*q.until_ms);
    }
    if (q.before) {
        where.push_back("seq < ?");
        st.binds.emplace_back(*q.before);
    }
    if (q.after) {
        where.push_back("seq > ?");
        st.binds.emplace_back(*q.after);
    }
    if (auto fts = fts_expression(q.text); !fts.empty()) {
        where.push_back("seq IN (SELECT rowid FROM events_fts WHERE events_fts MATCH ?)");
        st.binds.emplace_back(fts);
    }
    st.sql = std::string("SELECT ") + columns + " FROM events";
    for (std::size_t i = 0; i < where.size(); ++i) st.sql += (i ? " AND " : " WHERE ") + where[i];
    st.sql += q.after ? " ORDER BY seq ASC" : " ORDER BY seq DESC";
    st.sql += " LIMIT ?";
    st.binds.emplace_back(static_cast<std::int64_t>(q.limit + 1));  // one more: is there a next page?
    return st;
}

std::string url_escape(std::string_view s)
{
    static const char* hex = "0123456789ABCDEF";
    std::string o;
    for (unsigned char c : s) {
        if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') o.push_back(static_cast<char>(c));
        else {
            o.push_back('%');
            o.push_back(hex[c >> 4]);
            o.push_back(hex[c & 15]);
        }
    }
    return o;
}

std::string query_string(const query& q, std::optional<std::int64_t> before)
{
    std::string s;
    auto add = [&](std::string_view k, const std::string& v) {
        if (v.empty()) return;
        s += (s.empty() ? "" : "&") + std::string(k) + "=" + url_escape(v);
    };
    if (q.since_ms) add("since", format_time_ms(*q.since_ms));
    if (q.until_ms) add("until", format_time_ms(*q.until_ms));
    add("type", q.type);
    add("host", q.host);
    add("daemon", q.daemon);
    add("repo", q.repo);
    add("revision", q.revision);
    add("system", q.system);
    add("level", q.level);
    add("q", q.text);
    if (q.limit != 50) add("limit", std::to_string(q.limit));
    if (before) add("before", std::to_string(*before));
    return s;
}

// ---- retention ----

retention_step plan_retention(const retention_policy& p, const store_stats& s, std::int64_t now)
{
    retention_step r;
    if (s.rows <= 0) return r;
    if (p.max_age.count() > 0) {
        std::int64_t cutoff = now - std::chrono::duration_cast<std::chrono::milliseconds>(p.max_age).count();
        if (s.oldest_received_ms < cutoff) r.delete_received_before = cutoff;
    }
    if (p.max_bytes > 0 && s.used_bytes > p.max_bytes) {
        // down to 90 % of the limit: the share of rows that many bytes are, on average
        double target = 0.9 * static_cast<double>(p.max_bytes);
        double share = 1.0 - target / static_cast<double>(s.used_bytes);
        auto n = static_cast<std::size_t>(std::ceil(share * static_cast<double>(s.rows) - 1e-9));
        n = std::max<std::size_t>(n, std::max<std::size_t>(1, static_cast<std::size_t>(s.rows) / 100));
        r.delete_oldest = std::min({n, p.batch_rows, static_cast<std::size_t>(s.rows)});
    }
    return r;
}

// ---- schema ----

void open_schema(const std::filesystem::path& path)
{
    sqlite3* db = open_db(path, false);
    try {
        exec(db, "PRAGMA journal_mode=WAL");
        exec(db, schema_sql);
    } catch (...) {
        sqlite3_close(db);
        throw;
    }
    sqlite3_close(db);
}

// ---- readers ----

struct reader_pool::conn {
    sqlite3* db = nullptr;
    ~conn() { sqlite3_close(db); }
};

reader_pool::reader_pool(std::filesystem::path path, std::size_t keep) : path_(std::move(path)), keep_(keep) {}
reader_pool::~reader_pool() = default;

std::unique_ptr<reader_pool::conn> reader_pool::take()
{
    {
        std::lock_guard lk(mu_);
        if (!idle_.empty()) {
            auto c = std::move(idle_.back());
            idle_.pop_back();
            return c;
        }
    }
    auto c = std::make_unique<conn>();
    c->db = open_db(path_, true);
    exec(c->db, "PRAGMA query_only=1");
    return c;
}

void reader_pool::give(std::unique_ptr<conn> c)
{
    std::lock_guard lk(mu_);
    if (idle_.size() < keep_) idle_.push_back(std::move(c));
}

search_result reader_pool::search(const query& q)
{
    auto c = take();
    auto st = build_sql(q);
    search_result out;
    {
        stmt s(c->db, st.sql);
        int i = 1;
        for (const auto& b : st.binds) {
            if (auto* t = std::get_if<std::string>(&b)) s.text(i++, *t);
            else s.integer(i++, std::get<std::int64_t>(b));
        }
        int rc;
        while ((rc = sqlite3_step(s.s)) == SQLITE_ROW) out.rows.push_back(row(s));
        if (rc != SQLITE_DONE) fail(c->db, rc, "search");
    }
    give(std::move(c));
    if (out.rows.size() > q.limit) {
        out.rows.pop_back();
        if (!q.after) out.next_before = out.rows.back().seq;
    }
    return out;
}

std::optional<recorded_event> reader_pool::get(std::int64_t seq)
{
    auto c = take();
    std::optional<recorded_event> out;
    {
        stmt s(c->db, std::string("SELECT ") + columns + " FROM events WHERE seq = ?");
        s.integer(1, seq);
        int rc = sqlite3_step(s.s);
        if (rc == SQLITE_ROW) out = row(s);
        else if (rc != SQLITE_DONE) fail(c->db, rc, "get");
    }
    give(std::move(c));
    return out;
}

std::vector<reader_pool::source> reader_pool::sources()
{
    auto c = take();
    std::vector<source> out;
    {
        stmt s(c->db, "SELECT daemon, host, max(time) FROM events WHERE type = 'heartbeat' GROUP BY daemon, host");
        int rc;
        while ((rc = sqlite3_step(s.s)) == SQLITE_ROW) out.push_back({s.col_text(0), s.col_text(1), s.col_int(2)});
        if (rc != SQLITE_DONE) fail(c->db, rc, "sources");
    }
    give(std::move(c));
    return out;
}

namespace {
store_stats stats_of(sqlite3* db)
{
    store_stats st;
    auto one = [&](const char* sql) -> std::int64_t {
        stmt s(db, sql);
        int rc = sqlite3_step(s.s);
        if (rc == SQLITE_ROW) return s.col_int(0);
        if (rc != SQLITE_DONE) fail(db, rc, sql);
        return 0;
    };
    auto pages = one("PRAGMA page_count");
    auto free_pages = one("PRAGMA freelist_count");
    auto size = one("PRAGMA page_size");
    st.used_bytes = static_cast<std::uint64_t>(std::max<std::int64_t>(0, pages - free_pages) * size);
    // max(seq)-min(seq) is an upper bound, exact enough for retention shares and cheap (rowid)
    st.rows = one("SELECT coalesce(max(seq) - min(seq) + 1, 0) FROM events");
    st.oldest_received_ms = one("SELECT coalesce((SELECT received FROM events ORDER BY seq LIMIT 1), 0)");
    return st;
}
} // namespace

store_stats reader_pool::stats()
{
    auto c = take();
    auto st = stats_of(c->db);
    give(std::move(c));
    return st;
}

// ---- the writer ----

writer::writer(store_options o, committed_fn committed, health_fn health)
    : o_(std::move(o)), committed_(std::move(committed)), health_(std::move(health))
{
    open_schema(o_.path);
    db_ = open_db(o_.path, false);
    exec(db_, "PRAGMA journal_mode=WAL");
    exec(db_, o_.synchronous_full ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
    exec(db_, "PRAGMA cache_size=-32000");  // 32 MB
    if (o_.max_pages > 0) exec(db_, ("PRAGMA max_page_count=" + std::to_string(o_.max_pages)).c_str());
    th_ = std::thread([this] { run(); });
}

writer::~writer()
{
    stop();
    sqlite3_close(db_);
}

void writer::stop()
{
    {
        std::lock_guard lk(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    if (th_.joinable()) th_.join();
}

bool writer::submit(std::vector<recorded_event> recs, bool retry, done_fn done)
{
    {
        std::lock_guard lk(mu_);
        if (stop_ || queued_recs_ + recs.size() > o_.queue_max) return false;
        queued_recs_ += recs.size();
        q_.push_back(item{std::move(recs), retry, std::move(done)});
    }
    cv_.notify_one();
    return true;
}

std::size_t writer::queued() const
{
    std::lock_guard lk(mu_);
    return queued_recs_;
}

std::string writer::failure() const
{
    std::lock_guard lk(mu_);
    return failure_;
}

void writer::run()
{
    auto next_retention = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    auto backoff = std::chrono::milliseconds(0);
    std::vector<item> pending;  // a failed batch's retried items, first in line
    for (;;) {
        std::vector<item> batch = std::move(pending);
        pending.clear();
        {
            std::unique_lock lk(mu_);
            auto until = std::chrono::steady_clock::now() + (backoff.count() ? backoff : std::chrono::milliseconds(1000));
            if (backoff.count()) {
                cv_.wait_until(lk, until, [&] { return stop_; });
            } else if (batch.empty()) {
                cv_.wait_until(lk, std::min(until, next_retention), [&] { return stop_ || !q_.empty(); });
                // a short batch: wait a little for more, so one transaction carries many records
                if (!q_.empty() && queued_recs_ < o_.batch_max && !stop_)
                    cv_.wait_for(lk, o_.batch_wait, [&] { return stop_ || queued_recs_ >= o_.batch_max; });
            }
            std::size_t n = 0;
            for (const auto& b : batch) n += b.recs.size();
            while (!q_.empty() && n < o_.batch_max) {
                n += q_.front().recs.size();
                queued_recs_ -= q_.front().recs.size();
                batch.push_back(std::move(q_.front()));
                q_.pop_front();
            }
            if (stop_ && batch.empty()) return;
            if (stop_ && !failure_.empty()) {
                // stopping with a failing database: give everything back (bus messages stay
                // unacknowledged, the broker redelivers them to the next start)
                lk.unlock();
                for (auto& b : batch) b.done(false, "stopping; database failing");
                lk.lock();
                for (auto& b : q_) b.done(false, "stopping; database failing");
                q_.clear();
                return;
            }
        }
        if (!batch.empty()) {
            try {
                commit(batch);
                backoff = std::chrono::milliseconds(0);
                bool recovered = false;
                {
                    std::lock_guard lk(mu_);
                    recovered = !failure_.empty();
                    failure_.clear();
                }
                if (recovered) health_("");
            } catch (const std::exception& e) {
                sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
                {
                    std::lock_guard lk(mu_);
                    failure_ = e.what();
                }
                health_(e.what());
                backoff = std::min<std::chrono::milliseconds>(std::max<std::chrono::milliseconds>(backoff * 2, std::chrono::milliseconds(500)),
                                                              std::chrono::milliseconds(10000));
                for (auto& b : batch) {
                    if (b.retry) pending.push_back(std::move(b));
                    else b.done(false, e.what());
                }
            }
        }
        auto now = std::chrono::steady_clock::now();
        if (now >= next_retention && failure().empty()) {
            next_retention = now + std::chrono::seconds(60);
            try {
                retention(now_ms());
            } catch (const std::exception& e) {
                sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
                health_(std::string("retention: ") + e.what());
            }
        }
    }
}

void writer::commit(std::vector<item>& batch)
{
    exec(db_, "BEGIN IMMEDIATE");
    stmt ins(db_, "INSERT OR IGNORE INTO events(id, time, received, type, level, daemon, host, system, repo, revision, "
                  "message, source, legacy, authenticated, data, raw) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    std::vector<recorded_event> inserted;
    std::uint64_t dups = 0;
    for (auto& b : batch)
        for (auto& r : b.recs) {
            ins.text(1, r.id);
            ins.integer(2, r.time_ms);
            ins.integer(3, r.received_ms);
            ins.text(4, r.type);
            ins.text(5, r.level);
            ins.text(6, r.daemon);
            ins.text(7, r.host);
            ins.text(8, r.system);
            ins.text(9, r.repo);
            ins.text(10, r.revision);
            ins.text(11, r.message);
            ins.text(12, r.source);
            ins.integer(13, r.legacy);
            ins.integer(14, r.authenticated);
            ins.text(15, r.data);
            ins.text(16, r.raw);
            int rc = sqlite3_step(ins.s);
            if (rc != SQLITE_DONE) fail(db_, rc, "insert");
            if (sqlite3_changes(db_) == 1) {
                r.seq = sqlite3_last_insert_rowid(db_);
                inserted.push_back(r);
            } else {
                ++dups;
            }
            sqlite3_reset(ins.s);
        }
    int rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) fail(db_, rc, "commit");
    transactions_ += 1;
    committed_rows_ += inserted.size();
    duplicates_ += dups;
    for (auto& b : batch) b.done(true, {});
    if (!inserted.empty() && committed_) committed_(std::move(inserted));
}

void writer::retention(std::int64_t now)
{
    std::uint64_t last_used = 0;
    for (int steps = 0; steps < 50; ++steps) {
        auto st = stats_of(db_);
        auto plan = plan_retention(o_.retention, st, now);
        if (plan.done()) break;
        // deleted rows' pages not freed yet (FTS5 merges later): no more size steps this round
        if (plan.delete_oldest && !plan.delete_received_before && last_used && st.used_bytes >= last_used) break;
        last_used = st.used_bytes;
        exec(db_, "BEGIN IMMEDIATE");
        if (plan.delete_received_before) {
            stmt d(db_, "DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE received < ? ORDER BY seq LIMIT ?)");
            d.integer(1, *plan.delete_received_before);
            d.integer(2, static_cast<std::int64_t>(o_.retention.batch_rows));
            if (int rc = sqlite3_step(d.s); rc != SQLITE_DONE) fail(db_, rc, "retention by age");
        }
        if (plan.delete_oldest) {
            stmt d(db_, "DELETE FROM events WHERE seq IN (SELECT seq FROM events ORDER BY seq LIMIT ?)");
            d.integer(1, static_cast<std::int64_t>(plan.delete_oldest));
            if (int rc = sqlite3_step(d.s); rc != SQLITE_DONE) fail(db_, rc, "retention by size");
        }
        exec(db_, "COMMIT");
    }
    sqlite3_wal_checkpoint_v2(db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
}

} // namespace herald
