// stomp-repo's decisions (Debian policy checks, watch matching, newer-than-candidate, coalescing,
// retry schedule, apt command lines and output) and reprepro-stomp's notifier arguments; the
// package.result event's wire forms. Version ordering: stomp-repo-vercmp (the helper that holds
// libapt-pkg for the daemon) against libapt-pkg in this process and `dpkg --compare-versions`.
#include "stomp_repo.hpp"
#include "vercmp.hpp"
#include "repo_config.hpp"
#include "reprepro_stomp.hpp"

#include "bus/runtime/config_reader.hpp"
#include "bus/runtime/spawn.hpp"
#include "bus/wire.hpp"

#include <doctest/doctest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>

using namespace stomp_repo;
using namespace std::chrono_literals;

namespace {

bus::package_event pkg(std::string name, std::string v, std::string codename = "bookworm", std::string component = "main",
                       std::string arch = "amd64")
{
    bus::package_event p;
    p.name = std::move(name);
    p.new_version = std::move(v);
    p.codename = std::move(codename);
    p.component = std::move(component);
    p.architecture = std::move(arch);
    return p;
}

// dpkg's own verdict: -1, 0 or 1.
int dpkg_compare(const std::string& a, const std::string& b)
{
    auto run = [&](const char* op) {
        bus::runtime::spawn_options so;
        so.argv = {"/usr/bin/dpkg", "--compare-versions", a, op, b};
        so.env = {"PATH=/usr/bin:/bin", "LC_ALL=C"};
        so.timeout = 10s;
        auto r = bus::runtime::spawn(so);
        REQUIRE(r.started);
        return r.exit_code == 0;
    };
    if (run("lt")) return -1;
    if (run("eq")) return 0;
    REQUIRE(run("gt"));
    return 1;
}

// The order of `versions` by libapt-pkg in this process (what the helper runs).
version_order apt_order(const std::vector<std::string>& versions)
{
    version_order o;
    auto r = apt_version_ranks(versions);
    for (std::size_t i = 0; i < versions.size(); ++i) o.set(versions[i], r[i]);
    return o;
}

// stomp-repo-vercmp, the built helper: its exit status and stdout for `input`.
bus::runtime::spawn_result run_vercmp(std::string input)
{
    bus::runtime::spawn_options so;
    so.argv = {STOMP_REPO_VERCMP};
    so.env = {"PATH=/usr/bin:/bin", "LC_ALL=C"};
    so.input = std::move(input);
    so.timeout = 10s;
    return bus::runtime::spawn(so);
}

} // namespace

TEST_CASE("stomp-repo - version ordering agrees with dpkg --compare-versions")
{
    const std::vector<std::pair<std::string, std::string>> vectors{
        {"1.0", "1.0"},           {"1.0", "1.1"},           {"1.0-1", "1.0-2"},        {"1.0-10", "1.0-9"},
        {"1:0.1", "2.0"},         {"1:1.0", "1:1.0-0"},     {"2:1.0", "10:0.1"},       {"1.0~rc1", "1.0"},
        {"1.0~rc1", "1.0~rc2"},   {"1.0~~a", "1.0~"},       {"1.0~", "1.0"},           {"1.0+b1", "1.0"},
        {"1.0-1+deb12u1", "1.0-1"}, {"1.0-1~bpo12+1", "1.0-1"}, {"1.2.3", "1.2.10"},   {"1a", "1b"},
        {"1.0a", "1.0+"},         {"0.9-1", "0.10-1"},      {"2.30-0ubuntu1", "2.30-0ubuntu10"},
        {"1.0-1", "1.0-1.1"},     {"1:2.0-1", "1:2.0-1"},   {"0:1.0", "1.0"},          {"9.99", "10.0"},
        {"1.0.0", "1.0"},         {"1-2-3", "1-2-4"},       {"1.0-a", "1.0-A"},
    };
    for (const auto& [a, b] : vectors) {
        CAPTURE(a);
        CAPTURE(b);
        CHECK(apt_compare_versions(a, b) == dpkg_compare(a, b));
        CHECK(apt_compare_versions(b, a) == -dpkg_compare(a, b));
    }
    // The helper the daemon runs: every version of the vectors in one run, ranked; each pair's
    // order from the ranks is libapt-pkg's (and dpkg's).
    std::vector<std::pair<std::string, std::string>> pairs(vectors.begin(), vectors.end());
    auto versions = versions_to_rank(pairs);
    auto r = run_vercmp(vercmp_input(versions));
    REQUIRE(r.ok());
    std::string why;
    auto order = version_order::parse(versions, r.out, why);
    INFO(why);
    REQUIRE(order);
    for (const auto& [a, b] : vectors) {
        CAPTURE(a);
        CAPTURE(b);
        CHECK(order->compare(a, b) == apt_compare_versions(a, b));
        CHECK(order->compare(b, a) == apt_compare_versions(b, a));
    }
}

TEST_CASE("stomp-repo - stomp-repo-vercmp ranks tricky versions as libapt-pkg orders them")
{
    // 1.0~rc1 < 1.0 = 0:1.0 < 1.0-1 < 1.0-1+b1 < 1.0-2 < 1.0-10 < 1:0.9 < 2:0.1~~ < 2:0.1~ < 2:0.1
    std::vector<std::string> v{"2:0.1", "1.0-10", "1.0", "1:0.9", "1.0~rc1", "1.0-2", "0:1.0", "1.0-1+b1", "1.0-1",
                               "2:0.1~", "2:0.1~~"};
    auto r = run_vercmp(vercmp_input(v));
    REQUIRE(r.ok());
    CHECK(r.out == "9\n5\n1\n6\n0\n4\n1\n3\n2\n8\n7\n");
    auto want = apt_version_ranks(v);
    std::string expect;
    for (auto x : want) expect += std::to_string(x) + "\n";
    CHECK(r.out == expect);
    // An empty input is an empty answer.
    auto e = run_vercmp("");
    CHECK(e.ok());
    CHECK(e.out.empty());
}

TEST_CASE("stomp-repo - stomp-repo-vercmp refuses what is not a version list")
{
    for (std::string bad : {std::string("1.0\n\n2.0\n"), std::string("1.0\x01\n"), std::string(300, '1') + "\n"}) {
        auto r = run_vercmp(bad);
        CHECK(r.started);
        CHECK(r.exit_code == 2);
        CHECK(r.out.empty());
        CHECK(r.err.find("line") != std::string::npos);
    }
}

TEST_CASE("stomp-repo - an unreadable helper answer gives no order")
{
    std::vector<std::string> v{"1.0", "2.0"};
    std::string why;
    CHECK(version_order::parse(v, "0\n1\n", why));
    for (std::string_view bad : {"0\n", "0\n1\n2\n", "0\nx\n", "0\n1", "0\n-1\n", "0\n 1\n", ""}) {
        CAPTURE(bad);
        why.clear();
        CHECK_FALSE(version_order::parse(v, bad, why));
        CHECK_FALSE(why.empty());
    }
    // One version string given two different ranks.
    CHECK_FALSE(version_order::parse({"1.0", "1.0"}, "0\n1\n", why));
    // Asking about a version the helper was not given is a programming error, not an answer.
    auto o = version_order::parse(v, "0\n1\n", why);
    REQUIRE(o);
    CHECK(o->compare("1.0", "2.0") < 0);
    CHECK(o->compare("3.0", "3.0") == 0);  // equal strings need no rank
    CHECK_THROWS_AS(o->compare("1.0", "3.0"), std::out_of_range);
    // Only pairs of different strings need the helper.
    CHECK(versions_to_rank({{"1.0", "1.0"}, {"2.0", "2.0"}}).empty());
    CHECK(versions_to_rank({{"1.0", "2.0"}, {"2.0", "1.0"}, {"2.0", "3.0"}}) == std::vector<std::string>{"1.0", "2.0", "3.0"});
}

TEST_CASE("stomp-repo - Debian policy names and versions")
{
    CHECK(valid_package_name("foo"));
    CHECK(valid_package_name("libstdc++6"));
    CHECK(valid_package_name("g++-12"));
    CHECK(valid_package_name("0ad"));
    CHECK_FALSE(valid_package_name("f"));          // one character
    CHECK_FALSE(valid_package_name("Foo"));        // upper case
    CHECK_FALSE(valid_package_name("-foo"));
    CHECK_FALSE(valid_package_name(".foo"));
    CHECK_FALSE(valid_package_name("foo bar"));
    CHECK_FALSE(valid_package_name("foo;rm -rf /"));
    CHECK_FALSE(valid_package_name("$(id)"));
    CHECK_FALSE(valid_package_name("../etc"));
    CHECK_FALSE(valid_package_name("foo/bar"));
    CHECK_FALSE(valid_package_name(std::string(10240, 'a')));

    CHECK(valid_version("1.0"));
    CHECK(valid_version("1:2.30-0ubuntu1~bpo12+1"));
    CHECK(valid_version("2.0-1-2"));     // '-' in upstream with a revision
    CHECK(valid_version("1:1.0:2-3"));   // ':' in upstream with an epoch
    CHECK_FALSE(valid_version(""));
    CHECK_FALSE(valid_version("a1.0"));   // upstream starts with a digit
    CHECK_FALSE(valid_version("1.0-"));   // empty revision
    CHECK_FALSE(valid_version(":1.0"));   // empty epoch
    CHECK_FALSE(valid_version("x:1.0"));
    CHECK_FALSE(valid_version("1.0:2"));  // ':' without an epoch
    CHECK_FALSE(valid_version("1.0 2"));
    CHECK_FALSE(valid_version("1.0;id"));
    CHECK_FALSE(valid_version("1.0/../2"));
    CHECK_FALSE(valid_version("1.0`id`"));
    CHECK_FALSE(valid_version("1" + std::string(10240, '0')));

    CHECK(valid_codename("bookworm"));
    CHECK(valid_codename("stable-updates"));
    CHECK(valid_codename("bookworm_proposed"));
    CHECK_FALSE(valid_codename("../../etc"));
    CHECK_FALSE(valid_codename("a/b"));
    CHECK_FALSE(valid_codename("-o"));
    CHECK_FALSE(valid_codename("x;y"));
    CHECK_FALSE(valid_codename(std::string(10240, 'b')));
    CHECK(valid_component("main"));
    CHECK(valid_component("updates/main"));
    CHECK_FALSE(valid_component("main/../x"));
    CHECK_FALSE(valid_component("/main"));
    CHECK(valid_architecture("amd64"));
    CHECK(valid_architecture("all"));
    CHECK_FALSE(valid_architecture("amd64 i386"));
}

TEST_CASE("stomp-repo - hostile events are refused before anything else")
{
    std::vector<watch> w{{"*", "", "", ""}};
    auto refused = [&](bus::package_event p) { return decide(w, p, std::nullopt).v == verdict::invalid; };
    CHECK(refused(pkg("foo;touch /tmp/x", "1.0")));
    CHECK(refused(pkg("foo", "1.0$(reboot)")));
    CHECK(refused(pkg("foo", "1.0", "../../etc")));
    CHECK(refused(pkg("foo", "1.0", "bookworm", "main/../../x")));
    CHECK(refused(pkg("foo", "1.0", "bookworm", "main", "amd64|sh")));
    CHECK(refused(pkg(std::string(10240, 'a'), "1.0")));
    CHECK(refused(pkg("foo", "1." + std::string(10240, '1'))));
    CHECK(refused(pkg("-oAPT::Foo=1", "1.0")));
    CHECK(decide(w, pkg("foo", "1.0"), std::nullopt).v == verdict::update);
}

TEST_CASE("stomp-repo - watch patterns and newer-than-candidate")
{
    std::vector<watch> w{{"site-*", "bookworm", "", ""}, {"nginx", "", "main", "amd64"}};
    CHECK(decide(w, pkg("site-web", "1.0"), std::nullopt).v == verdict::update);
    CHECK(decide(w, pkg("site-web", "1.0", "bullseye"), std::nullopt).v == verdict::unwatched);
    CHECK(decide(w, pkg("other", "1.0"), std::nullopt).v == verdict::unwatched);
    CHECK(decide(w, pkg("nginx", "1.0", "trixie", "main", "amd64"), std::nullopt).v == verdict::update);
    CHECK(decide(w, pkg("nginx", "1.0", "trixie", "main", "arm64"), std::nullopt).v == verdict::unwatched);
    // Legacy events carry no codename: a codename pattern does not match them.
    CHECK(decide(w, pkg("site-web", "1.0", ""), std::nullopt).v == verdict::unwatched);

    auto o = apt_order({"1.0-2", "1.0-1", "1:0.1", "1.1~rc1", "1.1"});
    CHECK(decide(w, pkg("site-web", "1.0-2"), std::string("1.0-1"), o).v == verdict::update);
    CHECK(decide(w, pkg("site-web", "1.0-1"), std::string("1.0-1")).v == verdict::not_newer);  // no order needed
    CHECK(decide(w, pkg("site-web", "1.0-1"), std::string("1:0.1"), o).v == verdict::not_newer);   // epoch
    CHECK(decide(w, pkg("site-web", "1.1~rc1"), std::string("1.1"), o).v == verdict::not_newer);   // tilde
    CHECK(decide(w, pkg("site-web", "1.1"), std::string("1.1~rc1"), o).v == verdict::update);
    CHECK(decide(w, pkg("site-web", "1.0"), std::string("")).v == verdict::update);  // (none)

    auto removal = pkg("site-web", "");
    removal.old_version = "1.0";
    CHECK(decide(w, removal, std::nullopt).v == verdict::removal);
}

TEST_CASE("stomp-repo - a burst coalesces into one update")
{
    coalescer c(200ms, 1000ms);
    auto t0 = coalescer::clock::time_point{} + 10s;
    CHECK_FALSE(c.due());
    c.add({"e1", 1, pkg("site-web", "1.0-1")}, t0);
    for (int i = 1; i < 40; ++i)
        c.add({"e" + std::to_string(i + 1), static_cast<std::uint64_t>(i + 1),
               pkg(i % 2 ? "site-web" : "site-api", "1.0-" + std::to_string(i + 1))},
              t0 + std::chrono::milliseconds(i * 10));
    CHECK_FALSE(c.take(t0 + 500ms));  // the window is still open (last event + 200 ms)
    auto b = c.take(t0 + 600ms);
    REQUIRE(b);
    CHECK(b->items.size() == 40);
    auto pairs = batch_pairs(b->items);
    CHECK(pairs.size() == 38);  // every later version of a package against its first
    auto wanted = highest_versions(b->items, apt_order(versions_to_rank(pairs)));
    CHECK(wanted.size() == 2);
    CHECK(wanted["site-web"] == "1.0-40");
    CHECK(wanted["site-api"] == "1.0-39");
    CHECK(c.waiting() == 0);
    CHECK_FALSE(c.take(t0 + 10s));
    // A window never stays open longer than max_wait, however steady the stream.
    coalescer s(200ms, 1000ms);
    for (int i = 0; i < 100; ++i) s.add({"x", 1, pkg("site-web", "1.0")}, t0 + std::chrono::milliseconds(i * 100));
    CHECK(*s.due() == t0 + 1000ms);
    // Versions are compared the Debian way: 1.0-10 is newer than 1.0-9.
    coalescer v(0ms, 0ms);
    v.add({"a", 1, pkg("foo", "1.0-10")}, t0);
    v.add({"b", 2, pkg("foo", "1.0-9")}, t0);
    auto vb = v.take(t0);
    REQUIRE(vb);
    CHECK(highest_versions(vb->items, apt_order({"1.0-10", "1.0-9"}))["foo"] == "1.0-10");
    // One version per package: no order needed.
    coalescer one(0ms, 0ms);
    one.add({"a", 1, pkg("foo", "1.0")}, t0);
    one.add({"b", 2, pkg("foo", "1.0")}, t0);
    one.add({"c", 3, pkg("bar", "2.0")}, t0);
    auto ob = one.take(t0);
    REQUIRE(ob);
    CHECK(batch_pairs(ob->items).empty());
    CHECK(highest_versions(ob->items, version_order{}).size() == 2);
}

TEST_CASE("stomp-repo - retry schedule is bounded and jittered")
{
    retry_policy p{.retries = 3, .initial = 1000ms, .max = 3000ms};
    CHECK(*retry_delay(p, 1, 1.0) == 1000ms);
    CHECK(*retry_delay(p, 1, 0.0) == 500ms);
    CHECK(*retry_delay(p, 2, 1.0) == 2000ms);
    CHECK(*retry_delay(p, 3, 1.0) == 3000ms);  // capped
    CHECK_FALSE(retry_delay(p, 4, 1.0));       // used up
    CHECK_FALSE(retry_delay(p, 0, 1.0));
    retry_policy none{.retries = 0};
    CHECK_FALSE(retry_delay(none, 1, 0.5));
}

TEST_CASE("stomp-repo - apt command lines and environment")
{
    apt_settings s;
    s.sources_list = "/etc/apt/sources.list.d/site.list";
    s.options = {"Dir::State=/tmp/x/state", "Dir::Cache=/tmp/x/cache"};
    s.apt_config = "/tmp/x/apt.conf";
    s.lock_timeout = 30s;
    auto a = update_argv(s);
    const std::vector<std::string> want{"/usr/bin/apt-get", "-q", "-o", "Dir::State=/tmp/x/state", "-o", "Dir::Cache=/tmp/x/cache",
                                        "-o", "Dir::Etc::sourcelist=/etc/apt/sources.list.d/site.list", "-o",
                                        "Dir::Etc::sourceparts=-", "-o", "APT::Get::List-Cleanup=0", "-o",
                                        "DPkg::Lock::Timeout=30", "update"};
    CHECK(a == want);
    auto p = policy_argv(s, {"foo", "bar;id", "baz"});
    CHECK(p.back() == "baz");
    CHECK(std::find(p.begin(), p.end(), "bar;id") == p.end());  // never an unvalidated name
    auto env = apt_env(s);
    CHECK(std::find(env.begin(), env.end(), "APT_CONFIG=/tmp/x/apt.conf") != env.end());
    CHECK(std::find(env.begin(), env.end(), "LC_ALL=C") != env.end());
    CHECK(valid_apt_option("Acquire::Languages=none"));
    CHECK_FALSE(valid_apt_option("=x"));
    CHECK_FALSE(valid_apt_option("novalue"));
    CHECK_FALSE(valid_apt_option("A B=c"));
    CHECK_FALSE(valid_apt_option("A=b\nc"));
}

TEST_CASE("stomp-repo - apt output is read")
{
    CHECK(classify_update(0, "Reading package lists...\n", "") == update_outcome::ok);
    CHECK(classify_update(100, "", "E: Could not get lock /x/lists/lock. It is held by process 7 (python3)\n"
                                   "E: Unable to lock directory /x/lists/\n") == update_outcome::lock_busy);
    CHECK(classify_update(100, "", "E: The repository 'file:/x bookworm Release' does not have a Release file.\n") ==
          update_outcome::failed);
    CHECK(classify_update(0, "", "W: Failed to fetch file:/x/dists/bookworm/InRelease  File not found\n") ==
          update_outcome::failed);
    CHECK(first_error("Get:1 x\n", "W: a\nE: b\n") == "W: a");

    auto m = parse_policy("foo:\n  Installed: (none)\n  Candidate: 1.0-2\n  Version table:\n     1.0-2 500\n"
                          "        500 file:/x bookworm/main amd64 Packages\n"
                          "bar:\n  Installed: 1:2.0\n  Candidate: 1:2.1\n  Version table:\n"
                          "baz:i386:\n  Installed: (none)\n  Candidate: (none)\n  Version table:\n");
    CHECK(m.size() == 3);
    CHECK(m["foo"].installed.empty());
    CHECK(m["foo"].candidate == "1.0-2");
    CHECK(m["bar"].installed == "1:2.0");
    CHECK(m["bar"].candidate == "1:2.1");
    CHECK(m["baz:i386"].candidate.empty());
}

TEST_CASE("stomp-repo - config errors name file line and key")
{
    auto dir = std::filesystem::temp_directory_path() / ("stomp-repo-cfg-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    auto write = [&](const std::string& text) {
        std::ofstream(dir / "c.yaml") << text;
        return (dir / "c.yaml").string();
    };
    auto c = load_config(write("rserver: stomp://127.0.0.1:61613\nwatch:\n  - package: 'site-*'\n    codename: bookworm\n"
                               "  - package: nginx\nsources-list: /etc/apt/sources.list.d/site.list\n"
                               "apt-options: ['Dir::State=/tmp/s']\nlock-timeout: 30s\n"));
    CHECK(c.watches.size() == 2);
    CHECK(c.watches[0].codename == "bookworm");
    CHECK(c.apt.lock_timeout == 30s);
    CHECK(c.listen_topic == "future.package.updates");
    auto plain = load_config(write("rserver: stomp://127.0.0.1:61613\nwatch: [foo, 'lib*']\n"));
    CHECK(plain.watches.size() == 2);
    auto error_of = [&](const std::string& text) -> std::string {
        try {
            load_config(write(text));
        } catch (const bus::config_error& e) {
            return e.what();
        }
        return "";
    };
    auto e = error_of("rserver: stomp://127.0.0.1:61613\nwatch: [foo]\nsources-lst: /x\n");
    CHECK(e.find("c.yaml:3") != std::string::npos);
    CHECK(e.find("did you mean `sources-list`") != std::string::npos);
    e = error_of("rserver: stomp://127.0.0.1:61613\nwatch: [foo]\napt-options: ['-oFoo']\n");
    CHECK(e.find("apt-options") != std::string::npos);
    e = error_of("rserver: stomp://127.0.0.1:61613\n");
    CHECK(e.find("watch") != std::string::npos);
    e = error_of("rserver: stomp://127.0.0.1:61613\nwatch:\n  - codename: bookworm\n");
    CHECK(e.find("watch[0].package") != std::string::npos);
    std::filesystem::remove_all(dir);
}

TEST_CASE("reprepro-stomp - notifier arguments")
{
    using reprepro_stomp::parse_arguments;
    auto a = parse_arguments({"add", "bookworm", "deb", "main", "amd64", "foo", "1.2-3", "--",
                              "pool/main/f/foo/foo_1.2-3_amd64.deb"},
                             false);
    REQUIRE(a.value);
    auto e = reprepro_stomp::to_event(*a.value);
    CHECK(e.name == "foo");
    CHECK(e.new_version == "1.2-3");
    CHECK(e.old_version.empty());
    CHECK(e.codename == "bookworm");
    CHECK(e.component == "main");
    CHECK(e.architecture == "amd64");
    CHECK(e.file == "foo_1.2-3_amd64.deb");

    auto r = parse_arguments({"replace", "bookworm", "deb", "main", "amd64", "foo", "1.3-1", "1.2-3", "--",
                              "pool/main/f/foo/foo_1.3-1_amd64.deb", "--", "pool/main/f/foo/foo_1.2-3_amd64.deb"},
                             false);
    REQUIRE(r.value);
    CHECK(r.value->new_version == "1.3-1");
    CHECK(r.value->old_version == "1.2-3");
    CHECK(r.value->old_files == std::vector<std::string>{"pool/main/f/foo/foo_1.2-3_amd64.deb"});

    auto rm = parse_arguments({"remove", "bookworm", "deb", "main", "amd64", "foo", "1.2-3", "--", "pool/x/foo_1.2-3_amd64.deb"}, false);
    REQUIRE(rm.value);
    CHECK(rm.value->new_version.empty());
    CHECK(rm.value->old_version == "1.2-3");
    CHECK(reprepro_stomp::to_event(*rm.value).file == "foo_1.2-3_amd64.deb");

    auto dsc = parse_arguments({"add", "bookworm", "dsc", "main", "source", "foo", "1.2-3", "--", "pool/foo_1.2-3.dsc"}, false);
    REQUIRE(dsc.value);
    CHECK(dsc.value->architecture == "source");

    auto ch = parse_arguments({"accepted", "bookworm", "foo", "1.2-3", "foo_1.2-3_amd64.changes", "pool/a.deb"}, true);
    REQUIRE(ch.value);
    CHECK(ch.value->name == "foo");
    CHECK(ch.value->new_version == "1.2-3");
    CHECK(reprepro_stomp::to_event(*ch.value).file == "foo_1.2-3_amd64.changes");

    CHECK_FALSE(parse_arguments({"add", "bookworm", "deb"}, false).value);
    CHECK_FALSE(parse_arguments({"frobnicate", "bookworm", "deb", "main", "amd64", "foo", "1", "--"}, false).value);
    CHECK_FALSE(parse_arguments({"replace", "bookworm", "deb", "main", "amd64", "foo", "1", "--"}, false).value);

    // rerunnotifiers (info) and manual calls publish at once; reprepro's own calls wait for the export.
    CHECK(reprepro_stomp::waits_for_export(*a.value, "includedeb", "/srv/repo/dists"));
    CHECK_FALSE(reprepro_stomp::waits_for_export(*a.value, "rerunnotifiers", "/srv/repo/dists"));
    CHECK_FALSE(reprepro_stomp::waits_for_export(*a.value, "includedeb", ""));
    auto info = parse_arguments({"info", "bookworm", "deb", "main", "amd64", "foo", "1.2-3", "--", "pool/x.deb"}, false);
    REQUIRE(info.value);
    CHECK_FALSE(reprepro_stomp::waits_for_export(*info.value, "", "/srv/repo/dists"));
}

TEST_CASE("package.result - native round trip and the original-style one-liner")
{
    bus::package_result r;
    r.host = "web01";
    r.outcome = "updated";
    r.duration_s = 0.4;
    r.attempt = 1;
    r.upgrade_pending = true;
    r.packages = {{"foo", "1.2-3", "1.2-3", "1.0-1"}};
    r.events = {"3f2a0000-0000-4000-8000-000000000001"};
    auto ev = bus::make_event(r, "web01");
    CHECK(ev.type() == "package.result");
    auto back = bus::from_native(bus::to_native(ev));
    REQUIRE(back);
    CHECK(*back.value == ev);
    auto frames = bus::encode(ev, "/topic/future.events.stomp-repo", bus::wire_format::legacy);
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].body.find("web01  updated package lists: foo 1.2-3 (upgrade pending)") != std::string::npos);

    bus::package_result bad = r;
    bad.packages[0].candidate = "1.0\x1b[31m";
    CHECK_FALSE(bus::validate(bus::make_event(bad, "web01")).empty());
    auto hostile = bus::from_native(R"({"v":1,"id":"x1","type":"package.result","host":"h","time":"t","data":{"host":"h","packages":[{"name":"a\u0007"}]}})");
    CHECK_FALSE(hostile);
    auto notlist = bus::from_native(R"({"v":1,"id":"x1","type":"package.result","host":"h","time":"t","data":{"host":"h","packages":{"name":"a"}}})");
    CHECK_FALSE(notlist);
}
