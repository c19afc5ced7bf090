#include "bus/keepalive.hpp"

#include <algorithm>
#include <charconv>

namespace bus {

bool parse_heartbeat_header(std::string_view value, std::chrono::milliseconds& x,
                            std::chrono::milliseconds& y) noexcept
{
    x = y = std::chrono::milliseconds{0};
    auto comma = value.find(',');
    if (comma == std::string_view::npos) return false;
    auto num = [](std::string_view s, std::chrono::milliseconds& out) {
        while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
        while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
        std::uint32_t v = 0;
        auto r = std::from_chars(s.data(), s.data() + s.size(), v);
        if (s.empty() || r.ec != std::errc{} || r.ptr != s.data() + s.size()) return false;
        out = std::chrono::milliseconds{v};
        return true;
    };
    if (!num(value.substr(0, comma), x) || !num(value.substr(comma + 1), y)) {
        x = y = std::chrono::milliseconds{0};
        return false;
    }
    return true;
}

heartbeat negotiate_heartbeat(std::chrono::milliseconds cx, std::chrono::milliseconds cy,
                              std::chrono::milliseconds sx, std::chrono::milliseconds sy) noexcept
{
    heartbeat hb;
    if (cx.count() > 0 && sy.count() > 0) hb.send = std::max(cx, sy);
    if (sx.count() > 0 && cy.count() > 0) hb.receive = std::max(sx, cy);
    return hb;
}

std::string_view to_string(keepalive_action a) noexcept
{
    switch (a) {
    case keepalive_action::none: return "none";
    case keepalive_action::send_heartbeat: return "send_heartbeat";
    case keepalive_action::send_probe: return "send_probe";
    case keepalive_action::dead: return "dead";
    }
    return "none";
}

keepalive::keepalive(keepalive_config cfg, time_point now) noexcept
    : cfg_(cfg), last_rx_(now), last_tx_(now)
{
}

void keepalive::on_rx(time_point now) noexcept
{
    last_rx_ = now;
    probing_ = false;
}

void keepalive::on_tx(time_point now) noexcept { last_tx_ = now; }

void keepalive::set_paused(bool paused, time_point now) noexcept
{
    // While paused nothing is read, so the silence clock restarts when reading resumes.
    if (paused_ && !paused) {
        last_rx_ = now;
        probing_ = false;
    }
    paused_ = paused;
}

keepalive_action keepalive::on_tick(time_point now) noexcept
{
    if (!paused_) {
        if (cfg_.expect_every.count() > 0) {
            auto limit = std::chrono::duration_cast<clock::duration>(cfg_.expect_every * cfg_.grace);
            if (now - last_rx_ >= limit) return keepalive_action::dead;
        } else if (cfg_.probe_after.count() > 0) {
            if (probing_) {
                if (now - probe_sent_ >= cfg_.probe_timeout) return keepalive_action::dead;
            } else if (now - last_rx_ >= cfg_.probe_after) {
                probing_ = true;
                probe_sent_ = now;
                return keepalive_action::send_probe;
            }
        }
    }
    if (cfg_.send_every.count() > 0 && now - last_tx_ >= cfg_.send_every)
        return keepalive_action::send_heartbeat;
    return keepalive_action::none;
}

keepalive::time_point keepalive::next_deadline() const noexcept
{
    auto next = time_point::max();
    if (cfg_.send_every.count() > 0) next = std::min(next, last_tx_ + cfg_.send_every);
    if (!paused_) {
        if (cfg_.expect_every.count() > 0)
            next = std::min(next, last_rx_ + std::chrono::duration_cast<clock::duration>(
                                                 cfg_.expect_every * cfg_.grace));
        else if (cfg_.probe_after.count() > 0)
            next = std::min(next, probing_ ? probe_sent_ + cfg_.probe_timeout
                                           : last_rx_ + cfg_.probe_after);
    }
    return next;
}

} // namespace bus
