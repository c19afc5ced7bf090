#include "bus/outbox.hpp"

#include "bus/detail/files.hpp"
#include "bus/stomp/parser.hpp"
#include "bus/stomp/serializer.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

namespace bus {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view suffix = ".stomp";

std::string errno_text() { return std::strerror(errno); }

using detail::fsync_dir;

void write_all(int fd, std::string_view data, const fs::path& p)
{
    try {
        detail::write_all(fd, data, p);
    } catch (const std::runtime_error& e) {
        throw outbox_error(e.what());
    }
}

// Writes `bytes` to `tmp` (opened with `extra_flags`), fsyncs it, renames it over `target` and
// fsyncs the directory: the file is either absent or complete, never torn.
void write_durably(const fs::path& tmp, const fs::path& target, std::string_view bytes, int extra_flags,
                   const fs::path& dir)
{
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | extra_flags, 0600);
    if (fd < 0) throw outbox_error(tmp.string() + ": cannot create: " + errno_text());
    try {
        write_all(fd, bytes, tmp);
        if (::fsync(fd) != 0) throw outbox_error(tmp.string() + ": fsync failed: " + errno_text());
    } catch (...) {
        ::close(fd);
        ::unlink(tmp.c_str());
        throw;
    }
    ::close(fd);
    if (::rename(tmp.c_str(), target.c_str()) != 0) {
        std::string why = errno_text();
        ::unlink(tmp.c_str());
        throw outbox_error(target.string() + ": rename failed: " + why);
    }
    fsync_dir(dir);
}

} // namespace

outbox::outbox(outbox_options opts) : opts_(std::move(opts))
{
    std::error_code ec;
    fs::create_directories(opts_.dir / "quarantine", ec);
    if (ec) throw outbox_error(opts_.dir.string() + ": cannot create spool directory: " + ec.message());
    ::chmod(opts_.dir.c_str(), 0700);
}

std::vector<fs::path> outbox::pending() const
{
    std::vector<fs::path> out;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(opts_.dir, ec)) {
        if (!e.is_regular_file()) continue;
        auto name = e.path().filename().string();
        if (name.ends_with(suffix) && !name.starts_with(".")) out.push_back(e.path());
    }
    std::sort(out.begin(), out.end());
    return out;
}

outbox::usage_t outbox::usage() const
{
    usage_t u;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(opts_.dir, ec)) {
        if (!e.is_regular_file()) continue; // d_type from readdir: no stat
        auto name = e.path().filename().string();
        if (!name.ends_with(suffix) || name.starts_with(".")) continue;
        ++u.messages;
        if (auto size = spooled_size(name)) {
            u.bytes += *size;
        } else {
            std::error_code sec;
            auto n = fs::file_size(e.path(), sec); // a name from before sizes were in it
            if (!sec) u.bytes += n;
        }
    }
    return u;
}

std::optional<std::uintmax_t> outbox::spooled_size(std::string_view name) noexcept
{
    // <ns:20>-<pid:8>-<counter:6>-<bytes>.stomp: the fourth field is the size it was spooled with.
    if (!name.ends_with(suffix)) return std::nullopt;
    name.remove_suffix(suffix.size());
    if (std::count(name.begin(), name.end(), '-') != 3) return std::nullopt;
    auto digits = name.substr(name.rfind('-') + 1);
    if (digits.empty() || digits.size() > 12) return std::nullopt;
    std::uintmax_t n = 0;
    for (char c : digits) {
        if (c < '0' || c > '9') return std::nullopt;
        n = n * 10 + static_cast<unsigned>(c - '0');
    }
    return n;
}

std::string outbox::spool(const stomp::frame& f)
{
    std::string bytes;
    std::error_code sec;
    stomp::serialize(bytes, f, stomp::version::v1_2, sec);
    if (sec) throw outbox_error("cannot spool a frame that cannot be serialised: " + sec.message());
    if (bytes.size() > opts_.max_message_bytes)
        throw outbox_error("message of " + std::to_string(bytes.size()) + " bytes exceeds the spool's per-message limit");
    auto [count, total] = usage();
    if (count >= opts_.max_messages)
        throw outbox_error(opts_.dir.string() + ": spool full (" + std::to_string(count) + " messages); " +
                           "is the broker reachable? run 'stompctl drain'");
    if (total + bytes.size() > opts_.max_bytes)
        throw outbox_error(opts_.dir.string() + ": spool full (" + std::to_string(total) + " bytes)");

    // Names sort in spool order: nanoseconds since the epoch, then pid and a counter.
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
    char name[96];
    std::snprintf(name, sizeof name, "%020lld-%08d-%06llu-%zu", static_cast<long long>(ns),
                  static_cast<int>(::getpid()), static_cast<unsigned long long>(++counter_ % 1000000), bytes.size());
    fs::path final_path = opts_.dir / (std::string(name) + std::string(suffix));
    fs::path tmp = opts_.dir / ("." + std::string(name) + ".tmp");
    write_durably(tmp, final_path, bytes, O_EXCL, opts_.dir);
    return final_path.filename().string();
}

std::optional<stomp::frame> outbox::load(const fs::path& p)
{
    std::string bytes;
    bool in = true;
    try {
        bytes = detail::read_file(p);
    } catch (const std::runtime_error&) {
        in = false;
    }
    stomp::parser parser;
    parser.set_version(stomp::version::v1_2);
    std::error_code ec;
    std::size_t used = in ? parser.put(bytes, ec) : 0;
    bool ok = in && !ec && used == bytes.size() && parser.got() == stomp::parser::item::frame;
    if (ok) {
        auto f = parser.release();
        if (f.command == "SEND" && f.find("destination")) return f;
    }
    std::error_code mec;
    fs::rename(p, opts_.dir / "quarantine" / p.filename(), mec);
    if (mec) fs::remove(p, mec);
    return std::nullopt;
}

void outbox::mark_possibly_sent(const fs::path& p)
{
    auto f = load(p);
    if (!f || f->find(possibly_sent_header)) return;
    f->set(possibly_sent_header, "true");
    std::string bytes;
    std::error_code sec;
    stomp::serialize(bytes, *f, stomp::version::v1_2, sec);
    if (sec) return;
    fs::path tmp = p.parent_path() / ("." + p.filename().string() + ".tmp");
    write_durably(tmp, p, bytes, O_TRUNC | O_NOFOLLOW, opts_.dir);
}

void outbox::remove(const fs::path& p)
{
    std::error_code ec;
    fs::remove(p, ec);
    fsync_dir(opts_.dir);
}

std::size_t outbox::quarantined() const
{
    std::size_t n = 0;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(opts_.dir / "quarantine", ec)) n += e.is_regular_file();
    return n;
}

std::unique_ptr<outbox::lock> outbox::try_lock()
{
    fs::path lp = opts_.dir / ".lock";
    int fd = ::open(lp.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) throw outbox_error(lp.string() + ": cannot open lock: " + errno_text());
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        ::close(fd);
        return nullptr;
    }
    return std::make_unique<lock>(fd);
}

outbox::lock::~lock()
{
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
}

} // namespace bus
