#include "bus/backoff.hpp"

#include <algorithm>
#include <cctype>
#include <string>
#include <numeric>

namespace bus {

backoff::backoff(reconnect_policy policy, std::size_t endpoints, std::uint64_t seed)
    : policy_(policy), order_(std::max<std::size_t>(endpoints, 1)),
      delay_ms_(static_cast<double>(policy.initial_delay.count())), rng_(seed)
{
    std::iota(order_.begin(), order_.end(), std::size_t{0});
    if (policy_.randomize) reshuffle();
}

void backoff::reshuffle() { std::shuffle(order_.begin(), order_.end(), rng_); }

std::chrono::milliseconds backoff::failed()
{
    ++failures_;
    if (++pos_ == order_.size()) {
        pos_ = 0;
        if (policy_.randomize) reshuffle();
    }
    const double cap = static_cast<double>(policy_.max_delay.count());
    double d = std::min(delay_ms_, cap);
    if (policy_.exponential) delay_ms_ = std::min(delay_ms_ * policy_.multiplier, cap);
    if (policy_.jitter > 0) {
        std::uniform_real_distribution<double> u(0.0, std::min(policy_.jitter, 1.0));
        d *= 1.0 - u(rng_);
    }
    return std::chrono::milliseconds(static_cast<std::int64_t>(d));
}

bool backoff::exhausted() const noexcept
{
    return policy_.max_attempts > 0 && failures_ >= policy_.max_attempts;
}

void backoff::reset()
{
    failures_ = 0;
    delay_ms_ = static_cast<double>(policy_.initial_delay.count());
}

std::chrono::milliseconds subscription_retry_delay(std::chrono::milliseconds initial,
                                                   std::chrono::milliseconds max, int refusals) noexcept
{
    auto d = std::max(initial, std::chrono::milliseconds(1));
    for (int i = 1; i < refusals && d < max; ++i) d *= 2;
    return std::min(d, max);
}

bool is_permanent_refusal(std::string_view error) noexcept
{
    std::string e(error.substr(0, 4096));
    for (auto& ch : e) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    // Transient first: RabbitMQ says "NOT_FOUND - home node 'rabbit@b' of durable queue ... is
    // down or inaccessible" while a classic queue's node is away.
    for (std::string_view t : {"home node", "is down", "inaccessible", "resource_locked", "timeout", "timed out"})
        if (e.find(t) != std::string::npos) return false;
    for (std::string_view p : {"access_refused", "access refused", "not authorized", "not authorised",
                               "unauthorized", "permission", "not allowed", "forbidden",
                               "invalid destination", "unknown destination", "not a valid destination",
                               "invalid_destination", "precondition_failed", "inequivalent arg", "syntax"})
        if (e.find(p) != std::string::npos) return true;
    return false;
}

} // namespace bus
