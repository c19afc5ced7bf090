#pragma once

// github-webhook's dedupe window: the delivery keys answered 202, remembered for `ttl`, at most
// `capacity` of them (oldest forgotten first), so a redelivery is recognised in bounded memory.
//
// 16 bytes per delivery: a 96-bit keyed digest of the key (HMAC-SHA256 under a per-process key
// from getrandom(2), so a peer who chooses delivery ids cannot aim collisions: among 100,000 live
// keys the odds of any false "duplicate" are about n^2 / 2^97 = 6e-20) and the time in whole
// seconds, rounded up (an entry is kept for ttl, at most one second longer, never shorter).
// The ring is allocated for `capacity` up front but untouched pages cost nothing, so resident
// memory grows with the deliveries remembered and no growth ever copies it; the index (ring
// positions, load <= 2/3) grows by rehashing. 100,000 deliveries: 1.6 MB ring + 0.6 MB index
// (was 3.4 MB with 24-byte slots and a power-of-two index). Not thread-safe.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace webhook {

class delivery_window {
public:
    using clock = std::chrono::system_clock;

    delivery_window(std::size_t capacity, std::chrono::seconds ttl);
    /// With a given digest key (tests); the daemon's constructor draws one from getrandom.
    delivery_window(std::size_t capacity, std::chrono::seconds ttl, std::string key);

    bool seen(std::string_view id, clock::time_point now);
    void remember(std::string_view id, clock::time_point now);
    std::size_t size() const noexcept { return live_; }
    std::size_t capacity() const noexcept { return capacity_; }
    /// Bytes the ring and index may hold at this moment (ring: only its used part is resident).
    std::size_t memory_bytes() const noexcept;

    struct slot {
        std::uint32_t d[3];     ///< 96 bits of HMAC-SHA256(key, id)
        std::uint32_t at;       ///< seconds after base_ (rounded up); 0 = forgotten
    };
    static_assert(sizeof(slot) == 16);
    // No member initialisers: the ring is allocated for `capacity` slots and must stay untouched
    // (not resident) until used. With `at = 0` here, new slot[n] wrote every slot at start: 1.6 MB
    // of a 100,000-delivery window resident in an idle daemon (bench/results/perf-5-*.md).
    static_assert(std::is_trivially_default_constructible_v<slot>);

private:
    slot digest_of(std::string_view id) const noexcept;
    std::uint32_t seconds_of(clock::time_point t) const noexcept;  ///< rounded up, >= 1
    void expire(clock::time_point now);
    void pop_oldest();
    std::size_t home(const slot& s) const noexcept;
    std::size_t find(const slot& s) const noexcept;  ///< index position, or npos
    void index_erase(std::size_t pos) noexcept;
    void rehash(std::size_t n);

    static constexpr std::size_t npos = static_cast<std::size_t>(-1);
    std::size_t capacity_;
    std::chrono::seconds ttl_;
    std::string key_;
    clock::time_point base_;
    std::unique_ptr<slot[]> ring_;       ///< capacity_ slots, written in order
    std::size_t head_ = 0;               ///< oldest entry
    std::size_t count_ = 0;              ///< entries in the ring, live or not
    std::size_t used_ = 0;               ///< ring slots ever written (resident part)
    std::size_t live_ = 0;
    std::vector<std::uint32_t> index_;   ///< ring position + 1; 0 = empty
};

} // namespace webhook
