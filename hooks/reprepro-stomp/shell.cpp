// reprepro runs `Log:` notifiers before it exports the new indices, and waits for them. So the
// notifier returns at once: it notes dists/CODENAME/Release as it is, and a detached child (own
// session, stdio on /dev/null, no other descriptor) waits — up to `export-wait` — for reprepro to
// replace it, then publishes (receipt, or the outbox: delivered by the next call or `stompctl
// drain`). For `reprepro rerunnotifiers` (action info) the indices are out already: published at once.
#include "shell.hpp"

#include "reprepro_stomp.hpp"

#include "bus/outbox.hpp"
#include "bus/runtime/config_yaml.hpp"
#include "bus/runtime/hook.hpp"
#include "bus/wire.hpp"

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <thread>

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace reprepro_stomp {
namespace {

struct settings {
    bus::runtime::hook_config hook;  ///< the connection keys (bus_hook's send_hook_frames takes them)
    std::string topic = "future.package.updates";
    std::chrono::milliseconds export_wait{60000};
    std::chrono::milliseconds send_budget{5000};
};

settings load(const std::string& path)
{
    auto f = bus::runtime::config_file::load(path);
    auto r = f.root();
    settings c;
    c.hook.bus = bus::runtime::read_bus_section(r, f.file());
    c.topic = r.str("topic", c.topic);
    if (c.topic.empty() || c.topic.find_first_of("/ \t\r\n") != std::string::npos)
        r.fail("topic", "topic '" + c.topic + "' must be a bare name (future.package.updates), no '/' or spaces");
    c.export_wait = r.duration("export-wait", 60s, 0ms, 1h);
    c.send_budget = r.duration("send-budget", 5s, 100ms, 60s);
    r.ignored({"logfile"}, "reprepro-stomp logs to syslog");
    f.finish();
    return c;
}

std::string env(const char* k)
{
    const char* v = std::getenv(k);
    return v ? v : "";
}

file_state state_of(const fs::path& p)
{
    file_state s;
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return s;
    s.exists = true;
    s.dev = st.st_dev;
    s.ino = st.st_ino;
    s.mtime_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1'000'000'000LL + st.st_mtim.tv_nsec;
    s.size = st.st_size;
    return s;
}

// One line to syslog; also on stderr in the foreground when it is news (a warning, an error, -d).
void say(int prio, const std::string& msg, bool detached, bool debug)
{
    ::syslog(prio, "%s", msg.c_str());
    if (!detached && (prio != LOG_INFO || debug)) std::cerr << "reprepro-stomp: " << msg << "\n";
}

// Sends, and logs one line saying what happened.
void send(const settings& cfg, const fs::path& spool, std::vector<bus::stomp::frame> frames, const std::string& what,
          bool detached, bool debug)
{
    // In the foreground reprepro waits for us: about a second, as the git hook.
    auto budget = detached ? cfg.send_budget : std::min<std::chrono::milliseconds>(cfg.send_budget, 1000ms);
    try {
        auto r = bus::runtime::send_hook_frames(cfg.hook, std::move(frames), spool, debug && !detached, budget);
        if (r.spooled)
            say(LOG_WARNING,
                "broker unreachable; the event for " + what + " spooled in " + r.spool_dir.string() +
                    " (delivered by the next call or 'stompctl drain')",
                detached, debug);
        else
            say(LOG_INFO, "published the event for " + what, detached, debug);
    } catch (const std::exception& e) {
        say(LOG_ERR,
            "ERROR: the event for " + what + " was NOT kept: the broker did not take it and it could not be spooled (" +
                e.what() + "); publish it again with `reprepro rerunnotifiers`",
            detached, debug);
    }
}

// Returns in the parent at once (true); the grandchild (false) runs on, detached from reprepro.
bool detach(bool debug)
{
    pid_t pid = ::fork();
    if (pid < 0) return false;  // cannot detach: publish in the foreground, after the budget
    if (pid > 0) {
        int st = 0;
        while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {
        }
        std::exit(0);
    }
    ::setsid();
    if (::fork() != 0) ::_exit(0);
    int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        ::dup2(null, 0);
        ::dup2(null, 1);
        if (!debug) ::dup2(null, 2);
    }
    ::closelog();
    ::close_range(3, ~0U, 0);
    ::openlog("reprepro-stomp", LOG_PID, LOG_DAEMON);
    return true;
}

} // namespace

std::string default_config()
{
    auto e = env("REPREPRO_STOMP_CONFIG");
    return e.empty() ? "/etc/reprepro-stomp/reprepro-stomp.yaml" : e;
}

int usage(const std::string& why)
{
    std::cerr << "reprepro-stomp: " << why << "\n"
              << "usage: reprepro-stomp [-c FILE] [-d] ACTION CODENAME TYPE COMPONENT ARCH NAME [NEW] [OLD] -- FILEKEYS...\n"
              << "       reprepro-stomp [-c FILE] [-d] --changes ACTION CODENAME SOURCE VERSION CHANGESFILE [FILEKEYS...]\n"
              << "       reprepro-stomp [-c FILE] --check-config\n";
    return 2;
}

namespace {
char** program_argv = nullptr;
} // namespace

void set_argv(char** argv) noexcept { program_argv = argv; }

int run(const options& o)
{
    // Whatever fails here, the repository change itself is done: say why on stderr (reprepro
    // shows it and warns about the exit status), never block.
    settings cfg;
    try {
        cfg = load(o.config);
    } catch (const std::exception& e) {
        std::cerr << "reprepro-stomp: " << e.what() << "\n";
        return o.check_config ? 2 : 1;
    }
    if (o.check_config) {
        std::cout << o.config << ": configuration OK\n";
        return 0;
    }
#ifdef DEPLOYKIT_OPENSSL_BUILD
    // This build links no OpenSSL: a configuration that needs TLS goes to the build that has it.
    bus::runtime::hand_over_to_openssl_build(cfg.hook, program_argv, DEPLOYKIT_OPENSSL_BUILD, *spdlog::default_logger());
#endif
    auto p = parse_arguments(o.args, o.changes);
    if (!p.value) return usage(p.error);
    const auto& n = *p.value;
    auto ev = bus::make_event(to_event(n));
    if (auto why = bus::validate(ev); !why.empty()) {
        std::cerr << "reprepro-stomp: not published: " << why << "\n";
        return 1;
    }
    // auto-reprepro's `package:` form names a .deb; sources and .changes go native only.
    auto format = (n.type == "deb" || n.type == "udeb") ? cfg.hook.bus.format : bus::wire_format::native;
    auto frames = bus::encode(ev, "/topic/" + cfg.topic, format);
    const std::string what = n.action + " " + n.name + " " + (n.new_version.empty() ? n.old_version : n.new_version) +
                             " (" + n.codename + ", event " + ev.id + ")";
    ::openlog("reprepro-stomp", LOG_PID, LOG_DAEMON);

    // Paths from reprepro's environment are relative to its working directory: absolute now.
    std::error_code ec;
    fs::path base = env("REPREPRO_BASE_DIR").empty() ? fs::path() : fs::absolute(env("REPREPRO_BASE_DIR"), ec);
    fs::path spool = base.empty() ? fs::path("/var/spool/reprepro-stomp") : base / "db" / "deploykit-spool";
    std::string dist = env("REPREPRO_DIST_DIR");
    bool wait = cfg.export_wait.count() > 0 && waits_for_export(n, env("REPREPRO_CAUSING_COMMAND"), dist);
    if (!wait) {
        send(cfg, spool, std::move(frames), what, false, o.debug);
        return 0;
    }
    fs::path release = fs::absolute(dist, ec) / n.codename / "Release";
    auto before = state_of(release);
    bool detached = detach(o.debug);
    // The export replaces Release (a rename): wait for a different file, bounded.
    auto deadline = std::chrono::steady_clock::now() + cfg.export_wait;
    bool exported = false;
    while (std::chrono::steady_clock::now() < deadline) {
        auto now = state_of(release);
        if (now.exists && !(now == before)) {
            exported = true;
            break;
        }
        std::this_thread::sleep_for(20ms);
    }
    if (!exported)
        say(LOG_WARNING,
            "no new " + release.string() + " within " + std::to_string(cfg.export_wait.count()) + " ms; publishing " +
                what + " anyway",
            detached, o.debug);
    send(cfg, spool, std::move(frames), what, detached, o.debug);
    return 0;
}

} // namespace reprepro_stomp
