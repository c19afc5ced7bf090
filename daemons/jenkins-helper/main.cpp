// jenkins-helper: run from a Jenkins build step to report the build on the bus.
//   jenkins-helper -b      the build began
//   jenkins-helper -p      it succeeded ("profit")
//   jenkins-helper -c      it failed ("cake"; -c is not --config, as in the original)
// Reporting never breaks a build by accident: exit 0 unless --fail-on-error. Without a broker
// the messages are spooled and delivered by the next run or `stompctl drain`.
#include "jenkins_helper.hpp"

#include "bus/config.hpp"
#include "bus/delivery.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <iostream>

namespace {

std::string default_spool()
{
    const char* root = "/var/spool/deploykit/jenkins-helper";
    if (::access("/var/spool/deploykit", W_OK) == 0) return root;
    if (const char* state = std::getenv("XDG_STATE_HOME"); state && *state)
        return std::string(state) + "/deploykit/jenkins-helper";
    if (const char* home = std::getenv("HOME"); home && *home)
        return std::string(home) + "/.local/state/deploykit/jenkins-helper";
    return "/tmp/deploykit-jenkins-helper-" + std::to_string(::getuid());
}

std::string hostname()
{
    char buf[256] = {};
    ::gethostname(buf, sizeof buf - 1);
    return buf;
}

} // namespace

int main(int argc, char** argv)
{
    CLI::App app{"jenkins-helper - report a Jenkins build on the deploykit bus"};
    bool begin = false, profit = false, cake = false, debug = false, fail_on_error = false;
    std::string config = "/etc/jenkins-helper/jenkins-helper.yaml";
    auto* g = app.add_option_group("stage");
    g->add_flag("-b,--begin", begin, "the build began");
    g->add_flag("-p,--profit", profit, "the build succeeded");
    g->add_flag("-c,--cake", cake, "the build failed");
    g->require_option(1);
    app.add_flag("-d,--debug", debug, "log what is sent");
    app.add_option("--config", config, "configuration file")->envname("JENKINS_HELPER_CONFIG");
    app.add_flag("--fail-on-error", fail_on_error, "exit 1 when the report could not be sent or spooled");
    CLI11_PARSE(app, argc, argv);

    auto log = spdlog::stderr_color_mt("jenkins-helper");
    log->set_level(debug ? spdlog::level::debug : spdlog::level::warn);
    const int failed = fail_on_error ? 1 : 0;
    try {
        auto root = bus::load_yaml(config);
        auto cfg = bus::read_bus_config(root, config);
        jenkins_helper::topics t;
        auto topic = [&](const char* key, std::string& out) {
            if (auto n = root[key]) out = n.as<std::string>();
        };
        topic("begin-topic", t.begin);
        topic("success-topic", t.success);
        topic("failure-topic", t.failure);
        topic("report-topic", t.events);
        topic("build-topic", t.builds);
        auto s = begin ? jenkins_helper::stage::begin
                 : profit ? jenkins_helper::stage::success
                          : jenkins_helper::stage::failure;
        auto env = [](const std::string& k) -> std::optional<std::string> {
            const char* v = std::getenv(k.c_str());
            return v ? std::optional<std::string>(v) : std::nullopt;
        };
        auto plan = jenkins_helper::make_plan(s, env, t, cfg.format, hostname());
        if (!plan.value) {
            std::cerr << "jenkins-helper: " << plan.error << "\n";
            return failed;
        }
        for (auto& w : plan.value->warnings) std::cerr << "jenkins-helper: " << w << "\n";
        if (cfg.signing) {
            auto now = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch()).count();
            for (auto& f : plan.value->frames) bus::sign(f, *cfg.signing, now);
        }
        auto spool = cfg.spool.value_or(bus::outbox_options{.dir = default_spool()});
        auto rep = bus::send_once(cfg.client, spool, std::move(plan.value->frames), std::chrono::milliseconds(2000), *log);
        if (rep.spooled)
            std::cerr << "jenkins-helper: broker unreachable; " << rep.spooled << " message(s) spooled in "
                      << spool.dir.string() << " for later delivery\n";
        log->debug("published {}, spooled {}, delivered {} from the spool", rep.published, rep.spooled,
                   rep.drained.delivered);
    } catch (const std::exception& e) {
        std::cerr << "jenkins-helper: " << e.what() << "\n";
        return failed;
    }
    return 0;
}
