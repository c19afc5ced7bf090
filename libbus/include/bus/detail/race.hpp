#pragma once

// Asio's awaitable `||` completes on the first branch that *succeeds*: a branch that throws
// leaves it waiting for the others. Every branch raced with `||` is therefore wrapped by
// `capture`, which completes normally and carries the exception as a value; the caller rethrows
// the winner's. (I/O code only: includes Asio.)

#include <boost/asio/awaitable.hpp>

#include <exception>
#include <optional>
#include <utility>

namespace bus::detail {

template <class T>
boost::asio::awaitable<std::pair<std::optional<T>, std::exception_ptr>> capture(boost::asio::awaitable<T> op)
{
    try {
        co_return std::pair{std::optional<T>(co_await std::move(op)), std::exception_ptr{}};
    } catch (...) {
        co_return std::pair{std::optional<T>{}, std::current_exception()};
    }
}

inline boost::asio::awaitable<std::exception_ptr> capture(boost::asio::awaitable<void> op)
{
    try {
        co_await std::move(op);
    } catch (...) {
        co_return std::current_exception();
    }
    co_return nullptr;
}

} // namespace bus::detail
