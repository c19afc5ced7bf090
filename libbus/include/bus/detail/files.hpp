#pragma once

// Durable-write helpers shared by the producer outbox and the broker journal.

#include <filesystem>
#include <string>
#include <string_view>

namespace bus::detail {

/// Writes all of `data` to `fd`, retrying on EINTR; throws std::runtime_error naming `path`.
void write_all(int fd, std::string_view data, const std::filesystem::path& path);
/// Reads a whole file through a close-on-exec descriptor (a child forked meanwhile by another
/// thread never inherits it); throws std::runtime_error naming `path` and the reason.
std::string read_file(const std::filesystem::path& path);
/// Marks a descriptor close-on-exec (for descriptors a library opened without the flag, such
/// as Asio's sockets: Boost 1.81 calls socket()/accept() without SOCK_CLOEXEC).
void set_cloexec(int fd);
/// fsyncs a directory so a rename or unlink in it is durable (best effort).
void fsync_dir(const std::filesystem::path& dir);

} // namespace bus::detail
