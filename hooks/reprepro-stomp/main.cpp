// reprepro-stomp: a reprepro notifier. One package event per call, published once reprepro's
// export made the new version visible to apt.
//
//   reprepro-stomp [-c FILE] [--changes] [-d] ACTION CODENAME TYPE COMPONENT ARCH NAME [NEW] [OLD] -- FILEKEYS...
//   reprepro-stomp [-c FILE] --changes ACTION CODENAME SOURCE VERSION CHANGESFILE [FILEKEYS...]
//   reprepro-stomp [-c FILE] --check-config
//
// In conf/distributions:   Log: logfile
//                           --via includedeb /usr/bin/reprepro-stomp
// A `Log:` line takes no options after the script, so the config is -c, else $REPREPRO_STOMP_CONFIG,
// else /etc/reprepro-stomp/reprepro-stomp.yaml.
//
// reprepro runs `Log:` notifiers before it exports the new indices, and waits for them. So the
// notifier returns at once: it notes dists/CODENAME/Release as it is, and a detached child (own
// session, stdio on /dev/null, no other descriptor) waits — up to `export-wait` — for reprepro to
// replace it, then publishes (receipt, or the outbox: delivered by the next call or `stompctl
// drain`). For `reprepro rerunnotifiers` (action info) the indices are out already: published at once.
#include "reprepro_stomp.hpp"

#include "bus/config.hpp"
#include "bus/runtime/config_reader.hpp"
#include "bus/runtime/config_yaml.hpp"
#include "bus/runtime/hook_send.hpp"
#include "bus/wire.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <thread>

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr const char* default_config = "/etc/reprepro-stomp/reprepro-stomp.yaml";

struct hook_config {
    bus::bus_config bus;
    std::string topic = "future.package.updates";
    std::chrono::milliseconds export_wait{60000};
    std::chrono::milliseconds send_budget{5000};
};

hook_config load(const std::string& path)
{
    auto f = bus::runtime::config_file::load(path);
    auto r = f.root();
    hook_config c;
    r.known(bus::runtime::bus_config_keys());
    c.bus = bus::read_bus_config(r.node(), f.file());
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

reprepro_stomp::file_state state_of(const fs::path& p)
{
    reprepro_stomp::file_state s;
    struct stat st {};
    if (::stat(p.c_str(), &st) != 0) return s;
    s.exists = true;
    s.dev = st.st_dev;
    s.ino = st.st_ino;
    s.mtime_ns = static_cast<long long>(st.st_mtim.tv_sec) * 1'000'000'000LL + st.st_mtim.tv_nsec;
    s.size = st.st_size;
    return s;
}

// Sends, and says what happened: on stderr in the foreground, to syslog when detached.
void send(const hook_config& cfg, const fs::path& spool, std::vector<bus::stomp::frame> frames, const std::string& what,
          bool detached, bool debug)
{
    // In the foreground reprepro waits for us: about a second, as the git hook.
    auto budget = detached ? cfg.send_budget : std::min<std::chrono::milliseconds>(cfg.send_budget, 1000ms);
    auto r = bus::runtime::hook_send(cfg.bus, spool, std::move(frames), budget, debug && !detached);
    std::string msg;
    int prio = LOG_INFO;
    if (!r.kept()) {
        prio = LOG_ERR;
        msg = "ERROR: the event for " + what + " was NOT kept: the broker did not take it and it could not be spooled (" +
              r.error + "); publish it again with `reprepro rerunnotifiers`";
    } else if (r.spooled) {
        prio = LOG_WARNING;
        msg = "broker unreachable; the event for " + what + " spooled in " + r.spool_dir.string() +
              " (delivered by the next call or 'stompctl drain')";
    } else if (debug) {
        msg = "published the event for " + what;
    }
    if (msg.empty()) return;
    if (detached) ::syslog(prio, "%s", msg.c_str());
    else std::cerr << "reprepro-stomp: " << msg << "\n";
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
    ::close_range(3, ~0U, 0);
    ::openlog("reprepro-stomp", LOG_PID, LOG_DAEMON);
    return true;
}

int usage(const std::string& why)
{
    std::cerr << "reprepro-stomp: " << why << "\n"
              << "usage: reprepro-stomp [-c FILE] [-d] ACTION CODENAME TYPE COMPONENT ARCH NAME [NEW] [OLD] -- FILEKEYS...\n"
              << "       reprepro-stomp [-c FILE] [-d] --changes ACTION CODENAME SOURCE VERSION CHANGESFILE [FILEKEYS...]\n"
              << "       reprepro-stomp [-c FILE] --check-config\n";
    return 2;
}

} // namespace

int main(int argc, char** argv)
{
    std::string config = env("REPREPRO_STOMP_CONFIG");
    if (config.empty()) config = default_config;
    bool changes = false, debug = false, check = false;
    std::vector<std::string> args;
    int i = 1;
    for (; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "-c" || a == "--config") {
            if (++i >= argc) return usage(a + " needs a file");
            config = argv[i];
        } else if (a.starts_with("--config=")) {
            config = a.substr(9);
        } else if (a == "--changes") {
            changes = true;
        } else if (a == "-d" || a == "--debug") {
            debug = true;
        } else if (a == "--check-config") {
            check = true;
        } else if (a == "-h" || a == "--help") {
            usage("a reprepro notifier (conf/distributions Log: lines)");
            return 0;
        } else if (a.starts_with("-") && a != "--") {
            return usage("unknown option " + a);
        } else {
            break;
        }
    }
    for (; i < argc; ++i) args.emplace_back(argv[i]);

    // Whatever fails here, the repository change itself is done: say why on stderr (reprepro
    // shows it and warns about the exit status), never block.
    hook_config cfg;
    try {
        cfg = load(config);
    } catch (const std::exception& e) {
        std::cerr << "reprepro-stomp: " << e.what() << "\n";
        return check ? 2 : 1;
    }
    if (check) {
        std::cout << config << ": configuration OK\n";
        return 0;
    }
    auto p = reprepro_stomp::parse_arguments(args, changes);
    if (!p.value) return usage(p.error);
    const auto& n = *p.value;
    auto ev = bus::make_event(reprepro_stomp::to_event(n));
    if (auto why = bus::validate(ev); !why.empty()) {
        std::cerr << "reprepro-stomp: not published: " << why << "\n";
        return 1;
    }
    // auto-reprepro's `package:` form names a .deb; sources and .changes go native only.
    auto format = (n.type == "deb" || n.type == "udeb") ? cfg.bus.format : bus::wire_format::native;
    auto frames = bus::encode(ev, "/topic/" + cfg.topic, format);
    const std::string what = n.action + " " + n.name + " " + (n.new_version.empty() ? n.old_version : n.new_version) +
                             " (" + n.codename + ", event " + ev.id + ")";

    // Paths from reprepro's environment are relative to its working directory: absolute now.
    std::error_code ec;
    fs::path base = env("REPREPRO_BASE_DIR").empty() ? fs::path() : fs::absolute(env("REPREPRO_BASE_DIR"), ec);
    fs::path spool = base.empty() ? fs::path("/var/spool/reprepro-stomp") : base / "db" / "deploykit-spool";
    std::string dist = env("REPREPRO_DIST_DIR");
    bool wait = cfg.export_wait.count() > 0 && reprepro_stomp::waits_for_export(n, env("REPREPRO_CAUSING_COMMAND"), dist);
    if (!wait) {
        send(cfg, spool, std::move(frames), what, false, debug);
        return 0;
    }
    fs::path release = fs::absolute(dist, ec) / n.codename / "Release";
    auto before = state_of(release);
    bool detached = detach(debug);
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
    if (!exported) {
        std::string msg = "no new " + release.string() + " within " + std::to_string(cfg.export_wait.count()) +
                          " ms; publishing " + what + " anyway";
        if (detached) ::syslog(LOG_WARNING, "%s", msg.c_str());
        else std::cerr << "reprepro-stomp: " << msg << "\n";
    }
    send(cfg, spool, std::move(frames), what, detached, debug);
    return 0;
}
