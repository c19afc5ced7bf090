#pragma once

// What every deploykit binary shares before it does its work (no Asio): the common command
// line, logging, the version, daemonizing the classic way, the pidfile, and the exit statuses
// (0 ok, 1 failure, 2 bad configuration or usage).

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace CLI {
class App;
}
namespace spdlog {
class logger;
}

namespace bus::runtime {

/// The project version (CMake's project(VERSION)), the one place it comes from.
std::string_view version() noexcept;

/// This machine's host name ("localhost" when it has none): the one helper for it.
std::string hostname();

enum class log_format { text, json };

/// What a binary is, for its command line and logs.
struct program_info {
    std::string name;            ///< "stomp-jenkins": logger name, syslog ident, JSON `daemon`
    std::string description;     ///< the --help headline
    std::string default_config;  ///< "/etc/stomp-jenkins/stomp-jenkins.yaml"
    bool daemon = true;          ///< long-running: adds --pidfile and --daemonize
    bool short_config = true;    ///< `-c` for --config (jenkins-helper's -c means "cake")
    std::string config_env;      ///< environment variable that may name the config ("" = none)
    /// A commit hook: log lines go to syslog even without --syslog (one line per call, as the
    /// original did) and reach stderr only with -d (a hook's stderr is the pusher's: it gets the
    /// hook's own messages, not log lines).
    bool hook = false;
};

/// The options every binary takes.
struct common_options {
    std::string config_path;         ///< -c/--config FILE
    bool debug = false;              ///< -d/--debug: debug log level (in the foreground, as the original)
    bool check_config = false;       ///< --check-config: validate, print the verdict, exit 0 or 2
    log_format format = log_format::text;  ///< --log-format text|json
    bool syslog = false;             ///< --syslog (also implied by --daemonize)
    std::string pidfile;             ///< --pidfile FILE (daemons)
    bool daemonize = false;          ///< --daemonize: detach (double fork, setsid) once ready
};

/// Parses the command line: the common options plus what `extra` adds. Returns an exit status
/// when the program should exit now: 0 after --help/--version, 2 for a usage error (CLI11's own
/// codes, 106, 109..., are mapped to 2 as the README promises).
std::optional<int> parse_command_line(int argc, char** argv, const program_info& info, common_options& opts,
                                      const std::function<void(CLI::App&)>& extra = {});

/// Parses `app`'s command line; returns the exit status when the program should exit now:
/// 0 after --help/--version, 2 for a usage error (CLI11's own codes mapped, as the README says).
std::optional<int> parse_cli(CLI::App& app, int argc, char** argv);

/// Runs `body` and returns its status; a bus::config_error ends it with 2 and any other
/// exception with 1, each said on stderr as `NAME: what` (for tools without run_main's logger).
int run_guarded(std::string_view name, const std::function<int()>& body);

/// The logger for this process: stderr in text (UTC timestamps) or JSON lines (keys ts, level,
/// daemon, msg, and event_id: see bus/runtime/log.hpp's log_event); when stderr is the journal
/// (JOURNAL_STREAM matches it), `<N>` priority prefixes and no timestamp; with --syslog (or
/// --daemonize), syslog (LOG_DAEMON, ident = name). Level debug with -d, else `level`
/// (spdlog::level::level_enum as int; default info). Registered as the default logger.
/// program_info::hook: syslog always, stderr only with -d.
std::shared_ptr<spdlog::logger> make_logger(const program_info& info, const common_options& opts, int level = 2);

/// Detaches the classic way (fork, setsid, fork; cwd /, umask 022, stdio to /dev/null). The
/// original process waits until the daemon calls report_ready() (exits 0) or report_exit(n)
/// or dies (exits n or 1), so `start-stop-daemon --start --exec` returns once it is running.
/// Call before any thread is started. Returns in the daemon only.
void daemonize();
/// Tells the waiting original process (after daemonize) that start-up is done; writes nothing
/// when not daemonized. Idempotent.
void report_ready();
void report_exit(int status);

/// Writes the pid to `path` (atomically: temp file + rename), and removes it at exit if it still
/// holds our pid. Throws std::runtime_error with the reason.
class pidfile {
public:
    pidfile() = default;
    explicit pidfile(std::string path);
    ~pidfile();
    pidfile(pidfile&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }
    pidfile& operator=(pidfile&&) = delete;

private:
    std::string path_;
};

/// The usual main() of a binary: parses the command line, makes the logger, daemonizes when
/// asked, then runs `body`. Maps exceptions to exit statuses: config_error (any
/// bus::config_error) → 2, others → 1, each logged (to stderr as well when it is a terminal).
/// With --check-config, `body` should return 0 after validating (opts.check_config tells it).
int run_main(int argc, char** argv, const program_info& info, const std::function<void(CLI::App&)>& extra,
             const std::function<int(const common_options&, spdlog::logger&)>& body);

} // namespace bus::runtime
