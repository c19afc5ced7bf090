// The session every command runs in: one io_context, the client, the command's task, and the
// signals. SIGINT/SIGTERM stop at once — a graceful DISCONNECT gets 300 ms, then the connection
// is dropped; unreceipted publishes end as not receipted and are reported.
#include "stompctl.hpp"

#include "bus/config.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <iostream>

namespace stompctl {

namespace {

// Runs the client; when it ends (stopped, or attempts exhausted) fires `finished`, which the
// task waits on besides its own condition. The exit code is the task's to set: a publish that
// was spooled succeeded even though the client gave up connecting.
net::awaitable<void> run_client(bus::client& c, latch& finished)
{
    try {
        co_await c.run();
    } catch (const std::system_error& e) {
        std::cerr << "stompctl: " << e.what() << (c.last_error().empty() ? "" : " (" + c.last_error() + ")") << "\n";
    }
    finished.fire();
}

} // namespace

int run_session(bus::client_options opts, bool keep_reconnecting, spdlog::logger& log, const task& t)
{
    // A one-shot command gives up after a few attempts; a tail keeps reconnecting (unless the URL
    // says otherwise) and ends on a signal.
    if (!keep_reconnecting && opts.url.reconnect.max_attempts == 0)
        opts.url.reconnect.max_attempts = static_cast<int>(2 * opts.url.endpoints.size() + 1);
    net::io_context io(1);
    bus::client c(io.get_executor(), std::move(opts), log);
    latch done(io.get_executor());  // the task is complete, or the client ended
    net::signal_set signals(io, SIGINT, SIGTERM);
    net::steady_timer hard_stop(io);
    signals.async_wait([&](auto ec, int signo) {
        if (ec) return;
        interrupted = signo;
        c.stop();
        done.fire();
        hard_stop.expires_after(std::chrono::milliseconds(300));
        hard_stop.async_wait([&](auto e) {
            if (!e) c.abort();
        });
    });
    // The signal handler stays armed until both the client and the task have ended.
    int running = 2;
    auto ended = [&] {
        if (--running == 0) {
            signals.cancel();
            hard_stop.cancel();
        }
    };
    int rc = 0;
    net::co_spawn(io, run_client(c, done), [&](std::exception_ptr e) {
        ended();
        if (e) std::rethrow_exception(e);
    });
    net::co_spawn(io, t(c, rc, done), [&](std::exception_ptr e) {
        ended();
        if (!e) return;
        try {
            std::rethrow_exception(e);
        } catch (const bus::config_error& ce) {
            std::cerr << "stompctl: " << ce.what() << "\n";
            rc = 2;
        } catch (const std::exception& ex) {
            std::cerr << "stompctl: " << ex.what() << "\n";
            rc = 1;
        }
        c.stop();
    });
    io.run();
    return interrupted ? 128 + interrupted : rc;
}

} // namespace stompctl
