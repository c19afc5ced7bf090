// bus/detail/openssl.hpp for a program linked without OpenSSL (DEPLOYKIT_NO_OPENSSL): the git
// hook's plain-TCP build, which re-executes its OpenSSL build before it could get here.
#include "bus/detail/openssl.hpp"

#include <stdexcept>

namespace bus::detail {

namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {
[[noreturn]] void missing(const char* what)
{
    throw std::runtime_error(std::string(what) + " needs OpenSSL, which this build of the program does not link");
}
} // namespace

struct tls_layer {};

bool have_openssl() noexcept { return false; }
void tls_layer_deleter::operator()(tls_layer* t) const noexcept { delete t; }
tls_ptr tls_client(tcp::socket&, boost::asio::ssl::context&, const std::string&, bool) { missing("TLS"); }
tls_ptr tls_server(tcp::socket&, boost::asio::ssl::context&) { missing("TLS"); }
net::awaitable<void> tls_handshake(tls_layer&, bool) { missing("TLS"); }
net::awaitable<std::tuple<boost::system::error_code, std::size_t>> tls_read_some(tls_layer&, net::mutable_buffer)
{
    missing("TLS");
}
net::awaitable<std::size_t> tls_write(tls_layer&, std::vector<net::const_buffer>) { missing("TLS"); }
bool tls_truncated(const boost::system::error_code&) noexcept { return false; }
std::shared_ptr<boost::asio::ssl::context> tls_client_context(const tls_options&) { missing("TLS"); }

} // namespace bus::detail
