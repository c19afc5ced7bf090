#pragma once

// repo-poller's HTTP transfers run in a short-lived child, so the daemon itself never maps
// libcurl and its tree (OpenSSL initialised, GnuTLS through libldap, p11-kit, ...: +6.4 MiB of
// RSS for the life of the process, bench/results/perf-4-poller4.md). The child is this binary
// in a hidden mode (`repo-poller --fetch-worker`), started through bus::runtime::spawn from the
// worker pool like stomp-git's `--worker` fetches: argv without anything secret, a clean
// environment, its own process group ended at the deadline or at shutdown, dead with the daemon.
//
// The protocol, both directions bounded:
// - request on stdin (never argv: URLs may carry credentials): one JSON document, the transfer
//   limits and a list of GETs (url, max_bytes, etag, last_modified);
// - replies on descriptor 3, an unlinked temporary file in the state directory the parent
//   created (O_TMPFILE): per request, in order, one JSON header line (status, etag,
//   last_modified, date, error, length) then exactly `length` body bytes. The child stops after
//   the first reply that is neither 200 nor 304. A file rather than stdout: the parent reads the
//   replies one at a time (a poll's memory stays one index, as before), the child's writes are
//   bounded by RLIMIT_FSIZE, and there is no name to create, race or clean after a crash.
// The encoding, parsing and spawn options are sans-IO (unit-tested); child_fetch runs the child
// and reads its file; the child's main (which alone calls libcurl) is fetch_worker.cpp.

#include "config.hpp"
#include "fetch.hpp"

#include "bus/runtime/spawn.hpp"

#include <atomic>
#include <cstddef>
#include <functional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace repo_poller {

/// The hidden command-line mode of the child.
inline constexpr std::string_view fetch_worker_flag = "--fetch-worker";
/// A reply's header line (JSON, '\n' included) is at most this long (three 1 KiB fields, each
/// up to 6 KiB once JSON-escaped, and the error); the request at most `max_request_bytes`.
inline constexpr std::size_t max_reply_header = 32768;
inline constexpr std::size_t max_request_bytes = 1u << 20;
/// Descriptor the child writes its replies to.
inline constexpr int reply_fd = 3;

struct fetch_request {
    std::string url;
    std::size_t max_bytes = 0;
    std::string etag;
    std::string last_modified;
};

/// What one child fetches: the poll's transfer limits (timeouts, CA file) and its GETs.
struct fetch_batch {
    http_limits limits;
    std::vector<fetch_request> requests;
};

/// A request or reply that does not follow the protocol.
class protocol_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

std::string encode_batch(const fetch_batch& b);
/// The child's side; a protocol_error for anything else than what encode_batch writes.
fetch_batch decode_batch(std::string_view json);

/// The header line for `r` (its body follows it): JSON and '\n'.
std::string encode_reply_header(const fetch_result& r);

/// A parsed header: `r` without its body, and the body's length.
struct reply_header {
    fetch_result r;
    std::size_t length = 0;
};
/// Parses one header line (without its '\n'); protocol_error when it is not one, or announces a
/// body above `max_bytes` or a body for a reply that is not a 200.
reply_header parse_reply_header(std::string_view line, std::size_t max_bytes);

/// Reads at most `n` bytes at `offset` (from the reply's start) into `buf`, like pread(2);
/// returns how many (0 at the end).
using read_fn = std::function<std::size_t(std::size_t offset, char* buf, std::size_t n)>;
/// Reads one reply (a header line of at most max_reply_header bytes, then exactly its body)
/// through `read`; `consumed` (if given) receives its size. protocol_error for a malformed,
/// oversized or truncated reply; nothing read beyond max_reply_header + max_bytes.
fetch_result read_reply(const read_fn& read, std::size_t max_bytes, std::size_t* consumed = nullptr);

/// The spawn options of the child for `batch`: argv = {self, --fetch-worker} only, the batch on
/// stdin, `env` filtered to what libcurl uses (proxies, CA locations) plus LC_ALL/PATH, replies on
/// `out_fd` (given as descriptor 3), deadline from the limits, cancelled by `stop`.
bus::runtime::spawn_options fetch_spawn_options(const std::string& self, const fetch_batch& batch,
                                                const std::vector<std::string>& env, int out_fd,
                                                const std::atomic<bool>* stop);

/// The child's environment from the daemon's (`environ`): only the variables libcurl and
/// OpenSSL read for proxies and CA locations, then LC_ALL=C and PATH.
std::vector<std::string> fetch_environment(const std::vector<std::string>& env);

/// The replies of one child, read one at a time from its temporary file. Blocking: runs the
/// child (worker pool only).
class child_fetch {
public:
    /// Runs `self --fetch-worker` for `batch`, replies in an unlinked file in `dir`.
    child_fetch(const std::string& self, const std::filesystem::path& dir, const fetch_batch& batch,
                const std::atomic<bool>* stop);
    ~child_fetch();
    child_fetch(const child_fetch&) = delete;
    child_fetch& operator=(const child_fetch&) = delete;
    /// The next request's reply; status 0 and an error (no credentials) when the child failed,
    /// stopped before it, or the reply is malformed.
    fetch_result next();

private:
    int fd_ = -1;
    std::size_t pos_ = 0;
    std::size_t index_ = 0;
    std::vector<std::size_t> max_;
    std::string failure_;  ///< the child failed: every reply is this error
};

/// The child's main(): reads the batch on stdin, fetches (http_get), writes replies to fd 3.
int fetch_worker_main();

} // namespace repo_poller
