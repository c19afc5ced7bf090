#include "bus/runtime/hook.hpp"

#include "bus/outbox.hpp"
#include "bus/runtime/config_yaml.hpp"
#include "bus/detail/openssl.hpp"
#include "bus/signing.hpp"
#include "bus/wire.hpp"

#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

namespace bus::runtime {

int run_hook_main(int argc, char** argv, program_info info, const std::function<void(CLI::App&)>& options,
                  const std::function<void(const std::string& config, notice_fn notice)>& check,
                  const std::function<int(const common_options&, spdlog::logger&)>& body)
{
    info.hook = true;
    info.daemon = false;
    return run_main(argc, argv, info, options, [&](const common_options& o, spdlog::logger& log) {
        if (!o.check_config) return body(o, log);
        check(o.config_path, [&](std::string_view n) { log.info("{}", n); });
        return 0;
    });
}

bus::bus_config read_bus_section(const section& r, const std::string& file)
{
    r.known(bus_config_keys());
    // The runtime's secret policy (regular file, 0600, ours or root's; errno in the message)
    // before libbus reads them.
    for (auto key : {"passcode-file", "signing-key-file"})
        if (auto p = r.str(key); p && !p->empty()) read_secret_file(*p, r.where(key));
    return bus::read_bus_config(r.node(), file);
}

hook_config load_hook_config(const std::filesystem::path& path, std::string default_report, notice_fn notice,
                             const std::function<void(const section&)>& extra)
{
    auto f = config_file::load(path, std::move(notice));
    auto r = f.root();
    hook_config c;
    c.bus = read_bus_section(r, f.file());
    c.trigger_topic = r.str("trigger-topic", c.trigger_topic);
    c.report_topic = r.str("report-topic", std::move(default_report));
    for (auto [key, topic] : {std::pair{"trigger-topic", &c.trigger_topic}, std::pair{"report-topic", &c.report_topic}})
        if (topic->empty() || topic->find_first_of("/ \t\r\n") != std::string::npos)
            r.fail(key, "topic '" + *topic + "' must be a bare name (future.git.commits), no '/' or spaces");
    if (extra) extra(r);
    f.finish();
    return c;
}

void add_commit_frames(const hook_config& cfg, const bus::event& ev, const std::string& one_liner,
                       std::vector<stomp::frame>& out)
{
    for (auto& f : bus::encode(ev, "/topic/" + cfg.trigger_topic, cfg.bus.format)) out.push_back(std::move(f));
    for (auto& f : bus::encode(bus::make_event(bus::notice_event{one_liner}), "/topic/" + cfg.report_topic,
                               bus::wire_format::legacy))
        out.push_back(std::move(f));
}

hook_sent send_hook_frames(const hook_config& cfg, std::vector<stomp::frame> frames,
                           const std::filesystem::path& default_spool, bool debug, std::chrono::milliseconds budget)
{
    hook_sent out;
    auto spool = cfg.bus.spool.value_or(bus::outbox_options{.dir = default_spool});
    out.spool_dir = spool.dir;
    if (frames.empty()) return out;
    if (cfg.bus.signing) {
        auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
        for (auto& f : frames) bus::sign(f, *cfg.bus.signing, now);
    }
    spdlog::logger client_log("bus", debug ? spdlog::sink_ptr(std::make_shared<spdlog::sinks::stderr_sink_mt>())
                                           : spdlog::sink_ptr(std::make_shared<spdlog::sinks::null_sink_mt>()));
    if (debug) client_log.set_level(spdlog::level::debug);
    auto rep = bus::send_once(cfg.bus.client, spool, std::move(frames), budget, client_log);
    out.published = rep.published;
    out.spooled = rep.spooled;
    return out;
}

void hand_over_to_openssl_build(const hook_config& cfg, char** argv, const char* openssl_build, spdlog::logger& log)
{
    if (bus::detail::have_openssl() || argv == nullptr) return;
    const auto& eps = cfg.bus.client.url.endpoints;
    const bool tls = std::any_of(eps.begin(), eps.end(), [](const bus::endpoint& e) { return e.tls; });
    if (!tls) return;  // signing needs no OpenSSL (bus/crypto.hpp, Nettle): the lean build signs
    std::error_code ec;
    const std::filesystem::path self = std::filesystem::canonical("/proc/self/exe", ec);
    if (ec) {
        log.error("cannot find this program ({}), so not {}", ec.message(), openssl_build);
        return;
    }
    for (const auto& full : {self.parent_path() / openssl_build,
                             self.parent_path().parent_path() / "libexec/deploykit" / openssl_build}) {
        if (::access(full.c_str(), X_OK) != 0) continue;
        log.flush();
        ::execv(full.c_str(), argv);
        log.error("cannot run {}: {}", full.string(), std::strerror(errno));
        return;
    }
    log.error("this configuration needs TLS, but {} is not installed", openssl_build);
}

} // namespace bus::runtime
