#pragma once

// Password hashes for users files (stomp-broker's, herald's): PBKDF2-HMAC-SHA256 strings
// `pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>` (bus/crypto.hpp, Nettle). No Asio.

#include <cstdint>
#include <string>
#include <string_view>

namespace bus {

/// A new PBKDF2-SHA256 hash string for `password` (random 16-byte salt).
std::string hash_password(std::string_view password, unsigned iterations = 100000);
/// Constant-time check of `password` against a hash string; false for a malformed hash.
bool check_password(std::string_view password, std::string_view hash);
/// How many PBKDF2 derivations `check_password` has run (tests: constant work per login).
std::uint64_t password_checks() noexcept;

} // namespace bus
