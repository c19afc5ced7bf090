#include "scheduler.hpp"

namespace stomp_git {

std::vector<std::string> scheduler::request(const std::string& repo, std::uint64_t token)
{
    auto& s = repos_[repo];
    s.pending_tokens.push_back(token);
    s.pending = true;
    if (!s.running && !s.queued) {
        s.queued = true;
        ready_.push_back(repo);
    }
    return drain();
}

std::vector<std::string> scheduler::drain()
{
    std::vector<std::string> start;
    while (active_ < workers_ && !ready_.empty()) {
        std::string r = std::move(ready_.front());
        ready_.pop_front();
        auto& s = repos_[r];
        s.queued = false;
        s.running = true;
        s.pending = false;
        s.running_tokens = std::move(s.pending_tokens);
        s.pending_tokens.clear();
        ++active_;
        start.push_back(std::move(r));
    }
    return start;
}

scheduler::done_result scheduler::finished(const std::string& repo)
{
    done_result d;
    auto& s = repos_[repo];
    if (!s.running) return d;
    d.covered = std::move(s.running_tokens);
    s.running_tokens.clear();
    s.running = false;
    --active_;
    if (s.pending && !s.queued) {
        s.queued = true;
        ready_.push_back(repo);
    }
    d.start = drain();
    return d;
}

} // namespace stomp_git
