// PBKDF2-SHA256 password hashes (bus/password.hpp): the stomp-broker's users file and herald's.
#include "bus/password.hpp"

#include "bus/crypto.hpp"
#include "bus/detail/hex.hpp"

#include <atomic>
#include <charconv>
#include <vector>

namespace bus {

namespace {

std::string hex(std::string_view s)
{
    return detail::to_hex(reinterpret_cast<const unsigned char*>(s.data()), s.size());
}

bool from_hex(std::string_view s, std::string& out)
{
    if (s.size() % 2) return false;
    out.clear();
    for (std::size_t i = 0; i < s.size(); i += 2) {
        unsigned v = 0;
        auto r = std::from_chars(s.data() + i, s.data() + i + 2, v, 16);
        if (r.ec != std::errc{} || r.ptr != s.data() + i + 2) return false;
        out.push_back(static_cast<char>(v));
    }
    return true;
}

} // namespace

std::string hash_password(std::string_view password, unsigned iterations)
{
    const std::string salt = crypto::random_bytes(16);
    const std::string out = crypto::pbkdf2_sha256(password, salt, iterations, 32);
    return "pbkdf2-sha256$" + std::to_string(iterations) + "$" + hex(salt) + "$" + hex(out);
}

namespace {
std::atomic<std::uint64_t> pbkdf2_count{0};
}

std::uint64_t password_checks() noexcept { return pbkdf2_count.load(); }

bool check_password(std::string_view password, std::string_view hash)
{
    // pbkdf2-sha256$<iterations>$<salt>$<hash>
    std::vector<std::string_view> parts;
    while (!hash.empty()) {
        auto d = hash.find('$');
        parts.push_back(hash.substr(0, d));
        hash = d == std::string_view::npos ? std::string_view{} : hash.substr(d + 1);
    }
    if (parts.size() != 4 || parts[0] != "pbkdf2-sha256") return false;
    unsigned iterations = 0;
    auto r = std::from_chars(parts[1].data(), parts[1].data() + parts[1].size(), iterations);
    if (r.ec != std::errc{} || iterations == 0 || iterations > 10'000'000) return false;
    std::string salt, expected;
    if (!from_hex(parts[2], salt) || !from_hex(parts[3], expected) || expected.empty()) return false;
    ++pbkdf2_count;
    return crypto::equal_constant_time(crypto::pbkdf2_sha256(password, salt, iterations, expected.size()), expected);
}

} // namespace bus
