#include "bus/runtime/hook_send.hpp"

#include "bus/delivery.hpp"
#include "bus/outbox.hpp"
#include "bus/signing.hpp"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace bus::runtime {

hook_send_result hook_send(const bus_config& cfg, const std::filesystem::path& default_spool,
                           std::vector<stomp::frame> frames, std::chrono::milliseconds budget, bool debug)
{
    hook_send_result r;
    auto spool = cfg.spool.value_or(outbox_options{.dir = default_spool});
    r.spool_dir = spool.dir;
    if (frames.empty()) return r;
    try {
        if (cfg.signing) {
            auto now = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch()).count();
            for (auto& f : frames) sign(f, *cfg.signing, now);
        }
        std::shared_ptr<spdlog::logger> log =
            debug ? std::make_shared<spdlog::logger>("hook", std::make_shared<spdlog::sinks::stderr_color_sink_mt>())
                  : std::make_shared<spdlog::logger>("hook", std::make_shared<spdlog::sinks::null_sink_mt>());
        auto rep = send_once(cfg.client, spool, std::move(frames), budget, *log);
        r.published = rep.published;
        r.spooled = rep.spooled;
    } catch (const std::exception& e) {
        r.error = e.what();
    }
    return r;
}

} // namespace bus::runtime
