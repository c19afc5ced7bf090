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

} // namespace bus
