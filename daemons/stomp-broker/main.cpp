// stomp-broker: the embedded single-machine STOMP broker (1.0/1.1/1.2) for the quickstart,
// the tests and small sites. `stomp-broker --listen 127.0.0.1:61613` needs no config file
// (anonymous, in memory); `-c FILE` for persistence, users, TLS and limits.
//
// The common options (--check-config, --log-format, --syslog, --pidfile, --daemonize,
// --version) come from the runtime (docs/runtime.md); the daemon itself is daemon.cpp, the
// I/O server.cpp, the broker's decisions broker.cpp.
#include "daemon.hpp"

#include <CLI/CLI.hpp>

int main(int argc, char** argv)
{
    broker::cli_options cli;
    return bus::runtime::run_main(
        argc, argv,
        {.name = "stomp-broker", .description = "stomp-broker - deploykit's embedded STOMP broker", .default_config = ""},
        [&](CLI::App& app) {
            app.add_option("--listen", cli.listen, "address:port for STOMP (default 127.0.0.1:61613)");
            app.add_option("--admin", cli.admin, "address:port for /metrics, /livez, /readyz (as admin-listen)");
            app.add_option("--data-dir", cli.data_dir, "journal directory (persistent messages survive restarts)");
            app.add_flag("--hash-password", cli.hash_password,
                         "read a password on stdin and print its hash for the users file");
        },
        [&](const bus::runtime::common_options& opts, spdlog::logger& log) { return broker::run(opts, cli, log); });
}
