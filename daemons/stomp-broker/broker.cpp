#include "broker.hpp"

#include <algorithm>
#include <charconv>

namespace broker {

using bus::stomp::frame;
using stomp_version = bus::stomp::version;

namespace {

enum class ack_mode { automatic, client, client_individual };

struct queue;
struct session;

struct entry {
    message_ptr msg;
    bool redelivered = false;
};

struct subscription;

struct delivery {
    entry e;
    std::string ack_id;
};

struct subscription {
    session* owner = nullptr;
    std::string id;
    std::string destination;
    ack_mode ack = ack_mode::automatic;
    queue* q = nullptr;
    std::size_t window = 0;
    std::map<std::uint64_t, delivery> unacked;  // by delivery tag, in delivery order
};

struct queue {
    std::string name;
    bool durable = false;    // survives its consumers (named queues, durable subscriptions)
    bool transient = false;  // a non-durable topic subscriber's private backlog
    std::string topic;       // bound topic (or wildcard pattern), for subscriptions
    std::size_t bytes = 0;   // message bytes held, ready and in flight
    std::optional<std::string> creator;  // the login it counts against (max_destinations_per_user)
    std::deque<entry> ready;
    std::vector<subscription*> consumers;
    std::size_t rr = 0;
    std::size_t in_flight = 0;
};

struct session {
    session_id id = 0;
    bool connected = false;
    stomp_version ver = stomp_version::v1_0;
    std::string login;
    std::string client_id;
    bool congested = false;
    std::size_t credit = 0;  // bytes of deliveries the I/O layer may still take
    std::uint64_t next_tag = 0;
    session_heartbeat hb;
    std::map<std::string, std::unique_ptr<subscription>> subs;
    std::unordered_map<std::string, std::pair<subscription*, std::uint64_t>> acks;  // 1.2 ack ids
    struct txn {
        std::vector<frame> frames;
        std::size_t bytes = 0;
    };
    std::map<std::string, txn> transactions;
    std::size_t tx_bytes = 0;  // held by all open transactions
    std::optional<frame> blocked_send;  // waiting for room in `blocked_on`
    std::string blocked_on;
};

constexpr std::string_view queue_prefix = "/queue/";
constexpr std::string_view topic_prefix = "/topic/";

bool valid_name(std::string_view n)
{
    if (n.empty() || n.size() > 255) return false;
    for (char c : n)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '-' || c == ':' || c == '@'))
            return false;
    return true;
}

// Topic wildcards, on subscriptions only: `*` one word, `#` zero or more words (RabbitMQ),
// `>` the remaining words, one or more, as the last word (ActiveMQ). Words are '.'-separated.
bool wildcard_word(std::string_view w) { return w == "*" || w == "#" || w == ">"; }

std::vector<std::string_view> words(std::string_view n)
{
    std::vector<std::string_view> out;
    for (;;) {
        auto dot = n.find('.');
        out.push_back(n.substr(0, dot));
        if (dot == std::string_view::npos) return out;
        n.remove_prefix(dot + 1);
    }
}

bool valid_pattern(std::string_view n)
{
    if (n.empty() || n.size() > 255) return false;
    auto ws = words(n);
    std::size_t hashes = 0;
    bool wild = false;
    for (std::size_t i = 0; i < ws.size(); ++i) {
        if (wildcard_word(ws[i])) {
            wild = true;
            if (ws[i] == ">" && i + 1 != ws.size()) return false;
            if (ws[i] == "#" && ++hashes > 3) return false;  // "#.#.#.#" means nothing more than "#"
        } else if (ws[i].find_first_of("*#>") != std::string_view::npos || (!ws[i].empty() && !valid_name(ws[i]))) {
            return false;
        }
    }
    return wild;
}

bool match_words(const std::vector<std::string_view>& p, std::size_t pi, const std::vector<std::string_view>& t,
                 std::size_t ti)
{
    if (pi == p.size()) return ti == t.size();
    if (p[pi] == "#") {
        for (std::size_t k = ti; k <= t.size(); ++k)
            if (match_words(p, pi + 1, t, k)) return true;
        return false;
    }
    if (p[pi] == ">") return ti < t.size();
    if (ti == t.size()) return false;
    if (p[pi] != "*" && p[pi] != t[ti]) return false;
    return match_words(p, pi + 1, t, ti + 1);
}

// "/topic/<name>" or "/queue/<name>" with a name RabbitMQ would accept too (no '/').
struct destination_name {
    bool topic = false;
    bool wildcard = false;
    std::string name;
};
std::optional<destination_name> parse_destination(std::string_view dest, bool allow_wildcards = false)
{
    destination_name d;
    if (dest.starts_with(topic_prefix)) {
        d.topic = true;
        d.name = std::string(dest.substr(topic_prefix.size()));
    } else if (dest.starts_with(queue_prefix)) {
        d.name = std::string(dest.substr(queue_prefix.size()));
    } else {
        return std::nullopt;
    }
    if (valid_name(d.name)) return d;
    if (allow_wildcards && d.topic && valid_pattern(d.name)) {
        d.wildcard = true;
        return d;
    }
    return std::nullopt;
}

// The strings a read permission must match for a wildcard subscription to be allowed: each
// wildcard word becomes a character no pattern holds, which only a permission's `*` can match,
// so the permission covers every destination the wildcard can reach; `#` also stands for no
// words at all ("a.#" reaches "a" too).
std::vector<std::string> coverage_probes(std::string_view prefix, std::string_view name)
{
    constexpr char any = '\x01';
    std::vector<std::string> out{std::string(prefix)};
    bool first = true;
    for (auto w : words(name)) {
        std::vector<std::string> next;
        for (auto& o : out) {
            std::string sep = first || o.size() == prefix.size() ? "" : ".";
            if (w == "#") next.push_back(o);  // no words
            next.push_back(o + sep + (wildcard_word(w) ? std::string(1, any) : std::string(w)));
        }
        out = std::move(next);
        first = false;
    }
    return out;
}

std::size_t cost(const message& m)
{
    std::size_t n = m.body.size() + 64;
    for (auto& [k, v] : m.headers) n += k.size() + v.size();
    return n;
}

std::size_t cost(const frame& f)
{
    std::size_t n = f.body.size() + 64;
    for (auto& [k, v] : f.headers) n += k.size() + v.size();
    return n;
}

std::optional<stomp_version> negotiate(std::string_view accept)
{
    std::optional<stomp_version> best;
    while (!accept.empty()) {
        auto comma = accept.find(',');
        auto v = bus::stomp::parse_version(accept.substr(0, comma));
        if (v && (!best || *v > *best)) best = v;
        accept = comma == std::string_view::npos ? std::string_view{} : accept.substr(comma + 1);
    }
    return best;
}

std::uint32_t parse_ms(std::string_view s)
{
    std::uint32_t v = 0;
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
    std::from_chars(s.data(), s.data() + s.size(), v);
    return v;
}

// Headers the broker sets itself on MESSAGE; a producer's copies are not forwarded.
bool reserved_header(std::string_view h)
{
    return h == "destination" || h == "receipt" || h == "content-length" || h == "transaction" ||
           h == "message-id" || h == "subscription" || h == "ack" || h == "redelivered";
}

} // namespace

struct broker_core::impl {
    core_options opts;
    authorizer auth;
    core_stats& stats;
    std::map<session_id, std::unique_ptr<session>> sessions;
    std::map<std::string, std::unique_ptr<queue>> queues;
    std::map<std::string, std::set<queue*>> bindings;  // topic → queues
    std::map<std::string, std::set<queue*>> wildcard_bindings;  // topic pattern → queues
    // queue name → producers waiting; "" for the broker-wide memory mark
    std::map<std::string, std::vector<session_id>> blocked;
    std::map<std::string, std::size_t, std::less<>> destinations_of;  // login → queues it created
    session_id next_session = 0;
    bool in_commit = false;  // a COMMIT's SENDs are all-or-error, never parked halfway
    std::uint64_t next_seq = 0;

    impl(core_options o, authorizer a, core_stats& s) : opts(std::move(o)), auth(std::move(a)), stats(s) {}

    // ---- helpers ----------------------------------------------------------------------------

    void error(session& s, actions& out, std::string message, std::string detail = {},
               std::string_view receipt = {})
    {
        frame e("ERROR");
        e.add("message", message);
        if (!receipt.empty()) e.add("receipt-id", receipt);
        e.add("content-type", "text/plain");
        e.body = detail.empty() ? message : detail;
        out.frames.push_back({s.id, std::move(e)});
        out.close.push_back(s.id);
        s.connected = false;
    }

    void receipt(session& s, const frame& f, actions& out, bool after_persist = false)
    {
        auto r = f.find("receipt");
        if (!r) return;
        frame rf("RECEIPT");
        rf.add("receipt-id", *r);
        (after_persist ? out.after_persist : out.frames).push_back({s.id, std::move(rf)});
    }

    void bind(queue& q, const std::string& topic)
    {
        q.topic = topic;
        auto parsed = parse_destination(std::string(topic_prefix) + topic, true);
        (parsed && parsed->wildcard ? wildcard_bindings : bindings)[topic].insert(&q);
    }

    // A queue a session's SEND or SUBSCRIBE creates counts against its login.
    queue* get_queue_for(session& s, const std::string& name, actions& out, std::string_view receipt_id)
    {
        if (auto it = queues.find(name); it != queues.end()) return it->second.get();
        auto& n = destinations_of[s.login];
        if (opts.max_destinations_per_user && n >= opts.max_destinations_per_user) {
            ++stats.denied;
            error(s, out, "Too many destinations",
                  "user '" + s.login + "' has created its maximum of " +
                      std::to_string(opts.max_destinations_per_user) + " queues",
                  receipt_id);
            return nullptr;
        }
        ++n;
        auto& q = get_queue(name, true);
        q.creator = s.login;
        return &q;
    }

    queue& get_queue(const std::string& name, bool durable)
    {
        auto& q = queues[name];
        if (!q) {
            q = std::make_unique<queue>();
            q->name = name;
            q->durable = durable;
        }
        return *q;
    }

    void delete_queue(queue* q)
    {
        if (!q->topic.empty()) {
            for (auto* b : {&bindings, &wildcard_bindings}) {
                auto it = b->find(q->topic);
                if (it != b->end()) {
                    it->second.erase(q);
                    if (it->second.empty()) b->erase(it);
                }
            }
        }
        if (q->creator) {
            auto it = destinations_of.find(*q->creator);
            if (it != destinations_of.end() && --it->second == 0) destinations_of.erase(it);
        }
        release(*q, q->bytes);
        queues.erase(q->name);
    }

    void hold(queue& q, std::size_t n)
    {
        q.bytes += n;
        stats.held_bytes += n;
    }
    void release(queue& q, std::size_t n)
    {
        n = std::min(n, q.bytes);
        q.bytes -= n;
        stats.held_bytes -= std::min(n, stats.held_bytes);
    }

    // Room for `n` more bytes in a durable queue: its depth and byte limit. One message bigger
    // than the byte limit still goes into an empty queue, so it never waits for good.
    bool has_room(const queue& q, std::size_t n) const
    {
        if (q.ready.size() >= opts.max_queue_depth) return false;
        return !opts.max_queue_bytes || q.bytes == 0 || q.bytes + n <= opts.max_queue_bytes;
    }
    bool memory_high(std::size_t n) const
    {
        return opts.max_memory && stats.held_bytes > 0 && stats.held_bytes + n > opts.max_memory;
    }

    // Pushes a message into a queue; a slow non-durable subscriber's backlog drops its oldest.
    void enqueue(queue& q, const message_ptr& m, actions& out)
    {
        const std::size_t n = cost(*m);
        if (q.transient) {
            while (!q.ready.empty() &&
                   (q.ready.size() >= opts.transient_topic_depth ||
                    (opts.max_queue_bytes && q.bytes + n > opts.max_queue_bytes))) {
                release(q, cost(*q.ready.front().msg));
                q.ready.pop_front();
                ++stats.dropped_slow;
            }
        }
        q.ready.push_back({m, false});
        hold(q, n);
        if (q.durable && m->persistent) out.persist.push_back({journal_record::kind::add, q.name, {}, m, 0});
    }

    frame message_frame(session& s, subscription& sub, const entry& e, std::string& ack_id)
    {
        frame f("MESSAGE");
        f.add("subscription", sub.id);
        f.add("destination", e.msg->destination);
        f.add("message-id", "m-" + std::to_string(e.msg->seq));
        if (sub.ack != ack_mode::automatic) {
            ack_id = std::to_string(s.id) + "-" + std::to_string(++s.next_tag);
            if (s.ver == stomp_version::v1_2) f.add("ack", ack_id);
        }
        f.add("redelivered", e.redelivered ? "true" : "false");
        if (e.msg->persistent) f.add("persistent", "true");
        for (auto& [k, v] : e.msg->headers)
            if (!reserved_header(k)) f.add(k, v);
        f.body = e.msg->body;
        return f;
    }

    bool has_capacity(const subscription& sub) const
    {
        const session& s = *sub.owner;
        // Nothing for a session that is closing (DISCONNECT, ERROR, connection lost), and
        // nothing beyond its credit: the I/O layer's queue stays bounded.
        if (!s.connected || s.congested || s.credit == 0) return false;
        if (sub.ack == ack_mode::automatic) return true;
        return sub.unacked.size() < sub.window;
    }

    void dispatch(queue& q, actions& out)
    {
        while (!q.ready.empty() && !q.consumers.empty()) {
            subscription* target = nullptr;
            for (std::size_t n = 0; n < q.consumers.size(); ++n) {
                auto* c = q.consumers[(q.rr + n) % q.consumers.size()];
                if (has_capacity(*c)) {
                    target = c;
                    q.rr = (q.rr + n + 1) % q.consumers.size();
                    break;
                }
            }
            if (!target) return;
            entry e = std::move(q.ready.front());
            q.ready.pop_front();
            session& s = *target->owner;
            std::string ack_id;
            out.frames.push_back({s.id, message_frame(s, *target, e, ack_id)});
            std::size_t wire = e.msg->body.size() + 256;
            s.credit = wire >= s.credit ? 0 : s.credit - wire;
            ++stats.messages_out;
            if (e.redelivered) ++stats.redelivered;
            if (target->ack == ack_mode::automatic) {
                release(q, cost(*e.msg));
                if (q.durable && e.msg->persistent)
                    out.persist.push_back({journal_record::kind::remove, q.name, {}, {}, e.msg->seq});
            } else {
                std::uint64_t tag = s.next_tag;
                s.acks[ack_id] = {target, tag};
                target->unacked.emplace(tag, delivery{std::move(e), ack_id});
                ++q.in_flight;
            }
        }
        release_blocked(q, out);
    }

    // Retries producers that waited for room in `q`, oldest first, while there is room.
    void release_blocked(queue& q, actions& out)
    {
        auto it = blocked.find(q.name);
        if (it == blocked.end()) return;
        while (!it->second.empty()) {
            session_id id = it->second.front();
            auto sit = sessions.find(id);
            if (sit == sessions.end() || !sit->second->blocked_send) {
                it->second.erase(it->second.begin());
                continue;
            }
            if (!has_room(q, cost(*sit->second->blocked_send))) break;
            it->second.erase(it->second.begin());
            session& s = *sit->second;
            frame f = std::move(*s.blocked_send);
            s.blocked_send.reset();
            s.blocked_on.clear();
            if (it->second.empty()) blocked.erase(it);
            on_send(s, std::move(f), out);
            if (!s.blocked_send) out.unblocked.push_back(id);
            it = blocked.find(q.name);
            if (it == blocked.end()) return;
        }
        if (it->second.empty()) blocked.erase(it);
    }

    // Retries producers that waited for the broker-wide memory mark, while memory allows.
    void release_memory(actions& out)
    {
        for (;;) {
            auto it = blocked.find("");
            if (it == blocked.end()) return;
            if (it->second.empty()) {
                blocked.erase(it);
                return;
            }
            session_id id = it->second.front();
            auto sit = sessions.find(id);
            if (sit != sessions.end() && sit->second->blocked_send && memory_high(cost(*sit->second->blocked_send)))
                return;
            it->second.erase(it->second.begin());
            if (it->second.empty()) blocked.erase(it);
            if (sit == sessions.end() || !sit->second->blocked_send) continue;
            session& s = *sit->second;
            frame f = std::move(*s.blocked_send);
            s.blocked_send.reset();
            s.blocked_on.clear();
            on_send(s, std::move(f), out);
            if (!s.blocked_send) out.unblocked.push_back(id);
        }
    }

    // Returns unacknowledged deliveries of `sub` to the front of its queue, in order.
    void requeue_unacked(subscription& sub)
    {
        if (!sub.q) return;
        for (auto it = sub.unacked.rbegin(); it != sub.unacked.rend(); ++it) {
            entry e = it->second.e;
            e.redelivered = true;
            sub.q->ready.push_front(std::move(e));
            sub.owner->acks.erase(it->second.ack_id);
            --sub.q->in_flight;
        }
        sub.unacked.clear();
    }

    void remove_subscription(session& s, subscription& sub, bool drop_durable, actions& out)
    {
        queue* q = sub.q;
        requeue_unacked(sub);
        if (q) {
            std::erase(q->consumers, &sub);
            if (q->transient || (drop_durable && q->name.starts_with("durable:") && q->consumers.empty())) {
                if (q->durable) out.persist.push_back({journal_record::kind::unbind, q->name, q->topic, {}, 0});
                delete_queue(q);
                q = nullptr;
            }
        }
        s.subs.erase(sub.id);
        if (q) dispatch(*q, out);
    }

    // ---- frames -----------------------------------------------------------------------------

    void on_connect(session& s, const frame& f, actions& out, const std::string_view* verified = nullptr)
    {
        if (s.connected) return error(s, out, "Already connected");
        auto accept = f.find("accept-version");
        std::optional<stomp_version> v = stomp_version::v1_0;
        if (accept) {
            v = negotiate(*accept);
            if (!v) {
                frame e("ERROR");
                e.add("version", "1.0,1.1,1.2");
                e.add("message", "Supported protocol versions are 1.0,1.1,1.2");
                e.add("content-type", "text/plain");
                e.body = "Supported protocol versions are 1.0,1.1,1.2";
                out.frames.push_back({s.id, std::move(e)});
                out.close.push_back(s.id);
                return;
            }
        }
        std::string login(f.get("login"));
        std::string why;
        if (verified) why = std::string(*verified);
        else if (auth.authenticate) why = auth.authenticate(login, f.get("passcode"));
        if (!why.empty()) {
            ++stats.auth_failures;
            return error(s, out, "Access refused for user '" + login + "'", why);
        }
        std::string client_id(f.get("client-id"));
        if (!client_id.empty())
            // ActiveMQ refuses a second connection with a live client-id (InvalidClientIDException)
            // rather than splitting a durable subscription's messages between the two. Scoped
            // to the login, so one user cannot lock another out by taking its client-id.
            for (auto& [_, other] : sessions)
                if (other.get() != &s && other->connected && other->login == login && other->client_id == client_id)
                    return error(s, out, "Client-id in use",
                                 "client-id '" + client_id + "' is already connected (session " +
                                     std::to_string(other->id) + ")");
        s.connected = true;
        s.ver = *v;
        s.login = login;
        s.client_id = std::move(client_id);
        frame c("CONNECTED");
        c.add("version", bus::stomp::to_string(*v));  // RabbitMQ and ActiveMQ say 1.0 too
        c.add("server", opts.server_name);
        c.add("session", "session-" + std::to_string(s.id));
        // Heart-beats, also on a 1.0 CONNECT that asks for them (as RabbitMQ and ActiveMQ do):
        // we send as often as the client wants to hear from us, and expect what it offers.
        if (auto hb = f.find("heart-beat")) {
            auto comma = hb->find(',');
            std::uint32_t cx = parse_ms(hb->substr(0, comma));
            std::uint32_t cy = comma == std::string_view::npos ? 0 : parse_ms(hb->substr(comma + 1));
            auto clamp = [&](std::uint32_t ms) { return ms == 0 ? 0 : std::max(ms, opts.heartbeat_min_ms); };
            s.hb.send_ms = clamp(cy);
            s.hb.expect_ms = clamp(cx);
            c.add("heart-beat", std::to_string(s.hb.send_ms) + "," + std::to_string(s.hb.expect_ms));
        } else {
            c.add("heart-beat", "0,0");
        }
        out.frames.push_back({s.id, std::move(c)});
    }

    // A SEND's destination and write permission; on refusal the session gets its ERROR.
    std::optional<destination_name> check_send(session& s, const frame& f, actions& out)
    {
        std::string dest(f.get("destination"));
        std::string_view receipt_id = f.get("receipt");
        if (dest.empty()) {
            error(s, out, "Missing destination", "SEND needs a destination header", receipt_id);
            return std::nullopt;
        }
        auto parsed = parse_destination(dest);  // never a wildcard: a SEND names one destination
        if (!parsed) {
            // The names RabbitMQ accepts, so a site can move to it unchanged (no '/' inside).
            error(s, out, "Invalid destination", "'" + dest + "' is not a valid destination", receipt_id);
            return std::nullopt;
        }
        if (auth.permit && !auth.permit(s.login, dest, true)) {
            ++stats.denied;
            error(s, out, "Access refused", "user '" + s.login + "' may not write to " + dest, receipt_id);
            return std::nullopt;
        }
        return parsed;
    }

    // Whether `login` may read everything a (wildcard) destination can deliver.
    bool may_read(std::string_view login, const std::string& dest)
    {
        if (!auth.permit) return true;
        auto parsed = parse_destination(dest, true);
        if (!parsed || !parsed->wildcard) return auth.permit(login, dest, false);
        for (auto& probe : coverage_probes(topic_prefix, parsed->name))
            if (!auth.permit(login, probe, false)) return false;
        return true;
    }

    void on_send(session& s, const frame& f, actions& out)
    {
        std::string dest(f.get("destination"));
        std::string_view receipt_id = f.get("receipt");
        auto parsed = check_send(s, f, out);
        if (!parsed) return;
        const bool is_queue = !parsed->topic;
        const std::string& name = parsed->name;
        std::vector<queue*> targets;
        if (is_queue) {
            auto* q = get_queue_for(s, dest, out, receipt_id);
            if (!q) return;
            targets.push_back(q);
        } else {
            std::set<queue*> all;
            if (auto it = bindings.find(name); it != bindings.end()) all = it->second;
            if (!wildcard_bindings.empty()) {
                auto tw = words(name);
                for (auto& [pattern, qs] : wildcard_bindings)
                    if (match_words(words(pattern), 0, tw, 0)) all.insert(qs.begin(), qs.end());
            }
            targets.assign(all.begin(), all.end());
        }
        const std::size_t size = cost(f);
        // The broker-wide high-water mark (RabbitMQ's memory alarm): publishers wait.
        if (!targets.empty() && memory_high(size)) {
            if (opts.block_when_full && !in_commit) {
                ++stats.memory_blocked;
                s.blocked_send = f;
                s.blocked_on.clear();
                blocked[""].push_back(s.id);
                out.blocked.push_back(s.id);
                return;
            }
            ++stats.rejected_full;
            return error(s, out, "Broker memory limit reached",
                         "the broker holds its maximum of message bytes; retry later", receipt_id);
        }
        // Room in every target first, so a message is never in some queues and not others.
        for (auto* q : targets) {
            if (q->transient || has_room(*q, size)) continue;
            if (opts.block_when_full && !in_commit) {
                // Back-pressure: the producer waits; the I/O layer stops reading from it.
                ++stats.blocked_sends;
                s.blocked_send = f;
                s.blocked_on = q->name;
                blocked[q->name].push_back(s.id);
                out.blocked.push_back(s.id);
                return;
            }
            ++stats.rejected_full;
            return error(s, out, "Queue full", q->name + " holds its maximum of messages or bytes; retry later",
                         receipt_id);
        }
        auto m = std::make_shared<message>();
        m->seq = ++next_seq;
        m->destination = dest;
        m->persistent = f.get("persistent") == "true";
        for (auto& h : f.headers)
            if (h.first != "persistent") m->headers.push_back(h);
        m->body = f.body;
        ++stats.messages_in;
        std::size_t persisted_before = out.persist.size();
        for (auto* q : targets) enqueue(*q, m, out);
        receipt(s, f, out, out.persist.size() > persisted_before);
        for (auto* q : targets) dispatch(*q, out);
    }

    void on_subscribe(session& s, const frame& f, actions& out)
    {
        std::string dest(f.get("destination"));
        std::string_view receipt_id = f.get("receipt");
        std::string id(f.get("id", s.ver == stomp_version::v1_0 ? dest : ""));
        if (id.empty()) return error(s, out, "Missing id", "SUBSCRIBE needs an id header", receipt_id);
        if (s.subs.count(id)) return error(s, out, "Duplicate subscription id", "id '" + id + "' is in use", receipt_id);
        if (s.subs.size() >= opts.max_subscriptions)
            return error(s, out, "Too many subscriptions", {}, receipt_id);
        auto parsed = parse_destination(dest, true);
        if (!parsed)
            return error(s, out, "Invalid destination", "'" + dest + "' is not a valid destination", receipt_id);
        const bool is_queue = !parsed->topic;
        const std::string& name = parsed->name;
        // A wildcard is allowed only if the read permissions cover every destination it can
        // reach: checked once here, as RabbitMQ checks a binding key against the topic
        // permissions and ActiveMQ checks a wildcard consumer against its read ACL when it
        // subscribes (neither filters per message).
        if (!may_read(s.login, dest)) {
            ++stats.denied;
            return error(s, out, "Access refused", "user '" + s.login + "' may not read " + dest, receipt_id);
        }
        const std::size_t persisted_before = out.persist.size();
        auto sub = std::make_unique<subscription>();
        sub->owner = &s;
        sub->id = id;
        sub->destination = dest;
        std::string_view ack = f.get("ack", "auto");
        if (ack == "auto") sub->ack = ack_mode::automatic;
        else if (ack == "client") sub->ack = ack_mode::client;
        else if (ack == "client-individual") sub->ack = ack_mode::client_individual;
        else return error(s, out, "Invalid ack mode", "ack must be auto, client or client-individual", receipt_id);
        sub->window = opts.max_unacked;
        for (auto h : {"prefetch-count", "activemq.prefetchSize"})
            if (auto p = f.find(h)) {
                std::size_t n = parse_ms(*p);
                if (n > 0) sub->window = std::min(n, opts.max_unacked);
            }
        queue* q = nullptr;
        if (is_queue) {
            q = get_queue_for(s, dest, out, receipt_id);
            if (!q) return;
        } else {
            std::string durable_key;
            if (auto an = f.find("activemq.subscriptionName"); an && !an->empty()) {
                if (s.client_id.empty())
                    return error(s, out, "Missing client-id",
                                 "a durable subscription (activemq.subscriptionName) needs client-id on CONNECT",
                                 receipt_id);
                // Keyed by login too (as the RabbitMQ style is): another user with the same
                // client-id and name gets a subscription of its own, never this one's backlog.
                durable_key = "amq:" + std::to_string(s.login.size()) + ":" + s.login + ":" + s.client_id + ":" +
                              std::string(*an);
            } else if ((f.get("durable") == "true" || f.get("persistent") == "true") &&
                       f.get("auto-delete") != "true") {
                // Scoped like a RabbitMQ queue name: per user and destination, not just the id.
                durable_key = "rmq:" + s.login + ":" + dest + ":" + id;
            }
            if (!durable_key.empty()) {
                std::string qname = "durable:" + durable_key;
                bool existed = queues.count(qname) > 0;
                if (existed && queues[qname]->topic != name)
                    return error(s, out, "Durable subscription in use",
                                 "durable subscription '" + qname.substr(8) + "' listens to another topic", receipt_id);
                q = get_queue_for(s, qname, out, receipt_id);
                if (!q) return;
                if (!existed) {
                    bind(*q, name);
                    out.persist.push_back({journal_record::kind::bind, qname, name, {}, 0});
                }
            } else {
                q = &get_queue("transient:" + std::to_string(s.id) + ":" + id, false);
                q->transient = true;
                bind(*q, name);
            }
        }
        sub->q = q;
        q->consumers.push_back(sub.get());
        s.subs.emplace(id, std::move(sub));
        receipt(s, f, out, out.persist.size() > persisted_before);
        dispatch(*q, out);
    }

    void on_unsubscribe(session& s, const frame& f, actions& out)
    {
        std::string id(f.get("id", s.ver == stomp_version::v1_0 ? f.get("destination") : ""));
        auto it = s.subs.find(id);
        if (it == s.subs.end())
            return error(s, out, "Subscription not found", "no subscription with id '" + id + "'", f.get("receipt"));
        bool drop_durable = f.get("durable") == "true" || f.find("activemq.subscriptionName").has_value();
        receipt(s, f, out);
        remove_subscription(s, *it->second, drop_durable, out);
    }

    // ACK/NACK: finds the delivery by 1.2 `id`, or by message-id (+ subscription) on 1.0/1.1.
    void on_ack(session& s, const frame& f, actions& out, bool positive)
    {
        subscription* sub = nullptr;
        std::uint64_t tag = 0;
        if (auto id = f.find("id"); id && s.ver == stomp_version::v1_2) {
            auto it = s.acks.find(std::string(*id));
            if (it != s.acks.end()) std::tie(sub, tag) = it->second;
        } else {
            std::string mid(f.get("message-id"));
            std::string sid(f.get("subscription"));
            for (auto& [name, candidate] : s.subs) {
                if (!sid.empty() && name != sid) continue;
                for (auto& [t, d] : candidate->unacked)
                    if ("m-" + std::to_string(d.e.msg->seq) == mid) {
                        sub = candidate.get();
                        tag = t;
                        break;
                    }
                if (sub) break;
            }
        }
        if (!sub)
            return error(s, out, "Unknown acknowledgement",
                         "no unacknowledged message matches this " + std::string(positive ? "ACK" : "NACK"),
                         f.get("receipt"));
        queue* q = sub->q;
        auto last = sub->unacked.find(tag);
        auto first = sub->ack == ack_mode::client ? sub->unacked.begin() : last;
        const auto end = std::next(last);  // computed once: erasing `last` invalidates it
        std::vector<entry> requeue;
        for (auto it = first; it != end;) {
            auto& d = it->second;
            if (positive) {
                release(*q, cost(*d.e.msg));
                if (q->durable && d.e.msg->persistent)
                    out.persist.push_back({journal_record::kind::remove, q->name, {}, {}, d.e.msg->seq});
            } else {
                entry e = d.e;
                e.redelivered = true;
                requeue.push_back(std::move(e));
            }
            s.acks.erase(d.ack_id);
            --q->in_flight;
            it = sub->unacked.erase(it);
        }
        for (auto it = requeue.rbegin(); it != requeue.rend(); ++it) q->ready.push_front(std::move(*it));
        receipt(s, f, out);
        dispatch(*q, out);
    }

    void apply(session& s, frame f, actions& out)
    {
        const std::string& c = f.command;
        if (c == "CONNECT" || c == "STOMP") return on_connect(s, f, out);
        if (!s.connected) return error(s, out, "Not connected", "send CONNECT first");
        if (auto tx = f.find("transaction"); tx && (c == "SEND" || c == "ACK" || c == "NACK")) {
            auto it = s.transactions.find(std::string(*tx));
            if (it == s.transactions.end())
                return error(s, out, "Unknown transaction", "transaction '" + std::string(*tx) + "' was not begun",
                             f.get("receipt"));
            if (it->second.frames.size() >= 10000) return error(s, out, "Transaction too large", {}, f.get("receipt"));
            // Checked when sent, not only at COMMIT: a user may not park what it may not send.
            if (c == "SEND" && !check_send(s, f, out)) return;
            const std::size_t size = cost(f);
            if (s.tx_bytes + size > opts.max_transaction_bytes)
                return error(s, out, "Transaction too large",
                             "open transactions may hold " + std::to_string(opts.max_transaction_bytes) + " bytes",
                             f.get("receipt"));
            receipt(s, f, out);
            f.erase("receipt");
            f.erase("transaction");
            it->second.frames.push_back(std::move(f));
            it->second.bytes += size;
            s.tx_bytes += size;
            return;
        }
        if (c == "SEND") return on_send(s, f, out);
        if (c == "SUBSCRIBE") return on_subscribe(s, f, out);
        if (c == "UNSUBSCRIBE") return on_unsubscribe(s, f, out);
        if (c == "ACK") return on_ack(s, f, out, true);
        if (c == "NACK") {
            if (s.ver == stomp_version::v1_0) return error(s, out, "NACK is not part of STOMP 1.0");
            return on_ack(s, f, out, false);
        }
        if (c == "BEGIN" || c == "COMMIT" || c == "ABORT") {
            std::string tx(f.get("transaction"));
            if (tx.empty()) return error(s, out, "Missing transaction", {}, f.get("receipt"));
            if (c == "BEGIN") {
                if (s.transactions.count(tx)) return error(s, out, "Transaction already begun", tx, f.get("receipt"));
                if (s.transactions.size() >= 100) return error(s, out, "Too many transactions", {}, f.get("receipt"));
                s.transactions[tx];
                return receipt(s, f, out);
            }
            auto it = s.transactions.find(tx);
            if (it == s.transactions.end()) return error(s, out, "Unknown transaction", tx, f.get("receipt"));
            auto frames = std::move(it->second.frames);
            s.tx_bytes -= std::min(s.tx_bytes, it->second.bytes);
            s.transactions.erase(it);
            const std::size_t persisted_before = out.persist.size();
            if (c == "COMMIT") {
                in_commit = true;
                for (auto& inner : frames) {
                    apply(s, std::move(inner), out);
                    if (!s.connected) break;
                }
                in_commit = false;
                if (!s.connected) return;
            }
            return receipt(s, f, out, out.persist.size() > persisted_before);
        }
        if (c == "DISCONNECT") {
            receipt(s, f, out);
            out.close.push_back(s.id);
            s.connected = false;
            return;
        }
        ++stats.protocol_errors;
        error(s, out, "Unexpected frame", c + " is not a client frame", f.get("receipt"));
    }
};

broker_core::broker_core(core_options opts, authorizer auth)
    : impl_(std::make_unique<impl>(std::move(opts), std::move(auth), stats_))
{
}

broker_core::~broker_core() = default;

session_id broker_core::open()
{
    auto s = std::make_unique<session>();
    s->id = ++impl_->next_session;
    s->credit = impl_->opts.session_credit_bytes;
    auto id = s->id;
    impl_->sessions.emplace(id, std::move(s));
    return id;
}

void broker_core::on_frame(session_id id, frame f, actions& out)
{
    auto it = impl_->sessions.find(id);
    if (it == impl_->sessions.end()) return;
    impl_->apply(*it->second, std::move(f), out);
    impl_->release_memory(out);
}

void broker_core::on_connect_verified(session_id id, frame f, std::string_view auth_error, actions& out)
{
    auto it = impl_->sessions.find(id);
    if (it == impl_->sessions.end()) return;
    impl_->on_connect(*it->second, f, out, &auth_error);
}

void broker_core::recheck_permissions(actions& out)
{
    auto& d = *impl_;
    for (auto& [id, s] : d.sessions) {
        if (!s->connected) continue;
        for (auto& [sid, sub] : s->subs) {
            if (d.may_read(s->login, sub->destination)) continue;
            ++stats_.revoked;
            frame e("ERROR");
            e.add("message", "Access refused");
            e.add("subscription", sid);
            e.add("content-type", "text/plain");
            e.body = "user '" + s->login + "' may no longer read " + sub->destination;
            out.frames.push_back({id, std::move(e)});
            out.close.push_back(id);
            s->connected = false;  // nothing more is delivered to it
            break;
        }
    }
}

void broker_core::close(session_id id, actions& out)
{
    auto it = impl_->sessions.find(id);
    if (it == impl_->sessions.end()) return;
    session& s = *it->second;
    s.connected = false;  // requeued messages must not go back to this session's other subscriptions
    if (s.blocked_send) {
        // Never accepted, never receipted: the producer sends it again after reconnecting.
        auto& w = impl_->blocked[s.blocked_on];
        std::erase(w, id);
        if (w.empty()) impl_->blocked.erase(s.blocked_on);
    }
    std::vector<std::string> ids;
    for (auto& [sid, _] : s.subs) ids.push_back(sid);
    for (auto& sid : ids) impl_->remove_subscription(s, *s.subs.at(sid), false, out);
    impl_->sessions.erase(it);
    impl_->release_memory(out);
    // Frames for a closed session are dropped by the I/O layer.
}

void broker_core::set_congested(session_id id, bool congested)
{
    if (auto it = impl_->sessions.find(id); it != impl_->sessions.end()) it->second->congested = congested;
}

void broker_core::on_written(session_id id, std::size_t bytes, actions& out)
{
    auto it = impl_->sessions.find(id);
    if (it == impl_->sessions.end()) return;
    auto& s = *it->second;
    bool was_empty = s.credit == 0;
    s.credit = std::min(impl_->opts.session_credit_bytes, s.credit + bytes);
    if (was_empty) on_writable(id, out);
    impl_->release_memory(out);
}

void broker_core::on_writable(session_id id, actions& out)
{
    auto it = impl_->sessions.find(id);
    if (it == impl_->sessions.end()) return;
    it->second->congested = false;
    std::vector<queue*> qs;
    for (auto& [_, sub] : it->second->subs)
        if (sub->q) qs.push_back(sub->q);
    for (auto* q : qs) impl_->dispatch(*q, out);
}

void broker_core::replay(const journal_record& r)
{
    auto& d = *impl_;
    switch (r.what) {
    case journal_record::kind::bind: {
        d.bind(d.get_queue(r.queue, true), r.topic);
        break;
    }
    case journal_record::kind::unbind:
        if (auto it = d.queues.find(r.queue); it != d.queues.end()) d.delete_queue(it->second.get());
        break;
    case journal_record::kind::add: {
        if (!r.msg) break;
        auto& q = d.get_queue(r.queue, true);
        q.ready.push_back({r.msg, false});
        d.hold(q, cost(*r.msg));
        d.next_seq = std::max(d.next_seq, r.msg->seq);
        break;
    }
    case journal_record::kind::remove:
        if (auto it = d.queues.find(r.queue); it != d.queues.end()) {
            auto& ready = it->second->ready;
            auto m = std::find_if(ready.begin(), ready.end(), [&](const entry& e) { return e.msg->seq == r.seq; });
            if (m != ready.end()) {
                d.release(*it->second, cost(*m->msg));
                ready.erase(m);
            }
        }
        break;
    }
}

std::vector<journal_record> broker_core::snapshot() const
{
    std::vector<journal_record> out;
    for (auto& [name, q] : impl_->queues) {
        if (!q->durable) continue;
        if (!q->topic.empty()) out.push_back({journal_record::kind::bind, name, q->topic, {}, 0});
        std::vector<message_ptr> msgs;
        for (auto* c : q->consumers)
            for (auto& [_, d] : c->unacked) msgs.push_back(d.e.msg);
        for (auto& e : q->ready) msgs.push_back(e.msg);
        std::sort(msgs.begin(), msgs.end(), [](auto& a, auto& b) { return a->seq < b->seq; });
        for (auto& m : msgs)
            if (m->persistent) out.push_back({journal_record::kind::add, name, {}, m, 0});
    }
    return out;
}

std::optional<bus::stomp::version> broker_core::version(session_id id) const
{
    auto it = impl_->sessions.find(id);
    if (it == impl_->sessions.end() || !it->second->connected) return std::nullopt;
    return it->second->ver;
}

std::optional<session_heartbeat> broker_core::heartbeat(session_id id) const
{
    auto it = impl_->sessions.find(id);
    if (it == impl_->sessions.end()) return std::nullopt;
    return it->second->hb;
}

std::vector<broker_core::queue_info> broker_core::queues() const
{
    std::vector<queue_info> out;
    for (auto& [name, q] : impl_->queues)
        out.push_back({name, q->ready.size(), q->in_flight, q->consumers.size(), q->durable});
    return out;
}

std::size_t broker_core::sessions() const noexcept { return impl_->sessions.size(); }

} // namespace broker
