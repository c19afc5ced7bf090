#pragma once

// The hashes, MACs and encodings deploykit uses outside TLS, over GNU Nettle (GnuTLS's crypto
// core; libnettle8 is on every Debian system): SHA-256 / SHA-1, HMAC, PBKDF2-HMAC-SHA256,
// base64, a constant-time compare and the kernel's CSPRNG. Nothing here touches OpenSSL, so a
// daemon without TLS never maps or initialises libcrypto (issue #18: libcrypto costs a daemon
// 1.5-1.7 MiB resident and 0.46 MiB of relocated data; Nettle 0.1-0.3 MiB, nothing at start).
// Nettle's fat build picks SHA-NI / x86-64 assembly at load, as OpenSSL does. Pure; no Asio.
// Tests: tests/unit/crypto_test.cpp (FIPS 180, RFC 4231/2202/7914/4648 vectors).

#include <array>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace bus::crypto {

using sha256_hash = std::array<unsigned char, 32>;
using sha1_hash = std::array<unsigned char, 20>;

sha256_hash sha256(std::string_view data) noexcept;
sha1_hash sha1(std::string_view data) noexcept;
/// Lower-case hex.
std::string sha256_hex(std::string_view data);
std::string sha1_hex(std::string_view data);

/// HMAC (RFC 2104) of `data` under `key`.
sha256_hash hmac_sha256(std::string_view key, std::string_view data) noexcept;
sha1_hash hmac_sha1(std::string_view key, std::string_view data) noexcept;
/// Lower-case hex.
std::string hmac_sha256_hex(std::string_view key, std::string_view data);
std::string hmac_sha1_hex(std::string_view key, std::string_view data);

/// PBKDF2 (RFC 8018) with HMAC-SHA256: `length` bytes derived from `password` and `salt`.
/// Throws std::invalid_argument for 0 iterations.
std::string pbkdf2_sha256(std::string_view password, std::string_view salt, unsigned iterations, std::size_t length);

/// Base64 (RFC 4648, standard alphabet), with or without `=` padding.
std::string base64_encode(std::string_view data, bool pad = true);
/// Strict base64: the standard alphabet only (no blanks, no line breaks), padding optional but,
/// when present, complete and only at the end, and unused trailing bits zero. nullopt otherwise.
std::optional<std::string> base64_decode(std::string_view text);

/// a == b, in time that depends only on the lengths (not on where they differ).
bool equal_constant_time(std::string_view a, std::string_view b) noexcept;

/// `n` bytes from the kernel's CSPRNG (getrandom(2); retried on EINTR and short reads). Throws
/// std::system_error when the kernel cannot give them.
void random_bytes(void* out, std::size_t n);
std::string random_bytes(std::size_t n);

} // namespace bus::crypto
