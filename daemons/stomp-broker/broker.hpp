#pragma once

// The embedded broker's core: destinations, subscriptions, acknowledgements, durable
// subscriptions, receipts and permissions, as pure logic. The I/O layer feeds it frames per
// session and carries out the actions it returns (frames to send, sessions to close, records
// to journal). No sockets, no clocks, no files: tested without any of them.

#include "bus/stomp/frame.hpp"

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace broker {

using session_id = std::uint64_t;

/// A message held by the broker. Immutable once published; shared by every queue it is in.
struct message {
    std::uint64_t seq = 0;  ///< broker-wide, increasing; the message-id is derived from it
    std::string destination;
    std::vector<std::pair<std::string, std::string>> headers;  ///< user headers, as sent
    std::string body;
    bool persistent = false;
};
using message_ptr = std::shared_ptr<const message>;

/// A durable record for the journal: the I/O layer writes them (fsync per policy) and replays
/// them at start-up through `broker_core::replay`.
struct journal_record {
    enum class kind { add, remove, bind, unbind };
    kind what = kind::add;
    std::string queue;        ///< durable queue name (/queue/x, or durable:<key>)
    std::string topic;        ///< bind/unbind: the topic a durable subscription listens to
    message_ptr msg;          ///< add
    std::uint64_t seq = 0;    ///< remove
};

/// What the I/O layer must do after a call into the core.
struct actions {
    struct send_frame {
        session_id to;
        bus::stomp::frame frame;
    };
    std::vector<send_frame> frames;
    /// Sessions to close once their queued frames are written (after an ERROR or DISCONNECT).
    std::vector<session_id> close;
    /// Records to make durable. Frames in `after_persist` are sent only once they are.
    std::vector<journal_record> persist;
    std::vector<send_frame> after_persist;
    /// Producers whose SEND waits for room in a full queue: stop reading from them...
    std::vector<session_id> blocked;
    /// ...until their SEND was accepted.
    std::vector<session_id> unblocked;

    void clear()
    {
        frames.clear();
        close.clear();
        persist.clear();
        after_persist.clear();
        blocked.clear();
        unblocked.clear();
    }
};

/// Decides who may connect and what they may do. Returns an error message, or empty if allowed.
struct authorizer {
    std::function<std::string(std::string_view login, std::string_view passcode)> authenticate;
    /// `write`: SEND; otherwise SUBSCRIBE.
    std::function<bool(std::string_view login, std::string_view destination, bool write)> permit;
};

struct core_options {
    std::string server_name = "deploykit-stomp-broker/0.1";
    std::size_t max_queue_depth = 100000;       ///< messages held by one queue
    /// A SEND to a full queue: true = the producer waits (back-pressure: the I/O layer stops
    /// reading from it until there is room); false = ERROR and close.
    bool block_when_full = true;
    std::size_t max_unacked = 1000;             ///< default per-subscription window (client acks)
    std::size_t transient_topic_depth = 10000;  ///< non-durable subscriber backlog; oldest dropped
    std::size_t max_subscriptions = 1000;       ///< per session
    /// Bytes of MESSAGE frames a session may have handed to the I/O layer and not yet written
    /// (replenished by `on_written`): one dispatch can never flood one connection.
    std::size_t session_credit_bytes = 4 * 1024 * 1024;
    /// Bytes of messages one queue holds (ready and in flight); a full queue blocks or refuses
    /// its producers, a non-durable subscriber's backlog drops its oldest. 0 = no limit.
    std::size_t max_queue_bytes = 256 * 1024 * 1024;
    /// Broker-wide high-water mark for message bytes held in queues (RabbitMQ's memory alarm):
    /// above it every SEND that would be stored waits (`block_when_full`) or is refused.
    /// 0 = no limit.
    std::size_t max_memory = 1024ull * 1024 * 1024;
    /// Queues (named queues and durable subscriptions) one login may create. 0 = no limit.
    std::size_t max_destinations_per_user = 1000;
    /// Bytes of SENDs one session may hold in open transactions.
    std::size_t max_transaction_bytes = 16 * 1024 * 1024;
    std::uint32_t heartbeat_min_ms = 1000;      ///< lower bound for negotiated heart-beats
    std::uint32_t heartbeat_server_ms = 10000;  ///< what the broker offers to send/expect
};

struct core_stats {
    std::uint64_t messages_in = 0;
    std::uint64_t messages_out = 0;
    std::uint64_t redelivered = 0;
    std::uint64_t dropped_slow = 0;   ///< non-persistent topic messages dropped for slow subscribers
    std::uint64_t rejected_full = 0;  ///< SENDs refused because a queue was full
    std::uint64_t blocked_sends = 0;  ///< SENDs that waited for room
    std::uint64_t auth_failures = 0;
    std::uint64_t denied = 0;
    std::uint64_t protocol_errors = 0;
    std::uint64_t memory_blocked = 0;       ///< SENDs that waited for the broker-wide memory mark
    std::uint64_t revoked = 0;              ///< subscriptions ended by a permission reload
    std::size_t held_bytes = 0;             ///< message bytes held in queues now
};

/// Per-session heart-beat agreement, for the I/O layer's timers.
struct session_heartbeat {
    std::uint32_t send_ms = 0;    ///< the broker must send something this often
    std::uint32_t expect_ms = 0;  ///< the client promised traffic this often
};

class broker_core {
public:
    explicit broker_core(core_options opts = {}, authorizer auth = {});
    ~broker_core();

    /// A new connection; frames before CONNECT are refused.
    session_id open();
    /// One frame from a session.
    void on_frame(session_id s, bus::stomp::frame f, actions& out);
    /// The connection is gone: its subscriptions end, unacknowledged messages are redelivered.
    void close(session_id s, actions& out);
    /// Send-queue space freed on `s`: deliver more to its auto-ack subscriptions.
    void on_writable(session_id s, actions& out);
    /// `bytes` of frames to `s` were written: its delivery credit grows back.
    void on_written(session_id s, std::size_t bytes, actions& out);
    /// Whether the session's subscribers may take more auto-ack messages (set by the I/O layer
    /// from its bounded send queue).
    void set_congested(session_id s, bool congested);

    /// A CONNECT whose credentials the I/O layer already verified (off the I/O thread):
    /// `auth_error` empty = accepted, else the reason for refusing it.
    void on_connect_verified(session_id s, bus::stomp::frame f, std::string_view auth_error, actions& out);
    /// Permissions changed (SIGHUP): subscriptions no longer allowed end with an ERROR to their
    /// session (RabbitMQ closes the channel; a STOMP session is its one channel).
    void recheck_permissions(actions& out);

    /// Start-up: re-applies journal records (no actions result).
    void replay(const journal_record& r);
    /// Records describing the whole durable state, for journal compaction.
    std::vector<journal_record> snapshot() const;

    std::optional<bus::stomp::version> version(session_id s) const;
    std::optional<session_heartbeat> heartbeat(session_id s) const;

    struct queue_info {
        std::string name;
        std::size_t depth = 0;
        std::size_t in_flight = 0;
        std::size_t consumers = 0;
        bool durable = false;
    };
    std::vector<queue_info> queues() const;
    std::size_t sessions() const noexcept;
    const core_stats& stats() const noexcept { return stats_; }

    struct impl;

private:
    std::unique_ptr<impl> impl_;
    core_stats stats_;
};

} // namespace broker
