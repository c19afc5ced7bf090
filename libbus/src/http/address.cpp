#include "bus/http/address.hpp"

#include <arpa/inet.h>

#include <algorithm>

namespace bus::http {

namespace {

std::optional<std::array<unsigned char, 16>> parse_ip(std::string_view s) noexcept
{
    std::array<unsigned char, 16> out{};
    char buf[INET6_ADDRSTRLEN + 1] = {};
    if (s.empty() || s.size() >= sizeof buf) return std::nullopt;
    std::copy(s.begin(), s.end(), buf);
    unsigned char v4[4];
    if (::inet_pton(AF_INET, buf, v4) == 1) {
        out[10] = out[11] = 0xff;
        std::copy(v4, v4 + 4, out.begin() + 12);
        return out;
    }
    if (::inet_pton(AF_INET6, buf, out.data()) == 1) return out;
    return std::nullopt;
}

std::string_view trim(std::string_view s) noexcept
{
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

} // namespace

std::optional<cidr> parse_cidr(std::string_view s) noexcept
{
    cidr c;
    auto slash = s.find('/');
    auto ip = parse_ip(s.substr(0, slash));
    if (!ip) return std::nullopt;
    c.addr = *ip;
    bool v4 = s.substr(0, slash).find(':') == std::string_view::npos;
    c.prefix = 128;
    if (slash != std::string_view::npos) {
        auto bits = s.substr(slash + 1);
        if (bits.empty() || bits.size() > 3) return std::nullopt;
        unsigned n = 0;
        for (char ch : bits) {
            if (ch < '0' || ch > '9') return std::nullopt;
            n = n * 10 + static_cast<unsigned>(ch - '0');
        }
        if (n > (v4 ? 32u : 128u)) return std::nullopt;
        c.prefix = v4 ? n + 96 : n;
    }
    return c;
}

bool cidr::contains(std::string_view ip) const noexcept
{
    auto a = parse_ip(ip);
    if (!a) return false;
    unsigned full = prefix / 8, rest = prefix % 8;
    for (unsigned i = 0; i < full; ++i)
        if ((*a)[i] != addr[i]) return false;
    if (rest) {
        unsigned char mask = static_cast<unsigned char>(0xff << (8 - rest));
        if (((*a)[full] & mask) != (addr[full] & mask)) return false;
    }
    return true;
}

bool in_any(const std::vector<cidr>& nets, std::string_view ip) noexcept
{
    return std::any_of(nets.begin(), nets.end(), [&](const cidr& c) { return c.contains(ip); });
}

std::string client_address(std::string_view peer, std::string_view forwarded_for,
                           const std::vector<cidr>& trusted_proxies)
{
    if (forwarded_for.empty() || !in_any(trusted_proxies, peer)) return std::string(peer);
    // Walk right to left: each trusted hop vouches for the one before it; the first untrusted
    // address is the client. Anything left of it is whatever the client claimed.
    std::string_view rest = forwarded_for;
    std::string_view last = peer;
    while (!rest.empty()) {
        auto comma = rest.rfind(',');
        std::string_view hop = trim(comma == std::string_view::npos ? rest : rest.substr(comma + 1));
        rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(0, comma);
        if (!parse_ip(hop)) return std::string(last);  // garbage: stop at the last address we trust
        if (!in_any(trusted_proxies, hop)) return std::string(hop);
        last = hop;
    }
    return std::string(last);
}

std::optional<listen_address> parse_listen(std::string_view s)
{
    auto colon = s.rfind(':');
    if (colon == std::string_view::npos || colon == 0) return std::nullopt;
    listen_address out;
    auto host = s.substr(0, colon);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    out.address = std::string(host);
    auto digits = s.substr(colon + 1);
    if (digits.empty() || digits.size() > 5) return std::nullopt;
    unsigned long port = 0;
    for (char c : digits) {
        if (c < '0' || c > '9') return std::nullopt;
        port = port * 10 + static_cast<unsigned long>(c - '0');
    }
    if (port > 65535) return std::nullopt;
    out.port = static_cast<unsigned short>(port);
    return out;
}

} // namespace bus::http
