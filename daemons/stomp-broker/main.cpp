// stomp-broker: the embedded single-machine STOMP broker (1.0/1.1/1.2) for the quickstart,
// the tests and small sites. `stomp-broker --listen 127.0.0.1:61613` needs no config file
// (anonymous, in memory); `-c FILE` for persistence, users, TLS and limits.
#include "auth.hpp"
#include "config.hpp"
#include "server.hpp"

#include "bus/url.hpp"

#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <csignal>
#include <iostream>

int main(int argc, char** argv)
{
    CLI::App app{"stomp-broker - deploykit's embedded STOMP broker"};
    std::string config_file;
    std::string listen;
    std::string admin;
    std::string data_dir;
    bool debug = false;
    bool hash = false;
    app.add_option("-c,--config", config_file, "YAML configuration file");
    app.add_option("--listen", listen, "address:port for STOMP (default 127.0.0.1:61613)");
    app.add_option("--admin", admin, "address:port for /metrics, /livez, /readyz");
    app.add_option("--data-dir", data_dir, "journal directory (persistent messages survive restarts)");
    app.add_flag("-d,--debug", debug, "debug logging (runs in the foreground, as always)");
    app.add_flag("--hash-password", hash, "read a password on stdin and print its hash for the users file");
    CLI11_PARSE(app, argc, argv);

    if (hash) {
        std::string pw;
        std::getline(std::cin, pw);
        std::cout << broker::hash_password(pw) << "\n";
        return 0;
    }
    auto log = spdlog::stderr_color_mt("stomp-broker");
    log->set_level(debug ? spdlog::level::debug : spdlog::level::info);
    try {
        broker::broker_config cfg;
        if (!config_file.empty()) cfg = broker::load_config(config_file);
        if (!listen.empty()) {
            broker::parse_listen(listen, "--listen");
            cfg.server.listen = listen;
        }
        if (!admin.empty()) cfg.server.admin_listen = admin;
        if (!data_dir.empty()) cfg.server.data_dir = data_dir;
        broker::access_policy policy;
        if (!cfg.users_file.empty()) policy = broker::access_policy::load_file(cfg.users_file);

        // A file-size limit (RLIMIT_FSIZE) is a write error for the journal to report and retry,
        // not a signal that kills the broker.
        std::signal(SIGXFSZ, SIG_IGN);
        boost::asio::io_context io(1);
        broker::server srv(io, cfg.server, policy, *log);
        srv.start();
        log->info("stomp-broker listening on {} (port {}){}{}", cfg.server.listen, srv.port(),
                  srv.admin_port() ? ", admin port " + std::to_string(srv.admin_port()) : "",
                  cfg.server.data_dir.empty() ? ", in memory" : ", journal in " + cfg.server.data_dir.string());
        // SIGHUP re-reads users and permissions; SIGTERM/SIGINT drain and exit.
        boost::asio::signal_set hup(io, SIGHUP);
        std::function<void()> wait_hup = [&] {
            hup.async_wait([&](auto ec, int) {
                if (ec) return;
                if (!cfg.users_file.empty()) {
                    try {
                        srv.reload(broker::access_policy::load_file(cfg.users_file));
                        log->info("re-read {}", cfg.users_file.string());
                    } catch (const std::exception& e) {
                        log->error("reload failed, keeping the old users: {}", e.what());
                    }
                }
                wait_hup();
            });
        };
        wait_hup();
        boost::asio::signal_set term(io, SIGTERM, SIGINT);
        term.async_wait([&](auto ec, int) {
            if (ec) return;
            log->info("stopping");
            srv.stop();
            hup.cancel();
        });
        srv.on_fatal([&] {
            hup.cancel();
            term.cancel();
        });
        io.run();
        if (srv.failed()) {
            log->error("stopped: the journal failed; persistent messages since the failure were not acknowledged");
            return 1;
        }
        log->info("stopped");
    } catch (const bus::config_error& e) {
        std::cerr << "stomp-broker: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "stomp-broker: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
