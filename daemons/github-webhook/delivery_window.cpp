#include "delivery_window.hpp"

#include "bus/crypto.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

namespace webhook {

namespace {
std::string random_key() { return bus::crypto::random_bytes(32); }
} // namespace

delivery_window::delivery_window(std::size_t capacity, std::chrono::seconds ttl)
    : delivery_window(capacity, ttl, random_key())
{
}

delivery_window::delivery_window(std::size_t capacity, std::chrono::seconds ttl, std::string key)
    : capacity_(std::clamp<std::size_t>(capacity, 1, 0x7fffffff)), ttl_(ttl), key_(std::move(key)),
      // Times are stored as seconds after base_: 32 bits last 136 years from the daemon's start.
      base_(std::chrono::floor<std::chrono::seconds>(clock::now()) - std::chrono::hours(24 * 365)),
      // Default-initialised: the pages are touched only as slots are written.
      ring_(std::make_unique_for_overwrite<slot[]>(capacity_))
{
}

delivery_window::slot delivery_window::digest_of(std::string_view id) const noexcept
{
    auto mac = bus::crypto::hmac_sha256(key_, id);
    slot s;
    std::memcpy(s.d, mac.data(), sizeof s.d);
    s.at = 0;
    return s;
}

std::uint32_t delivery_window::seconds_of(clock::time_point t) const noexcept
{
    auto s = std::chrono::ceil<std::chrono::seconds>(t - base_).count();
    if (s < 1) return 1;  // a clock far behind base_: kept from base_, as if remembered then
    if (s > std::numeric_limits<std::uint32_t>::max()) return std::numeric_limits<std::uint32_t>::max();
    return static_cast<std::uint32_t>(s);
}

std::size_t delivery_window::memory_bytes() const noexcept
{
    return used_ * sizeof(slot) + index_.capacity() * sizeof(std::uint32_t);
}

std::size_t delivery_window::home(const slot& s) const noexcept
{
    // Range reduction by multiplication (the digest is uniform): any index size, not only powers of two.
    return static_cast<std::size_t>((static_cast<std::uint64_t>(s.d[0]) * index_.size()) >> 32);
}

std::size_t delivery_window::find(const slot& s) const noexcept
{
    if (index_.empty()) return npos;
    const std::size_t n = index_.size();
    for (std::size_t i = home(s);; i = i + 1 == n ? 0 : i + 1) {
        std::uint32_t v = index_[i];
        if (v == 0) return npos;
        const slot& r = ring_[v - 1];
        if (r.d[0] == s.d[0] && r.d[1] == s.d[1] && r.d[2] == s.d[2]) return i;
    }
}

void delivery_window::index_erase(std::size_t i) noexcept
{
    // Linear probing's backward-shift deletion: no tombstones, so lookups stay short.
    const std::size_t n = index_.size();
    std::size_t j = i;
    for (;;) {
        j = j + 1 == n ? 0 : j + 1;
        std::uint32_t v = index_[j];
        if (v == 0) break;
        std::size_t h = home(ring_[v - 1]);
        // Move it back into the hole unless its home lies cyclically in (i, j].
        bool stays = i <= j ? (h > i && h <= j) : (h > i || h <= j);
        if (!stays) {
            index_[i] = v;
            i = j;
        }
    }
    index_[i] = 0;
}

void delivery_window::rehash(std::size_t n)
{
    std::vector<std::uint32_t>().swap(index_);  // free the old one first: no peak of both
    index_.assign(n, 0);
    for (std::size_t k = 0; k < count_; ++k) {
        std::size_t pos = (head_ + k) % capacity_;
        if (ring_[pos].at == 0) continue;
        std::size_t i = home(ring_[pos]);
        while (index_[i] != 0) i = i + 1 == n ? 0 : i + 1;
        index_[i] = static_cast<std::uint32_t>(pos + 1);
    }
}

void delivery_window::pop_oldest()
{
    slot& s = ring_[head_];
    if (s.at != 0) {
        std::size_t pos = find(s);
        if (pos != npos) index_erase(pos);
        s.at = 0;
        --live_;
    }
    head_ = head_ + 1 == capacity_ ? 0 : head_ + 1;
    --count_;
    if (count_ == 0) head_ = 0;
}

void delivery_window::expire(clock::time_point now)
{
    // Kept while its (rounded-up) time is later than now - ttl rounded down: never forgotten early.
    auto limit = std::chrono::floor<std::chrono::seconds>(now - ttl_ - base_).count();
    while (count_ > 0 && (static_cast<std::int64_t>(ring_[head_].at) <= limit || count_ > capacity_)) pop_oldest();
}

bool delivery_window::seen(std::string_view id, clock::time_point now)
{
    expire(now);
    return find(digest_of(id)) != npos;
}

void delivery_window::remember(std::string_view id, clock::time_point now)
{
    expire(now);
    slot s = digest_of(id);
    // Remembered again: the older entry stops counting (as bus::dedupe_window's does).
    if (std::size_t pos = find(s); pos != npos) {
        ring_[index_[pos] - 1].at = 0;
        index_erase(pos);
        --live_;
    }
    if (count_ == capacity_) pop_oldest();
    // Load <= 2/3; the last step goes straight to capacity * 3/2 (live never exceeds capacity).
    if ((live_ + 1) * 3 > index_.size() * 2) {
        std::size_t full = capacity_ + capacity_ / 2 + 1;
        rehash(std::min(full, std::max<std::size_t>(64, index_.size() * 2)));
    }
    std::size_t tail = (head_ + count_) % capacity_;
    s.at = seconds_of(now);
    ring_[tail] = s;
    used_ = std::max(used_, tail + 1);
    ++count_;
    std::size_t i = home(s);
    while (index_[i] != 0) i = i + 1 == index_.size() ? 0 : i + 1;
    index_[i] = static_cast<std::uint32_t>(tail + 1);
    ++live_;
}

} // namespace webhook
