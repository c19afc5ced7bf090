// Producers never lose an event: broker down -> spooled within the budget -> broker up ->
// delivered once, in order, each spool file removed only after its receipt.
#include "bus/delivery.hpp"

#include "bus/event.hpp"
#include "fake_broker.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <doctest/doctest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <sys/socket.h>
#include <unistd.h>
#include <thread>
#include <vector>

namespace net = boost::asio;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

spdlog::logger& quiet()
{
    static auto l = std::make_shared<spdlog::logger>("delivery", std::make_shared<spdlog::sinks::null_sink_mt>());
    return *l;
}

bus::stomp::frame event_frame(int i)
{
    bus::stomp::frame f("SEND");
    f.add("destination", "/queue/future.git.commits");
    f.add("dk-event-id", "event-" + std::to_string(i));
    f.body = "payload " + std::to_string(i);
    return f;
}

fs::path temp_spool()
{
    return fs::temp_directory_path() / ("dk-spool-" + bus::new_event_id());
}

} // namespace

TEST_CASE("send_once with no broker spools within the budget")
{
    // A port with nothing listening.
    std::uint16_t port = 0;
    {
        net::io_context io;
        test::fake_broker fb(io.get_executor());
        port = fb.port();
    }
    auto dir = temp_spool();
    auto opts = bus::options_from_url("stomp://127.0.0.1:" + std::to_string(port));
    auto t0 = std::chrono::steady_clock::now();
    auto rep = bus::send_once(opts, {.dir = dir}, {event_frame(1), event_frame(2)}, 1000ms, quiet());
    auto took = std::chrono::steady_clock::now() - t0;
    CHECK(rep.published == 0);
    CHECK(rep.spooled == 2);
    CHECK(took < 2500ms);  // about a second: a git push is never held up longer
    bus::outbox box({.dir = dir});
    CHECK(box.pending().size() == 2);
    fs::remove_all(dir);
}

namespace {

std::uint16_t refusing_port()
{
    net::io_context io;
    test::fake_broker fb(io.get_executor());
    return fb.port();  // closed again when fb goes: connections to it are refused
}

} // namespace

TEST_CASE("send_once spools at once when every broker refuses the connection")
{
    // Two brokers, both refusing, and a reconnect delay of a minute: a client that backed off
    // would wait out the whole 30 s budget. Refused everywhere is a definite answer.
    auto a = refusing_port(), b = refusing_port();
    auto dir = temp_spool();
    auto opts = bus::options_from_url("failover://(stomp://127.0.0.1:" + std::to_string(a) + ",stomp://127.0.0.1:" +
                                          std::to_string(b) + ")",
                                      "initialReconnectDelay=60000&useExponentialBackOff=false&randomize=false");
    auto t0 = std::chrono::steady_clock::now();
    auto rep = bus::send_once(opts, {.dir = dir}, {event_frame(1), event_frame(2)}, 30000ms, quiet());
    auto took = std::chrono::steady_clock::now() - t0;
    CHECK(rep.published == 0);
    CHECK(rep.spooled == 2);
    CHECK(rep.possibly_sent == 0);
    CHECK(took < 20s);  // not the 30 s budget (a bound, not a speed: the answer is immediate)
    CHECK(bus::outbox({.dir = dir}).pending().size() == 2);
    fs::remove_all(dir);
}

namespace {

// A loopback broker address that drops every SYN, as a host that does not answer: a listener
// with a backlog of 0 whose accept queue is filled by connections nobody accepts. The filling
// connects are plain non-blocking sockets (Asio's connect would wait for each to complete).
struct blackhole {
    net::io_context io;
    net::ip::tcp::acceptor acceptor{io};
    std::vector<int> held;
    blackhole()
    {
        net::ip::tcp::endpoint any(net::ip::make_address("127.0.0.1"), 0);
        acceptor.open(any.protocol());
        acceptor.bind(any);
        acceptor.listen(0);
        auto to = acceptor.local_endpoint();
        for (int i = 0; i < 4; ++i) {
            int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            REQUIRE(fd >= 0);
            held.push_back(fd);
            (void)::connect(fd, to.data(), static_cast<socklen_t>(to.size()));  // queued, or in progress for ever
        }
    }
    ~blackhole()
    {
        for (int fd : held) ::close(fd);
    }
    blackhole(const blackhole&) = delete;
    blackhole& operator=(const blackhole&) = delete;
    std::uint16_t port() const { return acceptor.local_endpoint().port(); }
};

} // namespace

TEST_CASE("send_once against a broker host that drops every packet spools within the budget")
{
    blackhole hole;
    auto dir = temp_spool();
    auto opts = bus::options_from_url("stomp://127.0.0.1:" + std::to_string(hole.port()));
    auto t0 = std::chrono::steady_clock::now();
    auto rep = bus::send_once(opts, {.dir = dir}, {event_frame(1), event_frame(2)}, 1500ms, quiet());
    auto took = std::chrono::steady_clock::now() - t0;
    CHECK(rep.published == 0);
    CHECK(rep.spooled == 2);
    CHECK(rep.possibly_sent == 0);
    // It waited for the broker (a dropped SYN is no answer, unlike a refusal) ...
    CHECK(took >= 1000ms);
    // ... for the budget less the tenth kept for the spool, not the budget and then the spool.
    CHECK(took < 2500ms);
    CHECK(bus::outbox({.dir = dir}).pending().size() == 2);
    fs::remove_all(dir);
}

TEST_CASE("send_once fails over past a refusing broker to one that answers")
{
    // One refusal is not "refused everywhere": the next broker of the URL gets the event.
    net::io_context io;
    test::fake_broker fb(io.get_executor());
    auto dead = refusing_port();
    auto dir = temp_spool();
    bus::send_report rep;
    std::thread producer([&] {
        auto opts = bus::options_from_url("failover://(stomp://127.0.0.1:" + std::to_string(dead) +
                                              ",stomp://127.0.0.1:" + std::to_string(fb.port()) + ")",
                                          "initialReconnectDelay=10&randomize=false");
        rep = bus::send_once(opts, {.dir = dir}, {event_frame(1)}, 5000ms, quiet());
    });
    std::vector<std::string> received;
    net::co_spawn(
        io,
        [&]() -> net::awaitable<void> {
            auto conn = co_await fb.accept(5000ms);
            REQUIRE(conn);
            co_await conn->handshake("version:1.2\n");
            for (;;) {
                auto f = co_await conn->frame(5000ms);
                if (!f) break;
                if (f->command == "SEND") received.push_back(std::string(f->get("dk-event-id")));
                if (auto r = f->find("receipt")) co_await conn->send(test::receipt(*r));
                if (f->command == "DISCONNECT") break;
            }
        },
        net::detached);
    io.run_for(10s);
    producer.join();
    CHECK(received == std::vector<std::string>{"event-1"});
    CHECK(rep.published == 1);
    CHECK(rep.spooled == 0);
    fs::remove_all(dir);
}

TEST_CASE("spooled events are delivered once and in order when the broker is back")
{
    net::io_context io;
    test::fake_broker fb(io.get_executor());
    auto dir = temp_spool();
    {
        bus::outbox box({.dir = dir});
        for (int i = 1; i <= 3; ++i) box.spool(event_frame(i));
    }
    bus::send_report rep;
    std::vector<std::string> received;
    std::thread producer([&] {
        auto opts = bus::options_from_url("stomp://127.0.0.1:" + std::to_string(fb.port()));
        rep = bus::send_once(opts, {.dir = dir}, {event_frame(4)}, 5000ms, quiet());
    });
    bool done = false;
    net::co_spawn(
        io,
        [&]() -> net::awaitable<void> {
            auto conn = co_await fb.accept(5000ms);
            REQUIRE(conn);
            co_await conn->handshake("version:1.2\n");
            for (int i = 0; i < 4; ++i) {
                auto f = co_await conn->frame(5000ms);
                REQUIRE(f);
                if (f->command != "SEND") {
                    --i;
                    continue;
                }
                received.push_back(std::string(f->get("dk-event-id")));
                co_await conn->send(test::receipt(f->get("receipt")));
            }
            auto d = co_await conn->frame(5000ms);
            if (d && d->command == "DISCONNECT") co_await conn->send(test::receipt(d->get("receipt")));
            done = true;
        },
        net::detached);
    io.run_for(15s);
    producer.join();
    CHECK(done);
    CHECK(received == std::vector<std::string>{"event-1", "event-2", "event-3", "event-4"});
    CHECK(rep.drained.delivered == 3);
    CHECK(rep.published == 1);
    CHECK(rep.spooled == 0);
    CHECK(bus::outbox({.dir = dir}).pending().empty());
    fs::remove_all(dir);
}

TEST_CASE("a drain interrupted before a receipt keeps the file for the next run")
{
    net::io_context io;
    test::fake_broker fb(io.get_executor());
    auto dir = temp_spool();
    {
        bus::outbox box({.dir = dir});
        box.spool(event_frame(1));
        box.spool(event_frame(2));
    }
    bus::send_report rep;
    std::thread producer([&] {
        auto opts = bus::options_from_url("stomp://127.0.0.1:" + std::to_string(fb.port()),
                                          "maxReconnectAttempts=1");
        rep = bus::send_once(opts, {.dir = dir}, {event_frame(3)}, 1500ms, quiet());
    });
    net::co_spawn(
        io,
        [&]() -> net::awaitable<void> {
            auto conn = co_await fb.accept(5000ms);
            REQUIRE(conn);
            co_await conn->handshake("version:1.2\n");
            auto first = co_await conn->frame(5000ms);
            REQUIRE(first);
            co_await conn->send(test::receipt(first->get("receipt")));
            co_await conn->frame(5000ms);  // event-2: never receipted; the broker "dies"
            conn->close();
        },
        net::detached);
    io.run_for(10s);
    producer.join();
    CHECK(rep.drained.delivered == 1);
    CHECK(rep.spooled == 1);  // event-3 queued behind event-2, order kept
    bus::outbox box({.dir = dir});
    auto left = box.pending();
    REQUIRE(left.size() == 2);
    CHECK(box.load(left[0])->get("dk-event-id") == "event-2");
    CHECK(box.load(left[1])->get("dk-event-id") == "event-3");
    fs::remove_all(dir);
}
