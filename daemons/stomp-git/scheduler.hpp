#pragma once

// Which fetch runs when: a bounded number at once, one at a time per repository, and bursts
// coalesced — ten pushes to a repository while its fetch runs lead to at most one more fetch,
// which covers all ten messages. Pure.

#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <vector>

namespace stomp_git {

class scheduler {
public:
    explicit scheduler(unsigned workers) : workers_(workers ? workers : 1) {}

    /// A message (identified by `token`) asks for a fetch of `repo`. Returns repos to start now.
    std::vector<std::string> request(const std::string& repo, std::uint64_t token);

    struct done_result {
        std::vector<std::uint64_t> covered;  ///< messages this fetch answered: acknowledge them
        std::vector<std::string> start;      ///< repos to start now
    };
    /// The fetch of `repo` finished (successfully or not).
    done_result finished(const std::string& repo);

    std::size_t running() const noexcept { return active_; }
    std::size_t waiting() const noexcept { return ready_.size(); }

private:
    struct state {
        bool running = false;
        bool queued = false;
        std::vector<std::uint64_t> running_tokens;
        std::vector<std::uint64_t> pending_tokens;
        bool pending = false;
    };
    std::vector<std::string> drain();

    unsigned workers_;
    unsigned active_ = 0;
    std::map<std::string, state> repos_;
    std::deque<std::string> ready_;
};

} // namespace stomp_git
