#pragma once

#include "bus/url.hpp"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <random>
#include <string_view>
#include <vector>

namespace bus {

/// Pure reconnect schedule: which endpoint to try next and how long to wait first.
///
/// Delays grow from `initial_delay` by `multiplier` up to `max_delay` (constant when not
/// exponential), each reduced by a random jitter so a fleet does not reconnect in lock-step.
/// `reset()` after a successful connect starts over (the original never reset). Endpoints are
/// tried in order, wrapping around; with `randomize` each round uses a fresh shuffle.
class backoff {
public:
    backoff(reconnect_policy policy, std::size_t endpoints, std::uint64_t seed);

    /// Index of the endpoint for the next attempt.
    std::size_t endpoint() const noexcept { return order_[pos_]; }
    /// Records a failed attempt; returns the wait before the next one.
    std::chrono::milliseconds failed();
    /// True once `max_attempts` consecutive attempts have failed.
    bool exhausted() const noexcept;
    /// Records a successful connect.
    void reset();
    int failures() const noexcept { return failures_; }

private:
    void reshuffle();

    reconnect_policy policy_;
    std::vector<std::size_t> order_;
    std::size_t pos_ = 0;
    int failures_ = 0;
    double delay_ms_;
    std::mt19937_64 rng_;
};

/// A SUBSCRIBE refused by ERROR after a good CONNECT (RabbitMQ: the queue's home node is
/// down) is not a dead broker: that one subscription is retried after `initial`, doubling
/// with each refusal in a row (`refusals` >= 1), up to `max`.
std::chrono::milliseconds subscription_retry_delay(std::chrono::milliseconds initial,
                                                   std::chrono::milliseconds max, int refusals) noexcept;

/// Whether a broker's ERROR text (`message` header and body) says the request can never
/// succeed as it is (access refused, an invalid or unknown destination, conflicting queue
/// arguments) rather than not now (a node down, a resource locked). Unknown text: not now.
bool is_permanent_refusal(std::string_view error) noexcept;

} // namespace bus
