// Both sides of repo-poller's fetch child (fetch_child.hpp): the daemon's (child_fetch: the
// temporary reply file, spawn, reading the replies back) and the child's main.
#include "fetch_child.hpp"

#include "bus/text.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

extern char** environ;

namespace repo_poller {

namespace {

// An unlinked file in `dir` for the child's replies: O_TMPFILE, else a named one removed at once.
int reply_file(const std::filesystem::path& dir, std::string& error)
{
    int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) return fd;
    std::string tmpl = (dir / ".fetch-XXXXXX").string();
    fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
    if (fd < 0) {
        error = "cannot create a temporary file in " + dir.string() + ": " + std::strerror(errno);
        return -1;
    }
    ::unlink(tmpl.c_str());
    return fd;
}

std::vector<std::string> our_environment()
{
    std::vector<std::string> env;
    for (char** e = environ; e && *e; ++e) env.emplace_back(*e);
    return env;
}

bool write_all(int fd, std::string_view data)
{
    while (!data.empty()) {
        auto n = ::write(fd, data.data(), data.size());
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
}

} // namespace

child_fetch::child_fetch(const std::string& self, const std::filesystem::path& dir, const fetch_batch& batch,
                         const std::atomic<bool>* stop)
{
    for (const auto& r : batch.requests) max_.push_back(r.max_bytes);
    fd_ = reply_file(dir, failure_);
    if (fd_ < 0) return;
    auto so = fetch_spawn_options(self, batch, our_environment(), fd_, stop);
    auto r = bus::runtime::spawn(so);
    if (r.cancelled) {
        failure_ = "aborted (stopping)";
    } else if (!r.ok()) {
        // Its stderr says why (never a URL: the child names no request in its messages).
        auto first = r.err.substr(0, r.err.find('\n'));
        failure_ = "fetch child " + r.describe() + (first.empty() ? "" : ": " + bus::log_escape(first.substr(0, 200)));
    }
}

child_fetch::~child_fetch()
{
    if (fd_ >= 0) ::close(fd_);
}

fetch_result child_fetch::next()
{
    fetch_result r;
    if (!failure_.empty()) {
        r.error = failure_;
        return r;
    }
    if (index_ >= max_.size()) {
        r.error = "fetch child: no such request";
        return r;
    }
    const std::size_t max = max_[index_++];
    const int fd = fd_;
    const std::size_t base = pos_;
    try {
        std::size_t used = 0;
        r = read_reply(
            [fd, base](std::size_t off, char* buf, std::size_t n) -> std::size_t {
                for (;;) {
                    auto got = ::pread(fd, buf, n, static_cast<off_t>(base + off));
                    if (got < 0 && errno == EINTR) continue;
                    if (got < 0) throw protocol_error(std::string("cannot read the reply: ") + std::strerror(errno));
                    return static_cast<std::size_t>(got);
                }
            },
            max, &used);
        pos_ += used;
    } catch (const protocol_error& e) {
        failure_ = std::string("fetch child: malformed reply: ") + e.what();
        r = {};
        r.error = failure_;
    }
    return r;
}

int fetch_worker_main()
{
    // Our stdin: the request (bounded); descriptor 3: the reply file. Messages on stderr never
    // name a request (URLs may carry credentials).
    std::string in;
    char buf[65536];
    for (;;) {
        auto n = ::read(0, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            std::fprintf(stderr, "repo-poller --fetch-worker: cannot read the request: %s\n", std::strerror(errno));
            return 2;
        }
        if (n == 0) break;
        in.append(buf, static_cast<std::size_t>(n));
        if (in.size() > max_request_bytes) {
            std::fprintf(stderr, "repo-poller --fetch-worker: request larger than %zu bytes\n", max_request_bytes);
            return 2;
        }
    }
    if (::fcntl(reply_fd, F_GETFD) < 0) {
        std::fprintf(stderr, "repo-poller --fetch-worker: no reply descriptor %d (an internal mode of the daemon)\n", reply_fd);
        return 2;
    }
    fetch_batch b;
    try {
        b = decode_batch(in);
    } catch (const protocol_error& e) {
        std::fprintf(stderr, "repo-poller --fetch-worker: bad request: %s\n", e.what());
        return 2;
    }
    for (const auto& q : b.requests) {
        auto r = http_get(q.url, b.limits, q.max_bytes, q.etag, q.last_modified, nullptr);
        if (r.status != 200) r.body.clear();  // an error page is not passed on
        if (!write_all(reply_fd, encode_reply_header(r)) || !write_all(reply_fd, r.body)) {
            std::fprintf(stderr, "repo-poller --fetch-worker: cannot write the reply: %s\n", std::strerror(errno));
            return 2;
        }
        if (r.status != 200 && r.status != 304) break;  // the poll fails here: the rest is not needed
    }
    return 0;
}

} // namespace repo_poller
