// svn-stomp: the SVN post-commit hook. Reads the revision with svnlook (argv, clean environment,
// deadline), publishes one commit event to the trigger topic and the original's one-liner to the
// report topic (through the outbox: a commit never waits more than about a second for a broker),
// then runs the repository's previous post-commit hook, if there was one, with the same arguments.
//
//   svn-stomp [-c FILE] REPOS REV [TXN-NAME]     as the hook (svn runs it with an empty environment)
//   svn-stomp [-c FILE] --install REPOS...       write REPOS/hooks/post-commit for these repositories
#include "svn_hook.hpp"
#include "bus/outbox.hpp"
#include "bus/runtime/spawn.hpp"

#include "bus/config.hpp"
#include "bus/delivery.hpp"
#include "bus/wire.hpp"

#include <CLI/CLI.hpp>
#include <signal.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace fs = std::filesystem;

namespace {

constexpr const char* chained_name = "post-commit.chained";
// svn runs hooks with an empty environment; svnlook is looked for here, never on an inherited PATH.
constexpr const char* fixed_path = "/usr/local/bin:/usr/bin:/bin";

fs::path find_svnlook(const YAML::Node& root, const std::string& file)
{
    if (auto n = root["svnlook"]) {
        fs::path p = n.as<std::string>();
        if (!p.is_absolute() || ::access(p.c_str(), X_OK) != 0)
            throw std::runtime_error(bus::config_where(file, n, "svnlook") + ": not an executable absolute path");
        return p;
    }
    std::string_view dirs = fixed_path;
    while (!dirs.empty()) {
        auto colon = dirs.find(':');
        fs::path p = fs::path(dirs.substr(0, colon)) / "svnlook";
        if (::access(p.c_str(), X_OK) == 0) return p;
        dirs = colon == std::string_view::npos ? std::string_view{} : dirs.substr(colon + 1);
    }
    throw std::runtime_error(std::string("svnlook not found in ") + fixed_path + " (set 'svnlook' in " + file + ")");
}

// `svnlook-timeout`: seconds each svnlook run may take (default 10) before it is killed.
std::chrono::seconds svnlook_timeout(const YAML::Node& root, const std::string& file)
{
    auto n = root["svnlook-timeout"];
    if (!n) return std::chrono::seconds(10);
    long v = 0;
    try {
        v = n.as<long>();
    } catch (const YAML::Exception&) {
        v = 0;
    }
    if (v < 1 || v > 600)
        throw std::runtime_error(bus::config_where(file, n, "svnlook-timeout") + ": 1 to 600 seconds");
    return std::chrono::seconds(v);
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

// Runs the previous hook with our arguments and environment (svn's), through spawn(): argv only,
// no descriptor of ours but its stdio. svn puts no limit on a hook's run time; this one ends it
// after a day. Its output is passed on. Returns its exit status.
int run_chained(const fs::path& hook, const std::vector<std::string>& args)
{
    std::vector<std::string> argv{hook.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return bus::runtime::run_chained_hook(std::move(argv), {}, std::chrono::hours(24), "svn-stomp");
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
// ours as post-commit.chained, which we run afterwards.
void install_one(const fs::path& repos, const fs::path& self, const fs::path& config)
{
    if (!is_svn_repository(repos)) throw std::runtime_error(repos.string() + ": not a Subversion repository");
    fs::path hooks = repos / "hooks";
    fs::create_directories(hooks);
    fs::path hook = hooks / "post-commit";
    std::string script = svn_hook::hook_script(self.string(), config.string());
    if (fs::exists(hook) || fs::is_symlink(hook)) {
        std::string old = fs::is_regular_file(hook) ? read_file(hook) : std::string();
        if (old == script) {
            std::cout << hook.string() << ": already installed\n";
            return;
        }
        if (!svn_hook::is_hook_script(old)) {
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
}

int install(const std::vector<std::string>& paths, const std::string& config)
{
    fs::path self = fs::canonical("/proc/self/exe");
    fs::path cfg = fs::absolute(config);
    if (!fs::exists(cfg)) std::cerr << "svn-stomp: note: " << cfg.string() << " does not exist yet\n";
    int rc = 0;
    for (auto& p : paths) {
        try {
            install_one(fs::absolute(p), self, cfg);
        } catch (const std::exception& e) {
            std::cerr << "svn-stomp: " << e.what() << "\n";
            rc = 1;
        }
    }
    return rc;
}

// Publishes revision `rev` of `repos`. Throws on anything that keeps the event from being sent or
// spooled.
void publish(const std::string& config, const std::string& repos, const std::string& rev, bool debug)
{
    auto root = bus::load_yaml(config);
    auto cfg = bus::read_bus_config(root, config);
    auto topic = [&](const char* key, const char* dflt) {
        return root[key] ? root[key].as<std::string>() : std::string(dflt);
    };
    std::string trigger = topic("trigger-topic", "future.git.commits");
    std::string report = topic("report-topic", "future.events.svnserver");
    fs::path bin = find_svnlook(root, config);
    auto timeout = svnlook_timeout(root, config);

    constexpr std::size_t max_info = svn_hook::max_log + 3 * svn_hook::max_line + 64;
    auto info = svn_hook::parse_info(svnlook(bin, timeout, "info", rev, repos, max_info));
    if (!info) throw std::runtime_error("svnlook info -r " + rev + ": unexpected output");
    auto dirs = svn_hook::parse_dirs(svnlook(bin, timeout, "dirs-changed", rev, repos, 1024 * 1024));
    if (dirs.dropped) std::cerr << "svn-stomp: r" << rev << ": " << dirs.dropped << " changed directories left out\n";

    auto commit = svn_hook::make_commit(svn_hook::repo_name(repos), rev, *info, std::move(dirs.dirs));
    auto ev = bus::make_event(commit);
    if (auto why = bus::validate(ev); !why.empty()) throw std::runtime_error("event refused: " + why);
    auto frames = bus::encode(ev, "/topic/" + trigger, cfg.format);
    for (auto& f : bus::encode(bus::make_event(bus::notice_event{svn_hook::report_line(commit)}), "/topic/" + report,
                               bus::wire_format::legacy))
        frames.push_back(std::move(f));
    if (cfg.signing) {
        auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
        for (auto& f : frames) bus::sign(f, *cfg.signing, now);
    }
    auto spool = cfg.spool.value_or(bus::outbox_options{.dir = fs::path(repos) / "deploykit-spool"});
    std::shared_ptr<spdlog::logger> log =
        debug ? spdlog::stderr_color_mt("svn-stomp")
              : std::make_shared<spdlog::logger>("svn-stomp", std::make_shared<spdlog::sinks::null_sink_mt>());
    log->info("{} r{}: project '{}', {} dir(s), event {}", commit.repo, rev, commit.svn_project,
              commit.changed_dirs.size(), ev.id);
    bus::send_report rep;
    try {
        rep = bus::send_once(cfg.client, spool, std::move(frames), std::chrono::milliseconds(1000), *log);
    } catch (const bus::outbox_error& e) {
        throw std::runtime_error("ERROR: the event for r" + rev + " was NOT kept: the broker did not take it and it "
                                 "could not be spooled (" + e.what() + "); consumers will not hear of this commit");
    }
    if (rep.spooled)
        std::cerr << "svn-stomp: broker unreachable; r" << rev << " spooled in " << spool.dir.string()
                  << " (delivered by the next commit or 'stompctl drain')\n";
}

} // namespace

int main(int argc, char** argv)
{
    // svnlook's exit status must be collectable, whatever disposition we inherited.
    ::signal(SIGCHLD, SIG_DFL);
    CLI::App app{"svn-stomp - deploykit's SVN post-commit hook"};
    std::string config = "/etc/svn-stomp/svn-stomp.yaml";
    std::vector<std::string> install_paths, args;
    bool debug = false;
    app.add_option("-c,--config", config, "configuration file");
    app.add_option("--install", install_paths, "write the post-commit hook of these repositories");
    app.add_flag("-d,--debug", debug, "log to stderr");
    app.add_option("args", args, "REPOS REV [TXN-NAME], as svn passes them");
    CLI11_PARSE(app, argc, argv);
    if (!install_paths.empty()) {
        if (!args.empty()) {
            std::cerr << "svn-stomp: --install takes repositories only\n";
            return 2;
        }
        return install(install_paths, config);
    }

    // Bad arguments: say why, publish nothing, run nothing.
    if (args.size() < 2 || args.size() > 3) {
        std::cerr << "svn-stomp: usage: svn-stomp [-c FILE] REPOS REV (or --install REPOS...)\n";
        return 2;
    }
    const std::string& repos_arg = args[0];
    const std::string& rev = args[1];
    if (auto why = svn_hook::check_args(repos_arg, rev); !why.empty()) {
        std::cerr << "svn-stomp: " << why << "\n";
        return 2;
    }
    std::string repos = fs::path(repos_arg).lexically_normal().string();
    while (repos.size() > 1 && repos.back() == '/') repos.pop_back();
    if (!is_svn_repository(repos)) {
        std::cerr << "svn-stomp: " << repos << ": not a Subversion repository\n";
        return 2;
    }

    int rc = 0;
    try {
        publish(config, repos, rev, debug);
    } catch (const std::exception& e) {
        std::cerr << "svn-stomp: " << repos << " r" << rev << ": " << e.what() << "\n";
        rc = 1;
    }
    fs::path chained = fs::path(repos) / "hooks" / chained_name;
    if (fs::exists(chained)) {
        int crc = run_chained(chained, args);
        if (crc != 0) rc = crc;
    }
    return rc;
}
