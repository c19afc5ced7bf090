#pragma once

// SHA-256 and HMAC (RFC 2104) over OpenSSL's low-level SHA-256 / SHA-1 functions.
//
// OpenSSL stays the crypto implementation (its assembler block functions, chosen by CPU at load);
// what this avoids is the EVP layer's provider machinery: the first EVP/HMAC call loads the
// config, initialises the default provider and builds its algorithm tables (resident memory),
// and every call then fetches the algorithm and allocates a context (microseconds per request).
// The plain-HTTP daemon needs no more than these functions; TLS, if configured, initialises
// OpenSSL fully as before. Pure; tested against the RFC 4231 / RFC 2202 / FIPS 180 vectors
// (tests/unit/webhook_test.cpp).

#include <array>
#include <cstddef>
#include <string_view>

namespace webhook {

using sha256_digest = std::array<unsigned char, 32>;
using sha1_digest = std::array<unsigned char, 20>;

sha256_digest sha256(std::string_view data) noexcept;
sha256_digest hmac_sha256(std::string_view key, std::string_view data) noexcept;
sha1_digest hmac_sha1(std::string_view key, std::string_view data) noexcept;

/// `n` bytes from the kernel's CSPRNG (getrandom(2)); throws if it cannot deliver.
void random_bytes(unsigned char* out, std::size_t n);

} // namespace webhook
