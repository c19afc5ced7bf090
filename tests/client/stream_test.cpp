// bus::stomp_stream as a server uses it (the stomp-broker): an accepted socket, a CONNECT's limits
// and read size before login and the configured ones after, a flush-then-close writer, and the
// reason a read ended.
#include "bus/stomp_stream.hpp"

#include "../support/async_test.hpp"

#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>

#include <doctest/doctest.h>

namespace net = boost::asio;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;
using namespace std::string_literals;

namespace {

// A connected pair on loopback: the accepted side (the server's) and the client's.
net::awaitable<std::pair<tcp::socket, tcp::socket>> loopback_pair(net::any_io_executor ex)
{
    tcp::acceptor acc(ex, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    tcp::socket client(ex);
    co_await client.async_connect(acc.local_endpoint(), net::use_awaitable);
    auto server = co_await acc.async_accept(net::use_awaitable);
    co_return std::pair{std::move(server), std::move(client)};
}

bus::stomp::limits connect_limits()
{
    bus::stomp::limits l;
    l.max_frame = l.max_body = l.max_line = 128;
    l.max_headers = 8;
    return l;
}

} // namespace

TEST_CASE("stomp_stream on an accepted socket - CONNECT limits before login and the configured ones after")
{
    test::run_test([](net::any_io_executor ex) -> net::awaitable<void> {
        auto [server, client] = co_await loopback_pair(ex);
        bus::stomp_stream st(std::move(server), connect_limits(), 1 << 20);
        st.set_read_size(16);
        std::string big(1000, 'x');
        // A CONNECT, then (pipelined in the same write) a SEND larger than a CONNECT may be.
        std::string bytes = "CONNECT\naccept-version:1.2\n\n\0"s + "SEND\ndestination:/queue/a\n\n" + big + '\0';
        co_await net::async_write(client, net::buffer(bytes), net::use_awaitable);
        int reads = 0;
        auto item = co_await st.read(bus::stomp_stream::clock::now() + 5s, [&] { ++reads; });
        CHECK(item.frame.command == "CONNECT");
        CHECK(reads >= 2);  // 29 bytes in reads of at most 16
        st.set_limits({});
        st.set_version(bus::stomp::version::v1_2);
        st.set_read_size(16 * 1024);
        item = co_await st.read(bus::stomp_stream::clock::now() + 5s);
        CHECK(item.frame.command == "SEND");
        CHECK(item.frame.body == big);

        // Under a CONNECT's limits the same SEND is refused with the codec's reason.
        auto [server2, client2] = co_await loopback_pair(ex);
        bus::stomp_stream pre(std::move(server2), connect_limits(), 1 << 20);
        co_await net::async_write(client2, net::buffer(bytes), net::use_awaitable);
        CHECK((co_await pre.read()).frame.command == "CONNECT");
        std::error_code refused;
        try {
            co_await pre.read(bus::stomp_stream::clock::now() + 5s);
        } catch (const bus::stream_protocol_error& e) {
            refused = e.code;
        }
        CHECK(refused == bus::stomp::error::frame_too_large);
    });
}

TEST_CASE("stomp_stream - finish writes what is queued and then the writer ends - a closed peer is eof")
{
    test::run_test([](net::any_io_executor ex) -> net::awaitable<void> {
        auto [server, client] = co_await loopback_pair(ex);
        bus::stomp_stream st(std::move(server), {}, 64);
        CHECK(st.enqueue("RECEIPT\nreceipt-id:1\n\n\0"s));
        CHECK(st.enqueue("ERROR\nmessage:bye\n\n\0"s));
        CHECK_FALSE(st.enqueue(std::string(64, 'x')));  // past the bound: refused, nothing queued
        CHECK(st.queued_bytes() == 43);
        st.finish();
        std::size_t written = 0;
        co_await st.run_writer(5000ms, [&](std::size_t n) { written += n; });
        CHECK(written == 43);
        CHECK(st.queued_bytes() == 0);
        std::string got(43, '\0');
        co_await net::async_read(client, net::buffer(got), net::use_awaitable);
        CHECK(got == "RECEIPT\nreceipt-id:1\n\n\0ERROR\nmessage:bye\n\n\0"s);

        client.close();
        boost::system::error_code why;
        try {
            co_await st.read(bus::stomp_stream::clock::now() + 5s);
        } catch (const bus::stream_read_error& e) {
            why = e.code;
        }
        CHECK(why == net::error::eof);
    });
}

TEST_CASE("stomp_stream - a burst larger than the socket takes arrives whole and in order")
{
    // Small frames share buffers (enqueue and enqueue_copy), large ones keep their own; the
    // writer writes what the socket takes at once and waits for the rest (a partial write is
    // certain: 16 MB against loopback's socket buffers).
    test::run_test([](net::any_io_executor ex) -> net::awaitable<void> {
        auto [server, client] = co_await loopback_pair(ex);
        bus::stomp_stream st(std::move(server), {}, 64 << 20);
        std::string expected;
        for (int i = 0; i < 8000; ++i) {
            std::string f = "MESSAGE\nn:" + std::to_string(i) + "\n\n" + std::string(static_cast<std::size_t>(i % 97), 'a') + '\0';
            expected += f;
            CHECK(i % 2 ? st.enqueue(std::move(f)) : st.enqueue_copy(f));
            if (i % 53 == 0) {
                std::string big = "MESSAGE\nbig:" + std::to_string(i) + "\n\n" + std::string(100000, 'b') + '\0';
                expected += big;
                CHECK(st.enqueue(std::move(big)));
            }
        }
        CHECK(st.queued_bytes() == expected.size());
        st.finish();
        std::size_t written = 0;
        std::exception_ptr failed;
        bool done = false;
        std::function<void(std::size_t)> count = [&](std::size_t n) { written += n; };  // outlives the writer
        net::co_spawn(ex, st.run_writer(10000ms, count), [&](std::exception_ptr e) {
            failed = e;
            done = true;
        });
        std::string got(expected.size(), '\0');
        co_await net::async_read(client, net::buffer(got), net::use_awaitable);
        CHECK(co_await test::eventually([&] { return done; }, 5000ms));
        CHECK_FALSE(failed);
        CHECK(written == expected.size());
        CHECK(st.queued_bytes() == 0);
        CHECK(got == expected);
    });
}
