#pragma once

// Optional HMAC-SHA256 message signing. A signature covers the destination, the routing headers
// and the body, and carries a key id and a timestamp. Scheme v2 (`dk-sig: v2:<hex>`) signs every
// field length-prefixed, so text cannot move between fields; the ambiguous v1 form (bare hex) is
// never verified. Pure (HMAC over Nettle, bus/crypto.hpp); keys come from files
// readable only by the daemon's user, never from command lines.

#include "bus/stomp/frame.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>

namespace bus {

namespace header {
inline constexpr std::string_view sig_key = "dk-sig-key";
inline constexpr std::string_view sig_time = "dk-sig-ts";
inline constexpr std::string_view signature = "dk-sig";
} // namespace header

struct signing_key {
    std::string id;
    std::string secret;
};

/// Keys by id. A key file has one `<id> <secret>` per line (`#` comments); it must be a regular
/// file not readable or writable by group or others.
class keyring {
public:
    void add(signing_key k);
    const signing_key* find(std::string_view id) const;
    bool empty() const noexcept { return keys_.empty(); }
    /// Throws config_error naming the file and line.
    static keyring load_file(const std::filesystem::path& path);

private:
    std::map<std::string, signing_key, std::less<>> keys_;
};

/// The routing headers a signature covers, besides destination and body.
inline constexpr std::string_view signed_headers[] = {"subject", "content-type", "dk-event-id", "dk-event-type",
                                                       "dk-repo"};

/// The scheme tag that starts every `dk-sig` value this version writes and accepts.
inline constexpr std::string_view signature_scheme = "v2:";

/// Adds `dk-sig-key`, `dk-sig-ts` (Unix seconds) and `dk-sig` (`v2:` + hex HMAC-SHA256) to `f`.
void sign(stomp::frame& f, const signing_key& k, std::int64_t unix_now);

enum class signature_verdict {
    ok,
    unsigned_message,  ///< no signature headers
    unknown_key,       ///< key id not in the keyring
    bad_signature,     ///< forged, or body/routing header tampered with
    stale,             ///< timestamp outside the window (too old, or from the future)
    unsupported_scheme,  ///< `dk-sig` without the `v2:` tag: the ambiguous v1 form, or a newer one
};
std::string_view to_string(signature_verdict v) noexcept;

/// Checks a received frame's signature; constant-time comparison.
signature_verdict verify(const stomp::frame& f, const keyring& keys, std::int64_t unix_now,
                         std::chrono::seconds window);

} // namespace bus
