#pragma once

#include "bus/stomp/error.hpp"
#include "bus/stomp/frame.hpp"

#include <string>
#include <system_error>

namespace bus::stomp {

/// Appends the wire form of `f` to `out` for protocol version `v`.
///
/// Headers are written in order. A `content-length` header gets the real body size; one is
/// added when the body is not empty and none was given, so bodies may contain NUL octets.
/// On 1.1 escapes `\\ \n \c`, on 1.2 also `\r`; CONNECT/CONNECTED are never escaped. On 1.0
/// (no escaping) a value containing CR, LF or a backslash cannot be carried safely — RabbitMQ
/// drops the connection on an undefined escape even on 1.0 — so it is refused with
/// `error::unencodable_header` and `out` is left unchanged. Pure; never throws but for
/// allocation failure.
void serialize(std::string& out, const frame& f, version v, std::error_code& ec);

/// Convenience form; throws std::system_error on an unencodable header.
std::string serialize(const frame& f, version v);

} // namespace bus::stomp
