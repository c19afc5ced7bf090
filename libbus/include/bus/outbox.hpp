#pragma once

// A producer's disk spool: a message that could not get a RECEIPT in time is written here
// (write, fsync, atomic rename, fsync of the directory) and delivered in order later. Bounded in
// count and bytes; a corrupt file is moved to quarantine/, never fatal. File I/O: keep it off
// I/O threads.

#include "bus/stomp/frame.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace bus {

/// Header a copy carries when an earlier attempt was written but never receipted: the broker
/// may have delivered the first one, so consumers drop the second by its event id
/// (`dk-event-id`, or the legacy id). Spooled copies and drained files carry it.
inline constexpr std::string_view possibly_sent_header = "dk-possibly-sent";

/// The spool is full or cannot be written; `what()` says which and where.
class outbox_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct outbox_options {
    std::filesystem::path dir;
    std::size_t max_messages = 10000;
    std::size_t max_bytes = 64 * 1024 * 1024;
    std::size_t max_message_bytes = 4 * 1024 * 1024;
};

class outbox {
public:
    /// Creates the directory (mode 0700) and its quarantine/ if missing.
    explicit outbox(outbox_options opts);

    /// Spools one SEND frame; returns its file name. Throws outbox_error when full or unwritable.
    std::string spool(const stomp::frame& f);

    /// Spooled files, oldest first.
    std::vector<std::filesystem::path> pending() const;
    /// Reads one spooled frame; a file that does not parse is moved to quarantine/ (nullopt).
    std::optional<stomp::frame> load(const std::filesystem::path& p);
    /// Rewrites a spooled file (atomically) with possibly_sent_header: it was written to a broker
    /// and no receipt came.
    void mark_possibly_sent(const std::filesystem::path& p);
    /// Deletes a delivered file (and fsyncs the directory).
    void remove(const std::filesystem::path& p);
    std::size_t quarantined() const;

    /// What the spool holds, for its bounds: one readdir, no sort, and no stat for files whose
    /// name carries their size (every file spool() writes; a possibly-sent mark adds a header's
    /// bytes that are not counted). Files from older versions are stat'ed.
    struct usage_t {
        std::size_t messages = 0;
        std::uintmax_t bytes = 0;
    };
    usage_t usage() const;
    /// The size a spooled file's name records, if it has one.
    static std::optional<std::uintmax_t> spooled_size(std::string_view file_name) noexcept;
    const outbox_options& options() const noexcept { return opts_; }

    /// An exclusive lock on the spool (flock), so two producers never deliver the same file.
    class lock;
    /// nullptr if another process holds it.
    std::unique_ptr<lock> try_lock();

private:
    outbox_options opts_;
    std::uint64_t counter_ = 0;
};

class outbox::lock {
public:
    explicit lock(int fd) : fd_(fd) {}
    ~lock();
    lock(const lock&) = delete;
    lock& operator=(const lock&) = delete;

private:
    int fd_;
};

} // namespace bus
