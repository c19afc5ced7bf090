#pragma once

// The consumer ledger: work that outlives a message handler, acknowledged only after the work.
// Pure (no Asio, no client): it decides, the daemon acts.
//
// The pattern (stomp-git's fetches, stomp-jenkins' triggers, and the daemons to come):
//   1. the handler decides the message needs work: `auto t = ledger.hold(m, ev.id)`, starts the
//      work for token t, and returns disposition::leave (no ACK yet);
//   2. another copy of an event already in flight (the broker's redelivery after a reconnect, or
//      the second wire format) is covered by that work: `if (ledger.attach(ev.id, m))` → leave;
//   3. when the work is done: `for (auto& a : ledger.resolve(t, ok))` → client.acknowledge(a.msg,
//      a.ack ? ack : leave); if (a.ack && a.first) intake.processed(a.event_id, now).
// On failure (`ok == false`) every copy is left: the broker redelivers it after a reconnect or
// restart, and the intake has not marked it, so it is worked on again.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bus::runtime {

template <class Message>
class ledger {
public:
    using token = std::uint64_t;

    /// What to do with one message when its work ended.
    struct answer {
        Message msg;
        bool ack = false;        ///< true: acknowledge; false: leave it to the broker
        std::string event_id;
        bool first = false;      ///< the message the work was started for (mark processed once)
    };

    /// Holds `m` (carrying event `event_id`) until resolve(). Returns its token.
    token hold(Message m, std::string event_id)
    {
        token t = ++next_;
        if (!event_id.empty()) events_.emplace(event_id, t);
        held_.emplace(t, entry{std::move(m), std::move(event_id), {}});
        return t;
    }

    /// When `event_id` is in flight: `m` is answered with it (true). False otherwise (hold it).
    bool attach(std::string_view event_id, Message m)
    {
        if (event_id.empty()) return false;
        auto e = events_.find(event_id);
        if (e == events_.end()) return false;
        held_.at(e->second).copies.push_back(std::move(m));
        ++copies_;
        return true;
    }

    bool in_flight(std::string_view event_id) const { return events_.find(event_id) != events_.end(); }

    /// The work of `t` ended: its message and every copy, to acknowledge (`ok`) or leave.
    /// Empty for an unknown token (already resolved).
    std::vector<answer> resolve(token t, bool ok)
    {
        std::vector<answer> out;
        auto h = held_.find(t);
        if (h == held_.end()) return out;
        auto& en = h->second;
        out.push_back(answer{std::move(en.msg), ok, en.event_id, true});
        for (auto& c : en.copies) out.push_back(answer{std::move(c), ok, en.event_id, false});
        copies_ -= en.copies.size();
        if (!en.event_id.empty()) events_.erase(en.event_id);
        held_.erase(h);
        return out;
    }

    /// Messages held (copies included): what bounds the intake (max-pending).
    std::size_t size() const noexcept { return held_.size() + copies_; }
    /// Pieces of work in flight.
    std::size_t work() const noexcept { return held_.size(); }

private:
    struct entry {
        Message msg;
        std::string event_id;
        std::vector<Message> copies;
    };
    token next_ = 0;
    std::size_t copies_ = 0;
    std::map<token, entry> held_;
    std::map<std::string, token, std::less<>> events_;
};

} // namespace bus::runtime
