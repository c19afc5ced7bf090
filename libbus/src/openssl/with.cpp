// libbus's OpenSSL use, TLS (bus/detail/openssl.hpp), and Asio's SSL code compiled once.
#include "bus/detail/openssl.hpp"

#include <boost/asio/ssl.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/write.hpp>

#include <stdexcept>

namespace bus::detail {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;

struct tls_layer {
    ssl::stream<tcp::socket&> stream;
};

bool have_openssl() noexcept { return true; }

void tls_layer_deleter::operator()(tls_layer* t) const noexcept { delete t; }

tls_ptr tls_client(tcp::socket& s, ssl::context& ctx, const std::string& host, bool verify)
{
    tls_ptr t(new tls_layer{ssl::stream<tcp::socket&>(s, ctx)});
    if (!SSL_set_tlsext_host_name(t->stream.native_handle(), host.c_str()))
        throw std::runtime_error("TLS: cannot set SNI host name");
    if (verify) t->stream.set_verify_callback(ssl::host_name_verification(host));
    return t;
}

tls_ptr tls_server(tcp::socket& s, ssl::context& ctx)
{
    return tls_ptr(new tls_layer{ssl::stream<tcp::socket&>(s, ctx)});
}

net::awaitable<void> tls_handshake(tls_layer& t, bool client)
{
    co_await t.stream.async_handshake(client ? ssl::stream_base::client : ssl::stream_base::server,
                                      net::use_awaitable);
}

net::awaitable<std::tuple<boost::system::error_code, std::size_t>> tls_read_some(tls_layer& t, net::mutable_buffer b)
{
    co_return co_await t.stream.async_read_some(b, net::as_tuple(net::use_awaitable));
}

net::awaitable<std::size_t> tls_write(tls_layer& t, std::vector<net::const_buffer> b)
{
    co_return co_await net::async_write(t.stream, b, net::use_awaitable);
}

bool tls_truncated(const boost::system::error_code& e) noexcept { return e == ssl::error::stream_truncated; }

std::shared_ptr<ssl::context> tls_client_context(const tls_options& o)
{
    auto c = std::make_shared<ssl::context>(ssl::context::tls_client);
    c->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 | ssl::context::no_sslv3 |
                   ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    if (o.ca_file.empty()) c->set_default_verify_paths();
    else c->load_verify_file(o.ca_file);
    if (!o.cert_file.empty()) c->use_certificate_chain_file(o.cert_file);
    if (!o.key_file.empty()) c->use_private_key_file(o.key_file, ssl::context::pem);
    c->set_verify_mode(o.verify ? ssl::verify_peer : ssl::verify_none);
    return c;
}

} // namespace bus::detail
