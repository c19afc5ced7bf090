#pragma once

// The admin endpoint of a daemon (`admin-listen: 127.0.0.1:9100`): /metrics, /livez, /readyz on
// their own listener, apart from anything the daemon serves, so a full public listener never
// hides its health. Small limits: GETs only, no bodies.
//
//   bus::http::registry metrics("stomp_git");
//   bus::http::daemon_metrics common(metrics, DEPLOYKIT_VERSION);
//   bus::http::admin_endpoint admin(io.get_executor(), *parse_listen(cfg.admin_listen), metrics,
//                                   [&]() -> std::optional<std::string> {
//                                       if (!client.connected()) return "broker unreachable";
//                                       return std::nullopt;
//                                   }, log);
//   admin.start();      // binds (throws on failure) and serves
//   ... admin.stop();   // at shutdown

#include "bus/http/address.hpp"
#include "bus/http/health.hpp"
#include "bus/http/metrics.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <memory>

namespace spdlog {
class logger;
}

namespace bus::http {

class server;

struct admin_options {
    std::size_t max_connections = 32;
    std::size_t max_connections_per_source = 8;
    std::vector<cidr> allow_from;  ///< empty: anyone who can reach the address
};

class admin_endpoint {
public:
    admin_endpoint(boost::asio::any_io_executor io, listen_address where, const registry& metrics, ready_fn ready,
                   spdlog::logger& log, admin_options opts = {});
    ~admin_endpoint();
    admin_endpoint(const admin_endpoint&) = delete;
    admin_endpoint& operator=(const admin_endpoint&) = delete;

    /// Binds (throws when it cannot) and starts serving on the executor.
    void start();
    /// Stops accepting and closes its connections.
    void stop();
    unsigned short port() const;

private:
    boost::asio::any_io_executor io_;
    std::unique_ptr<server> server_;
};

} // namespace bus::http
