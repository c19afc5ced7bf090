// stompctl: publish to and subscribe from a STOMP destination through libbus — the tool to
// debug the bus with, in the spirit of mosquitto_pub/mosquitto_sub. One file per command
// (publish.cpp, subscribe.cpp, drain.cpp); session.cpp runs a command beside the client.
//
// Exit codes: 0 success; 1 not accepted (no receipt before the deadline, connection failed);
// 2 usage or configuration error; 3 the broker answered ERROR (or refused a subscription for
// a reason waiting will not change); 128+N ended by signal N (SIGINT 130, SIGTERM 143).
#include "stompctl.hpp"

#include "bus/runtime/program.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

int main(int argc, char** argv)
{
    using namespace stompctl;
    CLI::App app{"stompctl - publish to and subscribe from STOMP destinations (deploykit libbus)", "stompctl"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "stompctl " + std::string(bus::runtime::version()));
    common_args a;
    add_common_options(app, a);
    std::string log_format = "text";
    app.add_option("--log-format", log_format, "log lines (-v) as text or json")->check(CLI::IsMember({"text", "json"}));
    publish_command pub;
    subscribe_command sub;
    drain_command drn;
    pub.add(app);
    sub.add(app);
    drn.add(app);
    if (auto rc = bus::runtime::parse_cli(app, argc, argv)) return *rc;  // usage errors: 2

    bus::runtime::common_options lo;
    lo.debug = a.verbose;
    lo.format = log_format == "json" ? bus::runtime::log_format::json : bus::runtime::log_format::text;
    auto log = bus::runtime::make_logger({.name = "stompctl", .daemon = false}, lo, spdlog::level::warn);
    return bus::runtime::run_guarded("stompctl", [&] {
        if (*pub.sub) return run_session(make_options(a), false, *log, pub.make(a));
        if (*sub.sub) return run_session(make_options(a), true, *log, sub.make(a));
        return run_session(drn.options(a), false, *log, drn.make(a));
    });
}
