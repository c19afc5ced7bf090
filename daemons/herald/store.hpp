#pragma once

// herald's database: SQLite in WAL mode, one writer thread committing batches, readers on their
// own connections (WAL lets them read while the writer commits). No Asio: completions are plain
// callbacks; the daemon posts them back to its I/O thread.
//
// Tables: `events` (one row per event id, `seq` an AUTOINCREMENT row id, never reused, so SSE
// ids and pagination cursors survive retention) and `events_fts`, a contentless FTS5 index over
// message, daemon, host, system, repo, type, data (words) and `keys` (one exact token per filter
// value), kept by triggers.
// Searches are newest first by seq and keyset-paginated (`before`/`after` a seq, never OFFSET).
// Free text and the exact filters on indexed columns are answered by walking the FTS index in
// seq order (each candidate row then checked exactly, stopping at a page); repo + revision by
// events_repo; a time range alone by events_time. Every search has a LIMIT and a time budget.

#include "record.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <stdexcept>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace herald {

// ---- queries (pure: building SQL is tested without a database) ----

struct query {
    std::optional<std::int64_t> since_ms, until_ms;  ///< event time range
    std::string type, host, daemon, repo, revision, system, level;  ///< exact; level: that or worse
    std::string text;          ///< free text, FTS5 (each word quoted: no query syntax from users)
    std::optional<std::int64_t> before;  ///< page cursor: rows with seq < before
    std::optional<std::int64_t> after;   ///< rows with seq > after (live feed), oldest first
    std::size_t limit = 50;
};

/// Reads a query from URL parameters (since, until: RFC 3339 or epoch ms; type, host, daemon,
/// repo, revision, system, level, q, before, after, limit). Unknown keys are ignored; a bad
/// value gives an error naming the key.
struct parsed_query {
    query q;
    std::string error;
};
parsed_query parse_query(const std::vector<std::pair<std::string, std::string>>& params, std::size_t max_limit = 500);

/// The FTS5 MATCH expression for user text: each whitespace-separated word as a quoted string
/// (all must match; `"` doubled), so nothing a user types is FTS5 syntax. "" when no words.
std::string fts_expression(std::string_view text);

struct sql_statement {
    std::string sql;
    std::vector<std::variant<std::string, std::int64_t>> binds;  ///< bound in order to the `?`s
};
/// SELECT for a query: parameters only, never user text in the SQL. The exact filters (type,
/// host, daemon, repo, system, level) also become FTS5 `keys` tokens, so the index finds the
/// rows and a row lookup confirms.
sql_statement build_sql(const query& q);

/// The URL query string for `q` with `before` replaced (pagination links).
std::string query_string(const query& q, std::optional<std::int64_t> before);

/// Percent-encodes everything but RFC 3986's unreserved characters (for query-string values).
std::string url_escape(std::string_view s);

// ---- retention (pure decision) ----

struct retention_policy {
    std::chrono::hours max_age{24 * 90};  ///< 0: no age limit
    std::uint64_t max_bytes = 0;          ///< 0: no size limit (live pages: file minus free pages)
    std::size_t batch_rows = 20000;       ///< rows deleted per step (short write transactions)
};
struct store_stats {
    std::uint64_t used_bytes = 0;  ///< (page_count - freelist_count) * page_size
    std::int64_t rows = 0;
    std::int64_t oldest_received_ms = 0;
};
struct retention_step {
    std::optional<std::int64_t> delete_received_before;  ///< delete rows received before this
    std::size_t delete_oldest = 0;                        ///< then delete this many oldest rows
    bool done() const { return !delete_received_before && delete_oldest == 0; }
};
/// What to delete next; called until done(). By size: the oldest rows, a share matching how far
/// over the limit the database is (at least 1 %, at most batch_rows), down to 90 % of the limit.
retention_step plan_retention(const retention_policy& p, const store_stats& s, std::int64_t now_ms);

// ---- the database ----

/// A failure the operator must see: the database is corrupt, full, read-only or unwritable.
struct store_error : std::runtime_error {
    using std::runtime_error::runtime_error;
    int code = 0;
};

/// A search that ran past its time budget (sqlite3_progress_handler): the reader is free again
/// and the caller answers with this message; the database is fine.
struct search_timeout : store_error {
    using store_error::store_error;
};

struct store_options {
    std::filesystem::path path;
    bool synchronous_full = true;  ///< PRAGMA synchronous=FULL (committed survives power loss)
    std::size_t batch_max = 10000;  ///< records per transaction at most
    /// After an idle spell, wait this long for more before committing a short batch; while
    /// records keep coming, each transaction takes what queued during the previous commit.
    std::chrono::milliseconds batch_wait{20};
    std::size_t queue_max = 50000;  ///< records waiting (submit refuses beyond)
    std::size_t readers = 4;        ///< read connections kept open
    std::chrono::milliseconds search_budget{2000};  ///< a search longer than this is stopped
    std::int64_t max_pages = 0;     ///< PRAGMA max_page_count (a hard cap: "database full"); 0 = SQLite's
    retention_policy retention;
};

struct search_result {
    std::vector<recorded_event> rows;
    std::optional<std::int64_t> next_before;  ///< cursor of the next (older) page, when there is one
};

/// Opens (creating the schema), checks integrity quickly (`PRAGMA quick_check` off by default:
/// the first write or read of a damaged page fails and is reported), and serves queries.
class reader_pool {
public:
    /// `budget`: the longest a search may run (0: unbounded); past it, search_timeout.
    explicit reader_pool(std::filesystem::path path, std::size_t keep,
                         std::chrono::milliseconds budget = std::chrono::milliseconds(2000));
    static constexpr int reader_cache_kib = 8192;  ///< PRAGMA cache_size of each reader
    ~reader_pool();
    search_result search(const query& q);
    /// The same with an explicit deadline (search_timeout once the statement runs past it).
    search_result search(const query& q, std::chrono::steady_clock::time_point deadline);
    std::optional<recorded_event> get(std::int64_t seq);
    /// The last event of each (daemon, host), by event time: for /metrics and the alert engine.
    struct source { std::string daemon, host; std::int64_t last_ms = 0; };
    std::vector<source> sources();
    store_stats stats();
    /// Frees the page caches of the idle connections (after start-up's reads: a reader's cache
    /// grows back to cache_size with the searches that need it).
    void release_memory();

private:
    struct conn;
    std::unique_ptr<conn> take();
    void give(std::unique_ptr<conn> c);
    std::filesystem::path path_;
    std::size_t keep_;
    std::chrono::milliseconds budget_;
    std::mutex mu_;
    std::vector<std::unique_ptr<conn>> idle_;
};

/// The writer: one thread, one connection, batched transactions.
class writer {
public:
    /// ok: committed (or already there: a duplicate id); false: not committed, `why` says why.
    using done_fn = std::function<void(bool ok, const std::string& why)>;
    /// Called on the writer thread after each commit with the rows it inserted (seq set),
    /// duplicates left out.
    using committed_fn = std::function<void(std::vector<recorded_event>&&)>;
    /// Called on the writer thread when the database fails or recovers ("" = recovered).
    using health_fn = std::function<void(const std::string& failure)>;

    writer(store_options o, committed_fn committed, health_fn health);
    ~writer();  ///< stops: finishes what is queued (bounded by a failing database: then gives up)

    /// Queues records. `retry`: on a failed commit keep them and try again (bus messages, held
    /// unacknowledged meanwhile); else fail them (an HTTP client is answered 503 and may retry).
    /// False when the queue is full (nothing queued).
    bool submit(std::vector<recorded_event> recs, bool retry, done_fn done);
    std::size_t queued() const;
    /// The current failure ("" when healthy).
    std::string failure() const;
    void stop();
    std::uint64_t committed_rows() const { return committed_rows_.load(); }
    std::uint64_t duplicate_rows() const { return duplicates_.load(); }
    std::uint64_t transactions() const { return transactions_.load(); }

private:
    struct item {
        std::vector<recorded_event> recs;
        bool retry;
        done_fn done;
    };
    void run();
    void commit(std::vector<item>& batch);
    void retention(std::int64_t now_ms);
    store_options o_;
    committed_fn committed_;
    health_fn health_;
    sqlite3* db_ = nullptr;
    sqlite3_stmt* ins_ = nullptr;  ///< the INSERT, prepared once
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<item> q_;
    std::size_t queued_recs_ = 0;
    bool stop_ = false;
    std::string failure_;
    std::atomic<std::uint64_t> committed_rows_{0}, duplicates_{0}, transactions_{0};
    std::thread th_;
};

/// Creates the schema if missing, WAL mode. Throws store_error.
void open_schema(const std::filesystem::path& path);

} // namespace herald
