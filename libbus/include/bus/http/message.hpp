#pragma once

// What a daemon's HTTP handler sees and answers: plain values, no Asio, no Beast. The server
// (bus/http/server.hpp) reads a request off the wire, checks its framing and limits, and hands
// it over; `handle(request) -> response` stays testable without sockets.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bus::http {

/// Header names lower-cased; a header sent several times is joined with ", " (RFC 9110 §5.3),
/// except X-Forwarded-For lines, which are joined with "," in order.
using header_map = std::map<std::string, std::string, std::less<>>;

struct request {
    std::string method;   ///< as sent: GET, POST …
    std::string target;   ///< as sent, with the query
    std::string path;     ///< the target without the query
    unsigned version = 11;  ///< 10 or 11
    header_map headers;
    std::string body;     ///< empty until the body was read
    std::string peer;     ///< the TCP peer's address
    std::string remote;   ///< the client: `peer`, or the X-Forwarded-For client when `peer` is a trusted proxy
    bool keep_alive = true;

    /// The value of a header (lower-case name), "" when absent.
    std::string_view header(std::string_view name) const;
};

struct response {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;  ///< extra headers (Retry-After, Allow …)
    bool close = false;  ///< close the connection after this answer
};

/// A response with a one-line text body.
response text(int status, std::string body);

} // namespace bus::http
