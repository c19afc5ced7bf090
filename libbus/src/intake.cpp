#include "bus/intake.hpp"

#include "bus/text.hpp"

#include <algorithm>

namespace bus {

namespace {

std::chrono::seconds remember_for(const intake_options& o) { return std::max(o.dedupe_ttl, 2 * o.signature_window); }

} // namespace

std::string_view to_string(intake_decision d) noexcept
{
    switch (d) {
    case intake_decision::process: return "process";
    case intake_decision::keepalive: return "keepalive";
    case intake_decision::invalid: return "invalid";
    case intake_decision::duplicate: return "duplicate";
    case intake_decision::signature: return "signature";
    }
    return "?";
}

intake::intake(intake_options opts, keyring keys)
    : opts_(std::move(opts)), keys_(std::move(keys)), seen_(opts_.dedupe_capacity, remember_for(opts_)),
      broker_ids_(opts_.dedupe_capacity, remember_for(opts_))
{
    if (!opts_.replay_cache.empty()) {
        cache_ = std::make_unique<replay_cache>(opts_.replay_cache, opts_.dedupe_capacity, remember_for(opts_),
                                                std::chrono::system_clock::now());
        for (auto& [id, at] : cache_->loaded()) seen_.remember(id, at);
    }
}

intake::result intake::accept(const stomp::frame& f, std::chrono::system_clock::time_point now)
{
    result r;
    if (stomp::is_legacy_keepalive(f)) {
        ++counters_.keepalives;
        r.decision = intake_decision::keepalive;
        return r;
    }
    if (opts_.require_signatures) {
        auto unix_now = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
        r.signature = verify(f, keys_, unix_now, opts_.signature_window);
        switch (r.signature) {
        case signature_verdict::ok: break;
        case signature_verdict::unsigned_message: ++counters_.unsigned_dropped; break;
        case signature_verdict::unknown_key: ++counters_.unknown_key; break;
        case signature_verdict::bad_signature: ++counters_.forged; break;
        case signature_verdict::stale: ++counters_.stale; break;
        case signature_verdict::unsupported_scheme: ++counters_.old_scheme; break;
        }
        if (r.signature != signature_verdict::ok) {
            r.decision = intake_decision::signature;
            r.reason = "signature check failed: " + std::string(to_string(r.signature));
            return r;
        }
        r.authenticated = true;
    }
    auto in = decode(f);
    r.legacy = in.legacy;
    if (in.what == inbound::kind::keepalive) {
        ++counters_.keepalives;
        r.decision = intake_decision::keepalive;
        return r;
    }
    if (in.what == inbound::kind::invalid) {
        ++counters_.invalid;
        r.decision = intake_decision::invalid;
        r.reason = in.reason;
        return r;
    }
    if (r.authenticated && in.broker_id) {
        // Signed but without an event id: the signature itself identifies the signing act, and a
        // replay carries it unchanged under a new broker message id.
        auto sig = f.get(header::signature);
        sig.remove_prefix(signature_scheme.size());
        in.ev->id = "sig-" + std::string(sig);
        in.broker_id = false;
    }
    // A legacy frame's id names the broker message: the only repeat to drop is that message
    // redelivered, never a new message with the same content.
    bool duplicate = in.broker_id ? f.get("redelivered") == "true" && broker_ids_.seen(in.ev->id, now)
                                  : seen_.seen(in.ev->id, now);
    if (duplicate) {
        ++counters_.duplicates;
        r.decision = intake_decision::duplicate;
        r.reason = "duplicate of event " + log_escape(in.ev->id) + " (redelivery or replay)";
        return r;
    }
    ++counters_.accepted;
    r.decision = intake_decision::process;
    r.ev = std::move(in.ev);
    return r;
}

void intake::processed(std::string_view id, std::chrono::system_clock::time_point now)
{
    // Broker-derived ids (see wire.hpp) are kept apart and in memory only: brokers may reuse
    // message ids after their own restart.
    if (id.starts_with("legacy-")) {
        broker_ids_.remember(id, now);
        return;
    }
    seen_.remember(id, now);
    if (cache_) {
        cache_->append(id, now);
        if (cache_->needs_rewrite()) cache_->rewrite(seen_.entries());
    }
}

void intake::sync()
{
    if (cache_) cache_->sync();
}

} // namespace bus
