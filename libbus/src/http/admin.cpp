#include "bus/http/admin.hpp"

#include "bus/http/server.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <spdlog/spdlog.h>

namespace bus::http {

namespace net = boost::asio;

admin_endpoint::admin_endpoint(net::any_io_executor io, listen_address where, const registry& metrics, ready_fn ready,
                               spdlog::logger& log, admin_options opts)
    : io_(io)
{
    server_options o;
    o.address = where.address;
    o.port = where.port;
    o.max_header_bytes = 8 * 1024;
    o.max_body_bytes = 0;
    o.first_byte_timeout = std::chrono::seconds(5);
    o.read_timeout = std::chrono::seconds(5);
    o.idle_timeout = std::chrono::seconds(30);
    o.max_connections = opts.max_connections;
    o.max_connections_per_source = opts.max_connections_per_source;
    o.max_inflight_body_bytes = 0;
    o.connect_allow = std::move(opts.allow_from);
    o.log_name = "admin";
    auto check = [&metrics, ready = std::move(ready)](const request& head) -> std::optional<response> {
        if (auto r = health(head, metrics, ready)) return r;
        return text(404, "not found: /metrics /livez /readyz");
    };
    auto handle = [](request&) -> net::awaitable<response> { co_return text(404, "not found"); };
    server_ = std::make_unique<server>(std::move(io), std::move(o), log, std::move(check), std::move(handle));
}

admin_endpoint::~admin_endpoint()
{
    if (server_) server_->stop();
}

void admin_endpoint::start()
{
    server_->listen();
    // The server's state is shared with its coroutines, so this outlives nothing it needs.
    net::co_spawn(io_, server_->run(), net::detached);
}

void admin_endpoint::stop() { server_->stop(); }

unsigned short admin_endpoint::port() const { return server_->port(); }

} // namespace bus::http
