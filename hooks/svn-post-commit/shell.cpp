#include "shell.hpp"

#include "svn_hook.hpp"

#include "bus/outbox.hpp"
#include "bus/runtime/hook.hpp"
#include "bus/runtime/log.hpp"
#include "bus/runtime/spawn.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace fs = std::filesystem;

namespace svn_hook {

namespace {

constexpr const char* chained_name = "post-commit.chained";
// svn runs hooks with an empty environment; svnlook is looked for here, never on an inherited PATH.
constexpr const char* fixed_path = "/usr/local/bin:/usr/bin:/bin";

// `svnlook`: an executable absolute path; unset, svnlook is looked for in the fixed PATH.
fs::path find_svnlook(const bus::runtime::section& r)
{
    if (auto s = r.str("svnlook")) {
        fs::path p = *s;
        if (!p.is_absolute() || ::access(p.c_str(), X_OK) != 0) r.fail("svnlook", "not an executable absolute path");
        return p;
    }
    std::string_view dirs = fixed_path;
    while (!dirs.empty()) {
        auto colon = dirs.find(':');
        fs::path p = fs::path(dirs.substr(0, colon)) / "svnlook";
        if (::access(p.c_str(), X_OK) == 0) return p;
        dirs = colon == std::string_view::npos ? std::string_view{} : dirs.substr(colon + 1);
    }
    throw bus::runtime::config_error(std::string("svnlook not found in ") + fixed_path + " (set `svnlook` in " +
                                     r.where("svnlook") + ")");
}

std::string svnlook(const fs::path& bin, std::chrono::seconds timeout, const char* what, const std::string& rev,
                    const std::string& repos, std::size_t max_out)
{
    std::vector<std::string> argv{bin.string(), what, "-r", rev, repos};
    // UTF-8 output: in the C locale svnlook escapes every non-ASCII character.
    std::vector<std::string> env{std::string("PATH=") + fixed_path, "LC_ALL=C.UTF-8"};
    bus::runtime::spawn_options so;
    so.argv = argv;
    so.env = env;
    so.timeout = timeout;
    so.kill_on_overflow = true;
    so.max_out = max_out;
    so.max_err = 4096;
    auto r = bus::runtime::spawn(so);
    std::string cmd = "svnlook " + std::string(what) + " -r " + rev;
    if (!r.started) throw std::runtime_error(r.error);
    if (r.timed_out)
        throw std::runtime_error(cmd + ": no answer within " + std::to_string(timeout.count()) + " s (killed)");
    if (r.out_truncated) return r.out;  // the parsers take what was read; the limits are theirs
    if (r.exit_code != 0) {
        auto err = r.err.substr(0, r.err.find('\n'));
        throw std::runtime_error(cmd + " failed (exit " + std::to_string(r.exit_code) + "): " + err);
    }
    return r.out;
}

std::string read_file(const fs::path& p)
{
    std::ifstream in(p, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

bool is_svn_repository(const fs::path& p)
{
    return fs::is_directory(p) && fs::is_regular_file(p / "format") && fs::is_directory(p / "db");
}

// Writes REPOS/hooks/post-commit (atomically, mode 0755), keeping a hook that was there and is not
// ours as post-commit.chained, which we run afterwards. With check_only, changes nothing and says
// whether the hook is the one this install would write (same binary, same -c).
bool install_one(const fs::path& repos, const fs::path& self, const fs::path& config, bool check_only)
{
    if (!is_svn_repository(repos)) throw std::runtime_error(repos.string() + ": not a Subversion repository");
    fs::path hooks = repos / "hooks";
    fs::path hook = hooks / "post-commit";
    std::string script = hook_script(self.string(), config.string());
    bool present = fs::exists(hook) || fs::is_symlink(hook);
    std::string old = present && fs::is_regular_file(hook) ? read_file(hook) : std::string();
    if (present && old == script) {
        std::cout << hook.string() << ": already installed\n";
        return true;
    }
    if (check_only) {
        std::cout << hook.string() << ": not installed\n";
        return false;
    }
    fs::create_directories(hooks);
    if (present) {
        if (!is_hook_script(old)) {
            if (fs::exists(hooks / chained_name) || fs::is_symlink(hooks / chained_name))
                throw std::runtime_error(hook.string() + ": exists and so does " + chained_name +
                                         "; merge them by hand");
            fs::rename(hook, hooks / chained_name);
            std::cout << hook.string() << ": previous hook kept as " << chained_name << " (runs after ours)\n";
        }
    }
    fs::path tmp = hooks / ".post-commit.svn-stomp.tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        out << script;
        out.flush();
        if (!out) throw std::runtime_error(tmp.string() + ": cannot write");
    }
    fs::permissions(tmp, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                             fs::perms::others_read | fs::perms::others_exec);
    fs::rename(tmp, hook);
    std::cout << hook.string() << ": exec " << self.string() << " -c " << config.string() << "\n";
    return true;
}

// Publishes revision `rev` of `repos`; returns the line to log. Throws on anything that keeps
// the event from being sent or spooled.
std::string publish(const settings& cfg, const std::string& repos, const std::string& rev, bool debug,
                    std::string& event_id)
{
    constexpr std::size_t max_info = max_log + 3 * max_line + 64;
    auto look = [&](const char* what, std::size_t max) {
        return svnlook(cfg.svnlook, cfg.svnlook_timeout, what, rev, repos, max);
    };
    auto info = parse_info(look("info", max_info));
    if (!info) throw std::runtime_error("svnlook info -r " + rev + ": unexpected output");
    auto dirs = parse_dirs(look("dirs-changed", 1024 * 1024));
    if (dirs.dropped) std::cerr << "svn-stomp: r" << rev << ": " << dirs.dropped << " changed directories left out\n";

    auto commit = make_commit(repo_name(repos), rev, *info, std::move(dirs.dirs));
    auto ev = bus::make_event(commit);
    if (auto why = bus::validate(ev); !why.empty()) throw std::runtime_error("event refused: " + why);
    event_id = ev.id;
    std::vector<bus::stomp::frame> frames;
    bus::runtime::add_commit_frames(cfg.hook, ev, report_line(commit), frames);
    bus::runtime::hook_sent sent;
    try {
        sent = bus::runtime::send_hook_frames(cfg.hook, std::move(frames), fs::path(repos) / "deploykit-spool", debug);
    } catch (const bus::outbox_error& e) {
        throw std::runtime_error("ERROR: the event for r" + rev + " was NOT kept: the broker did not take it and it "
                                 "could not be spooled (" + e.what() + "); consumers will not hear of this commit");
    }
    if (sent.spooled)
        std::cerr << "svn-stomp: broker unreachable; r" << rev << " spooled in " << sent.spool_dir.string()
                  << " (delivered by the next commit or 'stompctl drain')\n";
    return log_line(commit, sent.spooled ? "spooled in " + sent.spool_dir.string() : "published");
}

} // namespace

settings load_settings(const fs::path& config, bus::runtime::notice_fn notice)
{
    settings s;
    s.hook = bus::runtime::load_hook_config(config, "future.events.svnserver", std::move(notice),
                                            [&](const bus::runtime::section& r) {
        s.svnlook = find_svnlook(r);
        s.svnlook_timeout = std::chrono::seconds(r.integer("svnlook-timeout", 10, 1, 600));
    });
    return s;
}

int install(const std::vector<std::string>& paths, const std::string& config, bool check_only)
{
    fs::path self = fs::canonical("/proc/self/exe");
    fs::path cfg = fs::absolute(config);
    if (!check_only && !fs::exists(cfg)) std::cerr << "svn-stomp: note: " << cfg.string() << " does not exist yet\n";
    int rc = 0;
    for (auto& p : paths) {
        try {
            if (!install_one(fs::absolute(p), self, cfg, check_only)) rc = 1;
        } catch (const std::exception& e) {
            std::cerr << "svn-stomp: " << e.what() << "\n";
            rc = 1;
        }
    }
    return rc;
}


namespace {
char** program_argv = nullptr;
} // namespace

void set_argv(char** argv) noexcept { program_argv = argv; }

int run(const fs::path& config, const std::vector<std::string>& args, bool debug, spdlog::logger& log)
{
    // Bad arguments: say why, publish nothing, run nothing.
    if (args.size() < 2 || args.size() > 3) {
        std::cerr << "svn-stomp: usage: svn-stomp [-c FILE] REPOS REV (or --install REPOS...)\n";
        return 2;
    }
    const std::string& rev = args[1];
    if (auto why = check_args(args[0], rev); !why.empty()) {
        std::cerr << "svn-stomp: " << why << "\n";
        return 2;
    }
    std::string repos = fs::path(args[0]).lexically_normal().string();
    while (repos.size() > 1 && repos.back() == '/') repos.pop_back();
    if (!is_svn_repository(repos)) {
        std::cerr << "svn-stomp: " << repos << ": not a Subversion repository\n";
        return 2;
    }
    int rc = 0;
    std::string event_id;
    try {
        auto cfg = load_settings(config, [&](std::string_view n) { log.info("{}", n); });
#ifdef DEPLOYKIT_OPENSSL_BUILD
        // This build links no OpenSSL: a configuration that needs TLS goes to the build that has it.
        bus::runtime::hand_over_to_openssl_build(cfg.hook, program_argv, DEPLOYKIT_OPENSSL_BUILD, log);
#endif
        auto line = publish(cfg, repos, rev, debug, event_id);
        bus::runtime::log_event(log, spdlog::level::info, event_id, "{}", line);
    } catch (const std::exception& e) {
        bus::runtime::log_event(log, spdlog::level::err, event_id, "[{}] r{} nothing published: {}",
                                repo_name(repos), rev, e.what());
        std::cerr << "svn-stomp: " << repos << " r" << rev << ": " << e.what() << "\n";
        rc = 1;
    }
    fs::path chained = fs::path(repos) / "hooks" / chained_name;
    if (fs::exists(chained)) {
        // svn puts no limit on a hook's run time; this one ends it after a day.
        std::vector<std::string> argv{chained.string()};
        argv.insert(argv.end(), args.begin(), args.end());
        int crc = bus::runtime::run_chained_hook(std::move(argv), {}, std::chrono::hours(24), "svn-stomp");
        if (crc != 0) rc = crc;
    }
    return rc;
}

} // namespace svn_hook
