#pragma once

// One STOMP connection's bytes: TCP (optionally TLS), a frame reader bounded by the codec's
// limits, and a bounded, batched writer; every wait has a deadline. The client and the
// stomp-broker both use it; the protocol decisions are elsewhere (bus::session for the client,
// broker_core for the broker). Asio lives here, not in the session or codec headers.

#include "bus/detail/openssl.hpp"
#include "bus/stomp/frame.hpp"
#include "bus/stomp/parser.hpp"
#include "bus/url.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

#include <chrono>
#include <cstddef>
#include <memory>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace bus {

/// The peer sent bytes the codec refuses (malformed, or over a limit).
struct stream_protocol_error : std::runtime_error {
    stream_protocol_error(std::error_code c, const std::string& what) : std::runtime_error(what), code(c) {}
    std::error_code code;  ///< the codec's reason (a server puts it in its ERROR frame)
};

/// The connection ended under a read: `code` is eof when the peer closed it, operation_aborted
/// when we closed it.
struct stream_read_error : std::runtime_error {
    stream_read_error(boost::system::error_code c, const std::string& what) : std::runtime_error(what), code(c) {}
    boost::system::error_code code;
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
    /// arrive. Throws stream_protocol_error for bytes the codec refuses, stream_read_error for a
    /// closed or failed connection, std::runtime_error for the deadline.
    boost::asio::awaitable<item> read(time_point deadline = time_point::max(),
                                      const std::function<void()>& on_bytes = {});
    /// The same without the owning copy: the frame as views into the read buffer (and the
    /// parser's header storage), valid until the next read, read_view or set_limits. For a
    /// frame that must outlive that, take `frame.to_frame()`.
    struct view_item {
        bool heartbeat = false;
        stomp::frame_view frame;
    };
    boost::asio::awaitable<view_item> read_view(time_point deadline = time_point::max(),
                                                const std::function<void()>& on_bytes = {});
    /// Frames after this are parsed as version `v` (CONNECT/CONNECTED decided it).
    void set_version(stomp::version v) noexcept { parser_.set_version(v); }
    /// Frames after this are parsed with `lim` (a server: its own limits once the peer logged in,
    /// a CONNECT's before); the version and the bytes already read stay.
    void set_limits(stomp::limits lim);
    /// Bytes asked for per read (16 KiB by default): a server asks for no more than a CONNECT
    /// may take until the peer logged in, so an unauthenticated peer makes it hold little.
    void set_read_size(std::size_t n) { read_size_ = n == 0 ? 1 : n; }

    /// Writes `bytes` now (outside the queue), before `deadline`.
    boost::asio::awaitable<void> write(std::string_view bytes, time_point deadline);
    /// Queues bytes for the writer; false (and nothing queued) when that would pass the bound.
    /// Small frames are appended to the last queued buffer the writer has not taken yet, so a
    /// burst goes out as a few large buffers (one sendmsg) rather than one iovec per frame.
    bool enqueue(std::string bytes);
    /// The same for bytes the caller keeps (a reused serialisation buffer): copied into the
    /// queue, so a small frame costs no allocation of its own.
    bool enqueue_copy(std::string_view bytes);
    std::size_t queued_bytes() const noexcept { return queued_; }
    /// Writes the queue in batches (up to 256 items or 512 KiB per write) until close() or a
    /// failure, each batch before `timeout` plus a slow link's allowance (~64 KiB/s).
    /// `on_written(n)` is called after each batch (and may enqueue more). Returns after finish()
    /// once the queue is written. Throws when a write fails or times out.
    boost::asio::awaitable<void> run_writer(std::chrono::milliseconds timeout,
                                            const std::function<void(std::size_t)>& on_written);
    /// run_writer writes what is queued (an ERROR, a RECEIPT), then returns: a graceful close.
    void finish();
    /// Wakes run_writer so that it throws `why` (the connection must go).
    void fail(std::string why);

    void close();
    bool is_open() const { return socket_.is_open(); }
    boost::asio::ip::tcp::socket& socket() noexcept { return socket_; }

private:
    template <class Buffers>
    boost::asio::awaitable<std::size_t> write_some_all(const Buffers& b);

    boost::asio::ip::tcp::socket socket_;
    // Only on a TLS connection (an Asio SSL stream is ~0.5 kB even unused: a plain-TCP broker
    // with thousands of clients pays nothing for it). Opaque here: OpenSSL is used only behind
    // bus/detail/openssl.hpp.
    detail::tls_ptr tls_;
    boost::asio::steady_timer signal_;
    // Frames waiting for the writer, oldest at queue_[qhead_]. A vector, not a deque: an empty
    // std::deque still holds a 512-byte node and its map, on every idle connection.
    std::vector<std::string> queue_;
    std::size_t qhead_ = 0;
    std::size_t queued_ = 0;
    bool writer_waiting_ = false;  // run_writer waits on signal_: enqueue must wake it
    std::size_t max_queued_;
    bool finishing_ = false;
    std::string broken_;
    // Room for read_size_ more bytes at the tail of the read buffer (moving the unconsumed
    // bytes to the front, or growing it); returns where the read lands.
    char* read_room();

    stomp::parser parser_;
    // The read buffer: [rstart_, rlen_) not yet parsed, [rlen_, rcap_) room for the next read.
    // Not a std::string: its resize() zero-fills the room before every read. Freed while the
    // connection is idle.
    std::unique_ptr<char[]> rbuf_;
    std::size_t rcap_ = 0;
    std::size_t rlen_ = 0;
    std::size_t rstart_ = 0;
    std::size_t read_size_ = 16 * 1024;
};

} // namespace bus
