#include "bus/session.hpp"

#include "bus/backoff.hpp"
#include "bus/stomp/serializer.hpp"

#include <algorithm>
#include <charconv>
#include <stdexcept>

namespace bus {

using std::chrono::milliseconds;
using lvl = session_notice::level;

namespace {

std::string_view ack_mode_name(ack_mode m)
{
    switch (m) {
    case ack_mode::automatic: return "auto";
    case ack_mode::client: return "client";
    case ack_mode::client_individual: return "client-individual";
    }
    return "auto";
}

std::string ms_string(milliseconds a, milliseconds b)
{
    return std::to_string(a.count()) + "," + std::to_string(b.count());
}

std::uint64_t number_after(std::string_view id, std::size_t prefix)
{
    std::uint64_t n = 0;
    std::from_chars(id.data() + prefix, id.data() + id.size(), n);
    return n;
}

/// The subscription id of a SUBSCRIBE receipt "s-<generation>-<id>", or empty.
std::string_view subscription_of(std::string_view rid)
{
    if (!rid.starts_with("s-")) return {};
    auto rest = rid.substr(2);
    auto dash = rest.find('-');
    if (dash == std::string_view::npos) return {};
    return rest.substr(dash + 1);
}

publish_result result_of(std::error_code ec, bool sent)
{
    if (!ec) return {publish_status::receipted, {}};
    if (ec == errc::broker_error || ec == errc::unencodable) return {publish_status::refused, ec};
    // Written at least once and never receipted: the broker may have it.
    return {sent ? publish_status::unknown : publish_status::not_sent, ec};
}

} // namespace

// ---- errors (one category for libbus: errc) ---------------------------------------------------

namespace {
class bus_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "bus"; }
    std::string message(int ev) const override
    {
        switch (static_cast<errc>(ev)) {
        case errc::receipt_timeout: return "no receipt before the deadline";
        case errc::broker_error: return "broker answered with ERROR";
        case errc::stopped: return "client stopped";
        case errc::too_many_pending: return "too many publishes awaiting receipts";
        case errc::unencodable: return "header cannot be encoded in this STOMP version";
        case errc::attempts_exhausted: return "reconnect attempts exhausted";
        case errc::not_connected: return "not connected";
        }
        return "unknown bus error";
    }
};
} // namespace

const std::error_category& bus_category() noexcept
{
    static const bus_category_impl cat;
    return cat;
}

std::string_view to_string(publish_status s) noexcept
{
    switch (s) {
    case publish_status::receipted: return "receipted";
    case publish_status::not_sent: return "not sent";
    case publish_status::unknown: return "sent, no receipt";
    case publish_status::refused: return "refused";
    }
    return "?";
}

session::session(client_options opts) : opts_(std::move(opts)), ka_({}, clock::now())
{
    if (opts_.url.endpoints.empty()) throw config_error("no broker configured");
    for (auto& k : opts_.legacy_keepalives)
        if (k.every < milliseconds(10)) throw config_error("legacy keepalive interval must be at least 10 ms");
}

session_actions session::take()
{
    session_actions a = std::move(out_);
    out_ = {};
    return a;
}

void session::note(lvl l, std::string text) { out_.notices.push_back({l, std::move(text)}); }

void session::close(close_cause c, std::string why)
{
    if (closing_) return;
    closing_ = true;
    out_.close = c;
    out_.close_reason = std::move(why);
}

bool session::emit(std::string bytes)
{
    if (closing_ || disconnecting_ || state_ == state::idle) return false;  // nothing follows DISCONNECT
    if (queued_ + bytes.size() > opts_.max_queued_bytes) {
        close(close_cause::send_queue_full, "send queue over " + std::to_string(opts_.max_queued_bytes) + " bytes");
        return false;
    }
    queued_ += bytes.size();
    out_.writes.push_back(std::move(bytes));
    return true;
}

session::emitted session::emit_frame(const stomp::frame& f)
{
    std::string out;
    std::error_code ec;
    stomp::serialize(out, f, version_, ec);
    if (ec) return emitted::unencodable;
    return emit(std::move(out)) ? emitted::yes : emitted::dropped;
}

// ---- connection lifecycle ---------------------------------------------------------------------

std::string session::begin(const endpoint& ep, time_point now)
{
    state_ = state::handshaking;
    server_ = ep.display();
    version_ = stomp::version::v1_0;
    disconnecting_ = closing_ = sub_refused_ = false;
    queued_ = 0;
    frames_out_ = 0;
    ka_ = keepalive({}, now);

    stomp::frame f("CONNECT");
    if (opts_.protocol == protocol_mode::negotiate) {
        f.add("accept-version", "1.0,1.1,1.2");
        // STOMP 1.1+ requires `host`; RabbitMQ reads it as the virtual host, so the default is
        // its default vhost "/" (ActiveMQ and stomp-broker ignore it).
        f.add("host", opts_.vhost.empty() ? std::string("/") : opts_.vhost);
        f.add("heart-beat", ms_string(opts_.heartbeat_send, opts_.heartbeat_receive));
    }
    if (!ep.login.empty()) f.add("login", ep.login);
    if (!ep.passcode.empty()) f.add("passcode", ep.passcode);
    if (!opts_.client_id.empty()) f.add("client-id", opts_.client_id);
    if (opts_.protocol == protocol_mode::v1_0) {
        // Exactly what the Ruby gem sent, for brokers that know nothing newer.
        f.add("content-length", "0");
        f.add("content-type", "text/plain; charset=UTF-8");
    }
    std::string bytes;
    std::error_code ec;
    stomp::serialize(bytes, f, stomp::version::v1_0, ec);
    if (ec) throw std::runtime_error("CONNECT: credentials contain CR, LF or backslash");
    return bytes;
}

bool session::on_closed()
{
    state_ = state::idle;
    out_.writes.clear();
    out_.close.reset();
    out_.close_reason.clear();
    queued_ = 0;
    bool refused = sub_refused_;
    sub_refused_ = false;
    return refused;
}

void session::on_connected(const stomp::frame& r, time_point now)
{
    version_ = stomp::parse_version(r.get("version", "1.0")).value_or(stomp::version::v1_0);
    milliseconds sx{0}, sy{0};
    if (auto hb = r.find("heart-beat"); hb && opts_.protocol == protocol_mode::negotiate)
        parse_heartbeat_header(*hb, sx, sy);
    heartbeat hb = negotiate_heartbeat(opts_.heartbeat_send, opts_.heartbeat_receive, sx, sy);
    keepalive_config kc;
    // Send a little early: timers fire late, and brokers measure from their side.
    kc.send_every = hb.send.count() > 0 ? hb.send - std::min(hb.send / 10, milliseconds(1000))
                                        : opts_.synthetic_keepalive;
    kc.expect_every = hb.receive;
    kc.grace = opts_.dead_link_grace;
    if (hb.receive.count() == 0) {
        kc.probe_after = opts_.liveness_probe;
        kc.probe_timeout = opts_.probe_timeout;
    }
    ka_ = keepalive(kc, now);
    ++generation_;
    state_ = state::connected;
    ++stats_.connects;
    note(lvl::info, "stomp: connected to " + server_ + " (STOMP " + std::string(stomp::to_string(version_)) +
                        ", server " + std::string(r.get("server", "?")) + ", heart-beat out " +
                        std::to_string(hb.send.count()) + "ms in " + std::to_string(hb.receive.count()) + "ms" +
                        (hb.receive.count() == 0 && kc.probe_after.count() > 0 ? ", probing silence" : "") + ")");
    legacy_due_.clear();
    for (auto& l : opts_.legacy_keepalives) legacy_due_.push_back(now + l.every);
    for (auto& [id, s] : subs_) send_subscribe(id, s, now);
    for (auto& [_, p] : pending_) p.waiting = false;
    waiting_ = 0;
    for (auto& [seq, p] : pending_) send_pending(seq, p);
}

void session::on_rx(time_point now) { ka_.on_rx(now); }

void session::on_heartbeat(time_point now)
{
    ++stats_.heartbeats_in;
    ka_.on_rx(now);
}

void session::on_written(std::size_t n, time_point now)
{
    queued_ -= std::min(queued_, n);
    ka_.on_tx(now);
    if (waiting_ > 0) feed_waiting();
}

void session::set_paused(bool paused, time_point now) { ka_.set_paused(paused, now); }

void session::disconnect()
{
    if (state_ != state::connected || disconnecting_) return;
    stomp::frame d("DISCONNECT");
    d.add("receipt", "d-" + std::to_string(generation_));
    emit_frame(d);
    disconnecting_ = true;
}

// ---- frames ----------------------------------------------------------------------------------

void session::on_frame(stomp::frame f, time_point now)
{
    ka_.on_rx(now);
    if (closing_) return;
    if (state_ == state::handshaking) {
        if (f.command == "ERROR") {
            last_error_ = std::string(f.get("message")) + (f.body.empty() ? "" : ": " + f.body);
            ++stats_.broker_errors;
            close(close_cause::connect_refused, "broker refused CONNECT: " + last_error_);
        } else if (f.command != "CONNECTED") {
            close(close_cause::protocol, "expected CONNECTED, got " + f.command);
        } else {
            on_connected(f, now);
        }
        return;
    }
    if (state_ != state::connected) return;
    if (f.command == "RECEIPT") return on_receipt(f.get("receipt-id"));
    if (f.command == "MESSAGE") return on_message(std::move(f));
    if (f.command == "ERROR") return on_error(f, now);
    ++stats_.protocol_errors;
    close(close_cause::protocol, "unexpected " + f.command + " frame from broker");
}

void session::on_frame(const stomp::frame_view& f, time_point now)
{
    if (state_ == state::connected && !closing_ && f.command == "RECEIPT") {
        ka_.on_rx(now);
        return on_receipt(f.get("receipt-id"));
    }
    on_frame(f.to_frame(), now);
}

void session::on_receipt(std::string_view id)
{
    if (id.starts_with("p-")) {
        auto n = number_after(id, 2);
        if (pending_.count(n)) {
            ++stats_.published;
            settle(n, {});
        }
    } else if (id.starts_with("s-")) {
        auto sid = subscription_of(id);
        if (sid.empty()) return;
        if (auto it = subs_.find(std::string(sid)); it != subs_.end()) {
            it->second.confirmed_on = generation_;
            it->second.refusals = 0;
            it->second.permanent = false;
            note(lvl::info, "stomp: subscribed to " + it->second.opts.destination + " (id " + it->first + ") on " +
                                server_);
        }
        out_.subscriptions_changed = true;
    } else if (id.starts_with("d-")) {
        out_.disconnect_receipted = true;
    }
}

void session::on_message(stomp::frame f)
{
    ++stats_.messages;
    std::string sub_id(f.get("subscription"));
    auto it = subs_.find(sub_id);
    if (it == subs_.end() && f.find("subscription")) {
        // A subscription we already removed: the broker redelivers it if unacked.
        note(lvl::debug, "stomp: MESSAGE " + std::string(f.get("message-id")) + " for removed subscription '" +
                             sub_id + "' dropped");
        return;
    }
    if (it == subs_.end()) {
        // 1.0 brokers may omit `subscription`: match by destination when unambiguous.
        auto dest = f.get("destination");
        int matches = 0;
        for (auto s = subs_.begin(); s != subs_.end(); ++s)
            if (s->second.opts.destination == dest) {
                it = s;
                ++matches;
            }
        if (matches != 1) {
            note(lvl::warn, "stomp: MESSAGE " + std::string(f.get("message-id")) + " for unknown subscription '" +
                                sub_id + "' dropped");
            return;
        }
        sub_id = it->first;
    }
    const auto& so = it->second.opts;
    message m;
    m.subscription = sub_id;
    m.redelivered = f.get("redelivered") == "true";
    m.connection = generation_;
    m.frame = std::move(f);
    if (stomp::is_legacy_keepalive(m.frame) && !so.deliver_keepalives) {
        ++stats_.keepalives_dropped;
        if (so.ack == ack_mode::automatic) return;
        m.keepalive = true;  // acknowledged by the consumer, in order
    }
    out_.deliveries.push_back(std::move(m));
}

// The subscription an ERROR is about, if any: named by its receipt, or, without a receipt-id,
// the oldest frame still unconfirmed on this connection when that is a SUBSCRIBE (brokers handle
// frames in order) and no older publish awaits its receipt.
session::sub* session::refused_subscription(std::string_view rid, std::string& id)
{
    if (rid.starts_with("s-")) {
        auto it = subs_.find(std::string(subscription_of(rid)));
        if (it == subs_.end()) return nullptr;
        id = it->first;
        return &it->second;
    }
    if (!rid.empty()) return nullptr;
    sub* best = nullptr;
    for (auto& [sid, st] : subs_)
        if (st.sent_on == generation_ && st.confirmed_on != generation_ && (!best || st.sent_seq < best->sent_seq)) {
            best = &st;
            id = sid;
        }
    if (!best) return nullptr;
    for (auto& [_, p] : pending_)
        if (p.sent_on == generation_ && p.sent_seq < best->sent_seq) return nullptr;
    return best;
}

void session::on_error(const stomp::frame& f, time_point now)
{
    ++stats_.broker_errors;
    last_error_ = std::string(f.get("message")) + (f.body.empty() ? "" : ": " + f.body);
    while (!last_error_.empty() && (last_error_.back() == '\n' || last_error_.back() == '\0'))
        last_error_.pop_back();
    std::string_view rid = f.get("receipt-id");
    std::string sid;
    if (auto* s = refused_subscription(rid, sid)) {
        // Not a dead broker: the connection was good. This subscription waits on its own short
        // schedule; the others resubscribe at once on the next connection.
        ++s->refusals;
        s->refused = last_error_;
        s->permanent = is_permanent_refusal(last_error_);
        auto delay = subscription_retry_delay(opts_.subscribe_retry_initial, opts_.subscribe_retry_max, s->refusals);
        if (s->permanent) delay = std::max(delay, milliseconds(60000));
        s->retry_at = now + delay;
        sub_refused_ = true;
        out_.subscriptions_changed = true;
        note(lvl::warn, "stomp: " + server_ + " refused the subscription to " + s->opts.destination + " (id " + sid +
                            "): " + last_error_ + "; " +
                            (s->permanent ? "this will not change by waiting; retrying" : "retrying") + " it in " +
                            std::to_string(delay.count()) + " ms, the connection itself is fine");
        close(close_cause::subscription_refused, "broker refused SUBSCRIBE to " + s->opts.destination);
        return;
    }
    note(lvl::error, "stomp: ERROR from " + server_ + ": " + last_error_ +
                         (rid.empty() ? "" : " (receipt " + std::string(rid) + ")"));
    if (rid.starts_with("p-")) {
        auto n = number_after(rid, 2);
        if (pending_.count(n)) settle(n, errc::broker_error);
    } else if (rid.empty()) {
        // RabbitMQ names no receipt (e.g. an invalid destination). It handles frames in order
        // and receipts arrive in order, so the oldest unreceipted publish on this connection is
        // the likely culprit; the second time that holds, fail it rather than resend a poison
        // message forever.
        for (auto& [seq, p] : pending_) {
            if (p.sent_on != generation_) continue;
            if (++p.error_strikes >= 2) settle(seq, errc::broker_error);
            break;
        }
    }
    // Brokers close the connection after ERROR (STOMP 1.2 §ERROR).
    close(close_cause::broker_error, "broker sent ERROR: " + last_error_);
}

// ---- time ------------------------------------------------------------------------------------

void session::on_tick(time_point now)
{
    if (state_ != state::connected || closing_) return;
    switch (ka_.on_tick(now)) {
    case keepalive_action::dead:
        ++stats_.dead_connections;
        close(close_cause::dead_link, "no traffic from broker within the liveness deadline");
        return;
    case keepalive_action::send_heartbeat:
        if (queued_ == 0) {
            emit("\n");
            ++stats_.heartbeats_out;
        }
        ka_.on_tx(now);
        break;
    case keepalive_action::send_probe: {
        // STOMP 1.0 has no heart-beats: ask for a receipt the broker must answer.
        auto tx = "ka-" + std::to_string(++probe_counter_);
        stomp::frame b("BEGIN");
        b.add("transaction", tx);
        b.add("receipt", tx);
        stomp::frame a("ABORT");
        a.add("transaction", tx);
        emit_frame(b);
        emit_frame(a);
        ++stats_.probes;
        ka_.on_tx(now);
        break;
    }
    case keepalive_action::none: break;
    }
    for (auto& [id, s] : subs_)
        if (s.sent_on != generation_ && s.retry_at <= now) {
            note(lvl::info, "stomp: subscribing to " + s.opts.destination + " (id " + id + ") again after " +
                                std::to_string(s.refusals) + " refusal(s)");
            send_subscribe(id, s, now);
        }
    for (std::size_t i = 0; i < legacy_due_.size() && i < opts_.legacy_keepalives.size(); ++i) {
        if (legacy_due_[i] > now) continue;
        stomp::frame k("SEND");
        k.add("destination", opts_.legacy_keepalives[i].destination);
        k.add("content-type", "text/plain; charset=UTF-8");
        k.body = "\n";
        emit_frame(k);
        legacy_due_[i] = now + opts_.legacy_keepalives[i].every;
    }
}

session::time_point session::next_deadline(time_point now) const
{
    // Capped: un-pausing the liveness check does not move this.
    auto next = std::min(ka_.next_deadline(), now + milliseconds(1000));
    for (auto d : legacy_due_) next = std::min(next, d);
    for (auto& [_, s] : subs_)
        if (s.sent_on != generation_) next = std::min(next, std::max(s.retry_at, now));
    return next;
}

// ---- publishing ------------------------------------------------------------------------------

publish_ticket session::publish(stomp::frame f, bool stopping)
{
    publish_ticket t;
    if (stopping) {
        t.result = publish_result{publish_status::not_sent, make_error_code(errc::stopped)};
        return t;
    }
    if (pending_.size() >= opts_.max_pending) {
        t.result = publish_result{publish_status::not_sent, make_error_code(errc::too_many_pending)};
        return t;
    }
    if (f.command.empty()) f.command = "SEND";
    for (auto& [k, v] : opts_.publish_headers)
        if (!f.find(k)) f.add(k, v);
    auto seq = ++seq_;
    f.set("receipt", "p-" + std::to_string(seq));
    {
        // Refuse at once what could never be sent (checked for the strictest version).
        std::string probe;
        std::error_code ec;
        stomp::serialize(probe, f, connected() ? version_ : stomp::version::v1_2, ec);
        if (ec) {
            t.result = publish_result{publish_status::refused, make_error_code(errc::unencodable)};
            return t;
        }
    }
    auto& p = pending_[seq];
    p.frame = std::move(f);
    t.seq = seq;
    if (connected()) send_pending(seq, p);
    return t;
}

publish_result session::expire(std::uint64_t seq)
{
    auto it = pending_.find(seq);
    if (it == pending_.end()) return {publish_status::not_sent, make_error_code(errc::receipt_timeout)};
    ++stats_.publish_timeouts;
    if (it->second.waiting) --waiting_;
    auto r = result_of(errc::receipt_timeout, it->second.sent);
    pending_.erase(it);
    return r;
}

void session::fail_all(errc why)
{
    while (!pending_.empty()) settle(pending_.begin()->first, why);
}

void session::settle(std::uint64_t seq, std::error_code ec)
{
    auto it = pending_.find(seq);
    if (it == pending_.end()) return;
    if (it->second.waiting) --waiting_;
    out_.receipts.push_back({seq, result_of(ec, it->second.sent)});
    pending_.erase(it);
}

// Publishes are flow-controlled by the send budget: one that does not fit waits (in order) and is
// written when the writes drain, instead of overflowing the connection.
void session::send_pending(std::uint64_t seq, pending_publish& p)
{
    std::size_t need = p.frame.body.size() + 256;
    if (waiting_ > 0 || (queued_ > 0 && queued_ + need > opts_.max_queued_bytes)) {
        if (!p.waiting) {
            p.waiting = true;
            ++waiting_;
        }
        return;
    }
    write_pending(seq, p);
}

void session::write_pending(std::uint64_t seq, pending_publish& p)
{
    switch (emit_frame(p.frame)) {
    case emitted::unencodable: settle(seq, errc::unencodable); return;
    case emitted::dropped: return;  // the connection is ending; sent again on the next one
    case emitted::yes: break;
    }
    if (p.sent) ++stats_.resent;
    p.sent = true;
    p.sent_on = generation_;
    p.sent_seq = ++frames_out_;
}

// Writes waiting publishes, oldest first, while they fit.
void session::feed_waiting()
{
    for (auto it = pending_.begin(); it != pending_.end() && waiting_ > 0;) {
        auto cur = it++;  // write_pending may settle (erase) `cur`
        auto& p = cur->second;
        if (!p.waiting) continue;
        std::size_t need = p.frame.body.size() + 256;
        if (queued_ > 0 && queued_ + need > opts_.max_queued_bytes) break;
        p.waiting = false;
        --waiting_;
        write_pending(cur->first, p);
    }
}

// ---- subscriptions ---------------------------------------------------------------------------

stomp::frame session::subscribe_frame(const std::string& id, const subscription_options& o) const
{
    stomp::frame s("SUBSCRIBE");
    s.add("destination", o.destination);
    s.add("id", id);
    // A broker that knows only 1.0 has no client-individual; cumulative client acks are then the
    // closest (and the consumer acks in order).
    s.add("ack", opts_.protocol == protocol_mode::v1_0 && o.ack == ack_mode::client_individual
                     ? std::string_view("client")
                     : ack_mode_name(o.ack));
    if (!o.durable_name.empty()) {
        if (o.durable == durable_style::rabbitmq || o.durable == durable_style::both) {
            s.add("durable", "true");
            s.add("auto-delete", "false");
            s.add("persistent", "true");
        }
        if (o.durable == durable_style::activemq || o.durable == durable_style::both)
            s.add("activemq.subscriptionName", o.durable_name);
    }
    if (o.prefetch > 0) {
        s.add("prefetch-count", std::to_string(o.prefetch));
        s.add("activemq.prefetchSize", std::to_string(o.prefetch));
    }
    for (auto& [k, v] : o.headers) s.add(k, v);
    for (auto& [k, v] : opts_.subscribe_headers)
        if (!s.find(k)) s.add(k, v);
    s.add("receipt", "s-" + std::to_string(generation_) + "-" + id);
    return s;
}

// Writes SUBSCRIBE for `s` unless it is parked after a refusal (on_tick sends it when its retry
// time comes).
void session::send_subscribe(const std::string& id, sub& s, time_point now)
{
    if (!connected() || s.sent_on == generation_ || now < s.retry_at) return;
    emit_frame(subscribe_frame(id, s.opts));
    s.sent_on = generation_;
    s.sent_seq = ++frames_out_;
}

std::string session::subscribe(subscription_options o, time_point now)
{
    std::string id = !o.id.empty() ? o.id
                     : !o.durable_name.empty() ? o.durable_name
                                               : "sub-" + std::to_string(++sub_counter_);
    if (subs_.count(id)) throw std::invalid_argument("subscription id '" + id + "' in use");
    // In the client ack modes the broker's window bounds what it sends before our acks, so the
    // local buffer never fills and never stops the reader (which carries receipts too).
    if (o.ack != ack_mode::automatic && o.prefetch == 0) o.prefetch = static_cast<unsigned>(opts_.subscription_buffer);
    auto& s = subs_[id];
    s.opts = std::move(o);
    send_subscribe(id, s, now);
    return id;
}

bool session::unsubscribe(const std::string& id)
{
    auto it = subs_.find(id);
    if (it == subs_.end()) return false;
    if (connected()) {
        stomp::frame u("UNSUBSCRIBE");
        u.add("id", id);
        if (version_ == stomp::version::v1_0) u.add("destination", it->second.opts.destination);
        emit_frame(u);
    }
    subs_.erase(it);
    return true;
}

void session::acknowledge(const message& m, disposition d)
{
    // After UNSUBSCRIBE an ACK would be an error on RabbitMQ: an unsubscribed message stays
    // unacknowledged and the broker redelivers it when the connection ends.
    auto it = subs_.find(m.subscription);
    if (it == subs_.end() || it->second.opts.ack == ack_mode::automatic || d == disposition::leave) return;
    if (!connected() || m.connection != generation_) {
        // The broker redelivers unacknowledged messages of a dead connection itself.
        note(lvl::debug, "stomp: not acking message " + std::string(m.id()) + " from an old connection");
        return;
    }
    if (d == disposition::nack && version_ == stomp::version::v1_0) {
        note(lvl::warn, "stomp: message " + std::string(m.id()) + " on " + it->second.opts.destination +
                            " failed; STOMP 1.0 has no NACK, it stays unacked until the connection is renewed");
        return;
    }
    stomp::frame a(d == disposition::ack ? "ACK" : "NACK");
    if (version_ == stomp::version::v1_2) {
        a.add("id", m.frame.get("ack", m.id()));
    } else {
        a.add("message-id", m.id());
        a.add("subscription", m.subscription);
    }
    emit_frame(a);
}

// ---- state -----------------------------------------------------------------------------------

const subscription_options* session::subscription_opts(const std::string& id) const
{
    auto it = subs_.find(id);
    return it == subs_.end() ? nullptr : &it->second.opts;
}

subscription_status session::subscription(const std::string& id) const
{
    subscription_status st;
    auto it = subs_.find(id);
    if (it == subs_.end()) return st;
    st.confirmed = connected() && it->second.confirmed_on == generation_;
    st.refusals = it->second.refusals;
    st.refused = it->second.refused;
    st.permanent = it->second.permanent;
    return st;
}

bool session::subscribed(const std::string& id) const
{
    auto it = subs_.find(id);
    return it != subs_.end() && connected() && it->second.confirmed_on == generation_;
}

bool session::hopeless(const std::string& id) const
{
    auto it = subs_.find(id);
    return it == subs_.end() || it->second.permanent;
}

} // namespace bus
