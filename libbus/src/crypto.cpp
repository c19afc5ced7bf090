// bus/crypto.hpp over GNU Nettle.
#include "bus/crypto.hpp"

#include "bus/detail/hex.hpp"

#include <nettle/base64.h>
#include <nettle/hmac.h>
#include <nettle/memops.h>
#include <nettle/pbkdf2.h>
#include <nettle/sha1.h>
#include <nettle/sha2.h>

#include <sys/random.h>

#include <cerrno>
#include <cstdint>
#include <stdexcept>
#include <system_error>

namespace bus::crypto {

namespace {

const std::uint8_t* bytes(std::string_view s) noexcept { return reinterpret_cast<const std::uint8_t*>(s.data()); }

template <std::size_t N>
std::string hex(const std::array<unsigned char, N>& d)
{
    return detail::to_hex(d.data(), d.size());
}

constexpr std::string_view b64_alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

} // namespace

sha256_hash sha256(std::string_view data) noexcept
{
    sha256_ctx c;
    nettle_sha256_init(&c);
    nettle_sha256_update(&c, data.size(), bytes(data));
    sha256_hash out;
    nettle_sha256_digest(&c, out.size(), out.data());
    return out;
}

sha1_hash sha1(std::string_view data) noexcept
{
    sha1_ctx c;
    nettle_sha1_init(&c);
    nettle_sha1_update(&c, data.size(), bytes(data));
    sha1_hash out;
    nettle_sha1_digest(&c, out.size(), out.data());
    return out;
}

std::string sha256_hex(std::string_view data) { return hex(sha256(data)); }
std::string sha1_hex(std::string_view data) { return hex(sha1(data)); }

sha256_hash hmac_sha256(std::string_view key, std::string_view data) noexcept
{
    hmac_sha256_ctx c;
    nettle_hmac_sha256_set_key(&c, key.size(), bytes(key));
    nettle_hmac_sha256_update(&c, data.size(), bytes(data));
    sha256_hash out;
    nettle_hmac_sha256_digest(&c, out.size(), out.data());
    return out;
}

sha1_hash hmac_sha1(std::string_view key, std::string_view data) noexcept
{
    hmac_sha1_ctx c;
    nettle_hmac_sha1_set_key(&c, key.size(), bytes(key));
    nettle_hmac_sha1_update(&c, data.size(), bytes(data));
    sha1_hash out;
    nettle_hmac_sha1_digest(&c, out.size(), out.data());
    return out;
}

std::string hmac_sha256_hex(std::string_view key, std::string_view data) { return hex(hmac_sha256(key, data)); }
std::string hmac_sha1_hex(std::string_view key, std::string_view data) { return hex(hmac_sha1(key, data)); }

std::string pbkdf2_sha256(std::string_view password, std::string_view salt, unsigned iterations, std::size_t length)
{
    if (iterations == 0) throw std::invalid_argument("PBKDF2: iterations must be at least 1");
    std::string out(length, '\0');
    if (length == 0) return out;
    nettle_pbkdf2_hmac_sha256(password.size(), bytes(password), iterations, salt.size(), bytes(salt), length,
                              reinterpret_cast<std::uint8_t*>(out.data()));
    return out;
}

std::string base64_encode(std::string_view data, bool pad)
{
    std::string out(BASE64_ENCODE_RAW_LENGTH(data.size()), '\0');
    nettle_base64_encode_raw(out.data(), data.size(), bytes(data));
    if (!pad)
        while (out.ends_with('=')) out.pop_back();
    return out;
}

std::optional<std::string> base64_decode(std::string_view text)
{
    // Nettle's decoder skips blanks and line breaks; the alphabet and padding are checked here
    // first, and Nettle then rejects non-zero trailing bits and incomplete groups.
    std::string_view body = text;
    std::size_t pads = 0;
    while (body.ends_with('=')) {
        body.remove_suffix(1);
        ++pads;
    }
    if (pads > 2 || body.size() % 4 == 1 || body.find_first_not_of(b64_alphabet) != std::string_view::npos)
        return std::nullopt;
    if (pads && (body.size() + pads) % 4 != 0) return std::nullopt;  // padding, if any, completes the group
    std::string padded(body);
    padded.append((4 - body.size() % 4) % 4, '=');
    std::string out(BASE64_DECODE_LENGTH(padded.size()), '\0');
    base64_decode_ctx c;
    nettle_base64_decode_init(&c);
    std::size_t n = out.size();
    if (!nettle_base64_decode_update(&c, &n, reinterpret_cast<std::uint8_t*>(out.data()), padded.size(), padded.data()) ||
        !nettle_base64_decode_final(&c))
        return std::nullopt;
    out.resize(n);
    return out;
}

bool equal_constant_time(std::string_view a, std::string_view b) noexcept
{
    return a.size() == b.size() && nettle_memeql_sec(a.data(), b.data(), a.size());
}

void random_bytes(void* out, std::size_t n)
{
    auto* p = static_cast<unsigned char*>(out);
    for (std::size_t got = 0; got < n;) {
        ssize_t r = ::getrandom(p + got, n - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) throw std::system_error(r < 0 ? errno : EIO, std::generic_category(), "getrandom");
        got += static_cast<std::size_t>(r);
    }
}

std::string random_bytes(std::size_t n)
{
    std::string s(n, '\0');
    random_bytes(s.data(), n);
    return s;
}

} // namespace bus::crypto
