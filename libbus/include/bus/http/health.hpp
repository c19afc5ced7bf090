#pragma once

// The admin paths every daemon answers, pure: `/metrics` (the registry, Prometheus text),
// `/livez` (the process answers) and `/readyz` (the daemon can do its job, else 503 with the
// reason in the body, so a probe's log says why).

#include "bus/http/message.hpp"
#include "bus/http/metrics.hpp"

#include <functional>
#include <optional>
#include <string>

namespace bus::http {

/// nullopt: ready. Otherwise why not ("broker unreachable and spool full", "stopping" …).
using ready_fn = std::function<std::optional<std::string>()>;

/// True for /metrics, /livez and /readyz.
bool is_health_path(std::string_view path) noexcept;

/// The answer for a request on one of the health paths, nullopt for any other path. GET and
/// HEAD only (405 with Allow otherwise).
std::optional<response> health(const request& req, const registry& metrics, const ready_fn& ready);

} // namespace bus::http
