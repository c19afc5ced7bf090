#include "fake_broker.hpp"

#include <fcntl.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <stdexcept>

namespace test {

namespace net = boost::asio;
using namespace net::experimental::awaitable_operators;
using tcp = net::ip::tcp;

net::awaitable<std::optional<item>> fake_conn::next(std::chrono::milliseconds timeout)
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        std::error_code ec;
        std::size_t used = parser_.put(buf_, ec);
        if (!ec) {
            buf_.erase(0, used);
            if (parser_.got() == bus::stomp::parser::item::heartbeat) {
                ++heartbeats;
                co_return item{heartbeat_item{}};
            }
            co_return item{parser_.release()};
        }
        if (ec != bus::stomp::error::need_more)
            throw std::runtime_error("fake broker: client sent a bad frame: " + ec.message());
        if (eof_) co_return std::nullopt;
        char tmp[4096];
        net::steady_timer t(co_await net::this_coro::executor);
        t.expires_at(deadline);
        auto r = co_await (socket_.async_read_some(net::buffer(tmp), net::as_tuple(net::use_awaitable)) ||
                           t.async_wait(net::use_awaitable));
        if (r.index() == 1) co_return std::nullopt;
        auto [rec, n] = std::get<0>(r);
        if (rec) {
            eof_ = true;
            co_return std::nullopt;
        }
        raw.append(tmp, n);
        buf_.append(tmp, n);
    }
}

net::awaitable<std::optional<bus::stomp::frame>> fake_conn::frame(std::chrono::milliseconds timeout)
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) co_return std::nullopt;
        auto i = co_await next(left);
        if (!i) co_return std::nullopt;
        if (auto* f = std::get_if<bus::stomp::frame>(&*i)) co_return std::move(*f);
    }
}

net::awaitable<void> fake_conn::send(std::string bytes)
{
    co_await net::async_write(socket_, net::buffer(bytes), net::use_awaitable);
}

net::awaitable<bus::stomp::frame> fake_conn::handshake(std::string connected_headers)
{
    auto f = co_await frame(std::chrono::milliseconds(5000));
    if (!f || f->command != "CONNECT") throw std::runtime_error("fake broker: no CONNECT");
    co_await send("CONNECTED\n" + connected_headers + "\n" + std::string(1, '\0'));
    if (auto v = f->find("accept-version"); v && v->find("1.2") != std::string_view::npos &&
                                            connected_headers.find("version:1.2") != std::string::npos)
        parser_.set_version(bus::stomp::version::v1_2);
    co_return *f;
}

void fake_conn::close()
{
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
}

fake_broker::fake_broker(const net::any_io_executor& ex)
    : acceptor_(ex, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0))
{
    // Close-on-exec like the client's sockets, so a test that lists a child's descriptors sees
    // only what libbus leaked.
    ::fcntl(acceptor_.native_handle(), F_SETFD, FD_CLOEXEC);
}

std::uint16_t fake_broker::port() const { return acceptor_.local_endpoint().port(); }

net::awaitable<std::shared_ptr<fake_conn>> fake_broker::accept(std::chrono::milliseconds timeout)
{
    net::steady_timer t(co_await net::this_coro::executor);
    t.expires_after(timeout);
    auto r = co_await (acceptor_.async_accept(net::use_awaitable) || t.async_wait(net::use_awaitable));
    if (r.index() == 1) co_return nullptr;
    ::fcntl(std::get<0>(r).native_handle(), F_SETFD, FD_CLOEXEC);
    co_return std::make_shared<fake_conn>(std::move(std::get<0>(r)));
}

void fake_broker::close()
{
    boost::system::error_code ignored;
    acceptor_.close(ignored);
}

std::string receipt(std::string_view id)
{
    return "RECEIPT\nreceipt-id:" + std::string(id) + "\n\n" + std::string(1, '\0');
}

} // namespace test
