#pragma once

// Processed event ids on disk, so that a consumer's replay protection and redelivery dedupe
// survive a restart (an exact replay of a fresh signed event must be refused after the consumer
// restarts, as before it). Modelled on Kerberos' replay cache (RFC 4120 §3.2.3, MIT krb5's file
// rcache): the authenticators seen within the acceptance window are kept in a file per service.
// File I/O only; no Asio.

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bus {

/// One file per consumer: a version line, then `<unix-ms> <id>` lines in processing order.
///  - Every `append` is written at once (write(2)), so a crash of the process — kill -9
///    included — loses nothing; `fdatasync` follows in batches (every 64 ids or 1 s, and on
///    `sync`/destruction), so a power loss can lose at most the last batch.
///  - Bounded: when the file holds more than twice `capacity` lines, the caller rewrites it with
///    the live entries (`rewrite`), atomically (temporary file, fsync, rename, fsync of the
///    directory). Loading rewrites it too, dropping expired entries and a torn last line.
///  - The file is 0600, never followed through a symlink, and locked (`<path>.lock`, flock) so
///    two consumers cannot share one.
/// Errors (unwritable directory, file in use) throw config_error naming the path and the reason.
/// Not thread-safe.
class replay_cache {
public:
    using clock = std::chrono::system_clock;
    using entry = std::pair<std::string, clock::time_point>;

    /// Opens or creates `path` (and its directory), keeping the entries younger than `ttl`.
    replay_cache(std::filesystem::path path, std::size_t capacity, std::chrono::seconds ttl, clock::time_point now);
    ~replay_cache();
    replay_cache(const replay_cache&) = delete;
    replay_cache& operator=(const replay_cache&) = delete;

    /// The entries read at start, oldest first.
    const std::vector<entry>& loaded() const noexcept { return loaded_; }
    /// Records one processed id (written now; fsynced in batches).
    void append(std::string_view id, clock::time_point at);
    /// True when the file should be rewritten with only the live entries.
    bool needs_rewrite() const noexcept { return lines_ > 2 * capacity_ + 64; }
    /// Replaces the file's contents with `live`, atomically.
    void rewrite(const std::vector<entry>& live);
    /// fdatasync of everything appended so far.
    void sync();

    const std::filesystem::path& path() const noexcept { return path_; }

private:
    void open_append();

    std::filesystem::path path_;
    std::size_t capacity_;
    int fd_ = -1;
    int lock_fd_ = -1;
    std::size_t lines_ = 0;
    std::size_t unsynced_ = 0;
    clock::time_point last_sync_{};
    std::vector<entry> loaded_;
};

} // namespace bus
