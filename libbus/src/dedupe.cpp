#include "bus/dedupe.hpp"

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

} // namespace bus
