#pragma once

// The STOMP client's protocol state, sans-IO: receipts, subscriptions and their resubscription,
// ACK/NACK, ERROR attribution, heart-beats and the 1.0 liveness probe. It takes frames, byte
// counts and the time, and answers with what to do (bytes to write, deliveries, settled
// publishes, a connection to close); bus::client only moves bytes and runs coroutines around it.
// No Asio here: tests drive it with a fake clock (tests/unit/session_tests.cpp).

#include "bus/client_options.hpp"
#include "bus/errc.hpp"
#include "bus/keepalive.hpp"
#include "bus/stomp/frame.hpp"
#include "bus/stomp/frame_view.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace bus {

/// What became of one publish: callers branch on this, not on strings.
enum class publish_status {
    receipted,  ///< the broker's RECEIPT arrived: it has the message
    not_sent,   ///< never written to a broker (not connected, stopped first, too many pending):
                ///< certainly not delivered, safe to spool or send again
    unknown,    ///< written but no RECEIPT before the deadline: the broker may have it, so a
                ///< copy sent later must be marked possibly sent (consumers drop it by event id)
    refused,    ///< the broker answered ERROR for it, or it cannot be encoded
};
std::string_view to_string(publish_status s) noexcept;

struct publish_result {
    publish_status status = publish_status::not_sent;
    std::error_code error;  ///< empty when receipted; else why (errc)
    explicit operator bool() const noexcept { return status == publish_status::receipted; }
};

/// A delivered MESSAGE.
struct message {
    stomp::frame frame;
    std::string subscription;
    bool redelivered = false;
    bool keepalive = false;        ///< the original's "\n" keepalive (never shown to handlers)
    std::uint64_t connection = 0;  ///< connection generation it arrived on

    std::string_view destination() const noexcept { return frame.get("destination"); }
    std::string_view id() const noexcept { return frame.get("message-id"); }
    const std::string& body() const noexcept { return frame.body; }
};

/// What a handler decided; the client sends ACK/NACK accordingly (nothing in auto mode).
enum class disposition {
    ack,
    nack,
    leave,  ///< neither: the broker redelivers it once this connection ends (client-individual;
            ///< in cumulative client mode a later ACK covers it)
};

/// Where a subscription stands (client::subscription).
struct subscription_status {
    bool confirmed = false;  ///< receipted on the current connection
    int refusals = 0;        ///< SUBSCRIBEs refused by ERROR in a row (0 once one is confirmed)
    std::string refused;     ///< the broker's last reason
    bool permanent = false;  ///< the reason will not change by waiting (is_permanent_refusal)
};

struct client_stats {
    std::uint64_t connects = 0;
    std::uint64_t connect_failures = 0;
    std::uint64_t published = 0;        ///< receipts received for publishes
    std::uint64_t publish_timeouts = 0;
    std::uint64_t resent = 0;           ///< publishes resent after a reconnect
    std::uint64_t messages = 0;         ///< MESSAGE frames received
    std::uint64_t keepalives_dropped = 0;
    std::uint64_t heartbeats_in = 0;
    std::uint64_t heartbeats_out = 0;
    std::uint64_t probes = 0;
    std::uint64_t dead_connections = 0;
    std::uint64_t broker_errors = 0;
    std::uint64_t protocol_errors = 0;
};

/// Why the session wants the connection closed.
enum class close_cause {
    broker_error,          ///< ERROR frame (brokers close after ERROR anyway)
    subscription_refused,  ///< ERROR for one SUBSCRIBE: reconnect at once without it
    connect_refused,       ///< ERROR instead of CONNECTED
    protocol,              ///< a frame that makes no sense here
    dead_link,             ///< no traffic within the liveness deadline
    send_queue_full,       ///< more unwritten bytes than client_options::max_queued_bytes
};

/// A log line the session wants written (it has no logger of its own).
struct session_notice {
    enum class level { debug, info, warn, error };
    level lvl = level::info;
    std::string text;
};

/// One settled publish: `seq` as session::publish returned it.
struct receipt_outcome {
    std::uint64_t seq = 0;
    publish_result result;
};

/// Everything the session asks for, drained by session::take().
struct session_actions {
    std::vector<std::string> writes;         ///< bytes to write, in order
    std::vector<message> deliveries;         ///< for the subscriptions' handlers
    std::vector<receipt_outcome> receipts;   ///< publishes settled (receipt, ERROR, stop)
    std::vector<session_notice> notices;
    bool subscriptions_changed = false;      ///< a subscription was confirmed or refused
    bool disconnect_receipted = false;       ///< the DISCONNECT's RECEIPT arrived
    std::optional<close_cause> close;        ///< drop this connection (reason in close_reason)
    std::string close_reason;

    bool empty() const noexcept
    {
        return writes.empty() && deliveries.empty() && receipts.empty() && notices.empty() &&
               !subscriptions_changed && !disconnect_receipted && !close;
    }
};

/// Either a publish in flight (`seq`) or one settled at once (`result`).
struct publish_ticket {
    std::uint64_t seq = 0;
    std::optional<publish_result> result;
};

class session {
public:
    using clock = std::chrono::steady_clock;
    using time_point = clock::time_point;

    /// Throws config_error for settings no connection could use.
    explicit session(client_options opts);

    const client_options& options() const noexcept { return opts_; }

    // ---- connection lifecycle -------------------------------------------------------------
    /// A transport to `ep` is up: returns the CONNECT bytes to write first. Throws
    /// std::runtime_error when the credentials cannot be carried (CR, LF, backslash).
    std::string begin(const endpoint& ep, time_point now);
    /// CONNECTED arrived (on_frame moved there).
    bool connected() const noexcept { return state_ == state::connected; }
    /// The transport is gone: everything of this connection is forgotten; resubscribe and
    /// resend happen on the next CONNECTED. Returns whether a refused SUBSCRIBE ended it.
    bool on_closed();

    /// A frame arrived.
    void on_frame(stomp::frame f, time_point now);
    /// The same as views into the read buffer (valid only during the call): a RECEIPT is
    /// handled without an owning copy; the frames the session keeps or reports (MESSAGE,
    /// CONNECTED, ERROR) are copied.
    void on_frame(const stomp::frame_view& f, time_point now);
    /// A heart-beat (bare EOL) arrived.
    void on_heartbeat(time_point now);
    /// Bytes arrived (any).
    void on_rx(time_point now);
    /// `n` of the bytes returned in `writes` were written.
    void on_written(std::size_t n, time_point now);
    /// Delivery is paused by local back-pressure (silence is then not the broker's fault).
    void set_paused(bool paused, time_point now);
    /// Heart-beats, probes, liveness, parked subscriptions' retries, legacy keepalives.
    void on_tick(time_point now);
    /// When on_tick next has something to do (capped at one second from `now`).
    time_point next_deadline(time_point now) const;
    /// Sends DISCONNECT with a receipt; nothing is written after it.
    void disconnect();

    // ---- operations -----------------------------------------------------------------------
    /// Queues a SEND with a receipt request; written now when connected and the send budget
    /// allows, else after (re)connecting.
    publish_ticket publish(stomp::frame f, bool stopping);
    /// The publish's deadline passed without an outcome: forget it and say what is known.
    publish_result expire(std::uint64_t seq);
    /// Registers a subscription (sent now when connected). Throws std::invalid_argument when
    /// the id is in use. Returns the id.
    std::string subscribe(subscription_options o, time_point now);
    /// Removes it (UNSUBSCRIBE when connected). Returns false if unknown.
    bool unsubscribe(const std::string& id);
    /// ACK/NACK for a handled message (nothing for a message of an earlier connection).
    void acknowledge(const message& m, disposition d);
    /// Settles every outstanding publish with `why` (stop, attempts exhausted).
    void fail_all(errc why);

    // ---- state ----------------------------------------------------------------------------
    std::uint64_t generation() const noexcept { return generation_; }
    stomp::version version() const noexcept { return version_; }
    bool has_subscription(const std::string& id) const { return subs_.count(id) != 0; }
    const subscription_options* subscription_opts(const std::string& id) const;
    subscription_status subscription(const std::string& id) const;
    /// Confirmed on the current connection.
    bool subscribed(const std::string& id) const;
    /// Unknown, or refused for a reason that waiting will not change.
    bool hopeless(const std::string& id) const;
    std::size_t pending() const noexcept { return pending_.size(); }
    const std::string& last_error() const noexcept { return last_error_; }
    client_stats& stats() noexcept { return stats_; }
    const client_stats& stats() const noexcept { return stats_; }

    /// What was asked for since the last take().
    session_actions take();

private:
    enum class state { idle, handshaking, connected };

    struct pending_publish {
        stomp::frame frame;
        bool sent = false;
        bool waiting = false;       // not yet written: the send budget was full
        std::uint64_t sent_on = 0;  // connection generation it was last written on
        std::uint64_t sent_seq = 0; // frame order on that connection (ERROR attribution)
        int error_strikes = 0;      // connections that died by ERROR with this publish the oldest
    };
    struct sub {
        subscription_options opts;
        std::uint64_t confirmed_on = 0;
        std::uint64_t sent_on = 0;
        std::uint64_t sent_seq = 0;
        int refusals = 0;
        time_point retry_at{};
        std::string refused;
        bool permanent = false;
    };

    void note(session_notice::level l, std::string text);
    void close(close_cause c, std::string why);
    enum class emitted { yes, dropped, unencodable };
    bool emit(std::string bytes);
    emitted emit_frame(const stomp::frame& f);
    void on_connected(const stomp::frame& r, time_point now);
    void on_receipt(std::string_view receipt_id);
    void on_message(stomp::frame f);
    void on_error(const stomp::frame& f, time_point now);
    void send_pending(std::uint64_t seq, pending_publish& p);
    void write_pending(std::uint64_t seq, pending_publish& p);
    void feed_waiting();
    void settle(std::uint64_t seq, std::error_code ec);
    stomp::frame subscribe_frame(const std::string& id, const subscription_options& o) const;
    void send_subscribe(const std::string& id, sub& s, time_point now);
    sub* refused_subscription(std::string_view rid, std::string& id);

    client_options opts_;
    state state_ = state::idle;
    bool disconnecting_ = false;
    bool closing_ = false;
    bool sub_refused_ = false;
    std::string server_;
    stomp::version version_ = stomp::version::v1_0;
    std::uint64_t generation_ = 0;
    std::uint64_t frames_out_ = 0;
    std::size_t queued_ = 0;  // bytes handed out in `writes` and not yet written
    keepalive ka_;
    std::vector<time_point> legacy_due_;

    std::uint64_t seq_ = 0;
    std::map<std::uint64_t, pending_publish> pending_;
    std::size_t waiting_ = 0;
    std::map<std::string, sub> subs_;
    std::uint64_t sub_counter_ = 0;
    std::uint64_t probe_counter_ = 0;
    std::string last_error_;
    client_stats stats_;
    session_actions out_;
};

} // namespace bus
