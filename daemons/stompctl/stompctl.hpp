#pragma once

// stompctl's commands (publish.cpp, subscribe.cpp, drain.cpp) and what they share (common.cpp):
// the broker options every command takes, the one-shot latch, and the session that runs a
// command's coroutine beside the client until either ends or a signal arrives (session.cpp).
// Private to the stompctl target.

#include "bus/client.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace CLI {
class App;
}

namespace stompctl {

namespace net = boost::asio;

struct common_args {
    std::string url = "stomp://127.0.0.1:61613";
    std::string options;
    std::string login;
    std::string passcode_file;
    std::string vhost;
    std::string client_id;
    std::string protocol = "negotiate";
    double timeout = 10;
    bool verbose = false;
    bool insecure = false;
    std::string ca_file;
    // Liveness (docs/brokers.md "Keepalive tuning"); unset = libbus's defaults.
    std::optional<long> heartbeat_ms, keepalive_ms, probe_ms, probe_timeout_ms;
    std::optional<double> dead_link_grace;

    std::chrono::milliseconds timeout_ms() const { return std::chrono::milliseconds(static_cast<long>(timeout * 1000)); }
};

/// Set by the first SIGINT/SIGTERM: every command then ends promptly and reports what is unfinished.
extern int interrupted;

/// The broker options every command takes (-u, --login, --passcode-file, liveness ...).
void add_common_options(CLI::App& app, common_args& a);
/// The client options from the command line. Throws bus::config_error.
bus::client_options make_options(const common_args& a);
/// The liveness flags over `o` (also for options read from a config file).
void apply_liveness(const common_args& a, bus::client_options& o);
/// `name:value` of -H. Throws bus::config_error.
std::pair<std::string, std::string> split_header(const std::string& h);

// A one-shot signal: set once, waited for with an optional deadline.
struct latch {
    explicit latch(net::any_io_executor ex) : timer(std::move(ex)) {}
    net::steady_timer timer;
    bool set = false;
    void fire()
    {
        set = true;
        timer.cancel();
    }
    net::awaitable<void> wait(std::chrono::steady_clock::time_point deadline);
};

/// A command's coroutine: sets `rc` (0, 1, 3) and stops the client when it is done; `done`
/// fires when the client ended or a signal arrived.
using task = std::function<net::awaitable<void>(bus::client& c, int& rc, latch& done)>;

/// Runs `t` beside a client made from `opts` until both ended. SIGINT/SIGTERM stop at once (a
/// graceful DISCONNECT gets 300 ms); returns 128+N then, else the task's rc (2 for a
/// bus::config_error it threw, 1 for another exception).
int run_session(bus::client_options opts, bool keep_reconnecting, spdlog::logger& log, const task& t);

// ---- the commands: each adds its subcommand, and makes its task once parsed ----

struct publish_command {
    std::string spool, key_file, key_id, destination, message, file;
    std::vector<std::string> headers;
    int count = 1;
    int window = 1000;
    bool stats = false;
    CLI::App* sub = nullptr;
    void add(CLI::App& app);
    /// Reads the body (-m, -f or stdin) and returns the task.
    task make(const common_args& a);
};

struct subscribe_command {
    std::string destination, ack = "auto", durable, durable_style = "both", ready_file, key_file;
    std::vector<std::string> extra_headers;
    int count = 0;
    double wait = 0;
    bool json = false, headers = false, keepalives = false, events = false, require_signatures = false;
    unsigned prefetch = 0;
    CLI::App* sub = nullptr;
    void add(CLI::App& app);
    task make(const common_args& a);
};

struct drain_command {
    std::string spool, config;
    CLI::App* sub = nullptr;
    void add(CLI::App& app);
    /// The client options: from the config (-c) or the command line; fills the spool from it.
    bus::client_options options(const common_args& a);
    task make(const common_args& a);
};

} // namespace stompctl
