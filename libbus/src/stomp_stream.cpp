#include "bus/stomp_stream.hpp"

#include "bus/detail/files.hpp"
#include "bus/detail/race.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <algorithm>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

namespace bus {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace net::experimental::awaitable_operators;
using detail::capture;

namespace {

constexpr auto tuple_awaitable = net::as_tuple(net::use_awaitable);

template <class T>
net::awaitable<T> timed(net::awaitable<T> op, stomp_stream::time_point deadline, const char* what)
{
    net::steady_timer t(co_await net::this_coro::executor);
    t.expires_at(deadline);
    // The timer as a tuple: cancelled when `op` finishes first (every time), it must not throw.
    auto r = co_await (capture(std::move(op)) || t.async_wait(tuple_awaitable));
    if (r.index() == 1) {
        if (auto [ec] = std::get<1>(r); ec) throw boost::system::system_error(ec);
        throw std::runtime_error(std::string(what) + " timed out");
    }
    auto [value, error] = std::get<0>(std::move(r));
    if (error) std::rethrow_exception(error);
    co_return std::move(*value);
}

net::awaitable<void> timed(net::awaitable<void> op, stomp_stream::time_point deadline, const char* what)
{
    net::steady_timer t(co_await net::this_coro::executor);
    t.expires_at(deadline);
    // The timer as a tuple: cancelled when `op` finishes first (every time), it must not throw.
    auto r = co_await (capture(std::move(op)) || t.async_wait(tuple_awaitable));
    if (r.index() == 1) {
        if (auto [ec] = std::get<1>(r); ec) throw boost::system::system_error(ec);
        throw std::runtime_error(std::string(what) + " timed out");
    }
    if (auto error = std::get<0>(r)) std::rethrow_exception(error);
}

} // namespace

stomp_stream::stomp_stream(const net::any_io_executor& ex, stomp::limits lim, std::size_t max_queued_bytes)
    : socket_(ex), signal_(ex), max_queued_(max_queued_bytes), parser_(lim)
{
}

stomp_stream::stomp_stream(tcp::socket s, stomp::limits lim, std::size_t max_queued_bytes)
    : socket_(std::move(s)), signal_(socket_.get_executor()), max_queued_(max_queued_bytes), parser_(lim)
{
}

net::awaitable<void> stomp_stream::connect(const endpoint& ep, boost::asio::ssl::context* tls, bool verify, time_point deadline)
{
    tcp::resolver resolver(socket_.get_executor());
    tcp::resolver::results_type results;
    boost::system::error_code literal;
    auto address = net::ip::make_address(ep.host, literal);
    if (!literal) {
        // An address literal needs no resolver (whose first use starts a thread: a cost for the
        // one-shot producers, the git hook).
        results = tcp::resolver::results_type::create(tcp::endpoint(address, ep.port), ep.host,
                                                      std::to_string(ep.port));
    } else {
        results = co_await timed(resolver.async_resolve(ep.host, std::to_string(ep.port), net::use_awaitable),
                                 deadline, "resolve");
    }
    // Each address in turn, on a socket made close-on-exec before it connects: Asio (1.81) opens
    // sockets without SOCK_CLOEXEC, and a child a daemon spawns must never inherit the
    // authenticated broker connection.
    co_await timed(
        [](tcp::socket& s, tcp::resolver::results_type r) -> net::awaitable<void> {
            boost::system::error_code last = net::error::host_not_found;
            for (const auto& e : r) {
                boost::system::error_code ec;
                if (s.is_open()) s.close(ec);
                s.open(e.endpoint().protocol());
                detail::set_cloexec(s.native_handle());
                std::tie(ec) = co_await s.async_connect(e.endpoint(), tuple_awaitable);
                if (!ec) co_return;
                last = ec;
            }
            throw boost::system::system_error(last);
        }(socket_, results),
        deadline, "TCP connect");
    socket_.set_option(tcp::no_delay(true));
    socket_.set_option(net::socket_base::keep_alive(true));
    if (ep.tls) {
        if (!tls) throw std::runtime_error("TLS endpoint without a TLS context");
        tls_ = detail::tls_client(socket_, *tls, ep.host, verify);
        co_await timed(detail::tls_handshake(*tls_, true), deadline, "TLS handshake");
    }
}

net::awaitable<void> stomp_stream::server_handshake(boost::asio::ssl::context& tls, time_point deadline)
{
    tls_ = detail::tls_server(socket_, tls);
    co_await timed(detail::tls_handshake(*tls_, false), deadline, "TLS handshake");
}

char* stomp_stream::read_room()
{
    const std::size_t keep = rlen_ - rstart_;
    if (rcap_ - rlen_ >= read_size_) return rbuf_.get() + rlen_;
    if (keep + read_size_ <= rcap_) {
        // The parsed frames' bytes go; the partial frame moves to the front (the parser's
        // progress is relative to the start of the unconsumed bytes, so it survives the move).
        if (keep > 0) std::memmove(rbuf_.get(), rbuf_.get() + rstart_, keep);
    } else {
        // Grows geometrically (a large frame arrives in few copies) to at most about twice a
        // partial frame plus one read (the parser bounds the frame).
        const std::size_t cap = std::max(keep + read_size_, 2 * rcap_);
        auto bigger = std::make_unique_for_overwrite<char[]>(cap);
        if (keep > 0) std::memcpy(bigger.get(), rbuf_.get() + rstart_, keep);
        rbuf_ = std::move(bigger);
        rcap_ = cap;
    }
    rstart_ = 0;
    rlen_ = keep;
    return rbuf_.get() + rlen_;
}

net::awaitable<stomp_stream::item> stomp_stream::read(time_point deadline, const std::function<void()>& on_bytes)
{
    view_item v = co_await read_view(deadline, on_bytes);
    if (v.heartbeat) co_return item{true, {}};
    co_return item{false, v.frame.to_frame()};
}

net::awaitable<stomp_stream::view_item> stomp_stream::read_view(time_point deadline,
                                                                const std::function<void()>& on_bytes)
{
    for (;;) {
        {
            std::error_code ec;
            std::string_view view(rbuf_.get() + rstart_, rlen_ - rstart_);
            std::size_t used = parser_.put_view(view, ec);
            if (!ec) {
                // The frame's bytes stay where they are until the next read (the views need
                // them); only the offsets move on.
                rstart_ += used;
                if (rstart_ == rlen_) rstart_ = rlen_ = 0;
                if (parser_.got() == stomp::parser::item::heartbeat) co_return view_item{true, {}};
                co_return view_item{false, parser_.view()};
            }
            if (ec != stomp::error::need_more) throw stream_protocol_error(ec, "bad frame from broker: " + ec.message());
        }
        auto op = [&]() -> net::awaitable<std::tuple<boost::system::error_code, std::size_t>> {
            if (tls_) {
                // OpenSSL may hold decrypted bytes the socket no longer shows: read through it,
                // straight into the read buffer's tail.
                char* room = read_room();
                auto [e, n] = co_await detail::tls_read_some(*tls_, net::buffer(room, read_size_));
                if (!e) rlen_ += n;
                co_return std::tuple{e, n};
            }
            // Plain TCP, straight into the tail of the read buffer (no staging copy, no zero
            // fill). While bytes keep coming, a non-blocking read first (one syscall, as Asio's
            // speculative read); once the socket is drained and nothing is pending, the buffer is
            // freed before waiting for readability, so an idle connection holds no read buffer
            // (a broker's thousand idle clients, a daemon's quiet subscription).
            auto read_now = [&](boost::system::error_code& e) {
                if (!socket_.non_blocking()) socket_.non_blocking(true, e);
                if (e) return std::size_t{0};
                char* room = read_room();
                std::size_t n = socket_.read_some(net::buffer(room, read_size_), e);
                if (e) return std::size_t{0};
                rlen_ += n;
                return n;
            };
            bool speculate = rbuf_ != nullptr;
            for (;;) {
                if (speculate) {
                    boost::system::error_code e;
                    std::size_t n = read_now(e);
                    if (e != net::error::would_block && e != net::error::try_again) co_return std::tuple{e, n};
                }
                if (rstart_ == rlen_) {
                    rbuf_.reset();
                    rcap_ = rlen_ = rstart_ = 0;
                }
                auto [we] = co_await socket_.async_wait(tcp::socket::wait_read, tuple_awaitable);
                if (we) co_return std::tuple{we, std::size_t{0}};
                speculate = true;
            }
        };
        auto [rec, n] = deadline == time_point::max() ? co_await op() : co_await timed(op(), deadline, "read");
        if (rec) {
            if (rec == net::error::eof || detail::tls_truncated(rec))
                throw stream_read_error(rec, "broker closed the connection");
            throw stream_read_error(rec, "read: " + rec.message());
        }
        (void)n;
        if (on_bytes) on_bytes();
    }
}

template <class Buffers>
net::awaitable<std::size_t> stomp_stream::write_some_all(const Buffers& b)
{
    if (tls_) {
        std::vector<net::const_buffer> v(net::buffer_sequence_begin(b), net::buffer_sequence_end(b));
        co_return co_await detail::tls_write(*tls_, std::move(v));
    }
    co_return co_await net::async_write(socket_, b, net::use_awaitable);
}

net::awaitable<void> stomp_stream::write(std::string_view bytes, time_point deadline)
{
    co_await timed(write_some_all(net::buffer(bytes)), deadline, "write");
}

namespace {
// Frames up to this size are coalesced into the queue's last buffer while it stays under
// coalesce_limit; larger ones keep their own buffer (no copy of a big body).
constexpr std::size_t coalesce_frame = 8 * 1024;
constexpr std::size_t coalesce_limit = 64 * 1024;
} // namespace

bool stomp_stream::enqueue(std::string bytes)
{
    if (!broken_.empty()) return false;
    if (queued_ + bytes.size() > max_queued_) return false;
    queued_ += bytes.size();
    if (bytes.size() <= coalesce_frame && qhead_ < queue_.size() &&
        queue_.back().size() + bytes.size() <= coalesce_limit)
        queue_.back() += bytes;
    else
        queue_.push_back(std::move(bytes));
    if (writer_waiting_) signal_.cancel();
    return true;
}

bool stomp_stream::enqueue_copy(std::string_view bytes)
{
    if (!broken_.empty()) return false;
    if (queued_ + bytes.size() > max_queued_) return false;
    queued_ += bytes.size();
    if (bytes.size() <= coalesce_frame && qhead_ < queue_.size() &&
        queue_.back().size() + bytes.size() <= coalesce_limit) {
        queue_.back() += bytes;
    } else {
        std::string b;
        // Room for the frames that follow in a burst; freed once written.
        if (bytes.size() <= coalesce_frame) b.reserve(4096);
        b.append(bytes);
        queue_.push_back(std::move(b));
    }
    if (writer_waiting_) signal_.cancel();
    return true;
}

void stomp_stream::set_limits(stomp::limits lim)
{
    auto v = parser_.version();
    parser_ = stomp::parser(lim);
    parser_.set_version(v);
}

void stomp_stream::finish()
{
    finishing_ = true;
    signal_.cancel();
}

void stomp_stream::fail(std::string why)
{
    if (broken_.empty()) broken_ = std::move(why);
    signal_.cancel();
}

net::awaitable<void> stomp_stream::run_writer(std::chrono::milliseconds timeout,
                                              const std::function<void(std::size_t)>& on_written)
{
    std::vector<std::string> batch;
    std::vector<net::const_buffer> bufs;
    for (;;) {
        if (!broken_.empty()) throw std::runtime_error(broken_);
        if (!socket_.is_open()) throw std::runtime_error("connection closed");
        if (qhead_ == queue_.size()) {
            if (finishing_) co_return;
            // Idle: hold no batch or queue storage while waiting (a burst's 256 entries are
            // ~12 kB per connection otherwise).
            if (queue_.capacity() > 16) {
                std::vector<std::string>().swap(queue_);
                qhead_ = 0;
            }
            if (batch.capacity() > 16) std::vector<std::string>().swap(batch);
            if (bufs.capacity() > 16) std::vector<net::const_buffer>().swap(bufs);
            signal_.expires_at(time_point::max());
            writer_waiting_ = true;
            co_await signal_.async_wait(tuple_awaitable);
            writer_waiting_ = false;
            continue;
        }
        batch.clear();
        bufs.clear();
        std::size_t bytes = 0;
        while (qhead_ < queue_.size() && batch.size() < 256 && bytes < 512 * 1024) {
            bytes += queue_[qhead_].size();
            batch.push_back(std::move(queue_[qhead_++]));
        }
        if (qhead_ == queue_.size()) {
            queue_.clear();
            qhead_ = 0;
        } else if (qhead_ >= 1024 && qhead_ * 2 >= queue_.size()) {
            queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(qhead_));
            qhead_ = 0;
        }
        for (auto& b : batch) bufs.push_back(net::buffer(b));
        // Plain TCP: first what the socket takes at once, without a wait (a reader keeping up
        // takes it all: no timer, no coroutine per write); the rest, if any, waits below.
        std::size_t left = bytes;
        if (!tls_) {
            boost::system::error_code e;
            if (!socket_.non_blocking()) socket_.non_blocking(true, e);
            std::size_t first = 0;  // bufs[first..] still to write
            while (!e && first < bufs.size()) {
                std::size_t n = socket_.write_some(
                    std::span<const net::const_buffer>(bufs).subspan(first), e);
                if (e) break;
                left -= n;
                while (first < bufs.size() && n >= bufs[first].size()) n -= bufs[first++].size();
                if (first < bufs.size()) bufs[first] += n;
            }
            if (e && e != net::error::would_block && e != net::error::try_again) throw boost::system::system_error(e);
            bufs.erase(bufs.begin(), bufs.begin() + static_cast<std::ptrdiff_t>(first));
        }
        if (left > 0) {
            // The deadline allows a slow link ~64 KiB/s on top of the base timeout, so one large
            // message is not cut off forever; a stalled peer still trips it.
            auto allowance = std::chrono::milliseconds(static_cast<std::int64_t>(left / 64));
            co_await timed(write_some_all(bufs), clock::now() + timeout + allowance, "write");
        }
        queued_ -= bytes;
        batch.clear();  // the written frames go now, not when the next batch starts
        bufs.clear();
        if (on_written) on_written(bytes);
    }
}

void stomp_stream::close()
{
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    signal_.cancel();
}

} // namespace bus
