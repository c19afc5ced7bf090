#include "journal.hpp"

#include "bus/detail/files.hpp"

#include <boost/crc.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace broker {

namespace fs = std::filesystem;

namespace {

// Format 2: the file starts with `magic`; each record is u32 payload length, u32 CRC32C of the
// payload, payload. Format 1 (no file header; u32 length, u64 FNV-1a, payload) is still read,
// and rewritten as format 2 when loaded. A format-1 file cannot start with the magic: read as
// a length, "DKJ2" is far beyond the record limit.
constexpr std::string_view magic = "DKJ2\r\n\x1a\n";
constexpr std::size_t header_size = 8;
constexpr std::size_t header_size_v1 = 12;
constexpr std::uint32_t max_record = 64 * 1024 * 1024;

std::uint32_t crc32c(std::string_view s)
{
    boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
    crc.process_bytes(s.data(), s.size());
    return crc.checksum();
}

std::uint64_t fnv1a(std::string_view s)
{
    std::uint64_t h = 1469598103934665603ULL;
    for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ULL;
    }
    return h;
}

void put_u32(std::string& out, std::uint32_t v)
{
    for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_u64(std::string& out, std::uint64_t v)
{
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void put_str(std::string& out, std::string_view s)
{
    put_u32(out, static_cast<std::uint32_t>(s.size()));
    out.append(s);
}

struct reader {
    std::string_view in;
    bool ok = true;
    std::uint64_t num(int bytes)
    {
        if (in.size() < static_cast<std::size_t>(bytes)) {
            ok = false;
            return 0;
        }
        std::uint64_t v = 0;
        for (int i = 0; i < bytes; ++i) v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[i])) << (8 * i);
        in.remove_prefix(bytes);
        return v;
    }
    std::string str()
    {
        auto n = num(4);
        if (!ok || in.size() < n) {
            ok = false;
            return {};
        }
        std::string s(in.substr(0, n));
        in.remove_prefix(n);
        return s;
    }
};

std::string errno_text() { return std::strerror(errno); }

using bus::detail::fsync_dir;
using bus::detail::write_all;

} // namespace

std::string journal::encode(const journal_record& r)
{
    std::string p;
    p.push_back(static_cast<char>(r.what));
    put_str(p, r.queue);
    switch (r.what) {
    case journal_record::kind::add:
        put_u64(p, r.msg->seq);
        put_str(p, r.msg->destination);
        put_u32(p, static_cast<std::uint32_t>(r.msg->headers.size()));
        for (auto& [k, v] : r.msg->headers) {
            put_str(p, k);
            put_str(p, v);
        }
        put_str(p, r.msg->body);
        break;
    case journal_record::kind::remove: put_u64(p, r.seq); break;
    case journal_record::kind::bind:
    case journal_record::kind::unbind: put_str(p, r.topic); break;
    }
    std::string out;
    put_u32(out, static_cast<std::uint32_t>(p.size()));
    put_u32(out, crc32c(p));
    out += p;
    return out;
}

std::string_view journal::file_header() { return magic; }

journal::journal(fs::path dir, fsync_policy policy) : dir_(std::move(dir)), file_(dir_ / "journal"), policy_(policy)
{
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (ec) throw std::runtime_error(dir_.string() + ": cannot create data directory: " + ec.message());
    fd_ = ::open(file_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) throw std::runtime_error(file_.string() + ": cannot open journal: " + errno_text());
}

journal::~journal()
{
    stop();
    if (fd_ >= 0) ::close(fd_);
}

std::vector<journal_record> journal::load()
{
    std::string data;
    ::lseek(fd_, 0, SEEK_SET);
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd_, buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw std::runtime_error(file_.string() + ": read failed: " + errno_text());
        }
        if (n == 0) break;
        data.append(buf, static_cast<std::size_t>(n));
    }
    std::vector<journal_record> out;
    const bool v1 = !data.empty() && !std::string_view(data).starts_with(magic);
    const std::size_t hsize = v1 ? header_size_v1 : header_size;
    std::size_t pos = v1 || data.empty() ? 0 : magic.size();
    while (pos + hsize <= data.size()) {
        reader h{std::string_view(data).substr(pos, hsize)};
        auto len = static_cast<std::uint32_t>(h.num(4));
        auto sum = h.num(v1 ? 8 : 4);
        if (len > max_record || pos + hsize + len > data.size()) break;
        std::string_view payload = std::string_view(data).substr(pos + hsize, len);
        if ((v1 ? fnv1a(payload) : crc32c(payload)) != sum || payload.empty()) break;
        reader r{payload};
        journal_record rec;
        rec.what = static_cast<journal_record::kind>(r.num(1));
        rec.queue = r.str();
        switch (rec.what) {
        case journal_record::kind::add: {
            auto m = std::make_shared<message>();
            m->seq = r.num(8);
            m->destination = r.str();
            auto n = r.num(4);
            for (std::uint64_t i = 0; i < n && r.ok; ++i) {
                auto k = r.str();
                auto v = r.str();
                m->headers.emplace_back(std::move(k), std::move(v));
            }
            m->body = r.str();
            m->persistent = true;
            rec.msg = std::move(m);
            break;
        }
        case journal_record::kind::remove: rec.seq = r.num(8); break;
        case journal_record::kind::bind:
        case journal_record::kind::unbind: rec.topic = r.str(); break;
        default: r.ok = false;
        }
        if (!r.ok) break;
        out.push_back(std::move(rec));
        pos += hsize + len;
    }
    if (v1 || data.size() < magic.size()) {
        // A format-1 journal (or a new, empty one): rewrite what it holds as format 2, so every
        // later append follows a file header of its own format.
        rewrite(out);
        return out;
    }
    if (pos < data.size()) {
        // A crash mid-append leaves a torn record: cut it off so new appends follow intact ones.
        if (::ftruncate(fd_, static_cast<off_t>(pos)) != 0)
            throw std::runtime_error(file_.string() + ": cannot truncate torn tail: " + errno_text());
    }
    ::lseek(fd_, 0, SEEK_END);
    return out;
}

void journal::start()
{
    thread_ = std::thread([this] { run(); });
}

void journal::append(std::vector<journal_record> records, std::function<void()> done)
{
    {
        std::lock_guard lk(mu_);
        queue_.push_back({std::move(records), std::move(done), false});
    }
    cv_.notify_one();
}

void journal::compact(std::vector<journal_record> live)
{
    compacting_ = true;
    {
        std::lock_guard lk(mu_);
        queue_.push_back({std::move(live), {}, true});
    }
    cv_.notify_one();
}

void journal::stop()
{
    {
        std::lock_guard lk(mu_);
        if (stopping_) return;
        stopping_ = true;
    }
    cv_.notify_one();
    if (thread_.joinable()) thread_.join();
}

void journal::run()
{
    for (;;) {
        std::vector<task> batch;
        {
            std::unique_lock lk(mu_);
            cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
            if (queue_.empty() && stopping_) return;
            // Group commit: everything queued so far, up to a compaction.
            while (!queue_.empty()) {
                if (queue_.front().compaction && !batch.empty()) break;
                batch.push_back(std::move(queue_.front()));
                queue_.pop_front();
                if (batch.back().compaction) break;
            }
        }
        if (batch.size() == 1 && batch[0].compaction) {
            do_compact(batch[0].records);
            compacting_ = false;
            continue;
        }
        // Fail-stop while failing: nothing more is acknowledged (producers time out and keep
        // their messages). The same batch is retried once a second, from where it began, until
        // it is written (space came back) or `retry_for` has passed (then the broker gives up).
        const off_t start = ::lseek(fd_, 0, SEEK_END);
        std::chrono::steady_clock::time_point first_failure{};
        for (;;) {
            try {
                write_batch(batch);
                if (failed_.exchange(false) && on_state_) on_state_(false, {});
                break;
            } catch (const std::exception& e) {
                if (start >= 0 && ::ftruncate(fd_, start) == 0) ::lseek(fd_, start, SEEK_SET);
                if (!failed_.exchange(true)) {
                    first_failure = std::chrono::steady_clock::now();
                    {
                        std::lock_guard lk(mu_);
                        reason_ = e.what();
                    }
                    if (on_state_) on_state_(true, e.what());
                }
            }
            std::unique_lock lk(mu_);
            if (std::chrono::steady_clock::now() - first_failure >= retry_for_) {
                gave_up_ = true;
                lk.unlock();
                if (on_state_) on_state_(true, "gave up after " + std::to_string(retry_for_.count()) + " s: " + reason());
                return;
            }
            if (cv_.wait_for(lk, std::chrono::seconds(1), [&] { return stopping_; })) return;
        }
    }
}

std::string journal::reason() const
{
    std::lock_guard lk(mu_);
    return reason_;
}

void journal::write_batch(std::vector<task>& batch)
{
    std::string bytes;
    for (auto& t : batch)
        for (auto& r : t.records) bytes += encode(r);
    if (!bytes.empty()) {
        write_all(fd_, bytes, file_);
        if (policy_ == fsync_policy::always && ::fdatasync(fd_) != 0)
            throw std::runtime_error(file_.string() + ": fdatasync failed: " + errno_text());
        appended_ += bytes.size();
    }
    for (auto& t : batch)
        if (t.done) t.done();
}

void journal::rewrite(const std::vector<journal_record>& records)
{
    if (!do_compact(records))
        throw std::runtime_error(file_.string() + ": cannot rewrite the journal in format 2: " + errno_text());
}

bool journal::do_compact(const std::vector<journal_record>& live)
{
    fs::path tmp = dir_ / "journal.compact";
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return false;  // keep appending to the old file; compaction is an optimisation
    std::string bytes(magic);
    for (auto& r : live) bytes += encode(r);
    try {
        write_all(fd, bytes, tmp);
    } catch (...) {
        int e = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        errno = e;
        return false;
    }
    if (::fsync(fd) != 0 || ::rename(tmp.c_str(), file_.c_str()) != 0) {
        int e = errno;
        ::close(fd);
        ::unlink(tmp.c_str());
        errno = e;
        return false;  // keep appending to the old, complete file
    }
    fsync_dir(dir_);
    // The compacted file is the journal now; keep appending through its descriptor.
    ::close(fd_);
    fd_ = fd;
    ::lseek(fd_, 0, SEEK_END);
    appended_ = 0;
    return true;
}

} // namespace broker
