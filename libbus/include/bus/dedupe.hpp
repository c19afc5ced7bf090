#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace bus {

/// Remembers processed event ids for `ttl`, at most `capacity` of them (oldest forgotten first),
/// so redeliveries and replays are recognised in bounded memory. Not thread-safe.
class dedupe_window {
public:
    using clock = std::chrono::system_clock;

    dedupe_window(std::size_t capacity, std::chrono::seconds ttl);

    bool seen(std::string_view id, clock::time_point now);
    void remember(std::string_view id, clock::time_point now);
    std::size_t size() const noexcept { return ids_.size(); }
    /// The remembered ids with the time of their latest `remember`, oldest first.
    std::vector<std::pair<std::string, clock::time_point>> entries() const;

private:
    void expire(clock::time_point now);

    std::size_t capacity_;
    std::chrono::seconds ttl_;
    std::unordered_map<std::string, clock::time_point> ids_;
    std::deque<std::pair<clock::time_point, std::string>> order_;
};


/// A dedupe_window for ids that are never listed again (github-webhook's delivery keys): per id
/// only a 128-bit digest (SHA-256 prefix) and the time, in a ring of at most `capacity` slots with
/// an open-addressing index: about 32 bytes per id instead of about 260 for dedupe_window's two
/// strings, a map node and a queue entry (100,000 ids: ~3.4 MB instead of ~26 MB). Memory grows
/// with the ids remembered, up to that bound. Same semantics: oldest forgotten first, after `ttl`
/// or beyond `capacity`. Not thread-safe.
class digest_dedupe_window {
public:
    using clock = std::chrono::system_clock;

    digest_dedupe_window(std::size_t capacity, std::chrono::seconds ttl);

    bool seen(std::string_view id, clock::time_point now);
    void remember(std::string_view id, clock::time_point now);
    std::size_t size() const noexcept { return live_; }
    /// Bytes held by the ring and the index (for the benchmark's notes and the tests).
    std::size_t memory_bytes() const noexcept;

private:
    struct digest {
        std::uint64_t a = 0, b = 0;
        bool operator==(const digest&) const = default;
    };
    static constexpr std::int64_t dead = INT64_MIN;  ///< a slot forgotten or remembered again
    static constexpr std::size_t npos_ = static_cast<std::size_t>(-1);
    struct slot {
        digest d;
        std::int64_t at = dead;  ///< clock ticks of its remember
    };
    static digest digest_of(std::string_view id);
    void expire(clock::time_point now);
    void pop_oldest();
    std::size_t find(const digest& d) const;  ///< index position, or npos
    void index_erase(std::size_t pos);
    void index_insert(std::uint32_t ring_pos);
    void rehash(std::size_t n);

    std::size_t capacity_;
    std::chrono::seconds ttl_;
    std::vector<slot> ring_;          ///< grows to capacity_, then wraps
    std::size_t head_ = 0;            ///< oldest entry
    std::size_t count_ = 0;           ///< entries in the ring, live or not
    std::size_t live_ = 0;
    std::vector<std::uint32_t> index_;  ///< ring position + 1; 0 = empty; size a power of two
};

} // namespace bus
