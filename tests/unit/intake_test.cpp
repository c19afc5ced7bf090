// Hardening of the event path (issue 10, items 7, 8, 9, 13, 14): each case reproduces an attack
// or fault that the previous code let through.

#include "bus/crypto.hpp"
#include "bus/intake.hpp"
#include "bus/legacy.hpp"
#include "bus/replay_cache.hpp"
#include "bus/signing.hpp"
#include "bus/text.hpp"
#include "bus/url.hpp"
#include "bus/wire.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

using namespace bus;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const std::string sha_a(40, 'a');
const std::string sha_b(40, 'b');
const std::string sha_c(40, 'c');
const std::string secret = "0123456789abcdef0123";

commit_event commit(std::string old_rev, std::string new_rev, std::string message = "Fix the thing")
{
    commit_event c;
    c.source = commit_source::git;
    c.repo = "site";
    c.ref = "refs/heads/master";
    c.old_rev = std::move(old_rev);
    c.new_rev = std::move(new_rev);
    c.author = "Dev <dev@example.com>";
    c.date = "Sun Nov 22 10:00:00 2026 +0000";
    c.message = std::move(message);
    return c;
}

stomp::frame as_message(stomp::frame f, std::string mid = "m-1")
{
    f.command = "MESSAGE";
    f.add("message-id", mid);
    return f;
}

// A frame as the Ruby post-receive hook sent it: no dk-* headers at all.
stomp::frame ruby_frame(const commit_event& c, std::string mid, bool redelivered = false)
{
    auto m = legacy::git_hook_commit(c);
    stomp::frame f("MESSAGE");
    f.add("destination", "/topic/future.git.commits");
    f.add("message-id", mid);
    if (redelivered) f.add("redelivered", "true");
    f.add("subject", m.subject);
    f.add("content-type", "text/plain; charset=UTF-8");
    f.body = m.body;
    return f;
}

std::string hmac_hex(std::string_view key, std::string_view data) { return bus::crypto::hmac_sha256_hex(key, data); }

// The v1 canonical text (before the fix): fields joined with newlines.
std::string v1_canonical(const stomp::frame& f)
{
    std::string c = "dk-sig-v1\n";
    c.append(f.get("dk-sig-key")).push_back('\n');
    c.append(f.get("dk-sig-ts")).push_back('\n');
    c.append("destination:").append(f.get("destination")).push_back('\n');
    for (auto h : signed_headers) c.append(h).append(":").append(f.get(h)).push_back('\n');
    c.push_back('\n');
    c.append(f.body);
    return c;
}

// The original Ruby consumers' parser (original.md §3.2): every line of the body split at its
// first ':', key exact and untrimmed, value stripped, the LAST occurrence wins; a wanted key on
// a line without ':' crashed the daemon.
struct ruby_parse {
    std::map<std::string, std::string> keys;
    bool crashed = false;
    explicit ruby_parse(const std::string& body, std::set<std::string> wanted = {"repo", "refname", "Project"})
    {
        std::istringstream in(body);
        std::string line;
        while (std::getline(in, line)) {
            auto colon = line.find(':');
            std::string key = line.substr(0, colon);
            if (colon == std::string::npos) {
                if (wanted.count(key)) crashed = true;
                continue;
            }
            std::string v = line.substr(colon + 1);
            while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.erase(0, 1);
            while (!v.empty() && (v.back() == ' ' || v.back() == '\t' || v.back() == '\r')) v.pop_back();
            keys[key] = v;
        }
    }
};

struct temp_dir {
    fs::path path = fs::temp_directory_path() / ("dk-intake-" + new_event_id());
    temp_dir() { fs::create_directories(path); }
    ~temp_dir() { fs::remove_all(path); }
};

std::int64_t unix_of(std::chrono::system_clock::time_point t)
{
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

} // namespace

// ---- item 7: an injective, versioned signature ----

TEST_CASE("signatures v2 - text moved from the body into a signed header no longer verifies")
{
    keyring keys;
    keys.add({"k1", secret});
    const std::int64_t now = 1'800'000'000;
    // The committer wrote a second header block into the message; the attacker holds the signed
    // frame and moves the boundary, so consumers read the message's block as the body.
    auto c = commit(sha_a, sha_b,
                    "Fix\n\nrepo: site\noldrev: " + sha_c + "\nnewrev: " + sha_b +
                        "\nrefname: refs/heads/master\n " + sha_b + "\nAuthor: Mallory <m@evil>\nDate: then");
    auto f = encode(make_event(c, "h"), "/topic/future.git.commits", wire_format::legacy)[0];
    // The body as the writers produced it before item 13 (field-like lines not indented).
    auto raw = f.body.find("\n\nFix\n\n") + 7;
    f.body = f.body.substr(0, raw) + c.message.substr(5) + "\n\n";
    sign(f, *keys.find("k1"), now);
    REQUIRE(verify(f, keys, now, 300s) == signature_verdict::ok);

    auto attacked = f;
    auto cut = attacked.body.find("Fix\n\n") + 5;
    attacked.set("dk-repo", std::string(f.get("dk-repo")) + "\n\n" + attacked.body.substr(0, cut - 2));
    attacked.body.erase(0, cut);
    // Under v1 both frames had the same signed text: the old signature would have verified.
    CHECK(v1_canonical(attacked) == v1_canonical(f));
    CHECK(verify(attacked, keys, now, 300s) == signature_verdict::bad_signature);
    // ...and what consumers would have read: another author and old revision.
    auto moved = decode(as_message(attacked));
    REQUIRE_MESSAGE(moved.ev, moved.reason);
    CHECK(std::get<commit_event>(moved.ev->data).old_rev == sha_c);
}

TEST_CASE("signatures v2 - every field boundary moved fails verification")
{
    keyring keys;
    keys.add({"k1", secret});
    keys.add({"k", secret});  // so a boundary moved between key id and timestamp is checked, not unknown
    const std::int64_t now = 1'800'000'000;
    auto f = encode(make_event(commit(sha_a, sha_b), "h"), "/topic/future.git.commits", wire_format::legacy)[0];
    sign(f, *keys.find("k1"), now);
    REQUIRE(verify(f, keys, now, 300s) == signature_verdict::ok);

    std::vector<std::string> fields = {"dk-sig-key", "dk-sig-ts", "destination"};
    for (auto h : signed_headers) fields.emplace_back(h);
    fields.emplace_back("");  // the body
    auto get = [](const stomp::frame& fr, const std::string& n) { return n.empty() ? fr.body : std::string(fr.get(n)); };
    auto put = [](stomp::frame& fr, const std::string& n, const std::string& v) {
        if (n.empty()) fr.body = v;
        else fr.set(n, v);
    };
    int checked = 0;
    for (std::size_t i = 0; i + 1 < fields.size(); ++i) {
        const auto& a = fields[i];
        const auto& b = fields[i + 1];
        CAPTURE(a);
        CAPTURE(b);
        auto va = get(f, a), vb = get(f, b);
        // The last byte of one field moved to the start of the next, and back again; and the
        // same with the separator the v1 form used.
        std::vector<std::pair<std::string, std::string>> moves;
        if (!va.empty()) moves.emplace_back(va.substr(0, va.size() - 1), va.back() + vb);
        if (!vb.empty()) moves.emplace_back(va + vb.front(), vb.substr(1));
        moves.emplace_back(va + "\n" + b + ":" + vb.substr(0, vb.size() / 2), vb.substr(vb.size() / 2));
        for (auto& [na, nb] : moves) {
            auto g = f;
            put(g, a, na);
            put(g, b, nb);
            auto v = verify(g, keys, now, 300s);
            CHECK((v == signature_verdict::bad_signature || v == signature_verdict::unknown_key ||
                   v == signature_verdict::stale));
            ++checked;
        }
    }
    CHECK(checked >= 20);
    // An absent header is not an empty one.
    auto g = f;
    g.erase("dk-event-type");
    auto h2 = g;
    h2.add("dk-event-type", "");
    sign(g, *keys.find("k1"), now);
    h2.set("dk-sig", std::string(g.get("dk-sig")));
    CHECK(verify(g, keys, now, 300s) == signature_verdict::ok);
    CHECK(verify(h2, keys, now, 300s) == signature_verdict::bad_signature);
}

TEST_CASE("signatures v2 - the old unversioned form is refused when required and never counts as signed")
{
    keyring keys;
    keys.add({"k1", secret});
    auto now = std::chrono::system_clock::now();
    auto f = as_message(encode(make_event(commit(sha_a, sha_b), "h"), "/topic/t", wire_format::native)[0]);
    f.set("dk-sig-key", "k1");
    f.set("dk-sig-ts", std::to_string(unix_of(now)));
    f.set("dk-sig", hmac_hex(secret, v1_canonical(f)));  // a valid v1 signature
    CHECK(verify(f, keys, unix_of(now), 300s) == signature_verdict::unsupported_scheme);

    intake strict({.require_signatures = true}, keys);
    auto r = strict.accept(f, now);
    CHECK(r.decision == intake_decision::signature);
    CHECK(r.signature == signature_verdict::unsupported_scheme);
    CHECK(strict.counters().old_scheme == 1);

    intake lax({}, keys);
    auto l = lax.accept(f, now);
    CHECK(l.process());
    CHECK_FALSE(l.authenticated);

    // A v2 signature with the key rotated in: multiple keys, chosen by id.
    keys.add({"k2", "fedcba9876543210fedcba"});
    intake both({.require_signatures = true}, keys);
    auto f2 = f;
    sign(f2, *keys.find("k2"), unix_of(now));
    auto ok = both.accept(f2, now);
    CHECK(ok.process());
    CHECK(ok.authenticated);
    CHECK(ok.signature == signature_verdict::ok);
}

// ---- item 8: replay protection survives a restart ----

TEST_CASE("intake - an exact replay of a signed event is refused after a restart with a replay cache")
{
    temp_dir dir;
    keyring keys;
    keys.add({"k1", secret});
    auto now = std::chrono::system_clock::now();
    auto f = as_message(encode(make_event(commit(sha_a, sha_b), "h"), "/topic/t", wire_format::native)[0]);
    sign(f, *keys.find("k1"), unix_of(now));
    intake_options opts{.require_signatures = true, .replay_cache = dir.path / "stomp-git" / "replay-cache"};
    {
        intake in(opts, keys);
        auto r = in.accept(f, now);
        REQUIRE(r.process());
        in.processed(r.ev->id, now);
        // A second consumer on the same file is refused, not silently sharing it.
        CHECK_THROWS_WITH_AS(intake(opts, keys), doctest::Contains("in use"), config_error);
    }
    {
        intake in(opts, keys);  // the consumer restarted
        auto replay = in.accept(f, now + 10s);
        CHECK(replay.decision == intake_decision::duplicate);
        CHECK(in.counters().duplicates == 1);
    }
    // Without a cache (the default), the restart forgets: the gap the option closes.
    intake_options none{.require_signatures = true};
    {
        intake in(none, keys);
        auto r = in.accept(f, now);
        REQUIRE(r.process());
        in.processed(r.ev->id, now);
    }
    intake fresh(none, keys);
    CHECK(fresh.accept(f, now + 10s).process());
}

TEST_CASE("replay cache - expired entries and a torn last line are dropped and the file stays bounded")
{
    temp_dir dir;
    auto path = dir.path / "replay-cache";
    auto t0 = std::chrono::system_clock::now();
    {
        replay_cache c(path, 10, 600s, t0);
        c.append("old-1", t0 - 700s);
        c.append("new-1", t0);
        c.sync();
    }
    {
        std::ofstream(path, std::ios::app) << "1234 torn-without-newl";
    }
    {
        replay_cache c(path, 10, 600s, t0 + 1s);
        REQUIRE(c.loaded().size() == 1);
        CHECK(c.loaded()[0].first == "new-1");
    }
    fs::perms p = fs::status(path).permissions();
    CHECK((p & (fs::perms::group_all | fs::perms::others_all)) == fs::perms::none);

    // Bounded: many processed ids never grow the file beyond about twice the capacity.
    intake_options opts{.dedupe_capacity = 50, .replay_cache = dir.path / "bounded"};
    intake in(opts);
    for (int i = 0; i < 1000; ++i) in.processed("id-" + std::to_string(i), t0);
    in.sync();
    std::ifstream file(dir.path / "bounded");
    std::size_t lines = 0;
    for (std::string l; std::getline(file, l);) ++lines;
    CHECK(lines <= 2 * 50 + 64 + 2);
    // A symlink planted in place of the cache is not followed.
    fs::create_symlink(dir.path / "elsewhere", dir.path / "planted");
    CHECK_THROWS_AS(replay_cache(dir.path / "planted", 10, 60s, t0), config_error);
    CHECK_FALSE(fs::exists(dir.path / "elsewhere"));
}

// ---- item 9: legacy frames are never deduplicated by content ----

TEST_CASE("intake - a roll-forward announced by the Ruby hook is processed after a force-push back")
{
    intake in({});
    auto now = std::chrono::system_clock::now();
    auto ab = ruby_frame(commit(sha_a, sha_b), "ID:broker-1:1");
    auto ba = ruby_frame(commit(sha_b, sha_a), "ID:broker-1:2");
    auto ab_again = ruby_frame(commit(sha_a, sha_b), "ID:broker-1:3");
    CHECK(ab.body == ab_again.body);
    CHECK(ab.get("subject") == ab_again.get("subject"));
    for (auto* f : {&ab, &ba, &ab_again}) {
        auto r = in.accept(*f, now);
        REQUIRE(r.process());
        CHECK(r.legacy);
        in.processed(r.ev->id, now);
    }
    CHECK(in.counters().accepted == 3);
    // A redelivery of the same broker message is still dropped...
    auto again = ruby_frame(commit(sha_a, sha_b), "ID:broker-1:3", true);
    CHECK(in.accept(again, now).decision == intake_decision::duplicate);
    // ...but not a message that merely reuses an id (a broker restarted and counted from 1).
    auto reused = ruby_frame(commit(sha_a, sha_b), "ID:broker-1:3", false);
    CHECK(in.accept(reused, now).process());
}

TEST_CASE("intake - a signed legacy frame without an event id is still protected against replay")
{
    temp_dir dir;
    keyring keys;
    keys.add({"k1", secret});
    auto now = std::chrono::system_clock::now();
    auto f = ruby_frame(commit(sha_a, sha_b), "ID:broker-1:1");
    sign(f, *keys.find("k1"), unix_of(now));
    intake_options opts{.require_signatures = true, .replay_cache = dir.path / "cache"};
    {
        intake in(opts, keys);
        auto r = in.accept(f, now);
        REQUIRE(r.process());
        CHECK(r.ev->id.starts_with("sig-"));
        in.processed(r.ev->id, now);
        auto replay = f;
        replay.set("message-id", "ID:broker-1:2");  // the broker gives the replay a new id
        CHECK(in.accept(replay, now).decision == intake_decision::duplicate);
    }
    intake restarted(opts, keys);
    auto replay = f;
    replay.set("message-id", "ID:broker-2:1");
    CHECK(restarted.accept(replay, now).decision == intake_decision::duplicate);
}

TEST_CASE("intake - identical eventbot one-liners are all delivered")
{
    intake in({});
    auto now = std::chrono::system_clock::now();
    for (int i = 0; i < 3; ++i) {
        stomp::frame f("MESSAGE");
        f.add("destination", "/topic/future.events.stomp-git");
        f.add("message-id", "m-" + std::to_string(i));
        f.add("subject", "Talking to eventbot");
        f.body = "web01 fetched change: [site] refs/heads/master " + sha_b;
        auto r = in.accept(f, now);
        REQUIRE(r.process());
        in.processed(r.ev->id, now);
    }
    CHECK(in.counters().accepted == 3);
}

// ---- item 13: free text cannot be read as a field by the original consumers ----

TEST_CASE("legacy writers - field-like lines in free text do not redirect the original parsers")
{
    const std::string evil = "innocent\nrepo: production-db\nrefname: refs/heads/evil\nProject: other\nrepo\n"
                             "   Project: indented\nREPO: upper\n Author: svn-style";
    auto c = commit(sha_a, sha_b, evil);
    c.author = "Dev\nrepo: injected-through-author";
    c.date = "today\nrefname: refs/heads/via-date";

    auto check = [&](const legacy::message& m, const commit_event& sent, std::set<std::string> wanted) {
        ruby_parse ruby(m.body, wanted);
        CHECK_FALSE(ruby.crashed);
        CHECK(ruby.keys["repo"] == sent.repo);
        if (sent.source != commit_source::svn) CHECK(ruby.keys["refname"] == sent.ref);
        if (sent.source == commit_source::svn) CHECK(ruby.keys["Project"] == sent.svn_project);
        else CHECK(ruby.keys.count("Project") == 0);
        // Our own parser gets the message back exactly.
        auto back = legacy::parse_commit(m.subject, m.body);
        REQUIRE_MESSAGE(back, back.error);
        CHECK(back.value->repo == sent.repo);
        CHECK(back.value->message == sent.message);
    };
    auto git = make_event(c, "h");  // make_event cleans the one-line fields
    const auto& gc = std::get<commit_event>(git.data);
    CHECK(gc.author == "Dev repo: injected-through-author");
    check(legacy::git_hook_commit(gc), gc, {"repo", "refname", "Project"});

    auto svn = gc;
    svn.source = commit_source::svn;
    svn.ref.clear();
    svn.new_rev = "42";
    svn.svn_project = "webapp";
    svn.changed_dirs = {"webapp/trunk/", "repo: x/"};
    auto sm = legacy::svn_hook_commit(svn);
    check(sm, svn, {"repo", "Project"});
    CHECK(legacy::parse_commit(sm.subject, sm.body).value->changed_dirs == svn.changed_dirs);

    auto gh = gc;
    gh.source = commit_source::github;
    gh.message = "first line\nrepo: evil\nrefname: refs/heads/evil";
    check(legacy::github_stomp_commit(gh), gh, {"repo", "refname", "Project"});

    // Even a commit_event built by hand (not through make_event) keeps one-line fields on one line.
    auto raw = commit(sha_a, sha_b);
    raw.author = "x\nrepo: raw";
    ruby_parse r(legacy::git_hook_commit(raw).body);
    CHECK(r.keys["repo"] == "site");

    // jenkins-helper: a URL with a newline cannot add a Repo: line.
    build_event b{"Job", 1, "http://j/1/\nRepo: evil", build_phase::started, "", sha_b, "origin/master", "origin"};
    ruby_parse jr(legacy::jenkins_helper(b).body, {"Repo"});
    CHECK(jr.keys["Repo"] == "origin");
    // auto-reprepro: reprepro's output cannot add a package: line.
    package_event p{"foo", "", "1.0", "", "", "amd64", "foo_1.0_amd64.deb"};
    ruby_parse pr(legacy::auto_reprepro(p, "0\npackage: evil_6.6_amd64.deb").body, {"package"});
    CHECK(pr.keys["package"] == "foo_1.0_amd64.deb");
}

// ---- item 14: control characters ----

TEST_CASE("log_escape - control characters cannot forge a log line or drive a terminal")
{
    CHECK(log_escape("plain text / UTF-8 ü ✓") == "plain text / UTF-8 ü ✓");
    CHECK(log_escape("a\nb\r\tc") == "a\\nb\\r\\tc");
    CHECK(log_escape("x\n[info] stomp-git: forged fetched") == "x\\n[info] stomp-git: forged fetched");
    CHECK(log_escape("\x1b[31mred\x1b[0m") == "\\x1b[31mred\\x1b[0m");
    CHECK(log_escape(std::string("nul\0x", 5)) == "nul\\x00x");
    CHECK(log_escape("\x7f") == "\\x7f");
    CHECK(log_escape("\xc2\x9b" "2J") == "\\u009b2J");  // C1 CSI in UTF-8
    CHECK(log_escape("\xff\xfe") == "\\xff\\xfe");        // not UTF-8
    CHECK(has_control("a\x1b"));
    CHECK(has_control("\xc2\x85"));
    CHECK_FALSE(has_control("ü ✓"));
}

TEST_CASE("strip_control - ANSI sequences and control characters removed from free text")
{
    CHECK(strip_control("\x1b[1;31mred\x1b[0m text", true) == "red text");
    CHECK(strip_control("title\x1b]0;owned\x07 rest", true) == "title rest");
    CHECK(strip_control("osc\x1b]8;;http://x\x1b\\link", true) == "osclink");
    CHECK(strip_control("line 1\r\nline 2\n\tindented", true) == "line 1\nline 2\n\tindented");
    CHECK(strip_control("line 1\nline 2\tx", false) == "line 1 line 2 x");
    CHECK(strip_control(std::string("bell\a nul\0 bs\b", 14), true) == "bell nul bs");
    CHECK(strip_control("c1 \xc2\x9b" "2Jcsi", true) == "c1 csi");
    CHECK(strip_control("\x1b", true).empty());
    CHECK(strip_control("ü ✓", false) == "ü ✓");
}

TEST_CASE("decode - free text is cleaned and control characters in routing fields are refused")
{
    auto e = make_event(commit(sha_a, sha_b), "h");
    // Native: a message with ANSI escapes arrives cleaned, newlines kept.
    auto j = to_json(e);
    j["data"]["message"] = "line\x1b[2J one\nline two";
    j["data"]["author"] = "Dev\x1b[31m\nrepo: x";
    auto f = encode(e, "/topic/t", wire_format::native)[0];
    f.body = j.dump();
    auto in = decode(as_message(f));
    REQUIRE_MESSAGE(in.ev, in.reason);
    CHECK(std::get<commit_event>(in.ev->data).message == "line one\nline two");
    CHECK(std::get<commit_event>(in.ev->data).author == "Dev repo: x");
    // Routing fields: refused, the reason safe to log.
    for (auto [field, value] : {std::pair{"host", "web01\n[info] forged"}, std::pair{"time", "t\x1b[0m"}}) {
        auto k = to_json(e);
        k[field] = value;
        f.body = k.dump();
        auto bad = decode(as_message(f));
        CHECK(bad.what == inbound::kind::invalid);
        CHECK(bad.reason.find("control character") != std::string::npos);
        CHECK_FALSE(has_control(bad.reason));
    }
    auto fe = make_event(fetch_event{"site", "refs/heads/master", sha_a, sha_b, "web01\n[info] x fetched", "normal", 0, true, ""}, "h");
    CHECK(validate(fe).find("control character") != std::string::npos);
    // Legacy: a one-liner with escapes arrives cleaned; a bad subject's echo is escaped.
    stomp::frame n("MESSAGE");
    n.add("subject", "Talking to eventbot");
    n.body = "\x1b[2Jweb01 fetched change\n";
    auto ln = decode(n);
    REQUIRE(ln.ev);
    CHECK(std::get<notice_event>(ln.ev->data).text == "web01 fetched change");
    stomp::frame s("MESSAGE");
    s.add("subject", "[other\x1b[31m] refs/heads/master " + sha_b);
    s.body = legacy::git_hook_commit(commit(sha_a, sha_b)).body;
    auto ls = decode(s);
    CHECK(ls.what == inbound::kind::invalid);
    CHECK_FALSE(has_control(ls.reason));
}

TEST_CASE("event ids - random version 4 UUIDs")
{
    std::set<std::string> seen;
    for (int i = 0; i < 1000; ++i) {
        auto id = new_event_id();
        REQUIRE(id.size() == 36);
        CHECK(id[14] == '4');
        CHECK(std::string("89ab").find(id[19]) != std::string::npos);
        CHECK(id[8] == '-');
        CHECK(id[23] == '-');
        seen.insert(id);
    }
    CHECK(seen.size() == 1000);
}
