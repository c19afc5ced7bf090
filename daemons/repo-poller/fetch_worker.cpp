// The child's side of repo-poller's fetch child (fetch_child.hpp): `repo-poller --fetch-worker`
// reads its request on stdin, fetches with http_get (libcurl, loaded here only) and writes the
// replies to descriptor 3.
#include "fetch_child.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <unistd.h>

namespace repo_poller {

namespace {

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
