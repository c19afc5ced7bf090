// jenkins-helper: run from a Jenkins build step to report the build on the bus.
//   jenkins-helper -b      the build began
//   jenkins-helper -p      it succeeded ("profit")
//   jenkins-helper -c      it failed ("cake"; -c is not --config, as in the original)
// Reporting never breaks a build by accident: exit 0 unless --fail-on-error (a bad config too).
// Without a broker the messages are spooled and delivered by the next run or `stompctl drain`.
#include "config.hpp"
#include "jenkins_helper.hpp"

#include "bus/delivery.hpp"
#include "bus/runtime/program.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <cstdlib>

int main(int argc, char** argv)
{
    bool begin = false, profit = false, cake = false, fail_on_error = false;
    auto options = [&](CLI::App& app) {
        auto* g = app.add_option_group("stage");
        g->add_flag("-b,--begin", begin, "the build began");
        g->add_flag("-p,--profit", profit, "the build succeeded");
        g->add_flag("-c,--cake", cake, "the build failed");
        g->require_option(0, 1);  // exactly one, checked below (--check-config needs none)
        app.add_flag("--fail-on-error", fail_on_error, "exit 1 when the report could not be sent or spooled");
    };
    return bus::runtime::run_main(
        argc, argv,
        {.name = "jenkins-helper", .description = "jenkins-helper - report a Jenkins build on the deploykit bus",
         .default_config = "/etc/jenkins-helper/jenkins-helper.yaml", .daemon = false, .short_config = false,
         .config_env = "JENKINS_HELPER_CONFIG"},
        options, [&](const bus::runtime::common_options& opts, spdlog::logger& log) {
            if (!opts.debug) log.set_level(spdlog::level::warn);
            if (opts.check_config) return (jenkins_helper::load_config(opts.config_path), 0);
            const int failed = fail_on_error ? 1 : 0;
            if (!begin && !profit && !cake) return log.error("jenkins-helper: give -b, -p or -c"), 2;
            try {
                auto cfg = jenkins_helper::load_config(opts.config_path);
                auto s = begin ? jenkins_helper::stage::begin
                         : profit ? jenkins_helper::stage::success
                                  : jenkins_helper::stage::failure;
                auto env = [](const std::string& k) -> std::optional<std::string> {
                    const char* v = std::getenv(k.c_str());
                    return v ? std::optional<std::string>(v) : std::nullopt;
                };
                auto plan = jenkins_helper::make_plan(s, env, cfg.t, cfg.bus.format, bus::runtime::hostname());
                if (!plan.value) return log.error("jenkins-helper: {}", plan.error), failed;
                for (auto& w : plan.value->warnings) log.warn("jenkins-helper: {}", w);
                if (cfg.bus.signing) {
                    auto now = std::chrono::duration_cast<std::chrono::seconds>(
                                   std::chrono::system_clock::now().time_since_epoch()).count();
                    for (auto& f : plan.value->frames) bus::sign(f, *cfg.bus.signing, now);
                }
                auto spool = cfg.bus.spool.value_or(bus::outbox_options{.dir = jenkins_helper::default_spool()});
                auto rep = bus::send_once(cfg.bus.client, spool, std::move(plan.value->frames), std::chrono::milliseconds(2000), log);
                if (rep.spooled)
                    log.warn("jenkins-helper: broker unreachable; {} message(s) spooled in {} for later delivery", rep.spooled,
                             spool.dir.string());
                log.debug("published {}, spooled {}, delivered {} from the spool", rep.published, rep.spooled,
                          rep.drained.delivered);
            } catch (const std::exception& e) {
                log.error("jenkins-helper: {}", e.what());
                return failed;
            }
            return 0;
        });
}
