#include "bus/runtime/service.hpp"

#include "bus/http/admin.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <list>
#include <set>

namespace net = boost::asio;

namespace bus::runtime {

struct service::impl {
    struct tracked {
        net::cancellation_signal sig;
        std::string name;
        task kind = task::normal;
    };
    explicit impl(net::io_context& io) : signals(io), deadline(io), grace(io), watchdog(io) {}
    net::signal_set signals;
    net::steady_timer deadline, grace, watchdog;
    std::list<tracked> tasks;
    std::set<net::steady_timer*> sleepers;
    std::optional<pidfile> pid;
    std::unique_ptr<http::admin_endpoint> admin;
    bool cancelled = false;
};

service::service(const common_options& opts, spdlog::logger& log, service_options so)
    : opts_(opts), log_(log), so_(so), pool_(so.workers == 0 ? 1 : so.workers), impl_(std::make_unique<impl>(io_))
{
}

service::~service()
{
    pool_.stop();
    pool_.join();
}

std::size_t service::tasks() const noexcept { return impl_->tasks.size(); }

void service::spawn(net::awaitable<void> t, std::string name, task kind)
{
    auto it = impl_->tasks.emplace(impl_->tasks.end());
    it->name = std::move(name);
    it->kind = kind;
    net::co_spawn(io_, std::move(t), net::bind_cancellation_slot(it->sig.slot(), [this, it](std::exception_ptr e) {
        std::string why;
        if (e) {
            try {
                std::rethrow_exception(e);
            } catch (const boost::system::system_error& se) {
                if (se.code() != net::error::operation_aborted) why = se.what();
            } catch (const std::exception& ex) {
                why = ex.what();
            }
        }
        if (!why.empty()) log_.error("{}: {}", it->name.empty() ? "task" : it->name, why);
        if (it->kind == task::critical && !stopping_) {
            if (why.empty()) log_.info("{} ended; stopping", it->name);
            stop(why.empty() ? 0 : 1);
        }
        // Erased once this handler has returned (its cancellation slot is still in use here).
        net::post(io_, [this, it] {
            impl_->tasks.erase(it);
            if (stopping_ && impl_->tasks.empty()) {
                if (impl_->admin) impl_->admin->stop();
                io_.stop();
            }
        });
    }));
}

unsigned short service::serve_admin(const http::listen_address& where, const http::registry& metrics, http::ready_fn ready)
{
    auto r = [this, ready = std::move(ready)]() -> std::optional<std::string> {
        if (stopping_) return std::string("stopping");
        return ready ? ready() : std::nullopt;
    };
    impl_->admin = std::make_unique<http::admin_endpoint>(io_.get_executor(), where, metrics, std::move(r), log_);
    impl_->admin->start();
    log_.info("admin endpoint (/metrics /livez /readyz) on {}:{}", where.address, impl_->admin->port());
    return impl_->admin->port();
}

void service::ready(std::string_view status)
{
    if (ready_) {
        if (!status.empty()) notify_.status(status);
        return;
    }
    ready_ = true;
    notify_.ready(status);
}

void service::stop(int exit_status)
{
    if (stopping_) return;
    stopping_ = true;
    exit_status_ = exit_status;
    notify_.stopping();
    for (auto* t : impl_->sleepers) t->cancel();
    impl_->watchdog.cancel();
    // The drain, bounded; then every task is cancelled; then, after a grace, io is stopped.
    impl_->deadline.expires_after(so_.drain_deadline);
    impl_->deadline.async_wait([this](boost::system::error_code ec) {
        if (ec) return;
        log_.warn("drain deadline ({} ms) passed with {} task(s) running; cancelling them", so_.drain_deadline.count(),
                  impl_->tasks.size());
        for (auto& t : impl_->tasks) t.sig.emit(net::cancellation_type::terminal);
        impl_->grace.expires_after(so_.cancel_grace);
        impl_->grace.async_wait([this](boost::system::error_code ec2) {
            if (!ec2) io_.stop();
        });
    });
    if (drain_) spawn(drain_(), "drain");
    else if (impl_->tasks.empty()) net::post(io_, [this] { io_.stop(); });
}

net::awaitable<bool> service::sleep_for(std::chrono::milliseconds d)
{
    if (stopping_) co_return false;
    net::steady_timer t(io_);
    t.expires_after(d);
    impl_->sleepers.insert(&t);
    auto [ec] = co_await t.async_wait(net::as_tuple(net::use_awaitable));
    impl_->sleepers.erase(&t);
    co_return !ec && !stopping_;
}

int service::run()
{
    if (!opts_.pidfile.empty()) impl_->pid.emplace(opts_.pidfile);
    report_ready();  // a daemonize parent exits 0 now: the daemon is running with its config
    auto& sigs = impl_->signals;
    sigs.add(SIGTERM);
    sigs.add(SIGINT);
    sigs.add(SIGHUP);
    std::function<void()> wait = [&] {
        sigs.async_wait([&](boost::system::error_code ec, int signo) {
            if (ec) return;
            if (signo == SIGHUP) {
                if (!stopping_ && reload_) {
                    notify_.reloading();
                    try {
                        reload_();
                    } catch (const std::exception& e) {
                        log_.error("reload failed, keeping the old configuration: {}", e.what());
                    }
                    notify_.ready();
                }
            } else if (!stopping_) {
                log_.info("{}: stopping", signo == SIGTERM ? "SIGTERM" : "SIGINT");
                stop(0);
            } else if (!impl_->cancelled) {
                impl_->cancelled = true;
                log_.warn("second signal: cancelling {} task(s) now", impl_->tasks.size());
                for (auto& t : impl_->tasks) t.sig.emit(net::cancellation_type::terminal);
                impl_->deadline.expires_after(std::chrono::milliseconds(0));
            }
            wait();
        });
    };
    wait();
    if (auto iv = notify_.watchdog_interval()) {
        std::function<void()> tick = [this, iv, &tick] {
            notify_.watchdog();
            impl_->watchdog.expires_after(*iv);
            impl_->watchdog.async_wait([&tick](boost::system::error_code ec) {
                if (!ec) tick();
            });
        };
        tick();
        io_.run();
    } else {
        io_.run();
    }
    sigs.cancel();
    if (impl_->admin) impl_->admin->stop();
    pool_.stop();
    pool_.join();
    return exit_status_;
}

void log_restart_needed(spdlog::logger& log, std::string_view daemon, const std::vector<std::string>& keys)
{
    for (const auto& key : keys)
        log.warn("{}: {}: changed; takes effect after a restart (not applied by SIGHUP)", daemon, key);
}

} // namespace bus::runtime
