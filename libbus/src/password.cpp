// PBKDF2-SHA256 password hashes (bus/password.hpp): the stomp-broker's users file and herald's.
#include "bus/password.hpp"

#include "bus/detail/hex.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <atomic>
#include <charconv>
#include <vector>

namespace bus {

namespace {

using bus::detail::to_hex;

bool from_hex(std::string_view s, std::vector<unsigned char>& out)
{
    if (s.size() % 2) return false;
    out.clear();
    for (std::size_t i = 0; i < s.size(); i += 2) {
        unsigned v = 0;
        auto r = std::from_chars(s.data() + i, s.data() + i + 2, v, 16);
        if (r.ec != std::errc{} || r.ptr != s.data() + i + 2) return false;
        out.push_back(static_cast<unsigned char>(v));
    }
    return true;
}

} // namespace

std::string hash_password(std::string_view password, unsigned iterations)
{
    unsigned char salt[16];
    RAND_bytes(salt, sizeof salt);
    unsigned char out[32];
    PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt, sizeof salt,
                      static_cast<int>(iterations), EVP_sha256(), sizeof out, out);
    return "pbkdf2-sha256$" + std::to_string(iterations) + "$" + to_hex(salt, sizeof salt) + "$" +
           to_hex(out, sizeof out);
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
    std::vector<unsigned char> salt, expected;
    if (!from_hex(parts[2], salt) || !from_hex(parts[3], expected) || expected.empty()) return false;
    std::vector<unsigned char> got(expected.size());
    ++pbkdf2_count;
    PKCS5_PBKDF2_HMAC(password.data(), static_cast<int>(password.size()), salt.data(), static_cast<int>(salt.size()),
                      static_cast<int>(iterations), EVP_sha256(), static_cast<int>(got.size()), got.data());
    return CRYPTO_memcmp(got.data(), expected.data(), got.size()) == 0;
}

} // namespace bus
