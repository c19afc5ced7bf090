#pragma once

// One HTTP/1.1 server for every daemon (github-webhook's hooks, the admin endpoints), on Beast.
// The daemon supplies two functions and never touches a socket:
//   check(head)  after the header: an answer now (404, 403, 405 …; the body is not read), or
//                nullopt to read the body;
//   handle(req)  with the body: the answer (a coroutine, so it may publish and wait).
// The server owns the limits, in nginx's terms:
//   - header and body size (large_client_header_buffers, client_max_body_size): 431 / 413;
//   - framing (RFC 9112 §6): Transfer-Encoding other than exactly `chunked`, with Content-Length,
//     or on HTTP/1.0 is answered 400 and the connection closed, never guessed at;
//   - deadlines: the first byte of a connection within `first_byte_timeout` (client_header_timeout),
//     a whole request within `read_timeout` of its first byte, keep-alive idle `idle_timeout`;
//   - connections: `max_connections` in all and `max_connections_per_source` per address
//     (limit_conn). At a limit, the connection idle longest (no request in progress: waiting for
//     its first byte or idle between requests) is closed to make room, as nginx reuses keep-alive
//     connections when it runs out; only when none is idle is the new one refused. So idle
//     sockets cannot lock out deliveries or health checks;
//   - body bytes held at once, over all connections (`max_inflight_body_bytes`), counted as they
//     are read whatever the framing (a declared Content-Length is reserved up front): 503.
// Plain TCP or TLS (both files set). Stopping: stop() closes the listener and idle connections;
// drain() waits for requests in progress up to a deadline, then closes the rest.

#include "bus/http/address.hpp"
#include "bus/http/message.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace bus::http {

struct server_options {
    std::string address = "127.0.0.1";
    unsigned short port = 0;  ///< 0: any free port (see server::port())
    std::string tls_cert_file;  ///< both set: HTTPS only
    std::string tls_key_file;
    std::size_t max_header_bytes = 16 * 1024;
    std::size_t max_body_bytes = 1024 * 1024;
    std::chrono::milliseconds first_byte_timeout{5000};
    std::chrono::milliseconds read_timeout{10000};
    std::chrono::milliseconds idle_timeout{30000};
    std::size_t max_connections = 512;
    std::size_t max_connections_per_source = 64;  ///< 0: no per-source limit
    std::size_t max_inflight_body_bytes = 256 * 1024 * 1024;
    std::vector<cidr> trusted_proxies;  ///< X-Forwarded-For believed only from these
    /// Empty: anyone may connect. Otherwise a peer outside it (and outside trusted_proxies) is
    /// closed at accept, before it can send anything.
    std::vector<cidr> connect_allow;
    std::string server_name = "deploykit";  ///< the Server header
    std::string log_name = "http";          ///< how log lines name this server
};

struct server_stats {
    std::uint64_t refused_connections = 0;  ///< at a limit with nothing idle to close, or outside connect_allow
    std::uint64_t evicted_connections = 0;  ///< idle connections closed to make room
    std::uint64_t read_timeouts = 0;        ///< requests (or first bytes) that did not arrive in time
    std::uint64_t busy = 0;                 ///< 503s: max_inflight_body_bytes reached
    std::uint64_t bad_requests = 0;         ///< 400/413/431 answered by the server itself
};

class server {
public:
    using check_fn = std::function<std::optional<response>(const request& head)>;
    using handle_fn = std::function<boost::asio::awaitable<response>(request& req)>;
    /// Called for every answer the server writes itself (framing errors, limits, busy); the
    /// request may have only its peer set.
    using log_fn = std::function<void(const request& req, const response& res)>;

    server(boost::asio::any_io_executor io, server_options opts, spdlog::logger& log, check_fn check,
           handle_fn handle, log_fn on_own_answer = {});
    ~server();
    server(const server&) = delete;
    server& operator=(const server&) = delete;

    /// Binds and listens (TLS context loaded here). Throws on failure.
    void listen();
    /// The bound port (after listen()).
    unsigned short port() const;
    bool tls() const noexcept;
    /// Accepts until stop(); run it with co_spawn. Throws only if accepting itself breaks.
    boost::asio::awaitable<void> run();
    /// Stops accepting and closes idle connections; requests in progress are answered, then
    /// their connections closed.
    void stop();
    /// After stop(): waits until every connection is closed or `deadline` passes, then closes
    /// whatever is left.
    boost::asio::awaitable<void> drain(std::chrono::milliseconds deadline);

    std::size_t connections() const noexcept;
    std::size_t inflight_body_bytes() const noexcept;
    const server_stats& stats() const noexcept;
    /// Settings a reload may change (on the server's executor): proxies, allow-list, limits.
    server_options& options() noexcept;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

/// A minimal sync handler helper: wraps a pure `response(const request&)` as a handle_fn.
server::handle_fn sync_handler(std::function<response(const request&)> f);

} // namespace bus::http
