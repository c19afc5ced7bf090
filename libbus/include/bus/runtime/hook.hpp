#pragma once

// What the hooks (stomp-post-receive, svn-stomp, reprepro-stomp, and any hook to come) share
// around their pure logic: the config file, the frames of a commit, and spool-then-send with a
// one-second default budget (a push or commit never waits longer for a broker). The chained hook is spawn.hpp's
// run_chained_hook().

#include "bus/config.hpp"
#include "bus/delivery.hpp"
#include "bus/event.hpp"
#include "bus/runtime/config_reader.hpp"
#include "bus/runtime/program.hpp"

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace spdlog {
class logger;
}

namespace bus::runtime {

/// A hook's settings: the original's four keys (rserver, stomp-options, trigger-topic,
/// report-topic) and libbus's connection keys (bus::read_bus_config).
struct hook_config {
    bus::bus_config bus;
    std::string trigger_topic = "future.git.commits";
    std::string report_topic;
};

/// The main() of a hook: run_main with `info.hook` set (syslog always, stderr with -d);
/// --check-config calls `check(config, notice)` (which throws config_error: exit 2), everything
/// else `body`. `options` adds the hook's own flags.
int run_hook_main(int argc, char** argv, program_info info, const std::function<void(CLI::App&)>& options,
                  const std::function<void(const std::string& config, notice_fn notice)>& check,
                  const std::function<int(const common_options&, spdlog::logger&)>& body);

/// libbus's connection keys of a config (bus::read_bus_config) with the runtime's secret-file
/// policy for `passcode-file` and `signing-key-file`; marks those keys known. For hooks and tools
/// (stompctl drain -c) that read a config's broker settings.
bus::bus_config read_bus_section(const section& root, const std::string& file);

/// Loads a hook's config with the runtime's reader (file, line, key and expected type in every
/// error; unknown keys an error with did-you-mean). `extra` reads the hook's own keys (svnlook
/// ...) before the unknown-key check. Topics must be bare names (no '/', no spaces).
hook_config load_hook_config(const std::filesystem::path& path, std::string default_report, notice_fn notice = {},
                             const std::function<void(const section&)>& extra = {});

/// Appends one commit's frames to `out`: the event on /topic/<trigger-topic> in the config's
/// wire format, then the original's one-liner on /topic/<report-topic> (legacy, as eventbot reads it).
void add_commit_frames(const hook_config& cfg, const bus::event& ev, const std::string& one_liner,
                       std::vector<stomp::frame>& out);

/// What happened to a hook's frames.
struct hook_sent {
    std::size_t published = 0;     ///< receipted by the broker
    std::size_t spooled = 0;       ///< written to the outbox, for the next run or `stompctl drain`
    std::filesystem::path spool_dir;
};

/// For a hook linked without OpenSSL (DEPLOYKIT_NO_OPENSSL, libbus/CMakeLists.txt): when `cfg`
/// names a stomp+ssl:// broker, this process becomes `openssl_build` (execv,
/// same argv and environment; the caller has not read stdin yet, and every descriptor of ours is
/// close-on-exec), looked up next to the running binary (the build tree), then in
/// ../libexec/deploykit (installed). Returns when nothing is to be handed over (or in a build with
/// OpenSSL); logs and returns when the hand-over failed, and the send then spools. Signing alone
/// stays in this process: HMAC is Nettle's (bus/crypto.hpp), not OpenSSL's.
void hand_over_to_openssl_build(const hook_config& cfg, char** argv, const char* openssl_build, spdlog::logger& log);

/// Signs `frames` when the config has a signing key, then sends them through the outbox
/// (`spool-dir`, else `default_spool`) within `budget` (one second: a push or commit never waits
/// longer; reprepro-stomp's detached child gives its configured `send-budget`): what the broker
/// has not receipted by then is spooled. Throws bus::outbox_error when the spool cannot take them
/// either. `debug`: the client's connection log on stderr (else silent: the hook logs one line
/// per call).
hook_sent send_hook_frames(const hook_config& cfg, std::vector<stomp::frame> frames,
                           const std::filesystem::path& default_spool, bool debug,
                           std::chrono::milliseconds budget = std::chrono::milliseconds(1000));

} // namespace bus::runtime
