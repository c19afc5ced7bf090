#pragma once

// Shared by the coroutine tests: a quiet logger (BUS_TEST_LOG=1 shows it), one test coroutine
// per fresh io_context with an overall deadline, and a deadline-bounded wait on a condition.

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <doctest/doctest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>
#include <exception>
#include <memory>

namespace test {

inline spdlog::logger& logger()
{
    static auto log = [] {
        std::shared_ptr<spdlog::logger> l;
        if (std::getenv("BUS_TEST_LOG"))
            l = std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
        else
            l = std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
        l->set_level(spdlog::level::debug);
        return l;
    }();
    return *log;
}

/// Runs `f(executor)` (a coroutine) on a fresh io_context; fails if it is not done in `limit`.
template <class F>
void run_test(F f, std::chrono::seconds limit = std::chrono::seconds(20))
{
    boost::asio::io_context io;
    bool done = false;
    std::exception_ptr error;
    boost::asio::co_spawn(io, f(io.get_executor()), [&](std::exception_ptr e) {
        done = true;
        error = e;
        io.stop();
    });
    io.run_for(limit);
    REQUIRE_MESSAGE(done, "test coroutine did not finish in time");
    if (error) std::rethrow_exception(error);
}

/// Waits for `pred()` with a deadline, polling the event loop (never blocking it).
template <class Pred>
boost::asio::awaitable<bool> eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::milliseconds(3000))
{
    boost::asio::steady_timer t(co_await boost::asio::this_coro::executor);
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!pred()) {
        if (std::chrono::steady_clock::now() >= deadline) co_return false;
        t.expires_after(std::chrono::milliseconds(1));
        co_await t.async_wait(boost::asio::use_awaitable);
    }
    co_return true;
}

} // namespace test
