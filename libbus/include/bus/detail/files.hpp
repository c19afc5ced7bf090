#pragma once

// Durable-write helpers shared by the producer outbox and the broker journal.

#include <filesystem>
#include <string_view>

namespace bus::detail {

/// Writes all of `data` to `fd`, retrying on EINTR; throws std::runtime_error naming `path`.
void write_all(int fd, std::string_view data, const std::filesystem::path& path);
/// fsyncs a directory so a rename or unlink in it is durable (best effort).
void fsync_dir(const std::filesystem::path& dir);

} // namespace bus::detail
