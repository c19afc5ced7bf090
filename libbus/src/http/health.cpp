#include "bus/http/health.hpp"

namespace bus::http {

bool is_health_path(std::string_view path) noexcept
{
    return path == "/metrics" || path == "/livez" || path == "/readyz";
}

std::optional<response> health(const request& req, const registry& metrics, const ready_fn& ready)
{
    if (!is_health_path(req.path)) return std::nullopt;
    if (req.method != "GET" && req.method != "HEAD") {
        auto r = text(405, "method not allowed: use GET");
        r.headers.emplace_back("Allow", "GET, HEAD");
        return r;
    }
    if (req.path == "/livez") return text(200, "ok");
    if (req.path == "/metrics") {
        response r;
        r.content_type = "text/plain; version=0.0.4; charset=utf-8";
        r.body = metrics.expose();
        return r;
    }
    auto why = ready ? ready() : std::nullopt;
    if (!why) return text(200, "ready");
    auto r = text(503, "not ready: " + *why);
    r.headers.emplace_back("Retry-After", "5");
    return r;
}

} // namespace bus::http
