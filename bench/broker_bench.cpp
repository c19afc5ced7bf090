// One broker benchmark case with libbus as the client for every broker (the same client, so the
// ratios compare brokers): one publisher with pipelined receipts, N subscribers on a topic
// (fan-out) or N consumers sharing a queue. Reports deliveries/s and end-to-end latency
// percentiles from a timestamp in each body. Prints one JSON line.
//
//   broker_bench --url stomp://h:p --mode topic|queue --subscribers N --count M --size B
//                [--persistent] [--rate MSGS_PER_S] [--ack auto|client-individual]
#include "bus/client.hpp"

#include <CLI/CLI.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iostream>
#include <random>

namespace net = boost::asio;
using steady = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

std::int64_t now_ns()
{
    return std::chrono::duration_cast<std::chrono::nanoseconds>(steady::now().time_since_epoch()).count();
}

struct results {
    std::vector<double> latencies_us;
    std::uint64_t delivered = 0;
    std::int64_t first_send = 0;
    std::int64_t last_delivery = 0;
    int publish_failures = 0;
    int published = 0;
};

double percentile(std::vector<double>& v, double p)
{
    if (v.empty()) return 0;
    std::size_t k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

} // namespace

int main(int argc, char** argv)
{
    CLI::App app{"broker_bench - one broker case, libbus client"};
    std::string url, mode = "topic", ack = "auto";
    int subscribers = 1, count = 10000, size = 200, window = 1000;
    double rate = 0;
    bool persistent = false;
    app.add_option("--url", url)->required();
    app.add_option("--mode", mode);
    app.add_option("--subscribers", subscribers);
    app.add_option("--count", count);
    app.add_option("--size", size);
    app.add_option("--rate", rate, "messages per second (0 = as fast as receipts allow)");
    app.add_option("--window", window, "publishes in flight");
    app.add_option("--ack", ack);
    app.add_flag("--persistent", persistent);
    CLI11_PARSE(app, argc, argv);

    auto log = std::make_shared<spdlog::logger>("bench", std::make_shared<spdlog::sinks::null_sink_mt>());
    net::io_context io(1);
    auto opts = bus::options_from_url(url, "maxReconnectAttempts=3");
    opts.receipt_timeout = milliseconds(60000);
    std::string dest = (mode == "queue" ? "/queue/bench." : "/topic/bench.") + std::to_string(std::random_device{}() % 1000000);
    const std::uint64_t expected = mode == "queue" ? static_cast<std::uint64_t>(count)
                                                   : static_cast<std::uint64_t>(count) * static_cast<std::uint64_t>(subscribers);
    results r;
    r.latencies_us.reserve(expected);
    std::vector<std::unique_ptr<bus::client>> subs;
    for (int i = 0; i < subscribers; ++i) subs.push_back(std::make_unique<bus::client>(io.get_executor(), opts, *log));
    bus::client pub(io.get_executor(), opts, *log);
    int exit_code = 0;

    auto task = [&]() -> net::awaitable<void> {
        for (auto& s : subs) net::co_spawn(io, s->run(), net::detached);
        net::co_spawn(io, pub.run(), net::detached);
        std::vector<std::string> ids;
        for (auto& s : subs) {
            bus::subscription_options so;
            so.destination = dest;
            so.ack = ack == "auto" ? bus::ack_mode::automatic : bus::ack_mode::client_individual;
            so.prefetch = 1000;
            ids.push_back(s->subscribe(so, [&](const bus::message& m) -> net::awaitable<bus::disposition> {
                std::int64_t sent = 0;
                if (m.body().size() >= sizeof sent) std::memcpy(&sent, m.body().data(), sizeof sent);
                auto now = now_ns();
                r.latencies_us.push_back(static_cast<double>(now - sent) / 1000.0);
                r.last_delivery = now;
                ++r.delivered;
                co_return bus::disposition::ack;
            }));
        }
        for (std::size_t i = 0; i < subs.size(); ++i)
            if (!co_await subs[i]->wait_subscribed(ids[i], milliseconds(30000))) {
                std::cerr << "broker_bench: subscription not confirmed\n";
                exit_code = 1;
                co_return;
            }
        if (!co_await pub.wait_connected(milliseconds(30000))) {
            std::cerr << "broker_bench: publisher not connected\n";
            exit_code = 1;
            co_return;
        }
        std::string body(static_cast<std::size_t>(std::max(size, 8)), 'x');
        net::steady_timer pace(io);
        net::steady_timer wake(io);
        int in_flight = 0, done = 0;
        r.first_send = now_ns();
        auto start = steady::now();
        for (int i = 0; i < count; ++i) {
            if (rate > 0) {
                pace.expires_at(start + std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(i / rate)));
                co_await pace.async_wait(net::as_tuple(net::use_awaitable));
            }
            while (in_flight >= window) {
                wake.expires_at(steady::time_point::max());
                co_await wake.async_wait(net::as_tuple(net::use_awaitable));
            }
            bus::stomp::frame f("SEND");
            f.add("destination", dest);
            if (persistent) f.add("persistent", "true");
            std::int64_t ts = now_ns();
            std::memcpy(body.data(), &ts, sizeof ts);
            f.body = body;
            ++in_flight;
            net::co_spawn(io, [&, fr = std::move(f)]() mutable -> net::awaitable<void> {
                auto ec = co_await pub.publish(std::move(fr));
                if (ec) ++r.publish_failures;
                else ++r.published;
                --in_flight;
                ++done;
                wake.cancel();
            }, net::detached);
        }
        while (done < count) {
            wake.expires_at(steady::time_point::max());
            co_await wake.async_wait(net::as_tuple(net::use_awaitable));
        }
        // Wait for the deliveries to drain (bounded).
        net::steady_timer t(io);
        auto deadline = steady::now() + std::chrono::seconds(60);
        while (r.delivered < expected && steady::now() < deadline) {
            t.expires_after(milliseconds(5));
            co_await t.async_wait(net::use_awaitable);
        }
    };
    net::co_spawn(io, task(), [&](std::exception_ptr e) {
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                std::cerr << "broker_bench: " << ex.what() << "\n";
            }
            exit_code = 1;
        }
        for (auto& s : subs) s->stop();
        pub.stop();
    });
    io.run_for(std::chrono::seconds(300));

    double secs = static_cast<double>(r.last_delivery - r.first_send) / 1e9;
    nlohmann::json j{{"mode", mode},
                     {"subscribers", subscribers},
                     {"count", count},
                     {"size", size},
                     {"persistent", persistent},
                     {"rate", rate},
                     {"published", r.published},
                     {"publish_failures", r.publish_failures},
                     {"delivered", r.delivered},
                     {"expected", expected},
                     {"seconds", secs},
                     {"deliveries_per_s", secs > 0 ? static_cast<double>(r.delivered) / secs : 0},
                     {"p50_ms", percentile(r.latencies_us, 0.50) / 1000},
                     {"p99_ms", percentile(r.latencies_us, 0.99) / 1000}};
    std::cout << j.dump() << std::endl;
    if (r.delivered < expected || r.publish_failures) exit_code = 1;
    return exit_code;
}
