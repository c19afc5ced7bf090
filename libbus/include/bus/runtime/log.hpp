#pragma once

// Log lines about one event (or webhook delivery): the id is its own key in JSON lines
// (`event_id`) and is in every text and syslog line, whatever the message says.
//
//   bus::runtime::log_event(log, spdlog::level::info, ev.id, "stomp-jenkins: {} -> {} job(s)", repo, n);
//   text:  2026-12-04T10:30:00.123Z info stomp-jenkins: site -> 1 job(s) (event 3f2a9c...)
//   json:  {"ts":"...","level":"info","daemon":"stomp-jenkins","msg":"stomp-jenkins: site -> 1 job(s) (event 3f2a9c...)","event_id":"3f2a9c..."}
//
// A message that already names the id ("event {}: ...") is left as it is. The id is bounded
// (128 bytes) and control characters in it are replaced, so a peer's id cannot forge lines.

#include <spdlog/spdlog.h>

#include <string>
#include <string_view>
#include <utility>

namespace bus::runtime {

namespace detail {
/// Logs `msg` with `event_id` as the id of this one call (the runtime's sinks read it).
void log_with_event(spdlog::logger& log, spdlog::level::level_enum level, std::string_view event_id, std::string msg);
/// The id the log call in progress on this thread is about ("" when none).
std::string_view current_event_id() noexcept;
} // namespace detail

/// Logs one line about the event (or delivery) `event_id`. An empty id logs a plain line.
template <class... Args>
void log_event(spdlog::logger& log, spdlog::level::level_enum level, std::string_view event_id,
               spdlog::format_string_t<Args...> fmt, Args&&... args)
{
    if (!log.should_log(level)) return;
    detail::log_with_event(log, level, event_id, fmt::format(fmt, std::forward<Args>(args)...));
}

/// One log line as the runtime's stderr sink writes it (without the newline): for tests and
/// for tools that want the same shape. `journal`: stderr is the journal (priority prefix, no
/// timestamp). `level` is a spdlog::level::level_enum.
std::string format_log_line(std::string_view daemon, bool json, bool journal, spdlog::level::level_enum level,
                            spdlog::log_clock::time_point time, std::string_view msg, std::string_view event_id);

} // namespace bus::runtime
