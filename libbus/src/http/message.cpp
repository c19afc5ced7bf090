#include "bus/http/message.hpp"

namespace bus::http {

std::string_view request::header(std::string_view name) const
{
    auto it = headers.find(name);
    return it == headers.end() ? std::string_view{} : std::string_view(it->second);
}

response text(int status, std::string body)
{
    response r;
    r.status = status;
    r.body = std::move(body);
    if (r.body.empty() || r.body.back() != '\n') r.body += '\n';
    return r;
}

} // namespace bus::http
