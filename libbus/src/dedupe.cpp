#include "bus/dedupe.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <stdexcept>

namespace bus {

dedupe_window::dedupe_window(std::size_t capacity, std::chrono::seconds ttl) : capacity_(capacity), ttl_(ttl) {}

void dedupe_window::expire(clock::time_point now)
{
    while (!order_.empty() && (order_.front().first + ttl_ <= now || order_.size() > capacity_)) {
        auto it = ids_.find(order_.front().second);
        // Only forget the id if this queue entry is its latest one.
        if (it != ids_.end() && it->second == order_.front().first) ids_.erase(it);
        order_.pop_front();
    }
}

bool dedupe_window::seen(std::string_view id, clock::time_point now)
{
    expire(now);
    return ids_.find(std::string(id)) != ids_.end();
}

void dedupe_window::remember(std::string_view id, clock::time_point now)
{
    expire(now);
    ids_[std::string(id)] = now;
    order_.emplace_back(now, std::string(id));
    expire(now);
}

std::vector<std::pair<std::string, dedupe_window::clock::time_point>> dedupe_window::entries() const
{
    std::vector<std::pair<std::string, clock::time_point>> out;
    out.reserve(ids_.size());
    for (auto& [at, id] : order_) {
        auto it = ids_.find(id);
        if (it != ids_.end() && it->second == at) out.emplace_back(id, at);
    }
    return out;
}


// ---- digest_dedupe_window -----------------------------------------------------------------

digest_dedupe_window::digest_dedupe_window(std::size_t capacity, std::chrono::seconds ttl)
    : capacity_(std::max<std::size_t>(1, std::min<std::size_t>(capacity, 0x7fffffff))), ttl_(ttl)
{
}

digest_dedupe_window::digest digest_dedupe_window::digest_of(std::string_view id)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_Digest(id.data(), id.size(), md, &len, EVP_sha256(), nullptr) != 1 || len < 16)
        throw std::runtime_error("SHA-256 failed");
    digest d;
    std::memcpy(&d.a, md, 8);
    std::memcpy(&d.b, md + 8, 8);
    return d;
}

std::size_t digest_dedupe_window::memory_bytes() const noexcept
{
    return ring_.capacity() * sizeof(slot) + index_.capacity() * sizeof(std::uint32_t);
}

std::size_t digest_dedupe_window::find(const digest& d) const
{
    if (index_.empty()) return npos_;
    std::size_t mask = index_.size() - 1;
    for (std::size_t i = d.a & mask;; i = (i + 1) & mask) {
        std::uint32_t v = index_[i];
        if (v == 0) return npos_;
        if (ring_[v - 1].d == d) return i;
    }
}

void digest_dedupe_window::index_erase(std::size_t i)
{
    // Linear probing's backward-shift deletion: no tombstones, so lookups stay short.
    std::size_t mask = index_.size() - 1;
    std::size_t j = i;
    for (;;) {
        j = (j + 1) & mask;
        std::uint32_t v = index_[j];
        if (v == 0) break;
        std::size_t home = ring_[v - 1].d.a & mask;
        // Move it back into the hole unless its home lies cyclically in (i, j].
        bool stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            index_[i] = v;
            i = j;
        }
    }
    index_[i] = 0;
}

void digest_dedupe_window::index_insert(std::uint32_t ring_pos)
{
    std::size_t mask = index_.size() - 1;
    std::size_t i = ring_[ring_pos].d.a & mask;
    while (index_[i] != 0) i = (i + 1) & mask;
    index_[i] = ring_pos + 1;
}

void digest_dedupe_window::rehash(std::size_t n)
{
    index_.assign(n, 0);
    std::size_t mask = n - 1;
    for (std::size_t k = 0; k < count_; ++k) {
        std::size_t pos = (head_ + k) % ring_.size();
        if (ring_[pos].at == dead) continue;
        std::size_t i = ring_[pos].d.a & mask;
        while (index_[i] != 0) i = (i + 1) & mask;
        index_[i] = static_cast<std::uint32_t>(pos + 1);
    }
}

void digest_dedupe_window::pop_oldest()
{
    slot& s = ring_[head_];
    if (s.at != dead) {
        std::size_t pos = find(s.d);
        if (pos != npos_) index_erase(pos);
        s.at = dead;
        --live_;
    }
    head_ = (head_ + 1) % ring_.size();
    --count_;
    if (count_ == 0) head_ = 0;
}

void digest_dedupe_window::expire(clock::time_point now)
{
    const std::int64_t limit = (now - ttl_).time_since_epoch().count();
    while (count_ > 0 && (ring_[head_].at <= limit || count_ > capacity_)) pop_oldest();
}

bool digest_dedupe_window::seen(std::string_view id, clock::time_point now)
{
    expire(now);
    return find(digest_of(id)) != npos_;
}

void digest_dedupe_window::remember(std::string_view id, clock::time_point now)
{
    expire(now);
    digest d = digest_of(id);
    // Remembered again: the older entry stops counting (as dedupe_window's does).
    if (std::size_t pos = find(d); pos != npos_) {
        ring_[index_[pos] - 1].at = dead;
        index_erase(pos);
        --live_;
    }
    if (count_ == capacity_) pop_oldest();
    if ((live_ + 1) * 2 > index_.size()) rehash(index_.empty() ? 64 : index_.size() * 2);  // load <= 1/2
    std::size_t tail;
    if (count_ == ring_.size()) {  // every slot in use (count_ < capacity_ here): grow
        if (head_ != 0) {          // wrapped: oldest first again, then re-index the positions
            std::rotate(ring_.begin(), ring_.begin() + static_cast<std::ptrdiff_t>(head_), ring_.end());
            head_ = 0;
            rehash(std::max<std::size_t>(64, index_.size()));
        }
        if (ring_.size() == ring_.capacity())  // grow by doubling, but never past the bound
            ring_.reserve(std::min(capacity_, std::max<std::size_t>(64, ring_.size() * 2)));
        ring_.push_back({});
        tail = ring_.size() - 1;
    } else {
        tail = (head_ + count_) % ring_.size();
    }
    ring_[tail] = {d, now.time_since_epoch().count()};
    ++count_;
    index_insert(static_cast<std::uint32_t>(tail));
    ++live_;
}

} // namespace bus
