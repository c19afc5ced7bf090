#pragma once

// Messages stomp-git has left unacknowledged until the fetch that covers them is done: "leave,
// then acknowledge after the work; an event already in flight is covered by that work; mark it
// processed in the intake". Pure and generic over the message type, in the shape of the shared
// consumer ledger the runtime is getting (issue 12), so stomp-git can move onto it by swapping
// this class.

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace stomp_git {

template <class Message>
class pending_acks {
public:
    struct entry {
        Message msg;
        std::string event_id;
        std::string ref, old_rev, new_rev;  ///< what the commit event named (reported back)
    };

    /// Holds a message until settle(); returns the token the scheduler carries for it.
    std::uint64_t hold(entry e)
    {
        auto token = ++next_;
        held_.emplace(token, std::move(e));
        return token;
    }

    /// Whether an event with this id is already held: its fetch covers a second copy (the other
    /// wire form, a redelivery), which can be acknowledged at once.
    bool holds_event(std::string_view id) const
    {
        for (const auto& [_, e] : held_)
            if (e.event_id == id) return true;
        return false;
    }

    const entry* find(std::uint64_t token) const
    {
        auto it = held_.find(token);
        return it == held_.end() ? nullptr : &it->second;
    }

    /// The work covering `tokens` is done: `done(entry)` for each (acknowledge, mark processed),
    /// then they are forgotten. Unknown tokens are skipped.
    template <class F>
    void settle(const std::vector<std::uint64_t>& tokens, F&& done)
    {
        for (auto token : tokens) {
            auto it = held_.find(token);
            if (it == held_.end()) continue;
            done(it->second);
            held_.erase(it);
        }
    }

    std::size_t size() const noexcept { return held_.size(); }

private:
    std::map<std::uint64_t, entry> held_;
    std::uint64_t next_ = 0;
};

} // namespace stomp_git
