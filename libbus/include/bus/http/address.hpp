#pragma once

// Addresses for HTTP listeners, pure: networks for allow-lists and trusted proxies, the client
// behind trusted proxies, and `ADDRESS:PORT` settings (`listen`, `admin-listen`).

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bus::http {

/// An IPv4 or IPv6 network.
struct cidr {
    std::array<unsigned char, 16> addr{};  ///< IPv4 stored as IPv4-mapped IPv6
    unsigned prefix = 128;
    bool contains(std::string_view ip) const noexcept;
};
/// Parses `10.0.0.0/8`, `192.168.1.7`, `2001:db8::/32`. nullopt when malformed.
std::optional<cidr> parse_cidr(std::string_view s) noexcept;
bool in_any(const std::vector<cidr>& nets, std::string_view ip) noexcept;

/// The address a request came from: `peer`, or, when `peer` is a trusted proxy, the right-most
/// X-Forwarded-For entry that is not a trusted proxy.
std::string client_address(std::string_view peer, std::string_view forwarded_for,
                           const std::vector<cidr>& trusted_proxies);

struct listen_address {
    std::string address;  ///< without brackets
    unsigned short port = 0;
};
/// `ADDRESS:PORT`, `[V6]:PORT`; nullopt when malformed (no port, port over 65535, no address).
std::optional<listen_address> parse_listen(std::string_view s);

} // namespace bus::http
