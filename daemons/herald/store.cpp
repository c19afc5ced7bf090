#include "store.hpp"

#include <sqlite3.h>

#include <malloc.h>

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

// Schema version 2 (PRAGMA user_version): the FTS index has a `keys` column, one token per exact
// filter value ('t' type, 'h' host, 'd' daemon, 'r' repo, 's' system, 'l' level, each followed by
// the value's bytes in hex: exact, any bytes, one short posting list per value), so combined
// filters are answered from the index; and it indexes an ingested record's data without the
// fields it already has in its own columns (id, time, message, host ...: the same tokens twice,
// and ids and times are a new term each). Version 0/1 databases are migrated at open.
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
)";

// The FTS index is contentless (the rows are in `events`; it gives seqs): what it indexes is
// computed by these expressions, the same in the insert and the delete trigger (a contentless
// index must be told exactly the values it indexed to remove a row).
#define HERALD_FTS_DATA(r)                                                                                             \
    "CASE WHEN " r ".source LIKE 'ingest:%' AND json_valid(" r ".data) THEN json_remove(" r ".data, '$.id', '$.time', " \
    "'$.created', '$.msecs', '$.relativeCreated', '$.message', '$.msg', '$.level', '$.levelname', '$.levelno', "         \
    "'$.type', '$.daemon', '$.service', '$.name', '$.host', '$.hostname', '$.system', '$.repo') ELSE " r ".data END"

#define HERALD_FTS_KEY(r, c, p) "CASE WHEN " r "." c " = '' THEN '' ELSE ' " p "' || hex(" r "." c ") END"
#define HERALD_FTS_KEYS(r)                                                                                             \
    "'t' || hex(" r ".type) || ' l' || hex(" r ".level) || " HERALD_FTS_KEY(r, "host", "h") " || " HERALD_FTS_KEY(    \
        r, "daemon", "d") " || " HERALD_FTS_KEY(r, "repo", "r") " || " HERALD_FTS_KEY(r, "system", "s")

const char* fts_sql =
    "CREATE VIRTUAL TABLE events_fts USING fts5(message, daemon, host, system, repo, type, data, keys, "
    "content='', detail=column, columnsize=0);\n"
    "CREATE TRIGGER events_ai AFTER INSERT ON events BEGIN\n"
    "  INSERT INTO events_fts(rowid, message, daemon, host, system, repo, type, data, keys)\n"
    "  VALUES (new.seq, new.message, new.daemon, new.host, new.system, new.repo, new.type, " HERALD_FTS_DATA("new") ", "
    HERALD_FTS_KEYS("new") ");\n"
    "END;\n"
    "CREATE TRIGGER events_ad AFTER DELETE ON events BEGIN\n"
    "  INSERT INTO events_fts(events_fts, rowid, message, daemon, host, system, repo, type, data, keys)\n"
    "  VALUES ('delete', old.seq, old.message, old.daemon, old.host, old.system, old.repo, old.type, " HERALD_FTS_DATA("old") ", "
    HERALD_FTS_KEYS("old") ");\n"
    "END;\n"
    // merge 8 segments of a level at a time (default 4): a row's postings are rewritten fewer times
    "INSERT INTO events_fts(events_fts, rank) VALUES('automerge', 8);\n"
    "INSERT INTO events_fts(rowid, message, daemon, host, system, repo, type, data, keys)\n"
    "  SELECT seq, message, daemon, host, system, repo, type, " HERALD_FTS_DATA("events") ", " HERALD_FTS_KEYS("events") " FROM events;\n"
    "PRAGMA user_version = 2;\n";

const char* columns = "seq, id, time, received, type, level, daemon, host, system, repo, revision, message, source, "
                      "legacy, authenticated, data, raw";
const char* e_columns = "e.seq, e.id, e.time, e.received, e.type, e.level, e.daemon, e.host, e.system, e.repo, e.revision, "
                        "e.message, e.source, e.legacy, e.authenticated, e.data, e.raw";

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
    if (e.raw.empty()) e.raw = e.data;  // stored once when they are the same text (JSON ingest)
    return e;
}

sqlite3* open_db(const std::filesystem::path& path, bool readonly)
{
    // SQLite's memory statistics (on by default) take a process-wide mutex around every malloc
    // and free: 7.5 % of herald's ingest profile was pthread_mutex_lock/unlock. herald reads no
    // memory statistics and sets no soft heap limit (its caches are bounded by cache_size), so
    // they are turned off before the library initialises (a no-op if something initialised it).
    static std::once_flag configured;
    std::call_once(configured, [] { sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
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

namespace {

// The `keys` token of an exact value: the prefix and the value's bytes in lowercase hex (what the
// triggers index: FTS5 folds SQLite's uppercase hex()).
std::string fts_key(char prefix, std::string_view value)
{
    static const char* hex = "0123456789abcdef";
    std::string t = "\"";
    t += prefix;
    for (unsigned char c : value) {
        t += hex[c >> 4];
        t += hex[c & 15];
    }
    return t + "\"";
}

const char* levels[] = {"debug", "info", "warning", "error", "critical"};

} // namespace

sql_statement build_sql(const query& q)
{
    sql_statement st;
    // Exact conditions on the row (e), each with its binds, in order.
    struct cond {
        std::string sql;
        std::vector<std::variant<std::string, std::int64_t>> binds;
    };
    std::vector<cond> where;
    std::vector<std::string> match;  // FTS5 parts, ANDed: the index narrows, `where` decides
    // repo + revision: a handful of rows through events_repo; the FTS index is not needed for them
    const bool by_revision = !q.repo.empty() && !q.revision.empty();
    auto eq = [&](const char* col, char key, const std::string& v) {
        if (v.empty()) return;
        where.push_back({std::string("e.") + col + " = ?", {v}});
        if (!by_revision && key) match.push_back("keys : " + fts_key(key, v));
    };
    eq("type", 't', q.type);
    eq("host", 'h', q.host);
    eq("daemon", 'd', q.daemon);
    eq("repo", 'r', q.repo);
    eq("revision", 0, q.revision);
    eq("system", 's', q.system);
    if (!q.level.empty()) {
        // that level or worse
        cond c;
        std::string in, any;
        for (int i = std::max(0, level_rank(q.level)); i < 5; ++i) {
            in += in.empty() ? "?" : ", ?";
            any += (any.empty() ? "" : " OR ") + fts_key('l', levels[i]);
            c.binds.emplace_back(std::string(levels[i]));
        }
        c.sql = "e.level IN (" + in + ")";
        where.push_back(std::move(c));
        if (!by_revision) match.push_back("keys : (" + any + ")");
    }
    if (q.since_ms) where.push_back({"e.time >= ?", {*q.since_ms}});
    if (q.until_ms) where.push_back({"e.time < ?", {*q.until_ms}});
    // free text: every column but the keys
    auto text = fts_expression(q.text);
    if (!text.empty()) text = "{message daemon host system repo type data} : (" + text + ")";
    if (!text.empty() && by_revision) {
        where.push_back({"EXISTS (SELECT 1 FROM events_fts WHERE events_fts MATCH ? AND events_fts.rowid = e.seq)", {text}});
        text.clear();
    }
    if (!text.empty()) match.insert(match.begin(), text);

    const char* dir = q.after ? "ASC" : "DESC";
    auto add_where = [&](bool first) {
        for (auto& c : where) {
            st.sql += (first ? " WHERE " : " AND ") + c.sql;
            first = false;
            for (auto& b : c.binds) st.binds.push_back(std::move(b));
        }
    };
    if (!match.empty()) {
        // The FTS index drives, newest first (FTS5 walks its rowids in order and takes the
        // rowid bounds): each candidate row is looked up by seq and checked exactly; the walk
        // stops at limit + 1 rows.
        std::string m;
        for (const auto& p : match) m += (m.empty() ? "" : " AND ") + p;
        st.sql = std::string("SELECT ") + e_columns +
                 " FROM events_fts CROSS JOIN events AS e ON e.seq = events_fts.rowid WHERE events_fts MATCH ?";
        st.binds.emplace_back(std::move(m));
        if (q.before) {
            st.sql += " AND events_fts.rowid < ?";
            st.binds.emplace_back(*q.before);
        }
        if (q.after) {
            st.sql += " AND events_fts.rowid > ?";
            st.binds.emplace_back(*q.after);
        }
        add_where(false);
        st.sql += std::string(" ORDER BY events_fts.rowid ") + dir;
    } else if ((q.since_ms || q.until_ms) && where.size() == static_cast<std::size_t>(!!q.since_ms + !!q.until_ms)) {
        // A time range alone: the page's seqs from events_time alone (it holds seq: no row is
        // read to sort), then only those rows.
        st.sql = std::string("SELECT ") + e_columns + " FROM events AS e WHERE e.seq IN (SELECT seq FROM events AS e";
        if (q.before) where.push_back({"e.seq < ?", {*q.before}});
        if (q.after) where.push_back({"e.seq > ?", {*q.after}});
        add_where(true);
        st.sql += std::string(" ORDER BY e.seq ") + dir + " LIMIT ?)";
        st.binds.emplace_back(static_cast<std::int64_t>(q.limit + 1));
        st.sql += std::string(" ORDER BY e.seq ") + dir;
        return st;
    } else {
        st.sql = std::string("SELECT ") + e_columns + " FROM events AS e";
        if (q.before) where.push_back({"e.seq < ?", {*q.before}});
        if (q.after) where.push_back({"e.seq > ?", {*q.after}});
        add_where(true);
        st.sql += std::string(" ORDER BY e.seq ") + dir;
    }
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
        std::int64_t version = 0;
        {
            stmt v(db, "PRAGMA user_version");
            if (sqlite3_step(v.s) == SQLITE_ROW) version = v.col_int(0);
        }
        if (version < 2) {
            // new, or the FTS index of version 0/1: (re)built from the rows in one transaction
            exec(db, "BEGIN IMMEDIATE");
            exec(db, "DROP TRIGGER IF EXISTS events_ai; DROP TRIGGER IF EXISTS events_ad; DROP TABLE IF EXISTS events_fts;");
            exec(db, fts_sql);
            exec(db, "COMMIT");
        }
    } catch (...) {
        sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
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

reader_pool::reader_pool(std::filesystem::path path, std::size_t keep, std::chrono::milliseconds budget)
    : path_(std::move(path)), keep_(keep), budget_(budget)
{
}
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
    // each reader's page cache: bounded (readers x this is the most herald's readers hold)
    exec(c->db, ("PRAGMA cache_size=-" + std::to_string(reader_cache_kib)).c_str());
    return c;
}

void reader_pool::release_memory()
{
    std::lock_guard lk(mu_);
    for (auto& c : idle_) sqlite3_db_release_memory(c->db);  // idle: no other thread uses it
    ::malloc_trim(0);
}

void reader_pool::give(std::unique_ptr<conn> c)
{
    std::lock_guard lk(mu_);
    if (idle_.size() < keep_) idle_.push_back(std::move(c));
}

namespace {
// The words of `text` as FTS5's unicode61 tokenizer splits and folds them, joined by spaces:
// non-ASCII punctuation (an em dash, a no-break space ...) splits words there too, and a quoted
// word of several tokens would be a phrase, which a detail=column index refuses. nullopt when
// the tokenizer is not to be had.
std::optional<std::string> fts_words(sqlite3* db, std::string_view text)
{
    fts5_api* api = nullptr;
    sqlite3_stmt* s = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT fts5(?1)", -1, &s, nullptr) != SQLITE_OK) return std::nullopt;
    sqlite3_bind_pointer(s, 1, &api, "fts5_api_ptr", nullptr);
    sqlite3_step(s);
    sqlite3_finalize(s);
    if (!api) return std::nullopt;
    void* ctx = nullptr;
    fts5_tokenizer tk{};
    if (api->xFindTokenizer(api, "unicode61", &ctx, &tk) != SQLITE_OK) return std::nullopt;
    Fts5Tokenizer* t = nullptr;
    if (tk.xCreate(ctx, nullptr, 0, &t) != SQLITE_OK) return std::nullopt;
    std::string out;
    int (*on_token)(void*, int, const char*, int, int, int) = [](void* p, int, const char* tok, int n, int, int) {
        auto* o = static_cast<std::string*>(p);
        if (!o->empty()) *o += ' ';
        o->append(tok, static_cast<std::size_t>(n));
        return SQLITE_OK;
    };
    int rc = tk.xTokenize(t, &out, FTS5_TOKENIZE_QUERY, text.data(), static_cast<int>(text.size()), on_token);
    tk.xDelete(t);
    if (rc != SQLITE_OK) return std::nullopt;
    return out;
}

// sqlite3_progress_handler: a nonzero return interrupts the statement (SQLITE_INTERRUPT).
int past_deadline(void* p)
{
    return std::chrono::steady_clock::now() > *static_cast<std::chrono::steady_clock::time_point*>(p) ? 1 : 0;
}
} // namespace

search_result reader_pool::search(const query& q)
{
    if (budget_.count() <= 0) return search(q, std::chrono::steady_clock::time_point::max());
    return search(q, std::chrono::steady_clock::now() + budget_);
}

search_result reader_pool::search(const query& q, std::chrono::steady_clock::time_point deadline)
{
    auto c = take();
    auto st = build_sql(q);
    if (std::any_of(q.text.begin(), q.text.end(), [](char ch) { return static_cast<unsigned char>(ch) >= 0x80; }))
        if (auto words = fts_words(c->db, q.text)) {
            query split = q;
            split.text = *words;
            st = build_sql(split);
        }
    search_result out;
    // checked every 1000 virtual-machine steps (a few microseconds)
    sqlite3_progress_handler(c->db, 1000, past_deadline, &deadline);
    int rc = SQLITE_OK;
    try {
        stmt s(c->db, st.sql);
        int i = 1;
        for (const auto& b : st.binds) {
            if (auto* t = std::get_if<std::string>(&b)) s.text(i++, *t);
            else s.integer(i++, std::get<std::int64_t>(b));
        }
        while ((rc = sqlite3_step(s.s)) == SQLITE_ROW) out.rows.push_back(row(s));
    } catch (...) {
        sqlite3_progress_handler(c->db, 0, nullptr, nullptr);
        throw;
    }
    sqlite3_progress_handler(c->db, 0, nullptr, nullptr);
    if (rc == SQLITE_INTERRUPT) {
        give(std::move(c));
        search_timeout e("search stopped: it ran longer than " + std::to_string(budget_.count()) +
                         " ms; narrow it (a time range, a host, a type ...)");
        e.code = rc;
        throw e;
    }
    if (rc != SQLITE_DONE) fail(c->db, rc, "search");
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
        // the FTS index finds the heartbeats (no scan of every row at start)
        stmt s(c->db, "SELECT e.daemon, e.host, max(e.time) FROM events_fts CROSS JOIN events AS e ON e.seq = events_fts.rowid "
                      "WHERE events_fts MATCH ? AND e.type = 'heartbeat' GROUP BY e.daemon, e.host");
        auto key = "keys : " + fts_key('t', "heartbeat");
        s.text(1, key);
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
    // checkpoint every 8192 pages (32 MiB of WAL; SQLite's default 1000): an index page written
    // by many transactions meanwhile is copied into the database once
    exec(db_, "PRAGMA wal_autocheckpoint=8192");
    exec(db_, "PRAGMA temp_store=MEMORY");
    // FTS5 keeps a transaction's new postings in a hash and writes them out as a new level-0
    // segment when the hash passes `hashsize` (default 1 MiB) and at COMMIT. A group-commit batch
    // under load is 1,000-10,000 records, ~2.5 MiB of postings: with the default it became
    // several small segments, each later merged (rewritten) again. 16 MiB (bounded: it is freed at
    // COMMIT) makes one segment per transaction. Stored in the index's config, read by readers too;
    // written only when it differs (a full disk or read-only file must not stop herald starting).
    {
        stmt q(db_, "SELECT v FROM events_fts_config WHERE k = 'hashsize'");
        if (sqlite3_step(q.s) != SQLITE_ROW || q.col_int(0) != 16777216)
            sqlite3_exec(db_, "INSERT INTO events_fts(events_fts, rank) VALUES('hashsize', 16777216)", nullptr, nullptr, nullptr);
    }
    if (o_.max_pages > 0) exec(db_, ("PRAGMA max_page_count=" + std::to_string(o_.max_pages)).c_str());
    const std::string ins = "INSERT OR IGNORE INTO events(id, time, received, type, level, daemon, host, system, repo, "
                            "revision, message, source, legacy, authenticated, data, raw) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
    if (int rc = sqlite3_prepare_v3(db_, ins.c_str(), static_cast<int>(ins.size()), SQLITE_PREPARE_PERSISTENT, &ins_, nullptr);
        rc != SQLITE_OK) {
        std::string m = sqlite3_errmsg(db_);
        sqlite3_close(db_);
        store_error e("sqlite prepare: " + m);
        e.code = rc;
        throw e;
    }
    th_ = std::thread([this] { run(); });
}

writer::~writer()
{
    stop();
    sqlite3_finalize(ins_);
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
    auto last_commit = std::chrono::steady_clock::time_point{};
    bool cache_kept = true;     // the page cache holds pages since the last release
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
                // Group commit: while records keep coming, a transaction takes what queued during
                // the previous one (no waiting: the writer is the bottleneck then). After an idle
                // spell, a short batch waits a little for company, so a burst is one transaction.
                bool idle = std::chrono::steady_clock::now() - last_commit > o_.batch_wait;
                if (idle && !q_.empty() && queued_recs_ < o_.batch_max && !stop_)
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
                cache_kept = true;
                last_commit = std::chrono::steady_clock::now();
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
            cache_kept = true;
            try {
                retention(now_ms());
            } catch (const std::exception& e) {
                sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
                health_(std::string("retention: ") + e.what());
            }
        }
        // After a burst (and after start-up): idle for 5 s, the writer hands its page cache (up to
        // cache_size, 32 MB after a busy spell) back and the freed heap goes back to the kernel.
        // The next burst reads its pages from the OS page cache again; a busy writer keeps them.
        if (cache_kept && pending.empty() && now - last_commit >= std::chrono::seconds(5)) {
            sqlite3_db_release_memory(db_);
            ::malloc_trim(0);
            cache_kept = false;
        }
    }
}

void writer::commit(std::vector<item>& batch)
{
    exec(db_, "BEGIN IMMEDIATE");
    sqlite3_stmt* ins = ins_;
    auto text = [ins](int i, const std::string& v) {
        sqlite3_bind_text(ins, i, v.data(), static_cast<int>(v.size()), SQLITE_STATIC);
    };
    std::vector<recorded_event> inserted;
    std::uint64_t dups = 0;
    std::vector<recorded_event*> fresh;  // moved out only after the COMMIT (a failed batch is retried as it was)
    for (auto& b : batch)
        for (auto& r : b.recs) {
            sqlite3_reset(ins);
            text(1, r.id);
            sqlite3_bind_int64(ins, 2, r.time_ms);
            sqlite3_bind_int64(ins, 3, r.received_ms);
            text(4, r.type);
            text(5, r.level);
            text(6, r.daemon);
            text(7, r.host);
            text(8, r.system);
            text(9, r.repo);
            text(10, r.revision);
            text(11, r.message);
            text(12, r.source);
            sqlite3_bind_int64(ins, 13, r.legacy);
            sqlite3_bind_int64(ins, 14, r.authenticated);
            text(15, r.data);
            // an ingested JSON record's raw text is its data: stored once ("" = same as data)
            if (r.raw == r.data) sqlite3_bind_text(ins, 16, "", 0, SQLITE_STATIC);
            else text(16, r.raw);
            int rc = sqlite3_step(ins);
            if (rc != SQLITE_DONE) {
                sqlite3_reset(ins);
                fail(db_, rc, "insert");
            }
            if (sqlite3_changes(db_) == 1) {
                r.seq = sqlite3_last_insert_rowid(db_);
                fresh.push_back(&r);
            } else {
                ++dups;
            }
        }
    sqlite3_reset(ins);
    sqlite3_clear_bindings(ins);
    int rc = sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) fail(db_, rc, "commit");
    transactions_ += 1;
    committed_rows_ += fresh.size();
    duplicates_ += dups;
    inserted.reserve(fresh.size());
    for (auto* r : fresh) inserted.push_back(std::move(*r));  // no copy of each row's text
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
