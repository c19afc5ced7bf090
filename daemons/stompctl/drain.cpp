// stompctl drain: deliver a producer's spooled messages in order (run from a timer).
#include "stompctl.hpp"

#include "bus/config.hpp"
#include "bus/delivery.hpp"
#include "bus/runtime/hook.hpp"

#include <CLI/CLI.hpp>
#include <boost/asio/thread_pool.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <iostream>

namespace stompctl {

namespace {

net::awaitable<void> do_drain(bus::client& c, const common_args& a, const drain_command& d, int& rc)
{
    bus::outbox box({.dir = d.spool});
    net::thread_pool pool(1);
    auto deadline = std::chrono::steady_clock::now() + a.timeout_ms();
    bus::drain_result r;
    if (co_await c.wait_connected(a.timeout_ms()))
        r = co_await bus::drain(c, box, pool.get_executor(), deadline);
    else
        r.remaining = box.pending().size();
    pool.join();
    if (interrupted) std::cerr << "stompctl: interrupted: " << r.remaining << " spooled message(s) not delivered\n";
    std::cout << nlohmann::json{{"delivered", r.delivered}, {"remaining", r.remaining},
                                {"quarantined", r.quarantined}, {"locked_out", r.locked_out}}
                     .dump()
              << std::endl;
    if (r.remaining > 0) rc = 1;
    c.stop();
}

} // namespace

void drain_command::add(CLI::App& app)
{
    sub = app.add_subcommand("drain", "deliver a producer's spooled messages in order (run from a timer)");
    sub->add_option("--spool", spool, "outbox directory (default: the config's spool-dir)");
    sub->add_option("-c,--config", config,
                    "take the broker settings and spool-dir from this daemon or hook config (rserver, "
                    "stomp-options, passcode-file, keepalive and header settings)");
}

bus::client_options drain_command::options(const common_args& a)
{
    bus::client_options opts;
    if (config.empty()) {
        opts = make_options(a);
    } else {
        // The spool's own config: its broker settings are not repeated on the command line. It is
        // a daemon's or a hook's file, so its other keys are theirs; a key that looks like a
        // misspelt connection key is pointed out (a `spool-dri:` would leave the spool unread).
        auto f = bus::runtime::config_file::load(config);
        auto r = f.root();
        auto cfg = bus::runtime::read_bus_section(r, f.file());
        for (auto& k : r.keys()) {
            const auto& known = bus::runtime::bus_config_keys();
            if (std::find(known.begin(), known.end(), k) != known.end()) continue;
            if (auto near = bus::runtime::nearest_key(k, known); !near.empty())
                std::cerr << "stompctl: note: " << r.where(k) << ": not a connection setting; did you mean `" << near
                          << "`?\n";
        }
        opts = std::move(cfg.client);
        if (spool.empty() && cfg.spool) spool = cfg.spool->dir.string();
        opts.receipt_timeout = a.timeout_ms();
        opts.connect_timeout = std::min(opts.connect_timeout, opts.receipt_timeout);
        apply_liveness(a, opts);
    }
    if (spool.empty()) throw bus::config_error("drain: --spool or a config with spool-dir is required");
    return opts;
}

task drain_command::make(const common_args& a)
{
    return [this, &a](bus::client& c, int& rc, latch&) { return do_drain(c, a, *this, rc); };
}

} // namespace stompctl
