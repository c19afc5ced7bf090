// The runtime's log lines (bus/runtime/log.hpp, program.cpp): JSON keys, the event id as its own
// key and in text lines, and no duplicate timestamp when stderr is the journal.
#include "bus/runtime/log.hpp"
#include "bus/runtime/program.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <fcntl.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace rt = bus::runtime;

namespace {

std::vector<std::string> keys_of(const nlohmann::ordered_json& j)
{
    std::vector<std::string> k;
    for (auto it = j.begin(); it != j.end(); ++it) k.push_back(it.key());
    return k;
}

// Runs `f` with fd 2 on a pipe (JOURNAL_STREAM naming it when `journal`); returns what was written.
template <class F>
std::string capture_stderr(bool journal, F&& f)
{
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    int saved = ::dup(2);
    ::dup2(p[1], 2);
    ::close(p[1]);
    struct stat st {};
    ::fstat(2, &st);
    std::string js = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
    if (journal) ::setenv("JOURNAL_STREAM", js.c_str(), 1);
    else ::unsetenv("JOURNAL_STREAM");
    f();
    ::dup2(saved, 2);
    ::close(saved);
    ::unsetenv("JOURNAL_STREAM");
    std::string out;
    char buf[4096];
    ::fcntl(p[0], F_SETFL, O_NONBLOCK);
    for (ssize_t n; (n = ::read(p[0], buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    ::close(p[0]);
    return out;
}

std::vector<std::string> lines_of(const std::string& s)
{
    std::vector<std::string> out;
    for (std::size_t at = 0; at < s.size();) {
        auto nl = s.find('\n', at);
        out.push_back(s.substr(at, nl - at));
        at = nl == std::string::npos ? s.size() : nl + 1;
    }
    return out;
}

rt::common_options json_opts()
{
    rt::common_options o;
    o.format = rt::log_format::json;
    return o;
}

} // namespace

TEST_CASE("log lines: json keys are stable and the event id is its own key")
{
    auto t = spdlog::log_clock::now();
    auto j = nlohmann::ordered_json::parse(
        rt::format_log_line("stomp-jenkins", true, false, spdlog::level::info, t, "site -> 1 job(s) (event abc12345)", "abc12345"));
    CHECK(keys_of(j) == std::vector<std::string>{"ts", "level", "daemon", "msg", "event_id"});
    CHECK(j["event_id"] == "abc12345");
    CHECK(j["level"] == "info");
    CHECK(j["daemon"] == "stomp-jenkins");
    // A line about no event has no event_id key (and "event published" is not an id).
    auto plain = nlohmann::ordered_json::parse(
        rt::format_log_line("d", true, false, spdlog::level::warn, t, "the event published nothing", ""));
    CHECK(keys_of(plain) == std::vector<std::string>{"ts", "level", "daemon", "msg"});
}

TEST_CASE("log lines: text lines carry the event id once")
{
    auto t = spdlog::log_clock::now();
    auto line = rt::format_log_line("d", false, false, spdlog::level::info, t, "fetched site", "ev-0001-xyz");
    CHECK(line.ends_with(" info fetched site (event ev-0001-xyz)"));
    CHECK(line.find("Z info") != std::string::npos);  // UTC timestamp first
    // Named by the message already: not repeated.
    auto named = rt::format_log_line("d", false, false, spdlog::level::info, t, "event ev-0001-xyz: fetched", "ev-0001-xyz");
    CHECK(named.ends_with(" info event ev-0001-xyz: fetched"));
    // A hostile id cannot start a new line.
    auto hostile = rt::format_log_line("d", false, false, spdlog::level::info, t, "x", "ab\ncd\r");
    CHECK(hostile.find('\n') == std::string::npos);
    CHECK(hostile.ends_with("(event ab?cd?)"));
}

TEST_CASE("log lines: log_event through the logger in json and text")
{
    rt::program_info info{.name = "logtest", .daemon = false};
    auto out = capture_stderr(false, [&] {
        auto log = rt::make_logger(info, json_opts());
        rt::log_event(*log, spdlog::level::info, "3f2a9c01", "stomp-jenkins: {} -> {} job(s)", "site", 2);
        log->info("no event here");
        spdlog::drop_all();
    });
    auto lines = lines_of(out);
    REQUIRE(lines.size() == 2);
    auto a = nlohmann::ordered_json::parse(lines[0]);
    CHECK(a["event_id"] == "3f2a9c01");
    CHECK(a["msg"] == "stomp-jenkins: site -> 2 job(s) (event 3f2a9c01)");
    CHECK(keys_of(a) == std::vector<std::string>{"ts", "level", "daemon", "msg", "event_id"});
    auto b = nlohmann::ordered_json::parse(lines[1]);
    CHECK(!b.contains("event_id"));

    rt::common_options text;
    auto t = lines_of(capture_stderr(false, [&] {
        auto log = rt::make_logger(info, text);
        rt::log_event(*log, spdlog::level::warn, "3f2a9c01", "retrying {}", "job");
        spdlog::drop_all();
    }));
    REQUIRE(t.size() == 1);
    CHECK(t[0].ends_with(" warning retrying job (event 3f2a9c01)"));
}

TEST_CASE("log lines: no duplicate timestamp when stderr is the journal")
{
    rt::program_info info{.name = "logtest", .daemon = false};
    auto lines = lines_of(capture_stderr(true, [&] {
        auto log = rt::make_logger(info, json_opts());
        rt::log_event(*log, spdlog::level::err, "feedface1", "failed");
        spdlog::drop_all();
    }));
    REQUIRE(lines.size() == 1);
    REQUIRE(lines[0].starts_with("<3>"));  // LOG_ERR priority for journald
    auto j = nlohmann::ordered_json::parse(lines[0].substr(3));
    CHECK(keys_of(j) == std::vector<std::string>{"level", "daemon", "msg", "event_id"});
    CHECK(j["event_id"] == "feedface1");

    auto text = lines_of(capture_stderr(true, [&] {
        auto log = rt::make_logger(info, rt::common_options{});
        log->info("hello");
        spdlog::drop_all();
    }));
    REQUIRE(text.size() == 1);
    CHECK(text[0] == "<6>hello");
}

TEST_CASE("log lines: a hook logs to stderr only with -d")
{
    rt::program_info info{.name = "loghook", .daemon = false, .hook = true};
    auto quiet = capture_stderr(false, [&] {
        auto log = rt::make_logger(info, rt::common_options{});
        log->info("published");
        spdlog::drop_all();
    });
    CHECK(quiet.empty());
    rt::common_options debug;
    debug.debug = true;
    auto loud = capture_stderr(false, [&] {
        auto log = rt::make_logger(info, debug);
        log->info("published");
        spdlog::drop_all();
    });
    CHECK(loud.ends_with(" info published\n"));
}
