#include "bus/dedupe.hpp"
#include "bus/event.hpp"
#include "bus/intake.hpp"
#include "bus/json_fields.hpp"
#include "bus/legacy.hpp"
#include "bus/outbox.hpp"
#include "bus/signing.hpp"
#include "bus/url.hpp"
#include "bus/wire.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <random>

using namespace bus;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

const std::string sha_a(40, 'a');
const std::string sha_b(40, 'b');
const std::string zero(40, '0');

commit_event git_commit()
{
    commit_event c;
    c.source = commit_source::git;
    c.repo = "site";
    c.ref = "refs/heads/master";
    c.old_rev = sha_a;
    c.new_rev = sha_b;
    c.author = "Dev <dev@example.com>";
    c.date = "Sun Nov 22 10:00:00 2026 +0000";
    c.message = "Fix the thing\n\nLonger explanation.";
    return c;
}

std::vector<event> samples()
{
    std::vector<event> v;
    auto add = [&](payload p) {
        event e = make_event(std::move(p), "host1");
        v.push_back(e);
    };
    add(git_commit());
    commit_event svn;
    svn.source = commit_source::svn;
    svn.repo = "svnrepo";
    svn.new_rev = "1234";
    svn.author = "alice";
    svn.date = "2026-11-22 10:00:00 +0000";
    svn.svn_project = "webapp";
    svn.changed_dirs = {"webapp/trunk/src/", "webapp/trunk/doc/"};
    svn.message = "svn log";
    add(svn);
    add(build_event{"Site-Build", 42, "http://jenkins:8080/job/Site-Build/42/", build_phase::completed, "SUCCESS",
                    sha_b, "origin/master", "origin"});
    add(fetch_event{"site", "refs/heads/master", sha_a, sha_b, "web01", "trusting", 0.25, true, ""});
    add(package_event{"foo", "1.0-1", "1.2-3", "bookworm", "main", "amd64", "foo_1.2-3_amd64.deb"});
    add(deploy_request{"site", "v1.2.3", "req-1", {"web01", "web02"}, "alice"});
    add(deploy_result{"site", "v1.2.3", "req-1", "web01", false, "pre-deploy", "exit 1", "v1.2.2"});
    add(heartbeat_event{"web01", "stomp-git", "0.1.0", 3600.5, {{"fetches", 12}, {"failures", 0}}});
    add(notice_event{"web01 fetched change: [site] refs/heads/master " + sha_b});
    return v;
}

stomp::frame as_message(stomp::frame f)
{
    f.command = "MESSAGE";
    f.add("message-id", "m-1");
    return f;
}

} // namespace

TEST_CASE("every event type round-trips through the native form")
{
    for (auto& e : samples()) {
        std::string type(e.type());
        CAPTURE(type);
        auto body = to_native(e);
        auto j = nlohmann::json::parse(body);
        CHECK(j["v"] == 1);
        CHECK(j["type"] == e.type());
        CHECK(j["id"] == e.id);
        auto back = from_native(body);
        REQUIRE_MESSAGE(back, back.error);
        CHECK(*back.value == e);
    }
}

TEST_CASE("native decoding rejects bad input with the field named")
{
    CHECK(from_native("not json").error == "not a JSON object");
    CHECK(from_native("{}").error == "v: missing");
    CHECK(from_native(R"({"v":9,"id":"x","type":"notice","data":{"text":"t"}})").error.find("newer") != std::string::npos);
    CHECK(from_native(R"({"v":1,"type":"notice","data":{"text":"t"}})").error == "id: missing");
    CHECK(from_native(R"({"v":1,"id":"x","type":"bogus","data":{}})").error.find("unknown event type") != std::string::npos);
    CHECK(from_native(R"({"v":1,"id":"x","type":"build","data":{"job":"j","phase":"weird"}})").error ==
          "data.phase: must be queued, started or completed");
    CHECK(from_native(R"({"v":1,"id":"x","type":"commit","data":{"source":"git","repo":"a/../b","ref":"refs/heads/m","new_rev":")" +
                      sha_b + R"("}})")
              .error == "data.repo: invalid repository name");
    CHECK(from_native(R"J({"v":1,"id":"x","type":"commit","data":{"source":"git","repo":"a","ref":"refs/heads/$(touch x)","new_rev":")J" +
                      sha_b + R"("}})")
              .error == "data.ref: invalid ref name");
    CHECK(from_native(R"({"v":1,"id":"x","type":"fetch","data":{"repo":5}})").error == "data.repo: not a string");
    // Unknown fields are ignored: forward compatible.
    CHECK(from_native(R"({"v":1,"id":"x","type":"notice","data":{"text":"t","new":1},"extra":true})"));
}

TEST_CASE("ref names follow git check-ref-format")
{
    for (auto ok : {"refs/heads/master", "refs/heads/feature/x-1", "refs/tags/v1.2.3", "refs/heads/a.b"})
        CHECK_MESSAGE(valid_ref_name(ok), ok);
    for (auto bad : {"", "refs/heads/a..b", "refs/heads/a b", "refs/heads/$(x)", "refs/heads/a;b", "refs/heads/`x`",
                     "refs/heads/x.lock", "refs/heads/.hidden", "/refs/heads/x", "refs/heads/x/", "refs//heads",
                     "refs/heads/a@{1}", "-refs", "refs/heads/a~1", "refs/heads/a^", "refs/heads/a:b", "refs/heads/a\\b"})
        CHECK_MESSAGE(!valid_ref_name(bad), bad);
    CHECK(valid_repo_name("site"));
    CHECK(valid_repo_name("group/project.git"));
    CHECK(!valid_repo_name("../etc"));
    CHECK(!valid_repo_name("/abs"));
    CHECK(!valid_repo_name("a;b"));
    CHECK(valid_revision(sha_a));
    CHECK(valid_revision("1234"));
    CHECK(!valid_revision("xyz"));
    CHECK(is_zero_revision(zero));
}

TEST_CASE("the git hook's legacy commit message / byte for byte / and back")
{
    auto m = legacy::git_hook_commit(git_commit());
    CHECK(m.subject == "[site] refs/heads/master " + sha_b);
    CHECK(m.body == "repo: site\noldrev: " + sha_a + "\nnewrev: " + sha_b + "\nrefname: refs/heads/master\n " + sha_b +
                        "\nAuthor: Dev <dev@example.com>\nDate: Sun Nov 22 10:00:00 2026 +0000\n\nFix the thing\n\n"
                        "Longer explanation.\n\n");
    auto back = legacy::parse_commit(m.subject, m.body);
    REQUIRE_MESSAGE(back, back.error);
    CHECK(*back.value == git_commit());
}

TEST_CASE("the SVN hook's and github-stomp's legacy forms round-trip")
{
    auto s = samples()[1];
    const auto& svn = std::get<commit_event>(s.data);
    auto m = legacy::svn_hook_commit(svn);
    CHECK(m.subject == "[svnrepo] 1234 ");
    CHECK(m.body == "repo: svnrepo\nrevname: 1234\n Author: alice\nDate: 2026-11-22 10:00:00 +0000\nProject: webapp\n\n"
                    "Dirs:\nwebapp/trunk/src/\nwebapp/trunk/doc/\n\nsvn log\n\n");
    auto back = legacy::parse_commit(m.subject, m.body);
    REQUIRE_MESSAGE(back, back.error);
    CHECK(*back.value == svn);

    auto gh = git_commit();
    gh.source = commit_source::github;
    gh.message = "Merge pull request #1";
    auto g = legacy::github_stomp_commit(gh);
    CHECK(g.body == "repo: site\noldrev: " + sha_a + "\nnewrev: " + sha_b + "\nrefname: refs/heads/master\n commit " +
                        sha_b + "\nAuthor: Dev <dev@example.com>\nDate: Sun Nov 22 10:00:00 2026 +0000\n\tMerge pull request #1\n\n");
    auto gback = legacy::parse_commit(g.subject, g.body);
    REQUIRE_MESSAGE(gback, gback.error);
    CHECK(*gback.value == gh);
}

TEST_CASE("captured original bodies parse")
{
    // As post-receive-stomp.rb sent it, for a branch deletion the original crashed on.
    auto del = legacy::parse_commit("[site] refs/heads/old " + zero, "repo: site\noldrev: " + sha_a + "\nnewrev: " + zero +
                                                                         "\nrefname: refs/heads/old\n " + zero +
                                                                         "\nAuthor: \nDate: \n\n\n\n");
    REQUIRE_MESSAGE(del, del.error);
    CHECK(is_zero_revision(del.value->new_rev));
    // svn-stomp.rb, trailing space in the subject.
    auto svn = legacy::parse_commit("[repos] 99 ", "repo: repos\nrevname: 99\n Author: bob\nDate: 2012-04-19 10:00:00 +0100 (Thu, 19 Apr 2012)\nProject: proj/sub\n\nDirs:\nproj/sub/trunk/\n\nlog line\n\n");
    REQUIRE_MESSAGE(svn, svn.error);
    CHECK(svn.value->svn_project == "proj/sub");
    CHECK(svn.value->changed_dirs == std::vector<std::string>{"proj/sub/trunk/"});
    // A body with no subject at all (the keepalive-era hooks) still parses.
    CHECK(legacy::parse_commit("", legacy::git_hook_commit(git_commit()).body));
}

TEST_CASE("a 'repo:' line inside a commit message never re-routes it")
{
    auto c = git_commit();
    c.message = "innocent\nrepo: production-db\nrefname: refs/heads/evil";
    auto m = legacy::git_hook_commit(c);
    auto back = legacy::parse_commit(m.subject, m.body);
    REQUIRE(back);
    CHECK(back.value->repo == "site");
    CHECK(back.value->ref == "refs/heads/master");
    // github-stomp: continuation lines of a message have no tab.
    auto gh = c;
    gh.source = commit_source::github;
    auto g = legacy::github_stomp_commit(gh);
    auto gback = legacy::parse_commit(g.subject, g.body);
    REQUIRE(gback);
    CHECK(gback.value->repo == "site");
    // A body whose first repo: disagrees with the subject is refused (bug 8).
    auto forged = legacy::parse_commit("[other] refs/heads/master " + sha_b, m.body);
    CHECK(!forged);
    CHECK(forged.error.find("disagrees") != std::string::npos);
    // Nothing parseable: clear error, no crash (the original crashed on a repo line without ':').
    CHECK(legacy::parse_commit("", "repo\nfoo").error == "no repo: line");
}

TEST_CASE("jenkins-helper / auto-reprepro and eventbot legacy forms")
{
    build_event b{"Site Build", 7, "http://j/job/x/7/", build_phase::started, "", sha_b, "origin/master", ""};
    auto m = legacy::jenkins_helper(b);
    CHECK(m.subject == "Begin job 7 - [Site Build] origin/master " + sha_b);
    CHECK(m.body == "Repo: origin\nURL: http://j/job/x/7/\nStatus: Start job\n");
    b.phase = build_phase::completed;
    b.status = "FAILURE";
    m = legacy::jenkins_helper(b);
    CHECK(m.subject.starts_with("Fail job 7"));
    CHECK(m.body.ends_with("Status: Cake\n"));
    auto back = legacy::parse_jenkins(m.subject, m.body);
    REQUIRE_MESSAGE(back, back.error);
    CHECK(back.value->job == "Site Build");
    CHECK(back.value->number == 7);
    CHECK(back.value->status == "FAILURE");
    CHECK(back.value->branch == "origin/master");
    CHECK(back.value->commit == sha_b);
    CHECK(!legacy::parse_jenkins("Begin job x - [j] b c", ""));

    auto p = legacy::parse_package("package: foo-utils_1:2.0~rc1-3_amd64.deb\n0\nstdout\n");
    REQUIRE_MESSAGE(p, p.error);
    CHECK(p.value->name == "foo-utils");
    CHECK(p.value->new_version == "1:2.0~rc1-3");
    CHECK(p.value->architecture == "amd64");
    CHECK(!legacy::parse_package("package: ../../etc/passwd\n"));
    CHECK(!legacy::parse_package("package: foo_1_2_amd64.deb\n"));
    CHECK(!legacy::parse_package("package: fo;o_1_amd64.deb\n"));
    auto a = legacy::auto_reprepro(*p.value);
    CHECK(a.subject == "Package update: [foo-utils_1:2.0~rc1-3_amd64.deb]");
    CHECK(a.body == "package: foo-utils_1:2.0~rc1-3_amd64.deb\n");

    auto n = legacy::notice("two\nlines");
    CHECK(n.subject == "Talking to eventbot");
    CHECK(n.body == "two lines");
}

TEST_CASE("wire - legacy / native and both - decode to the same event")
{
    for (auto& e : samples()) {
        std::string type(e.type());
        CAPTURE(type);
        auto both = encode(e, "/topic/t", wire_format::both);
        bool has_legacy = e.type() != "heartbeat" && e.type() != "deploy.request";
        CHECK(both.size() == (has_legacy ? 2u : 1u));
        for (auto& f : both) {
            CHECK(f.get("dk-event-id") == e.id);
            CHECK(f.get("persistent") == "true");
            auto in = decode(as_message(f));
            REQUIRE_MESSAGE(in.what == inbound::kind::event, in.reason);
            CHECK(in.ev->id == e.id);
            if (!in.legacy) CHECK(*in.ev == e);
        }
    }
    // Legacy commits keep every field through the wire.
    auto e = make_event(git_commit(), "h");
    auto legacy_frames = encode(e, "/topic/future.git.commits", wire_format::legacy);
    REQUIRE(legacy_frames.size() == 1);
    CHECK(legacy_frames[0].get("subject") == "[site] refs/heads/master " + sha_b);
    auto in = decode(as_message(legacy_frames[0]));
    REQUIRE(in.ev);
    CHECK(std::get<commit_event>(in.ev->data) == git_commit());
}

TEST_CASE("wire - legacy messages from Ruby producers get ids from the broker message and keepalives are recognised")
{
    stomp::frame f("MESSAGE");
    f.add("destination", "/topic/future.git.commits");
    f.add("message-id", "m-1");
    auto m = legacy::git_hook_commit(git_commit());
    f.add("subject", m.subject);
    f.body = m.body;
    auto a = decode(f);
    auto b = decode(f);
    REQUIRE(a.ev);
    CHECK(a.legacy);
    CHECK(a.broker_id);
    CHECK(a.ev->id.starts_with("legacy-"));
    CHECK(a.ev->id == b.ev->id);  // a redelivery of broker message m-1
    auto other = f;
    other.set("message-id", "m-2");
    CHECK(decode(other).ev->id != a.ev->id);  // the same content in another message
    auto no_mid = f;
    no_mid.erase("message-id");
    CHECK(decode(no_mid).ev->id != decode(no_mid).ev->id);

    stomp::frame k("MESSAGE");
    k.add("destination", "/topic/future.git.commits");
    k.body = "\n";
    CHECK(decode(k).what == inbound::kind::keepalive);

    stomp::frame junk("MESSAGE");
    junk.body = "hello world";
    CHECK(decode(junk).what == inbound::kind::invalid);

    // A native body whose header id disagrees is refused.
    auto nf = encode(make_event(notice_event{"x"}, "h"), "/topic/t", wire_format::native)[0];
    nf.set("dk-event-id", "other");
    CHECK(decode(as_message(nf)).reason.find("disagrees") != std::string::npos);
}

TEST_CASE("signatures - good / unknown key / wrong secret / tampered body / tampered routing header / stale / future")
{
    keyring keys;
    keys.add({"k1", "0123456789abcdef0123"});
    keyring other;
    other.add({"k1", "ffffffffffffffffffff"});
    auto frame = encode(make_event(git_commit(), "h"), "/topic/future.git.commits", wire_format::legacy)[0];
    const std::int64_t now = 1'800'000'000;
    sign(frame, *keys.find("k1"), now);
    CHECK(frame.get("dk-sig-key") == "k1");
    CHECK(frame.get("dk-sig").size() == 67);
    CHECK(frame.get("dk-sig").starts_with("v2:"));
    CHECK(verify(frame, keys, now + 10, 300s) == signature_verdict::ok);
    CHECK(verify(frame, other, now, 300s) == signature_verdict::bad_signature);
    keyring none;
    none.add({"k2", "0123456789abcdef0123"});
    CHECK(verify(frame, none, now, 300s) == signature_verdict::unknown_key);
    auto body = frame;
    body.body.replace(body.body.find("site"), 4, "prod");
    CHECK(verify(body, keys, now, 300s) == signature_verdict::bad_signature);
    auto subj = frame;
    subj.set("subject", "[prod] refs/heads/master " + sha_b);
    CHECK(verify(subj, keys, now, 300s) == signature_verdict::bad_signature);
    auto dest = frame;
    dest.set("destination", "/topic/other");
    CHECK(verify(dest, keys, now, 300s) == signature_verdict::bad_signature);
    auto ts = frame;
    ts.set("dk-sig-ts", std::to_string(now + 1));
    CHECK(verify(ts, keys, now, 300s) == signature_verdict::bad_signature);
    CHECK(verify(frame, keys, now + 301, 300s) == signature_verdict::stale);
    CHECK(verify(frame, keys, now - 301, 300s) == signature_verdict::stale);
    auto bare = frame;
    bare.erase("dk-sig");
    CHECK(verify(bare, keys, now, 300s) == signature_verdict::unsigned_message);
    // A broker adds headers (message-id, subscription): not covered, still valid.
    CHECK(verify(as_message(frame), keys, now, 300s) == signature_verdict::ok);
}

TEST_CASE("intake - signatures required / redeliveries and replays dropped / counters kept")
{
    keyring keys;
    keys.add({"k1", "0123456789abcdef0123"});
    intake in({.require_signatures = true}, keys);
    auto now = std::chrono::system_clock::now();
    auto unix_now = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    auto f = as_message(encode(make_event(git_commit(), "h"), "/topic/t", wire_format::native)[0]);
    auto unsigned_result = in.accept(f, now);
    CHECK(!unsigned_result.process());
    CHECK(in.counters().unsigned_dropped == 1);
    sign(f, *keys.find("k1"), unix_now);
    auto r = in.accept(f, now);
    REQUIRE(r.process());
    in.processed(r.ev->id, now);
    auto replay = in.accept(f, now + 5s);
    CHECK(!replay.process());
    CHECK(replay.decision == intake_decision::duplicate);
    CHECK(replay.reason.find("duplicate") != std::string::npos);
    CHECK(in.counters().duplicates == 1);
    auto forged = f;
    forged.body[10] ^= 1;
    CHECK(!in.accept(forged, now).process());
    CHECK(in.counters().forged == 1);
    CHECK(!in.accept(f, now + 400s).process());  // stale, even though the id was forgotten? no: stale first
    CHECK(in.counters().stale == 1);
    stomp::frame ka("MESSAGE");
    ka.body = "\n";
    CHECK(!in.accept(ka, now).process());
    CHECK(in.counters().keepalives == 1);
}

TEST_CASE("dedupe window is bounded in time and size")
{
    dedupe_window d(3, 10s);
    auto t = std::chrono::system_clock::now();
    d.remember("a", t);
    CHECK(d.seen("a", t + 9s));
    CHECK(!d.seen("a", t + 10s));
    for (auto id : {"1", "2", "3", "4"}) d.remember(id, t);
    CHECK(d.size() == 3);
    CHECK(!d.seen("1", t));
    CHECK(d.seen("4", t));
}

TEST_CASE("key files must be private and well-formed")
{
    auto dir = fs::temp_directory_path() / ("dk-keys-" + new_event_id());
    fs::create_directories(dir);
    auto file = dir / "bus.key";
    std::ofstream(file) << "# deploykit bus keys\nk1 0123456789abcdef0123\n";
    ::chmod(file.c_str(), 0644);
    CHECK_THROWS_WITH_AS(keyring::load_file(file), doctest::Contains("chmod 600"), config_error);
    ::chmod(file.c_str(), 0600);
    auto k = keyring::load_file(file);
    REQUIRE(k.find("k1"));
    CHECK(k.find("k1")->secret == "0123456789abcdef0123");
    std::ofstream(file) << "k1 0123456789abcdef0123\nbroken-line\n";
    CHECK_THROWS_WITH_AS(keyring::load_file(file), doctest::Contains("bus.key:2"), config_error);
    std::ofstream(file) << "k1 short\n";
    CHECK_THROWS_WITH_AS(keyring::load_file(file), doctest::Contains("shorter than 16"), config_error);
    fs::remove_all(dir);
}

TEST_CASE("outbox - the byte bound counts sizes from file names and stats only older names")
{
    auto dir = fs::temp_directory_path() / ("dk-outbox-" + new_event_id());
    {
        outbox box({.dir = dir, .max_bytes = 1000});
        stomp::frame f("SEND");
        f.add("destination", "/queue/q");
        f.body = std::string(300, 'x');
        auto name = box.spool(f);
        auto recorded = outbox::spooled_size(name);
        REQUIRE(recorded);
        CHECK(*recorded == fs::file_size(dir / name));
        CHECK(box.usage().messages == 1);
        CHECK(box.usage().bytes == *recorded);
        // A spool file from an older version has no size in its name: it is stat'ed.
        std::ofstream(dir / "00000000000000000001-00000001-000001.stomp") << std::string(400, 'y');
        CHECK(!outbox::spooled_size("00000000000000000001-00000001-000001.stomp"));
        CHECK(box.usage().messages == 2);
        CHECK(box.usage().bytes == *recorded + 400);
        // 300 + 400 + another ~340 bytes exceeds 1000: refused, nothing written.
        CHECK_THROWS_WITH_AS(box.spool(f), doctest::Contains("bytes"), outbox_error);
        CHECK(box.pending().size() == 2);
        // Names that only look alike are not trusted for a size.
        CHECK(!outbox::spooled_size("1-2-3-x4.stomp"));
        CHECK(!outbox::spooled_size("1-2-3-.stomp"));
        CHECK(!outbox::spooled_size("1-2-3-4-5.stomp"));
        CHECK(outbox::spooled_size("1-2-3-4.stomp") == std::uintmax_t{4});
    }
    fs::remove_all(dir);
}

TEST_CASE("outbox - spooled in order / bounded / corrupt files quarantined / half-written files ignored")
{
    auto dir = fs::temp_directory_path() / ("dk-outbox-" + new_event_id());
    {
        outbox box({.dir = dir, .max_messages = 3, .max_bytes = 4096});
        CHECK((fs::status(dir).permissions() & fs::perms::others_all) == fs::perms::none);
        for (int i = 0; i < 3; ++i) {
            stomp::frame f("SEND");
            f.add("destination", "/queue/q");
            f.add("dk-event-id", "e" + std::to_string(i));
            f.body = "body " + std::to_string(i) + "\nwith: colon\0nul";
            box.spool(f);
        }
        stomp::frame more("SEND");
        more.add("destination", "/queue/q");
        CHECK_THROWS_WITH_AS(box.spool(more), doctest::Contains("spool full"), outbox_error);
        auto files = box.pending();
        REQUIRE(files.size() == 3);
        for (int i = 0; i < 3; ++i) {
            auto f = box.load(files[i]);
            REQUIRE(f);
            CHECK(f->get("dk-event-id") == "e" + std::to_string(i));
            CHECK(f->body == "body " + std::to_string(i) + "\nwith: colon\0nul");
        }
        box.remove(files[0]);
        CHECK(box.pending().size() == 2);
        // A producer killed between write and rename leaves only a dot-file: never delivered.
        std::ofstream(dir / ".00000000000000000000-1-1.tmp") << "SEND\ndestination:/queue/q\n\nhalf";
        CHECK(box.pending().size() == 2);
        // A corrupt spool file is moved aside, not fatal.
        std::ofstream(dir / "00000000000000000000-0-0.stomp") << "garbage";
        auto all = box.pending();
        REQUIRE(all.size() == 3);
        CHECK(!box.load(all[0]));
        CHECK(box.quarantined() == 1);
        CHECK(box.pending().size() == 2);
    }
    {
        outbox big({.dir = dir, .max_bytes = 100});
        stomp::frame f("SEND");
        f.add("destination", "/queue/q");
        f.body = std::string(200, 'x');
        CHECK_THROWS_WITH_AS(big.spool(f), doctest::Contains("bytes"), outbox_error);
        auto l1 = big.try_lock();
        REQUIRE(l1);
        outbox again({.dir = dir});
        CHECK(!again.try_lock());
        l1.reset();
        CHECK(again.try_lock());
    }
    fs::remove_all(dir);
}

TEST_CASE("json_fields names the first bad field and reads absent fields as empty")
{
    auto j = nlohmann::json::parse(R"({"repo": 7, "tag": "v1", "n": 1.5, "list": ["a", 2],
                                       "items": [{"name": "x", "code": "no"}], "nil": null})");
    std::string error;
    bus::json_fields r{j, error, "data."};
    CHECK(r.str("tag") == "v1");
    CHECK(r.str("absent").empty());
    CHECK(r.str("nil").empty());
    CHECK(error.empty());
    CHECK(r.str("tag", 1).empty());
    CHECK(error == "data.tag: too long");
    CHECK(r.str("repo").empty());
    CHECK(error == "data.tag: too long"); // the first error stays
    error.clear();
    CHECK(r.required("nil").empty());
    CHECK(error == "data.nil: missing");
    error.clear();
    CHECK(r.integer("n") == 0);
    CHECK(error == "data.n: not an integer");
    error.clear();
    CHECK(r.number("n") == 1.5);
    CHECK(r.strings("list").empty());
    CHECK(error == "data.list: not a list of strings");
    error.clear();
    CHECK(r.boolean("absent", true));
    auto item = r.item(j["items"][0], "items");
    CHECK(item.str("name") == "x");
    CHECK(item.integer("code") == 0);
    CHECK(error == "data.items[].code: not an integer");
}

TEST_CASE("json_fields reads a bounded list of objects all or nothing")
{
    auto j = nlohmann::json::parse(R"({"ok": [{"n": "a"}, {"n": "b"}], "mixed": [{"n": "a"}, 2], "many": [{}, {}, {}],
                                       "scalar": "x", "bad": [{"n": 5}], "nil": null})");
    std::string error;
    bus::json_fields r{j, error, "data."};
    std::vector<std::string> seen;
    auto collect = [&](bus::json_fields& x) { seen.push_back(x.str("n")); };
    CHECK(r.objects("ok", 2, "things", collect));
    CHECK(seen == std::vector<std::string>{"a", "b"});
    CHECK(r.objects("absent", 2, "things", collect));
    CHECK(r.objects("nil", 2, "things", collect));
    CHECK(seen.size() == 2);
    CHECK(error.empty());
    // A list with one item that is not an object gives none of its items, not the first one.
    CHECK_FALSE(r.objects("mixed", 10, "things", collect));
    CHECK(error == "data.mixed: not a list of things");
    CHECK(seen.size() == 2);
    error.clear();
    CHECK_FALSE(r.objects("many", 2, "things", collect));
    CHECK(error == "data.many: not a list of things");
    error.clear();
    CHECK_FALSE(r.objects("scalar", 2, "things", collect));
    CHECK(error == "data.scalar: not a list of things");
    error.clear();
    CHECK(r.objects("bad", 2, "things", collect));
    CHECK(error == "data.bad[].n: not a string");
}

