#include "bus/intake.hpp"

namespace bus {

intake::intake(intake_options opts, keyring keys)
    : opts_(opts), keys_(std::move(keys)),
      seen_(opts.dedupe_capacity, std::max(opts.dedupe_ttl, opts.signature_window))
{
}

intake::result intake::accept(const stomp::frame& f, std::chrono::system_clock::time_point now)
{
    result r;
    if (opts_.require_signatures) {
        auto unix_now = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
        auto v = verify(f, keys_, unix_now, opts_.signature_window);
        switch (v) {
        case signature_verdict::ok: break;
        case signature_verdict::unsigned_message: ++counters_.unsigned_dropped; break;
        case signature_verdict::unknown_key: ++counters_.unknown_key; break;
        case signature_verdict::bad_signature: ++counters_.forged; break;
        case signature_verdict::stale: ++counters_.stale; break;
        }
        if (v != signature_verdict::ok) {
            if (stomp::is_legacy_keepalive(f)) {
                ++counters_.keepalives;
                r.reason = "keepalive";
                return r;
            }
            r.reason = "signature check failed: " + std::string(to_string(v));
            return r;
        }
    }
    auto in = decode(f);
    r.legacy = in.legacy;
    if (in.what == inbound::kind::keepalive) {
        ++counters_.keepalives;
        r.reason = "keepalive";
        return r;
    }
    if (in.what == inbound::kind::invalid) {
        ++counters_.invalid;
        r.reason = in.reason;
        return r;
    }
    if (seen_.seen(in.ev->id, now)) {
        ++counters_.duplicates;
        r.reason = "duplicate of event " + in.ev->id + " (redelivery or replay)";
        return r;
    }
    ++counters_.accepted;
    r.process = true;
    r.ev = std::move(in.ev);
    return r;
}

void intake::processed(std::string_view id, std::chrono::system_clock::time_point now) { seen_.remember(id, now); }

} // namespace bus
