#pragma once

// What libbus does with OpenSSL (TLS only), behind one link-time switch. Two implementations:
// src/openssl/with.cpp (OpenSSL and Asio's SSL code) and src/openssl/without.cpp (each entry
// throws). A program gets the first unless its target sets DEPLOYKIT_NO_OPENSSL (CMake, see
// libbus/CMakeLists.txt): the git hook's plain-TCP build then maps neither libssl nor libcrypto,
// and re-executes its OpenSSL build when the configuration needs TLS. Hashes, HMAC signing and
// password hashes are not OpenSSL's (bus/crypto.hpp, Nettle), so they work in either build.
// No OpenSSL or Asio SSL symbol may be referenced outside these two files, or the switch is gone
// (tests: hooks.lean_without_openssl).

#include "bus/client_options.hpp"

#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace boost::asio::ssl {
class context;
}

namespace bus::detail {

/// Whether this program was linked with OpenSSL.
bool have_openssl() noexcept;

/// A TLS session over a connected socket (an Asio SSL stream).
struct tls_layer;
struct tls_layer_deleter {
    void operator()(tls_layer* t) const noexcept;
};
using tls_ptr = std::unique_ptr<tls_layer, tls_layer_deleter>;

/// Client side: SNI `host` and, with `verify`, host name verification; handshake not yet done.
tls_ptr tls_client(boost::asio::ip::tcp::socket& s, boost::asio::ssl::context& ctx, const std::string& host,
                   bool verify);
tls_ptr tls_server(boost::asio::ip::tcp::socket& s, boost::asio::ssl::context& ctx);
boost::asio::awaitable<void> tls_handshake(tls_layer& t, bool client);
boost::asio::awaitable<std::tuple<boost::system::error_code, std::size_t>> tls_read_some(tls_layer& t,
                                                                                          boost::asio::mutable_buffer b);
boost::asio::awaitable<std::size_t> tls_write(tls_layer& t, std::vector<boost::asio::const_buffer> b);
/// The peer ended TLS without close_notify (a closed connection, as eof).
bool tls_truncated(const boost::system::error_code& e) noexcept;

/// The client's TLS context for `o` (CA, client certificate, verification).
std::shared_ptr<boost::asio::ssl::context> tls_client_context(const tls_options& o);

} // namespace bus::detail
