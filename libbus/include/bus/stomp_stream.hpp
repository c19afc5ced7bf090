#pragma once

// One STOMP connection's bytes: TCP (optionally TLS), a frame reader bounded by the codec's
// limits, and a bounded, batched writer; every wait has a deadline. The protocol decisions are
// elsewhere (bus::session for the client). Asio lives here, not in the session or codec headers.

#include "bus/stomp/frame.hpp"
#include "bus/stomp/parser.hpp"
#include "bus/url.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace bus {

/// The peer sent bytes the codec refuses (malformed, or over a limit).
struct stream_protocol_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class stomp_stream {
public:
    using clock = std::chrono::steady_clock;
    using time_point = clock::time_point;

    /// `max_queued_bytes` bounds what enqueue() accepts before it is written.
    stomp_stream(const boost::asio::any_io_executor& ex, stomp::limits lim, std::size_t max_queued_bytes);
    /// An accepted connection (a server's side); `tls` handshakes later with server_handshake().
    stomp_stream(boost::asio::ip::tcp::socket s, stomp::limits lim, std::size_t max_queued_bytes);
    stomp_stream(const stomp_stream&) = delete;
    stomp_stream& operator=(const stomp_stream&) = delete;

    /// Resolves and connects to `ep` (each address in turn, the socket close-on-exec before it
    /// connects), then the TLS handshake when `ep.tls` (SNI, and host name verification when
    /// `verify`), all before `deadline`.
    boost::asio::awaitable<void> connect(const endpoint& ep, boost::asio::ssl::context* tls, bool verify,
                                         time_point deadline);
    /// TLS as a server on an accepted socket, before `deadline`.
    boost::asio::awaitable<void> server_handshake(boost::asio::ssl::context& tls, time_point deadline);

    /// One frame or heart-beat from the peer.
    struct item {
        bool heartbeat = false;
        stomp::frame frame;
    };
    /// Reads the next item, before `deadline` (max = none). `on_bytes` is called whenever bytes
    /// arrive. Throws stream_protocol_error for bytes the codec refuses, std::runtime_error for
    /// a closed or failed connection or the deadline.
    boost::asio::awaitable<item> read(time_point deadline = time_point::max(),
                                      const std::function<void()>& on_bytes = {});
    /// Frames after this are parsed as version `v` (CONNECT/CONNECTED decided it).
    void set_version(stomp::version v) noexcept { parser_.set_version(v); }

    /// Writes `bytes` now (outside the queue), before `deadline`.
    boost::asio::awaitable<void> write(std::string_view bytes, time_point deadline);
    /// Queues bytes for the writer; false (and nothing queued) when that would pass the bound.
    bool enqueue(std::string bytes);
    std::size_t queued_bytes() const noexcept { return queued_; }
    /// Writes the queue in batches (up to 256 items or 512 KiB per write) until close() or a
    /// failure, each batch before `timeout` plus a slow link's allowance (~64 KiB/s).
    /// `on_written(n)` is called after each batch. Throws when a write fails or times out.
    boost::asio::awaitable<void> run_writer(std::chrono::milliseconds timeout,
                                            const std::function<void(std::size_t)>& on_written);
    /// Wakes run_writer so that it throws `why` (the connection must go).
    void fail(std::string why);

    void close();
    bool is_open() const { return socket_.is_open(); }
    boost::asio::ip::tcp::socket& socket() noexcept { return socket_; }

private:
    template <class Buffers>
    boost::asio::awaitable<std::size_t> write_some_all(const Buffers& b);

    boost::asio::ip::tcp::socket socket_;
    std::optional<boost::asio::ssl::stream<boost::asio::ip::tcp::socket&>> tls_;
    boost::asio::steady_timer signal_;
    std::deque<std::string> queue_;
    std::size_t queued_ = 0;
    std::size_t max_queued_;
    std::string broken_;
    stomp::parser parser_;
    std::string rbuf_;
    std::size_t rstart_ = 0;
};

} // namespace bus
