// herald's alert engine (daemons/herald/alerts): rules from config, heartbeat ages on a fake
// clock, cool-downs, recoveries, pattern matching, state across a restart, the mail and webhook
// payloads.

#include "engine.hpp"
#include "rules.hpp"
#include "send.hpp"

#include "bus/event.hpp"
#include "bus/runtime/config_reader.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include <filesystem>
#include <fstream>

namespace al = herald::alerts;
namespace rt = bus::runtime;
using namespace std::chrono;
using namespace std::chrono_literals;

namespace {

al::settings parse(const std::string& yaml)
{
    auto f = rt::config_file::parse(yaml, "herald.yaml");
    auto root = f.root();
    auto a = root.sub("alerts");
    REQUIRE(a);
    auto s = al::parse_settings(*a);
    f.finish();
    return s;
}

std::string parse_error(const std::string& yaml)
{
    try {
        parse(yaml);
    } catch (const rt::config_error& e) {
        return e.what();
    }
    return "(no error)";
}

bus::event heartbeat(std::string daemon, std::string host)
{
    bus::heartbeat_event h;
    h.daemon = std::move(daemon);
    h.host = host;
    return bus::make_event(h, host);
}

bus::event fetch(bool ok, std::string error, std::string host = "web01")
{
    bus::fetch_event f;
    f.repo = "site";
    f.ref = "refs/heads/master";
    f.host = host;
    f.ok = ok;
    f.error = std::move(error);
    return bus::make_event(f, host);
}

const al::time_point t0 = al::time_point(seconds(1'800'000'000));

const char* hb_config = "alerts:\n"
                        "  check-interval: 1s\n"
                        "  heartbeat:\n"
                        "    - name: daemons\n"
                        "      daemon: 'stomp-*'\n"
                        "      max-age: 30s\n"
                        "      cool-down: 5m\n";

}  // namespace

TEST_CASE("alerts: a full config parses with defaults and actions")
{
    auto s = parse("alerts:\n"
                   "  check-interval: 2s\n"
                   "  topic: site.alerts\n"
                   "  webhook: {url: 'http://127.0.0.1:9/hook', retries: 1, timeout: 2s}\n"
                   "  heartbeat:\n"
                   "    - {name: all, max-age: 90s}\n"
                   "  patterns:\n"
                   "    - name: fetch-failed\n"
                   "      type: fetch\n"
                   "      match: {ok: 'false'}\n"
                   "      regex: {error: 'denied|refused'}\n"
                   "      cool-down: 10m\n"
                   "      actions: [bus]\n");
    CHECK(s.check_interval == 2s);
    CHECK(s.topic == "site.alerts");
    REQUIRE(s.heartbeat.size() == 1);
    CHECK(s.heartbeat[0].daemon == "*");
    CHECK(s.heartbeat[0].max_age == 90s);
    CHECK(s.heartbeat[0].channels == (al::to_bus | al::to_webhook));  // default: bus + what is configured
    REQUIRE(s.patterns.size() == 1);
    CHECK(s.patterns[0].types == std::vector<std::string>{"fetch"});
    CHECK(s.patterns[0].fields.size() == 2);
    CHECK(s.patterns[0].recover_after == 10min);  // defaults to the cool-down
    CHECK(s.patterns[0].channels == al::to_bus);
    CHECK(s.webhook.retries == 1);
}

TEST_CASE("alerts: rule errors name the file line and key")
{
    CHECK(parse_error("alerts:\n  patterns:\n    - name: bad\n      text: 'a(b'\n").find(
              "herald.yaml:4: alerts.patterns[0].text: not a valid regular expression") != std::string::npos);
    CHECK(parse_error("alerts:\n  patterns:\n    - name: r\n      regex: {error: '[x'}\n")
              .find("herald.yaml:4: alerts.patterns[0].regex.error: not a valid regular expression") != std::string::npos);
    CHECK(parse_error("alerts:\n  heartbeat:\n    - name: a\n    - name: a\n").find(
              "herald.yaml:4: alerts.heartbeat[1].name: `a` is used by another rule") != std::string::npos);
    CHECK(parse_error("alerts:\n  heartbeat:\n    - name: a\n      max-age: soon\n").find("herald.yaml:4: alerts.heartbeat[0].max-age") !=
          std::string::npos);
    CHECK(parse_error("alerts:\n  heartbeat:\n    - name: a\n      actions: [mail]\n").find(
              "herald.yaml:4: alerts.heartbeat[0].actions: `mail` but alerts.mail.url is not set") != std::string::npos);
    CHECK(parse_error("alerts:\n  heartbeat:\n    - name: a\n      actions: [pager]\n").find("unknown action `pager`") !=
          std::string::npos);
    CHECK(parse_error("alerts:\n  patterns:\n    - name: empty\n").find("alerts.patterns[0].name: rule `empty` has no condition") !=
          std::string::npos);
    CHECK(parse_error("alerts:\n  patterns:\n    - {name: loop, type: alert}\n").find("alert events cannot trigger alerts") !=
          std::string::npos);
    CHECK(parse_error("alerts:\n  mail: {url: 'http://x', from: a@b, to: c@d}\n").find(
              "herald.yaml:2: alerts.mail.url: must start with smtp://") != std::string::npos);
    CHECK(parse_error("alerts:\n  mail: {url: 'smtp://x', from: \"a@b\\r\\nBcc: e@f\", to: c@d}\n").find(
              "alerts.mail.from: not a plain mail address") != std::string::npos);
    CHECK(parse_error("alerts:\n  heartbeat:\n    - name: a\n      max-ag: 3s\n").find(
              "herald.yaml:4: alerts.heartbeat[0].max-ag: unknown setting; did you mean `max-age`?") != std::string::npos);
}

TEST_CASE("alerts: an unreadable mail or webhook ca-file stops the start")
{
    // libcurl is initialised at the first alert, not at start: its CA file is checked at load.
    auto missing = (std::filesystem::temp_directory_path() / "dk-alerts-no-such-ca.pem").string();
    CHECK(parse_error("alerts:\n  mail: {url: 'smtps://x', from: a@b, to: c@d, ca-file: '" + missing + "'}\n")
              .find("herald.yaml:2: alerts.mail.ca-file: cannot read") != std::string::npos);
    CHECK(parse_error("alerts:\n  webhook: {url: 'https://x', ca-file: '" + missing + "'}\n")
              .find("herald.yaml:2: alerts.webhook.ca-file: cannot read") != std::string::npos);
}

TEST_CASE("alerts: an SMTP auth file that others can read is refused with a clear error")
{
    auto dir = std::filesystem::temp_directory_path() / ("alerts-test-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    auto file = dir / "smtp-auth";
    std::ofstream(file) << "herald:s3cret\n";
    ::chmod(file.c_str(), 0644);
    std::string cfg = "alerts:\n  mail:\n    url: 'smtp://127.0.0.1:25'\n    from: herald@example.org\n    to: [ops@example.org]\n"
                      "    auth-file: " + file.string() + "\n";
    auto err = parse_error(cfg);
    CHECK(err.find("herald.yaml:6: alerts.mail.auth-file") != std::string::npos);
    CHECK(err.find("has mode 0644") != std::string::npos);
    CHECK(err.find("s3cret") == std::string::npos);
    ::chmod(file.c_str(), 0600);
    auto s = parse(cfg);
    CHECK(s.mail.user == "herald");
    CHECK(s.mail.password == "s3cret");
    CHECK(s.mail.retries == 3);
    // A webhook token with a second line could add a header: refused.
    auto tok = dir / "token";
    std::ofstream(tok) << "abc\nX-Evil: 1\n";
    ::chmod(tok.c_str(), 0600);
    CHECK(parse_error("alerts:\n  webhook:\n    url: 'http://127.0.0.1:9/'\n    token-file: " + tok.string() + "\n")
              .find("herald.yaml:4: alerts.webhook.token-file: holds a control character") != std::string::npos);
    std::filesystem::remove_all(dir);
}

TEST_CASE("alerts: heartbeat age fires just after max-age and recovers on the next heartbeat")
{
    al::rule_engine e(parse(hb_config), t0);
    CHECK(e.on_event(al::input_of(heartbeat("stomp-git", "web01")), t0).empty());
    CHECK(e.on_event(al::input_of(heartbeat("repo-poller", "web01")), t0).empty());  // not matched by `stomp-*`
    CHECK(e.last_seen().size() == 1);
    CHECK(e.tick(t0 + 30s).empty());  // exactly max-age: not yet
    auto d = e.tick(t0 + 30s + 1ms);
    REQUIRE(d.size() == 1);
    CHECK(d[0].action == al::decision::what::fire);
    CHECK(d[0].rule == "daemons");
    CHECK(d[0].kind == "heartbeat");
    CHECK(d[0].daemon == "stomp-git");
    CHECK(d[0].host == "web01");
    CHECK(d[0].last_seen == t0);
    CHECK(d[0].text == "stomp-git on web01: no heartbeat for 30 s (max-age 30 s)");
    CHECK(e.firing() == 1);
    CHECK(e.tick(t0 + 60s).empty());  // once per loss, not every check
    auto r = e.on_event(al::input_of(heartbeat("stomp-git", "web01")), t0 + 61s);
    REQUIRE(r.size() == 1);
    CHECK(r[0].action == al::decision::what::recover);
    CHECK(r[0].state() == "recovered");
    CHECK(e.firing() == 0);
    CHECK(e.on_event(al::input_of(heartbeat("stomp-git", "web01")), t0 + 62s).empty());
}

TEST_CASE("alerts: a regular heartbeat never fires")
{
    al::rule_engine e(parse(hb_config), t0);
    for (int i = 0; i < 100; ++i) {
        auto t = t0 + seconds(10 * i);
        CHECK(e.on_event(al::input_of(heartbeat("stomp-repo", "db1")), t).empty());
        CHECK(e.tick(t + 5s).empty());
    }
}

TEST_CASE("alerts: a second loss within the cool-down is notified once the cool-down has passed")
{
    al::rule_engine e(parse(hb_config), t0);
    e.on_event(al::input_of(heartbeat("stomp-git", "web01")), t0);
    REQUIRE(e.tick(t0 + 31s).size() == 1);
    REQUIRE(e.on_event(al::input_of(heartbeat("stomp-git", "web01")), t0 + 40s).size() == 1);  // recovered
    // Lost again at 70 s: within the 5 min cool-down of the first notice (31 s).
    CHECK(e.tick(t0 + 71s).empty());
    CHECK(e.firing() == 1);
    CHECK(e.tick(t0 + 331s - 1ms).empty());
    auto d = e.tick(t0 + 331s);
    REQUIRE(d.size() == 1);
    CHECK(d[0].action == al::decision::what::fire);
    // A loss that ends within the cool-down was never notified: its recovery is not either.
    al::rule_engine f(parse(hb_config), t0);
    f.on_event(al::input_of(heartbeat("stomp-git", "web01")), t0);
    REQUIRE(f.tick(t0 + 31s).size() == 1);
    REQUIRE(f.on_event(al::input_of(heartbeat("stomp-git", "web01")), t0 + 40s).size() == 1);
    CHECK(f.tick(t0 + 71s).empty());
    CHECK(f.on_event(al::input_of(heartbeat("stomp-git", "web01")), t0 + 80s).empty());
    CHECK(f.firing() == 0);
}

TEST_CASE("alerts: known sources survive a restart and ages count from the start")
{
    std::string snap;
    {
        al::rule_engine e(parse(hb_config), t0);
        e.on_event(al::input_of(heartbeat("stomp-git", "web01")), t0);
        e.on_event(al::input_of(heartbeat("stomp-jenkins", "ci")), t0);
        REQUIRE(e.tick(t0 + 31s).size() == 2);
        e.on_event(al::input_of(heartbeat("stomp-jenkins", "ci")), t0 + 35s);  // recovers
        CHECK(e.dirty());
        snap = e.snapshot();
        CHECK_FALSE(e.dirty());
    }
    // herald restarts 10 minutes later: stomp-git is still lost (already notified: no second
    // notice), stomp-jenkins is watched and fires one max-age after the restart.
    auto t1 = t0 + 10min;
    al::rule_engine e(parse(hb_config), t1);
    REQUIRE(e.restore(snap).empty());
    CHECK(e.last_seen().size() == 2);
    CHECK(e.tick(t1 + 30s).empty());
    auto d = e.tick(t1 + 31s);
    REQUIRE(d.size() == 1);
    CHECK(d[0].daemon == "stomp-jenkins");
    auto r = e.on_event(al::input_of(heartbeat("stomp-git", "web01")), t1 + 32s);
    REQUIRE(r.size() == 1);
    CHECK(r[0].action == al::decision::what::recover);
    CHECK(r[0].daemon == "stomp-git");

    CHECK_FALSE(e.restore("{\"version\":7}").empty());
    CHECK_FALSE(e.restore("not json").empty());
    CHECK(e.last_seen().size() == 2);  // a bad file changes nothing
}

TEST_CASE("alerts: sources beyond max-sources are counted and silent ones forgotten")
{
    auto s = parse(hb_config);
    s.max_sources = 2;
    s.forget_after = 1h;
    al::rule_engine e(s, t0);
    e.on_event(al::input_of(heartbeat("stomp-git", "a")), t0);
    e.on_event(al::input_of(heartbeat("stomp-git", "b")), t0);
    e.on_event(al::input_of(heartbeat("stomp-git", "c")), t0);
    CHECK(e.last_seen().size() == 2);
    CHECK(e.untracked() == 1);
    e.tick(t0 + 31s);
    e.tick(t0 + 2h);
    CHECK(e.last_seen().empty());
    CHECK(e.firing() == 0);
}

TEST_CASE("alerts: pattern rules match type fields regex and text")
{
    auto s = parse("alerts:\n"
                   "  patterns:\n"
                   "    - name: fetch-failed\n"
                   "      type: [fetch]\n"
                   "      match: {ok: 'false', host: 'web*'}\n"
                   "      cool-down: 0s\n"
                   "    - name: denied\n"
                   "      regex: {error: '(?i)permission denied'}\n"
                   "      cool-down: 0s\n"
                   "    - name: oom\n"
                   "      text: 'out of memory'\n"
                   "      cool-down: 0s\n");
    al::rule_engine e(s, t0);
    auto names = [](const std::vector<al::decision>& ds) {
        std::vector<std::string> out;
        for (auto& d : ds) out.push_back(d.rule);
        return out;
    };
    CHECK(e.on_event(al::input_of(fetch(true, "")), t0).empty());
    CHECK(names(e.on_event(al::input_of(fetch(false, "timeout")), t0)) == std::vector<std::string>{});  // `web*` is exact, not a glob
    CHECK(names(e.on_event(al::input_of(fetch(false, "Permission Denied (publickey)", "web*")), t0)) ==
          std::vector<std::string>{"fetch-failed", "denied"});
    CHECK(names(e.on_event(al::input_of(fetch(false, "git: out of memory")), t0)) == std::vector<std::string>{"oom"});
    bus::notice_event n{"herald: out of memory on db1"};
    auto d = e.on_event(al::input_of(bus::make_event(n, "db1")), t0);
    REQUIRE(d.size() == 1);
    CHECK(d[0].event_type == "notice");
    CHECK(d[0].host == "db1");
    CHECK(d[0].text.find("oom: notice event from db1: herald: out of memory on db1") == 0);
    // Heartbeats and alerts are not matched by rules without a type.
    bus::alert_event a{"oom", "pattern", "firing", "", "", "out of memory", "", "", 0};
    CHECK(e.on_event(al::input_of(bus::make_event(a, "h")), t0).empty());
}

TEST_CASE("alerts: a runaway regular expression ends as no match")
{
    auto s = parse("alerts:\n  patterns:\n    - {name: evil, text: '(a+)+$'}\n");
    al::rule_engine e(s, t0);
    bus::notice_event n{std::string(4000, 'a') + "!"};
    CHECK(e.on_event(al::input_of(bus::make_event(n, "h")), t0).empty());
}

TEST_CASE("alerts: a pattern fires once per cool-down and recovers")
{
    auto s = parse("alerts:\n"
                   "  patterns:\n"
                   "    - name: fetch-failed\n"
                   "      type: fetch\n"
                   "      match: {ok: 'false'}\n"
                   "      cool-down: 60s\n"
                   "      recover-after: 120s\n");
    al::rule_engine e(s, t0);
    auto first = e.on_event(al::input_of(fetch(false, "x")), t0);
    REQUIRE(first.size() == 1);
    CHECK(first[0].suppressed == 0);
    CHECK(e.on_event(al::input_of(fetch(false, "y")), t0 + 10s).empty());
    CHECK(e.on_event(al::input_of(fetch(false, "z")), t0 + 59s).empty());
    CHECK(e.tick(t0 + 59s).empty());
    // Cool-down over: one summary of what was held back.
    auto sum = e.tick(t0 + 60s);
    REQUIRE(sum.size() == 1);
    CHECK(sum[0].action == al::decision::what::fire);
    CHECK(sum[0].suppressed == 2);
    CHECK(e.tick(t0 + 61s).empty());
    auto next = e.on_event(al::input_of(fetch(false, "w")), t0 + 121s);  // a new cool-down from the summary at 60 s
    REQUIRE(next.size() == 1);
    CHECK(e.tick(t0 + 121s + 119s).empty());
    auto rec = e.tick(t0 + 121s + 120s);
    REQUIRE(rec.size() == 1);
    CHECK(rec[0].action == al::decision::what::recover);
    CHECK(rec[0].rule == "fetch-failed");
    CHECK(e.firing() == 0);
    CHECK(e.tick(t0 + 1h).empty());
}

TEST_CASE("alerts: mail and webhook payloads")
{
    al::mail_settings m;
    m.from = "herald@example.org";
    m.to = {"ops@example.org", "dev@example.org"};
    al::decision d;
    d.rule = "daemons";
    d.kind = "heartbeat";
    d.daemon = "stomp-git";
    d.host = "web01";
    d.text = "stomp-git on web01: no heartbeat for 31 s \xc3\xa9";
    d.last_seen = t0;
    auto msg = al::mail_message(m, d, "herald01", t0 + 31s);
    CHECK(msg.find("From: herald <herald@example.org>\r\n") != std::string::npos);
    CHECK(msg.find("To: ops@example.org, dev@example.org\r\n") != std::string::npos);
    CHECK(msg.find("Subject: [herald] FIRING daemons: stomp-git on web01: no heartbeat for 31 s ??\r\n") != std::string::npos);
    CHECK(msg.find("Auto-Submitted: auto-generated\r\n") != std::string::npos);
    CHECK(msg.find("last heartbeat: 2027-01-15T08:00:00Z\r\n") != std::string::npos);
    auto j = nlohmann::json::parse(al::webhook_body(d, "herald01", t0 + 31s));
    CHECK(j["state"] == "firing");
    CHECK(j["daemon"] == "stomp-git");
    CHECK(j["last_seen"] == "2027-01-15T08:00:00Z");
}

TEST_CASE("alerts: the alert event round-trips through the native form")
{
    bus::alert_event a{"daemons", "heartbeat", "firing", "stomp-git", "web01", "no heartbeat", "", "2027-01-15T08:00:00Z", 0};
    auto ev = bus::make_event(a, "herald01");
    CHECK(ev.type() == "alert");
    auto back = bus::from_native(bus::to_native(ev));
    REQUIRE(back);
    CHECK(*back.value == ev);
    a.state = "maybe";
    CHECK(bus::validate(bus::make_event(a, "h")) == "data.state: must be firing or recovered");
}

TEST_CASE("alerts: glob matching")
{
    CHECK(al::glob_match("*", ""));
    CHECK(al::glob_match("stomp-*", "stomp-git"));
    CHECK_FALSE(al::glob_match("stomp-*", "repo-poller"));
    CHECK(al::glob_match("web?", "web1"));
    CHECK(al::glob_match("*a*b*", "xxaxxbxx"));
    CHECK_FALSE(al::glob_match("*a*b", "xxaxxbxx"));
}

TEST_CASE("alerts: an old heartbeat from the start-up table or a backlog does not end a loss")
{
    al::rule_engine e(parse(hb_config), t0);
    auto hb = al::input_of(heartbeat("stomp-git", "web01"));
    hb.seen = t0 - 1h;  // herald's last-seen table at start: an hour-old heartbeat
    CHECK(e.on_event(hb, t0).empty());
    REQUIRE(e.last_seen().size() == 1);
    CHECK(e.last_seen()[0].second == t0 - 1h);
    CHECK(e.tick(t0 + 30s).empty());  // ages count from the start
    REQUIRE(e.tick(t0 + 31s).size() == 1);
    hb.seen = t0 - 10s;  // replayed late, already older than max-age by now
    CHECK(e.on_event(hb, t0 + 40s).empty());
    CHECK(e.firing() == 1);
    hb.seen = t0 + 41s;
    CHECK(e.on_event(hb, t0 + 41s).size() == 1);
}

TEST_CASE("alerts: pattern rules on ingested log records by level and daemon")
{
    auto s = parse("alerts:\n  patterns:\n    - name: app-errors\n      type: log\n"
                   "      regex: {level: '^(error|critical)$', daemon: '^billing'}\n      cool-down: 0s\n");
    al::rule_engine e(s, t0);
    al::input in;
    in.id = "r1";
    in.type = "log";
    in.host = "app1";
    in.daemon = "billing.worker";
    in.level = "warning";
    in.message = "slow";
    in.data = R"({"funcName":"run"})";
    CHECK(e.on_event(in, t0).empty());
    in.level = "error";
    in.message = "payment failed";
    auto d = e.on_event(in, t0);
    REQUIRE(d.size() == 1);
    CHECK(d[0].text == "app-errors: log event from app1: payment failed");
    CHECK(d[0].event_id == "r1");
}

TEST_CASE("alerts: an smtp server without STARTTLS gets neither the login nor the mail")
{
    // A plain SMTP server on loopback that never offers STARTTLS: herald must give up before AUTH
    // or MAIL FROM, so neither the password nor the alert goes out in clear.
    int ls = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(ls >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(ls, 1) == 0);
    socklen_t len = sizeof a;
    REQUIRE(::getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    std::string seen;
    std::thread server([&] {
        int c = ::accept(ls, nullptr, nullptr);
        if (c < 0) return;
        auto say = [&](std::string_view s) { (void)!::write(c, s.data(), s.size()); };
        say("220 plain ESMTP\r\n");
        char buf[1024];
        for (;;) {
            auto n = ::read(c, buf, sizeof buf);
            if (n <= 0) break;
            seen.append(buf, static_cast<std::size_t>(n));
            if (seen.find("EHLO") != std::string::npos && seen.find("250-") == std::string::npos) {
                say("250-plain\r\n250 AUTH PLAIN LOGIN\r\n");
                seen += "250-";
            } else {
                say("250 ok\r\n");
            }
        }
        ::close(c);
    });
    al::mail_settings m;
    m.url = "smtp://127.0.0.1:" + std::to_string(ntohs(a.sin_port));
    m.from = "herald@example.org";
    m.to = {"ops@example.org"};
    m.user = "herald";
    m.password = "s3cret";
    m.timeout = 5s;
    auto o = al::send_mail(m, "Subject: x\r\n\r\nbody\r\n");
    server.join();
    ::close(ls);
    CHECK_FALSE(o.ok);
    CHECK_FALSE(o.retry);
    CHECK(seen.find("EHLO") != std::string::npos);
    CHECK(seen.find("AUTH") == std::string::npos);
    CHECK(seen.find("MAIL FROM") == std::string::npos);
    CHECK(seen.find("s3cret") == std::string::npos);
}
