#include "bus/replay_cache.hpp"

#include "bus/detail/files.hpp"
#include "bus/url.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace bus {

namespace {

constexpr std::string_view magic = "deploykit-replay-cache 1\n";
constexpr std::size_t sync_batch = 64;
constexpr auto sync_interval = std::chrono::seconds(1);

[[noreturn]] void fail(const std::filesystem::path& p, std::string_view what, int err)
{
    throw config_error(p.string() + ": replay cache: " + std::string(what) + ": " + std::strerror(err));
}

std::string line_of(std::string_view id, replay_cache::clock::time_point at)
{
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(at.time_since_epoch()).count();
    std::string s = std::to_string(ms);
    s.push_back(' ');
    s.append(id);
    s.push_back('\n');
    return s;
}

bool usable_id(std::string_view id) noexcept
{
    if (id.empty() || id.size() > 128) return false;
    for (char c : id)
        if (static_cast<unsigned char>(c) < 0x21 || c == 0x7f) return false;
    return true;
}

} // namespace

replay_cache::replay_cache(std::filesystem::path path, std::size_t capacity, std::chrono::seconds ttl,
                           clock::time_point now)
    : path_(std::move(path)), capacity_(capacity), last_sync_(now)
{
    std::error_code ec;
    if (path_.has_parent_path()) {
        std::filesystem::create_directories(path_.parent_path(), ec);
        if (ec) fail(path_.parent_path(), "cannot create the directory", ec.value());
    }
    auto lock = path_;
    lock += ".lock";
    lock_fd_ = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lock_fd_ < 0) fail(lock, "cannot open", errno);
    if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
        int err = errno;
        ::close(lock_fd_);
        lock_fd_ = -1;
        fail(path_, err == EWOULDBLOCK ? "in use by another process" : "cannot lock", err);
    }

    int rfd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (rfd < 0 && errno != ENOENT) {
        int err = errno;
        ::close(lock_fd_);
        fail(path_, "cannot read", err);
    }
    if (rfd >= 0) {
        std::string data;
        char buf[65536];
        for (;;) {
            ssize_t n = ::read(rfd, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            data.append(buf, static_cast<std::size_t>(n));
            if (data.size() > (4 * capacity_ + 1024) * 160) break;  // far beyond any file we write
        }
        ::close(rfd);
        std::string_view rest = data;
        if (rest.starts_with(magic)) rest.remove_prefix(magic.size());
        else rest = {};  // not ours, or empty: start afresh
        auto oldest = now - ttl;
        while (!rest.empty()) {
            auto nl = rest.find('\n');
            if (nl == std::string_view::npos) break;  // torn last line
            std::string_view line = rest.substr(0, nl);
            rest.remove_prefix(nl + 1);
            auto sp = line.find(' ');
            if (sp == std::string_view::npos) continue;
            long long ms = 0;
            auto r = std::from_chars(line.data(), line.data() + sp, ms);
            std::string_view id = line.substr(sp + 1);
            if (r.ec != std::errc{} || r.ptr != line.data() + sp || !usable_id(id)) continue;
            clock::time_point at{std::chrono::duration_cast<clock::duration>(std::chrono::milliseconds(ms))};
            if (at <= oldest) continue;
            loaded_.emplace_back(std::string(id), at);
        }
        if (loaded_.size() > capacity_) loaded_.erase(loaded_.begin(), loaded_.end() - static_cast<long>(capacity_));
    }
    try {
        rewrite(loaded_);
    } catch (...) {
        ::close(lock_fd_);
        throw;
    }
}

replay_cache::~replay_cache()
{
    if (fd_ >= 0) {
        ::fdatasync(fd_);
        ::close(fd_);
    }
    if (lock_fd_ >= 0) ::close(lock_fd_);
}

void replay_cache::open_append()
{
    if (fd_ >= 0) ::close(fd_);
    fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
    if (fd_ < 0) fail(path_, "cannot open for appending", errno);
}

void replay_cache::rewrite(const std::vector<entry>& live)
{
    auto tmp = path_;
    tmp += ".tmp";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) fail(tmp, "cannot create", errno);
    std::string data(magic);
    for (auto& [id, at] : live) data += line_of(id, at);
    try {
        detail::write_all(fd, data, tmp);
    } catch (...) {
        ::close(fd);
        throw;
    }
    if (::fsync(fd) != 0) {
        int err = errno;
        ::close(fd);
        fail(tmp, "fsync failed", err);
    }
    ::close(fd);
    if (::rename(tmp.c_str(), path_.c_str()) != 0) fail(path_, "cannot replace", errno);
    detail::fsync_dir(path_.has_parent_path() ? path_.parent_path() : std::filesystem::path("."));
    lines_ = live.size();
    unsynced_ = 0;
    open_append();
}

void replay_cache::append(std::string_view id, clock::time_point at)
{
    if (!usable_id(id)) return;
    detail::write_all(fd_, line_of(id, at), path_);
    ++lines_;
    if (++unsynced_ >= sync_batch || at - last_sync_ >= sync_interval) {
        last_sync_ = at;
        sync();
    }
}

void replay_cache::sync()
{
    if (fd_ >= 0 && unsynced_ > 0) ::fdatasync(fd_);
    unsynced_ = 0;
}

} // namespace bus
