#include "bus/runtime/program.hpp"
#include "bus/runtime/log.hpp"

#include "bus/url.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/syslog_sink.h>
#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#ifndef DEPLOYKIT_VERSION
#define DEPLOYKIT_VERSION "0.0.0"
#endif

namespace bus::runtime {

std::string_view version() noexcept { return DEPLOYKIT_VERSION; }

std::string hostname()
{
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "localhost";
    return buf;
}

namespace {

int level_priority(spdlog::level::level_enum l)
{
    switch (l) {
    case spdlog::level::trace:
    case spdlog::level::debug: return LOG_DEBUG;
    case spdlog::level::info: return LOG_INFO;
    case spdlog::level::warn: return LOG_WARNING;
    case spdlog::level::err: return LOG_ERR;
    case spdlog::level::critical: return LOG_CRIT;
    default: return LOG_INFO;
    }
}

// 2026-12-04T10:30:00.123Z
std::string utc_stamp(spdlog::log_clock::time_point t)
{
    auto secs = std::chrono::time_point_cast<std::chrono::seconds>(t);
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t - secs).count();
    std::time_t tt = spdlog::log_clock::to_time_t(secs);
    std::tm tm{};
    ::gmtime_r(&tt, &tm);
    char buf[96];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
    return buf;
}

// The id after "event " in a message ("event 3f2a…: ..."), if any.
std::string event_id_in(std::string_view s)
{
    for (auto at = s.find("event "); at != std::string_view::npos; at = s.find("event ", at + 1)) {
        auto from = at + 6;
        auto end = from;
        while (end < s.size() && (std::isalnum(static_cast<unsigned char>(s[end])) || s[end] == '-' || s[end] == '_'))
            ++end;
        auto id = s.substr(from, end - from);
        // Ids are hex, uuids or GitHub delivery ids: words like "event published" are not.
        if (id.size() >= 8 && id.find_first_of("0123456789") != std::string_view::npos) return std::string(id);
    }
    return {};
}

bool stderr_is_journal()
{
    const char* js = std::getenv("JOURNAL_STREAM");
    if (!js || !*js) return false;
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(js, "%llu:%llu", &dev, &ino) != 2) return false;
    struct stat st {};
    if (::fstat(2, &st) != 0) return false;
    return st.st_dev == dev && st.st_ino == ino;
}

// The id of the log call in progress on this thread (log_event sets it for one call; spdlog's
// loggers here are synchronous, so the sinks run inside that call).
thread_local std::string current_id;

// An id from a message or a peer: bounded, no control characters (it must not forge lines).
std::string clean_id(std::string_view id)
{
    std::string out(id.substr(0, 128));
    for (auto& c : out)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    return out;
}

class line_sink final : public spdlog::sinks::base_sink<std::mutex> {
public:
    line_sink(std::string daemon, log_format f, bool journal) : daemon_(std::move(daemon)), format_(f), journal_(journal) {}

protected:
    void sink_it_(const spdlog::details::log_msg& m) override
    {
        std::string_view text(m.payload.data(), m.payload.size());
        std::string line = format_log_line(daemon_, format_ == log_format::json, journal_, m.level, m.time, text,
                                           detail::current_event_id());
        line += '\n';
        for (std::size_t off = 0; off < line.size();) {
            auto n = ::write(2, line.data() + off, line.size() - off);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            off += static_cast<std::size_t>(n);
        }
    }
    void flush_() override {}

private:
    std::string daemon_;
    log_format format_;
    bool journal_;
};

int ready_fd = -1;  // the pipe to the waiting original process (daemonize)

void write_all(int fd, const std::string& s)
{
    for (std::size_t off = 0; off < s.size();) {
        auto n = ::write(fd, s.data() + off, s.size() - off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        off += static_cast<std::size_t>(n);
    }
}

void report(int status, const std::string& why)
{
    if (ready_fd < 0) return;
    std::string msg(1, static_cast<char>(status));
    msg += why;
    write_all(ready_fd, msg);
    ::close(ready_fd);
    ready_fd = -1;
}

} // namespace

namespace detail {

std::string_view current_event_id() noexcept { return current_id; }

void log_with_event(spdlog::logger& log, spdlog::level::level_enum level, std::string_view event_id, std::string msg)
{
    std::string id = clean_id(event_id);
    if (!id.empty() && msg.find(id) == std::string::npos) msg += " (event " + id + ")";
    std::swap(current_id, id);
    try {
        log.log(level, "{}", msg);
    } catch (...) {
        std::swap(current_id, id);
        throw;
    }
    std::swap(current_id, id);
}

} // namespace detail

std::string format_log_line(std::string_view daemon, bool json, bool journal, spdlog::level::level_enum level,
                            spdlog::log_clock::time_point time, std::string_view msg, std::string_view event_id)
{
    std::string line;
    if (journal) line = "<" + std::to_string(level_priority(level)) + ">";
    auto lv = spdlog::level::to_string_view(level);
    if (json) {
        // Stable keys, in this order; `ts` only when journald does not stamp the line itself.
        nlohmann::ordered_json j;
        if (!journal) j["ts"] = utc_stamp(time);
        j["level"] = std::string(lv.data(), lv.size());
        j["daemon"] = std::string(daemon);
        j["msg"] = std::string(msg);
        std::string id = event_id.empty() ? event_id_in(msg) : clean_id(event_id);
        if (!id.empty()) j["event_id"] = id;
        line += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } else {
        if (!journal) {
            line += utc_stamp(time);
            line += ' ';
            line.append(lv.data(), lv.size());
            line += ' ';
        }
        line.append(msg);
        if (!event_id.empty()) {
            if (std::string id = clean_id(event_id); msg.find(id) == std::string_view::npos) line += " (event " + id + ")";
        }
    }
    return line;
}

std::optional<int> parse_cli(CLI::App& app, int argc, char** argv)
{
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int rc = app.exit(e);
        return rc == 0 ? 0 : 2;
    }
    return std::nullopt;
}

int run_guarded(std::string_view name, const std::function<int()>& body)
{
    try {
        return body();
    } catch (const bus::config_error& e) {
        std::cerr << name << ": " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << name << ": " << e.what() << "\n";
        return 1;
    }
}

std::optional<int> parse_command_line(int argc, char** argv, const program_info& info, common_options& opts,
                                      const std::function<void(CLI::App&)>& extra)
{
    CLI::App app{info.description, info.name};
    opts.config_path = info.default_config;
    if (!info.config_env.empty())
        if (const char* v = std::getenv(info.config_env.c_str()); v && *v) opts.config_path = v;
    app.set_version_flag("--version", info.name + " " + std::string(version()));
    auto* c = app.add_option(info.short_config ? "-c,--config" : "--config", opts.config_path, "configuration file");
    if (!info.config_env.empty()) c->envname(info.config_env);
    app.add_flag("-d,--debug", opts.debug, "debug logging");
    app.add_flag("--check-config", opts.check_config, "validate the configuration and exit (0 valid, 2 not)");
    std::string fmt = "text";
    app.add_option("--log-format", fmt, "log lines as text or json")->check(CLI::IsMember({"text", "json"}));
    app.add_flag("--syslog", opts.syslog, "log to syslog (facility daemon)");
    if (info.daemon) {
        app.add_option("--pidfile", opts.pidfile, "write the pid to FILE once started");
        app.add_flag("--daemonize", opts.daemonize,
                     "detach once started (for init scripts using start-stop-daemon without -b); logs go to syslog");
    }
    if (extra) extra(app);
    if (auto rc = parse_cli(app, argc, argv)) return rc;
    opts.format = fmt == "json" ? log_format::json : log_format::text;
    if (opts.daemonize) opts.syslog = true;
    return std::nullopt;
}

std::shared_ptr<spdlog::logger> make_logger(const program_info& info, const common_options& opts, int level)
{
    std::vector<spdlog::sink_ptr> sinks;
    bool to_stderr = !opts.daemonize && (!info.hook || opts.debug || opts.check_config);
    bool to_syslog = opts.syslog || info.hook;
    if (to_stderr) sinks.push_back(std::make_shared<line_sink>(info.name, opts.format, stderr_is_journal()));
    if (to_syslog) sinks.push_back(std::make_shared<spdlog::sinks::syslog_sink_mt>(info.name, LOG_PID, LOG_DAEMON, true));
    auto log = std::make_shared<spdlog::logger>(info.name, sinks.begin(), sinks.end());
    log->set_level(opts.debug ? spdlog::level::debug : static_cast<spdlog::level::level_enum>(level));
    if (to_syslog) log->set_pattern("%v");
    spdlog::set_default_logger(log);
    return log;
}

void daemonize()
{
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw std::runtime_error(std::string("daemonize: pipe: ") + std::strerror(errno));
    std::fflush(nullptr);
    pid_t child = ::fork();
    if (child < 0) throw std::runtime_error(std::string("daemonize: fork: ") + std::strerror(errno));
    if (child > 0) {
        // The original process: wait for the daemon's verdict, then exit with it.
        ::close(p[1]);
        std::string got;
        char buf[512];
        for (;;) {
            auto n = ::read(p[0], buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) break;
            got.append(buf, static_cast<std::size_t>(n));
        }
        int st = 0;
        while (::waitpid(child, &st, 0) < 0 && errno == EINTR) {}
        if (got.empty()) _exit(1);  // died before it said anything
        if (got.size() > 1) std::fprintf(stderr, "%s\n", got.c_str() + 1);
        _exit(static_cast<unsigned char>(got[0]));
    }
    ::close(p[0]);
    if (::setsid() < 0) _exit(1);
    pid_t grandchild = ::fork();
    if (grandchild < 0) _exit(1);
    if (grandchild > 0) _exit(0);  // the session leader goes: the daemon can never get a terminal
    ready_fd = p[1];
    if (::chdir("/") != 0) {}
    ::umask(022);
    int null = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    if (null >= 0) {
        ::dup2(null, 0);
        ::dup2(null, 1);
        ::dup2(null, 2);
        if (null > 2) ::close(null);
    }
}

void report_ready() { report(0, {}); }
void report_exit(int status) { report(status, {}); }

pidfile::pidfile(std::string path) : path_(std::move(path))
{
    if (path_.empty()) return;
    std::string tmp = path_ + ".tmp" + std::to_string(::getpid());
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) throw std::runtime_error("pidfile " + path_ + ": " + std::strerror(errno));
    write_all(fd, std::to_string(::getpid()) + "\n");
    ::close(fd);
    if (::rename(tmp.c_str(), path_.c_str()) != 0) {
        int e = errno;
        ::unlink(tmp.c_str());
        throw std::runtime_error("pidfile " + path_ + ": " + std::strerror(e));
    }
}

pidfile::~pidfile()
{
    if (path_.empty()) return;
    char buf[32] = {};
    int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    auto n = ::read(fd, buf, sizeof buf - 1);
    ::close(fd);
    if (n > 0 && std::strtol(buf, nullptr, 10) == ::getpid()) ::unlink(path_.c_str());
}

int run_main(int argc, char** argv, const program_info& info, const std::function<void(CLI::App&)>& extra,
             const std::function<int(const common_options&, spdlog::logger&)>& body)
{
    common_options opts;
    if (auto rc = parse_command_line(argc, argv, info, opts, extra)) return *rc;
    if (opts.check_config) opts.daemonize = false;
    std::shared_ptr<spdlog::logger> log;
    try {
        if (opts.daemonize) {
            // The daemon runs in /: relative paths given on the command line mean the caller's.
            std::error_code ec;
            if (!opts.config_path.empty()) opts.config_path = std::filesystem::absolute(opts.config_path, ec).string();
            if (!opts.pidfile.empty()) opts.pidfile = std::filesystem::absolute(opts.pidfile, ec).string();
            daemonize();
        }
        log = make_logger(info, opts);
        int rc = body(opts, *log);
        if (rc == 0 && opts.check_config) std::cout << opts.config_path << ": configuration OK\n";
        report(rc, rc == 0 ? std::string() : info.name + ": exited with status " + std::to_string(rc));
        return rc;
    } catch (const bus::config_error& e) {
        if (log && !opts.check_config) log->error("{}: {}", info.name, e.what());
        else std::cerr << info.name << ": " << e.what() << "\n";
        report(2, info.name + ": " + e.what());
        return 2;
    } catch (const std::exception& e) {
        if (log) log->error("{}: {}", info.name, e.what());
        else std::cerr << info.name << ": " << e.what() << "\n";
        report(1, info.name + ": " + e.what());
        return 1;
    }
}

} // namespace bus::runtime
