#pragma once

// The shell a long-running daemon runs in: one io_context (every coroutine and the bus client
// on it), a bounded worker pool for blocking work, signals (SIGHUP → reload callback;
// SIGTERM/SIGINT → stop: the daemon's drain with a deadline, then cancellation of every task),
// the pidfile, readiness for daemonize and systemd (READY=1, STATUS=, STOPPING=1, WATCHDOG=1).
//
//   bus::runtime::service svc(opts, log);
//   svc.on_reload([&] { ... });
//   svc.on_stop([&]() -> net::awaitable<void> { /* stop intake, finish in-flight work */ co_return; });
//   svc.spawn(client.run(), "bus client", bus::runtime::task::critical);
//   svc.ready("connected");       // when it can do its job (may be called later, from a task)
//   return svc.run();             // until stopped; the exit status

#include "bus/http/address.hpp"
#include "bus/http/health.hpp"
#include "bus/runtime/notify.hpp"
#include "bus/runtime/program.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>
#include <type_traits>

namespace spdlog {
class logger;
}
namespace bus::http {
class registry;
}

namespace bus::runtime {

namespace detail {
// service::blocking()'s two coroutines are plain function templates taking the job as a
// shared_ptr: no capturing coroutine lambda and no closure as a coroutine parameter (see there).

// On the worker pool: runs the job; this frame owns the job until it has returned.
template <class R, class F>
boost::asio::awaitable<R> run_job(std::shared_ptr<F> job)
{
    if constexpr (std::is_void_v<R>) {
        (*job)();
        co_return;
    } else {
        R r = (*job)();
        co_return r;
    }
}

// On the caller's executor: starts run_job on the pool and waits for it, every value named.
template <class R, class F>
boost::asio::awaitable<R> await_job(boost::asio::thread_pool& pool, std::shared_ptr<F> job)
{
    auto task = run_job<R, F>(std::move(job));
    auto op = boost::asio::co_spawn(pool, std::move(task), boost::asio::use_awaitable);
    if constexpr (std::is_void_v<R>) {
        co_await std::move(op);
        co_return;
    } else {
        R r = co_await std::move(op);
        co_return r;
    }
}
} // namespace detail

enum class task {
    normal,    ///< its end changes nothing
    critical,  ///< its end (return or exception) stops the daemon: exit 0 if stopping, else 1
};

struct service_options {
    std::chrono::milliseconds drain_deadline{10000};  ///< on_stop's time before tasks are cancelled
    std::chrono::milliseconds cancel_grace{2000};     ///< after cancellation, before io is stopped
    unsigned workers = 4;                             ///< threads for blocking work
};

class service {
public:
    service(const common_options& opts, spdlog::logger& log, service_options so = {});
    ~service();
    service(const service&) = delete;
    service& operator=(const service&) = delete;

    boost::asio::io_context& io() noexcept { return io_; }
    boost::asio::any_io_executor executor() { return io_.get_executor(); }
    /// The worker pool's executor, for blocking work (file I/O, HTTP transfers, libgit2).
    boost::asio::any_io_executor workers() { return pool_.get_executor(); }
    spdlog::logger& log() noexcept { return log_; }
    const common_options& options() const noexcept { return opts_; }
    notifier& notify() noexcept { return notify_; }

    /// Runs `f()` on the worker pool and resumes on the caller's executor with its result (its
    /// exception rethrown). Any callable works, its captures owning or not, copyable or move-only:
    /// it is copied (lvalue) or moved (rvalue) once into a shared_ptr that the worker's frame holds
    /// until the job has returned. `f` must not capture references into the calling coroutine
    /// frame's temporaries.
    template <class F>
    auto blocking(F&& f) -> boost::asio::awaitable<std::invoke_result_t<std::decay_t<F>&>>
    {
        // Not a coroutine, and `f` by reference: GCC 12.2 destroys a closure passed by value into
        // a coroutine (a parameter, a capturing coroutine lambda's capture, a temporary in a
        // co_await expression) once too often, so a job's captured strings/shared_ptrs were freed
        // twice or while a worker still used them. Here the job goes to the heap before anything
        // is awaited (no copy of a named job is made in the caller's co_await expression, a
        // temporary one is left moved-from) and only shared_ptrs cross into coroutine frames.
        using D = std::decay_t<F>;
        using R = std::invoke_result_t<D&>;
        auto job = std::make_shared<D>(std::forward<F>(f));
        return detail::await_job<R, D>(pool_, std::move(job));
    }

    /// Starts a task on the io_context, tracked: it receives terminal cancellation (its awaited
    /// operations end with operation_aborted) when the drain deadline passes. Exceptions are logged.
    void spawn(boost::asio::awaitable<void> t, std::string name = {}, task kind = task::normal);

    /// SIGHUP. Runs on the io_context; exceptions are logged and the old state kept.
    void on_reload(std::function<void()> f) { reload_ = std::move(f); }
    /// SIGTERM/SIGINT (or stop()): the daemon's drain, bounded by drain_deadline.
    void on_stop(std::function<boost::asio::awaitable<void>()> f) { drain_ = std::move(f); }

    /// Serves /metrics (from `metrics`), /livez and /readyz on `where` (bus/http/admin.hpp) until
    /// the stop. `ready` says why the daemon cannot do its job (nullopt = ready); while stopping
    /// /readyz answers 503 "stopping". Binds now: throws when it cannot. Returns the bound port.
    unsigned short serve_admin(const http::listen_address& where, const http::registry& metrics, http::ready_fn ready);

    /// READY=1 (with STATUS) to systemd, once; idempotent.
    void ready(std::string_view status = {});
    void status(std::string_view s) { notify_.status(s); }

    /// Begins the stop as SIGTERM does. `exit_status` is what run() returns (the first one wins).
    void stop(int exit_status = 0);
    bool stopping() const noexcept { return stopping_; }

    /// Waits `d`, or less when the stop begins. True when the whole time passed.
    boost::asio::awaitable<bool> sleep_for(std::chrono::milliseconds d);

    /// Writes the pidfile, tells a daemonize parent it started, installs the signals and runs
    /// until every task ended (or the deadlines passed). Returns the exit status.
    int run();

    /// Tasks still running (tests, logs).
    std::size_t tasks() const noexcept;

private:
    struct impl;
    const common_options& opts_;
    spdlog::logger& log_;
    service_options so_;
    boost::asio::io_context io_{1};
    boost::asio::thread_pool pool_;
    notifier notify_;
    std::function<void()> reload_;
    std::function<boost::asio::awaitable<void>()> drain_;
    bool stopping_ = false;
    bool ready_ = false;
    int exit_status_ = 0;
    std::unique_ptr<impl> impl_;
};

/// After a SIGHUP: one warning per setting that changed and that only a restart applies
/// (`restart_needed()` in config_reader.hpp lists them).
void log_restart_needed(spdlog::logger& log, std::string_view daemon, const std::vector<std::string>& keys);

} // namespace bus::runtime
