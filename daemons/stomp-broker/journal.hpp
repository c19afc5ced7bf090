#pragma once

// The broker's on-disk journal: an append-only file of checksummed records (persistent messages
// added to and removed from durable queues, durable subscriptions bound and unbound). Appends
// are group-committed on a thread of their own, never on an I/O thread; a batch's completion
// runs after its records are written (and fsynced, per policy). A torn tail from a crash is cut
// off at start-up; compaction rewrites the live state and renames it into place.

#include "broker.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace broker {

enum class fsync_policy { always, never };

class journal {
public:
    /// Opens (creating) `dir/journal`. Throws std::runtime_error naming the file.
    journal(std::filesystem::path dir, fsync_policy policy);
    ~journal();
    journal(const journal&) = delete;
    journal& operator=(const journal&) = delete;

    /// Reads every intact record; truncates a torn or corrupt tail. Call before `start`.
    std::vector<journal_record> load();
    /// Starts the writer thread.
    void start();
    /// Queues records; `done` runs on the writer thread once they are safe (post it back).
    void append(std::vector<journal_record> records, std::function<void()> done);
    /// Replaces the file with `live` (the current durable state) between two batches.
    void compact(std::vector<journal_record> live);
    /// Bytes appended since the last compaction.
    std::uint64_t appended_bytes() const noexcept { return appended_.load(); }
    bool compaction_pending() const noexcept { return compacting_.load(); }
    /// True while a write or fsync fails: nothing is acknowledged (fail-stop) until a retry of
    /// the failed batch succeeds.
    bool failed() const noexcept { return failed_.load(); }
    /// True once retries stopped (`retry_for` passed): the broker must exit non-zero.
    bool gave_up() const noexcept { return gave_up_.load(); }
    /// The last failure, for /readyz and the log.
    std::string reason() const;
    /// Called on the writer thread when writing starts failing (true, why), recovers (false)
    /// and gives up (true, why). Set before `start`.
    void on_state(std::function<void(bool failed, std::string why)> fn) { on_state_ = std::move(fn); }
    /// How long a failing write is retried before giving up.
    void retry_for(std::chrono::seconds s) { retry_for_ = s; }
    /// Stops the writer after writing everything queued.
    void stop();

    static std::string encode(const journal_record& r);
    /// What a format-2 journal starts with.
    static std::string_view file_header();

private:
    struct task {
        std::vector<journal_record> records;
        std::function<void()> done;
        bool compaction = false;
    };
    void run();
    void write_batch(std::vector<task>& batch);
    bool do_compact(const std::vector<journal_record>& live);
    void rewrite(const std::vector<journal_record>& records);

    std::filesystem::path dir_;
    std::filesystem::path file_;
    fsync_policy policy_;
    int fd_ = -1;
    mutable std::mutex mu_;
    std::string reason_;
    std::function<void(bool, std::string)> on_state_;
    std::chrono::seconds retry_for_{300};
    std::atomic<bool> gave_up_{false};
    std::condition_variable cv_;
    std::deque<task> queue_;
    bool stopping_ = false;
    std::thread thread_;
    std::atomic<std::uint64_t> appended_{0};
    std::atomic<bool> compacting_{false};
    std::atomic<bool> failed_{false};
};

} // namespace broker
