#include "bus/wire.hpp"

#include "bus/crypto.hpp"
#include "bus/detail/hex.hpp"
#include "bus/legacy.hpp"
#include "bus/text.hpp"

#include <array>

namespace bus {

namespace {

template <class... Ts>
struct overloaded : Ts... {
    using Ts::operator()...;
};
template <class... Ts>
overloaded(Ts...) -> overloaded<Ts...>;

using crypto::sha256_hex;

// The original's legacy form of an event, if it had one.
std::optional<legacy::message> legacy_form(const event& e)
{
    return std::visit(
        overloaded{
            [](const commit_event& c) -> std::optional<legacy::message> { return legacy::commit_message(c); },
            [](const build_event& b) -> std::optional<legacy::message> {
                if (b.phase == build_phase::queued)
                    return legacy::notice("Requested Jenkins build: [" + b.repo + "] " + b.branch + " " + b.commit +
                                          " / " + b.job);
                return legacy::jenkins_helper(b);
            },
            [](const fetch_event& f) -> std::optional<legacy::message> {
                if (f.ok)
                    return legacy::notice(f.host + "  fetched change: [" + f.repo + "] " + f.ref + " " + f.new_rev);
                return legacy::notice(f.host + "  problem: " + f.error);
            },
            [](const package_event& p) -> std::optional<legacy::message> { return legacy::auto_reprepro(p); },
            [](const deploy_request&) -> std::optional<legacy::message> { return std::nullopt; },
            [](const deploy_result& d) -> std::optional<legacy::message> {
                if (!d.ok)
                    return legacy::notice("deploy of tag " + d.tag + " from repo " + d.repo + " failed on " + d.host +
                                          " at " + d.stage + ": " + d.error + " request id " + d.request_id);
                return legacy::notice("git-agent on " + d.host + " checked out tag " + d.tag + " from repo " + d.repo +
                                      " request id " + d.request_id);
            },
            [](const heartbeat_event&) -> std::optional<legacy::message> { return std::nullopt; },
            [](const notice_event& n) -> std::optional<legacy::message> { return legacy::notice(n.text); },
            [](const package_result& r) -> std::optional<legacy::message> {
                // The original's "<host> <text>" one-liner, as stomp-git's fetch report.
                if (!r.ok) return legacy::notice(r.host + "  problem: apt lists update " + r.outcome + ": " + r.error);
                std::string s;
                for (const auto& p : r.packages)
                    s += (s.empty() ? "" : ", ") + p.name + " " + (p.candidate.empty() ? "(unknown)" : p.candidate);
                return legacy::notice(r.host + "  updated package lists: " + s +
                                      (r.upgrade_pending ? " (upgrade pending)" : ""));
            },
            [](const alert_event& a) -> std::optional<legacy::message> {
                return legacy::notice("herald alert " + a.rule + " " + a.state + ": " + a.text);
            },
            [](const extension_event&) -> std::optional<legacy::message> { return std::nullopt; },
        },
        e.data);
}

std::string repo_of(const event& e)
{
    return std::visit(
        overloaded{
            [](const commit_event& c) { return c.repo; }, [](const build_event& b) { return b.repo; },
            [](const fetch_event& f) { return f.repo; }, [](const package_event&) { return std::string(); },
            [](const deploy_request& d) { return d.repo; }, [](const deploy_result& d) { return d.repo; },
            [](const heartbeat_event&) { return std::string(); }, [](const notice_event&) { return std::string(); },
            [](const package_result&) { return std::string(); },
            [](const alert_event&) { return std::string(); },
            [](const extension_event&) { return std::string(); },
        },
        e.data);
}

stomp::frame base_frame(const event& e, std::string_view destination)
{
    stomp::frame f("SEND");
    f.add("destination", destination);
    f.add(header::event_id, e.id);
    f.add(header::event_type, e.type());
    if (auto r = repo_of(e); !r.empty()) f.add(header::repo, r);
    f.add("persistent", "true");
    return f;
}

bool usable_id(std::string_view id)
{
    // `legacy-` names broker messages (see decode); an event may not claim such an id.
    if (id.empty() || id.size() > 128 || id.starts_with("legacy-")) return false;
    for (char c : id)
        if (static_cast<unsigned char>(c) < 0x21 || c == '\\') return false;
    return true;
}

} // namespace

std::optional<wire_format> parse_wire_format(std::string_view s) noexcept
{
    if (s == "native") return wire_format::native;
    if (s == "legacy") return wire_format::legacy;
    if (s == "both") return wire_format::both;
    return std::nullopt;
}

std::vector<stomp::frame> encode(const event& e, std::string_view destination, wire_format fmt)
{
    std::vector<stomp::frame> out;
    auto legacy_msg = fmt == wire_format::native ? std::nullopt : legacy_form(e);
    // Native first: with `both`, deploykit consumers take the richer form and drop the legacy
    // copy as a duplicate (same event id).
    if (fmt != wire_format::legacy || !legacy_msg) {
        stomp::frame f = base_frame(e, destination);
        f.add("content-type", "application/json");
        f.body = to_native(e);
        out.push_back(std::move(f));
    }
    if (legacy_msg) {
        stomp::frame f = base_frame(e, destination);
        f.add("subject", legacy_msg->subject);
        f.add("content-type", "text/plain; charset=UTF-8");
        f.body = std::move(legacy_msg->body);
        out.push_back(std::move(f));
    }
    return out;
}

inbound decode(const stomp::frame& f)
{
    inbound in;
    if (stomp::is_legacy_keepalive(f) || f.body == "\n") {
        in.what = inbound::kind::keepalive;
        return in;
    }
    std::string_view ctype = f.get("content-type");
    std::string_view hdr_id = f.get(header::event_id);
    if (ctype.starts_with("application/json") || (f.body.starts_with("{") && f.find(header::event_type))) {
        auto d = from_native(f.body);
        if (!d) {
            in.reason = "native event: " + log_escape(d.error);
            return in;
        }
        if (d.value->id.starts_with("legacy-")) {
            in.reason = "native event: id: the legacy- prefix is reserved";
            return in;
        }
        if (!hdr_id.empty() && hdr_id != d.value->id) {
            in.reason = "dk-event-id header disagrees with the body's id";
            return in;
        }
        if (auto t = f.find(header::event_type); t && *t != d.value->type()) {
            in.reason = "dk-event-type header disagrees with the body's type";
            return in;
        }
        sanitize(*d.value);
        in.what = inbound::kind::event;
        in.ev = std::move(d.value);
        return in;
    }

    // Legacy: recognise the producer by shape.
    in.legacy = true;
    std::string_view subject = f.get("subject");
    event e;
    if (usable_id(hdr_id)) {
        e.id = std::string(hdr_id);
    } else if (auto mid = f.find("message-id"); mid && !mid->empty()) {
        // Never derived from the content: a roll-forward to a revision announced before (A→B,
        // back to A, A→B again) is byte-identical to the first announcement, and must be acted on.
        e.id = "legacy-" + sha256_hex(std::string(f.get("destination")) + "\n" + std::string(*mid)).substr(0, 32);
        in.broker_id = true;
    } else {
        e.id = "legacy-" + new_event_id();
        in.broker_id = true;
    }
    if (subject == legacy::eventbot_subject) {
        std::string text = f.body;
        while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
        e.data = notice_event{std::move(text)};
    } else if (f.body.starts_with("package:")) {
        auto p = legacy::parse_package(f.body);
        if (!p) {
            in.reason = "legacy package message: " + log_escape(p.error);
            return in;
        }
        e.data = std::move(*p.value);
    } else if (subject.starts_with("Begin job ") || subject.starts_with("Complete job ") ||
               subject.starts_with("Fail job ")) {
        auto b = legacy::parse_jenkins(subject, f.body);
        if (!b) {
            in.reason = "legacy jenkins message: " + log_escape(b.error);
            return in;
        }
        e.data = std::move(*b.value);
    } else {
        auto c = legacy::parse_commit(subject, f.body);
        if (!c) {
            in.reason = "legacy message: " + log_escape(c.error);
            return in;
        }
        e.data = std::move(*c.value);
    }
    if (auto why = validate(e); !why.empty()) {
        in.reason = "legacy message: " + log_escape(why);
        return in;
    }
    sanitize(e);
    in.what = inbound::kind::event;
    in.ev = std::move(e);
    return in;
}

} // namespace bus
