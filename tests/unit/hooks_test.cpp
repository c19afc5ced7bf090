// The SVN post-commit hook's logic (svnlook output, Project, events, the installed script) and
// the git post-commit variant's ref update.
#include "svn_hook.hpp"
#include "post_receive.hpp"

#include "bus/legacy.hpp"
#include "bus/wire.hpp"

#include <doctest/doctest.h>

using svn_hook::project_of;
using svn_hook::project_of_dir;

TEST_CASE("svn-stomp - arguments are checked before anything runs")
{
    CHECK(svn_hook::check_args("/srv/svn/repo", "42").empty());
    CHECK(svn_hook::check_args("/srv/svn/repo/", "0").empty());
    CHECK_FALSE(svn_hook::check_args("srv/svn/repo", "42").empty());      // relative
    CHECK_FALSE(svn_hook::check_args("", "42").empty());
    CHECK_FALSE(svn_hook::check_args("/", "42").empty());                 // no name
    CHECK_FALSE(svn_hook::check_args("/srv/re\npo", "42").empty());       // control character
    CHECK_FALSE(svn_hook::check_args("/srv/svn/repo", "").empty());
    CHECK_FALSE(svn_hook::check_args("/srv/svn/repo", "4x").empty());
    CHECK_FALSE(svn_hook::check_args("/srv/svn/repo", "-r").empty());
    CHECK_FALSE(svn_hook::check_args("/srv/svn/repo", "$(touch /tmp/x)").empty());
    CHECK_FALSE(svn_hook::check_args("/srv/svn/repo", "1234567890123").empty());  // 13 digits
    CHECK(svn_hook::check_args("/srv/svn/repo", "HEAD").find("revision number") != std::string::npos);
}

TEST_CASE("svn-stomp - repository name is the basename of REPOS")
{
    CHECK(svn_hook::repo_name("/srv/svn/webapp") == "webapp");
    CHECK(svn_hook::repo_name("/srv/svn/webapp/") == "webapp");
    CHECK(svn_hook::repo_name("/srv/svn/webapp//") == "webapp");
    CHECK(svn_hook::repo_name("/webapp") == "webapp");
}

TEST_CASE("svn-stomp - svnlook info output")
{
    // As svnlook 1.14 prints it: author, date, log size, the log, a newline.
    auto i = svn_hook::parse_info("alice\n2026-11-22 05:49:39 +0000 (Sun, 22 Nov 2026)\n15\nfirst\nline two\n\n");
    REQUIRE(i);
    CHECK(i->author == "alice");
    CHECK(i->date == "2026-11-22 05:49:39 +0000 (Sun, 22 Nov 2026)");
    CHECK(i->log == "first\nline two");
    CHECK_FALSE(i->log_truncated);

    // Revision 0: no author, empty log, no newline after it.
    auto r0 = svn_hook::parse_info("\n2026-11-22 05:49:38 +0000 (Sun, 22 Nov 2026)\n0\n");
    REQUIRE(r0);
    CHECK(r0->author.empty());
    CHECK(r0->log.empty());

    // The log is stripped at both ends, as the original's `.strip`; inside, it is kept verbatim.
    auto w = svn_hook::parse_info("bob\nD\n30\n\n  $(touch /tmp/x) `id` \"q\"  \n\n\n");
    REQUIRE(w);
    CHECK(w->log == "$(touch /tmp/x) `id` \"q\"");

    CHECK_FALSE(svn_hook::parse_info(""));
    CHECK_FALSE(svn_hook::parse_info("alice\n2026-11-22\n"));        // no size line
    CHECK_FALSE(svn_hook::parse_info("alice\n2026-11-22\nabc\nlog"));  // size not a number
}

TEST_CASE("svn-stomp - a long log is cut at a character boundary and marked")
{
    std::string log(svn_hook::max_log - 1, 'x');
    log += "\xc3\xa9\xc3\xa9";  // two-byte characters straddling the limit
    auto i = svn_hook::parse_info("a\nd\n" + std::to_string(log.size()) + "\n" + log + "\n");
    REQUIRE(i);
    CHECK(i->log_truncated);
    CHECK(i->log.starts_with(std::string(svn_hook::max_log - 1, 'x') + "\n[log message truncated"));
}

TEST_CASE("svn-stomp - dirs-changed output is bounded")
{
    auto d = svn_hook::parse_dirs("/\nproj-a/\nproj-a/trunk/x/\r\n\ntrunk/\n");
    CHECK(d.dirs == std::vector<std::string>{"/", "proj-a/", "proj-a/trunk/x/", "trunk/"});
    CHECK(d.dropped == 0);

    std::string many;
    for (std::size_t i = 0; i < svn_hook::max_dirs + 5; ++i) many += "p" + std::to_string(i) + "/trunk/\n";
    many += std::string(svn_hook::max_dir + 1, 'y') + "\n";
    auto m = svn_hook::parse_dirs(many);
    CHECK(m.dirs.size() == svn_hook::max_dirs);
    CHECK(m.dropped == 6);
}

TEST_CASE("svn-stomp - Project is the path component before trunk as the original derived it")
{
    // svn-stomp.rb: `line.split('/trunk')[0].split('/').last`.
    CHECK(project_of_dir("proj-a/trunk/x/") == "proj-a");
    CHECK(project_of_dir("proj-a/trunk/") == "proj-a");
    CHECK(project_of_dir("clients/acme/site/trunk/src/lib/") == "site");
    // trunk at the repository root: the repository is the project.
    CHECK(project_of_dir("trunk/") == "");
    CHECK(project_of_dir("trunk/src/") == "");
    // No trunk component: no Project (the original produced garbage there: a stray newline or
    // the last path component, which never matched a stomp-jenkins entry on purpose).
    CHECK(project_of_dir("proj-a/branches/b1/src/") == "");
    CHECK(project_of_dir("proj-a/tags/v1/") == "");
    CHECK(project_of_dir("branches/b1/") == "");
    CHECK(project_of_dir("docs/howto/") == "");
    CHECK(project_of_dir("/") == "");
    // Components, not substrings: trunk-old is not trunk.
    CHECK(project_of_dir("proj-b/trunk-old/x/") == "");
    CHECK(project_of_dir("a/trunkish/b/trunk/") == "b");
}

TEST_CASE("svn-stomp - the last changed directory decides the commit's Project")
{
    CHECK(project_of({"proj-a/trunk/x/"}) == "proj-a");
    CHECK(project_of({"proj-a/trunk/x/", "proj-b/trunk/"}) == "proj-b");  // last wins, as the original
    CHECK(project_of({"proj-a/trunk/", "proj-a/branches/b1/"}) == "");  // the last line decides
    CHECK(project_of({"/", "proj-a/trunk/"}) == "proj-a");
    CHECK(project_of({"/"}) == "");
    CHECK(project_of({}) == "");
}

TEST_CASE("svn-stomp - commit event and the original's legacy message")
{
    svn_hook::revision_info info{"alice", "2026-11-22 05:49:39 +0000 (Sun, 22 Nov 2026)",
                                 "Fix `id` $(x)\nrepo: other"};
    auto c = svn_hook::make_commit("webapp", "7", info, {"proj-a/trunk/x/", "proj-a/trunk/y/"});
    CHECK(c.source == bus::commit_source::svn);
    CHECK(c.svn_project == "proj-a");
    CHECK(c.ref.empty());
    CHECK(svn_hook::report_line(c) == "[webapp] 7 ");

    auto ev = bus::make_event(c, "svn01");
    CHECK(bus::validate(ev).empty());
    auto frames = bus::encode(ev, "/topic/future.git.commits", bus::wire_format::legacy);
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].get("subject") == "[webapp] 7 ");
    CHECK(frames[0].body ==
          "repo: webapp\nrevname: 7\n Author: alice\nDate: 2026-11-22 05:49:39 +0000 (Sun, 22 Nov 2026)\n"
          "Project: proj-a\n\nDirs:\nproj-a/trunk/x/\nproj-a/trunk/y/\n\nFix `id` $(x)\n repo: other\n\n");
    // What a consumer makes of it: the same event; the `repo:` line in the log routes nothing.
    auto back = bus::legacy::parse_commit(frames[0].get("subject"), frames[0].body);
    REQUIRE_MESSAGE(back, back.error);
    CHECK(*back.value == c);

    auto report = bus::encode(bus::make_event(bus::notice_event{svn_hook::report_line(c)}),
                              "/topic/future.events.svnserver", bus::wire_format::legacy);
    REQUIRE(report.size() == 1);
    CHECK(report[0].body == "[webapp] 7 ");
    CHECK(report[0].get("subject") == "Talking to eventbot");
}

TEST_CASE("svn-stomp - the installed post-commit script is one exec line")
{
    auto s = svn_hook::hook_script("/usr/bin/svn-stomp", "/etc/svn-stomp/svn-stomp.yaml");
    CHECK(s == "#!/bin/sh\nexec '/usr/bin/svn-stomp' -c '/etc/svn-stomp/svn-stomp.yaml' \"$@\"\n");
    CHECK(svn_hook::is_hook_script(s));
    auto q = svn_hook::hook_script("/opt/dk it's/svn-stomp", "/etc/a b/$(x).yaml");
    CHECK(q == "#!/bin/sh\nexec '/opt/dk it'\\''s/svn-stomp' -c '/etc/a b/$(x).yaml' \"$@\"\n");
    CHECK(svn_hook::is_hook_script(q));
    CHECK_FALSE(svn_hook::is_hook_script("#!/bin/sh\n/usr/local/bin/notify \"$1\" \"$2\"\n"));
    CHECK_FALSE(svn_hook::is_hook_script(s + "rm -rf /\n"));
    CHECK_FALSE(svn_hook::is_hook_script("#!/bin/sh\nexec '/usr/bin/other' -c '/etc/x' \"$@\"\n"));
}

TEST_CASE("git post-commit - HEAD's branch moved from the parent to the new commit")
{
    const std::string a(40, 'a'), b(40, 'b'), zero(40, '0');
    auto u = hook::post_commit_update("refs/heads/master", b, a);
    REQUIRE(u);
    CHECK(u->ref == "refs/heads/master");
    CHECK(u->old_rev == a);
    CHECK(u->new_rev == b);
    auto root = hook::post_commit_update("refs/heads/feature/x", b, "");
    REQUIRE(root);
    CHECK(root->old_rev == zero);  // a root commit created the branch
    CHECK_FALSE(hook::post_commit_update("HEAD", b, a));
    CHECK_FALSE(hook::post_commit_update("refs/heads/$(touch x)", b, a));
    CHECK_FALSE(hook::post_commit_update("refs/heads/master", "123", a));
    CHECK_FALSE(hook::post_commit_update("refs/heads/master", zero, a));
    CHECK_FALSE(hook::post_commit_update("refs/heads/master", b, "xyz"));

    auto c = hook::make_commit("site", *u, {"Dev <dev@example.com>", "Sun Nov 22 03:00:00 2026 +0100", "Msg\n"});
    auto frames = bus::encode(bus::make_event(c, "ws1"), "/topic/future.git.commits", bus::wire_format::legacy);
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].get("subject") == "[site] refs/heads/master " + b);
}

TEST_CASE("git hook - a long commit message is cut at a character boundary and marked")
{
    hook::ref_update u{std::string(40, '0'), std::string(40, 'a'), "refs/heads/master"};
    // 10 MB of two-byte characters: the cut must not split one.
    std::string huge = "Subject\n\n";
    for (int i = 0; i < 5'000'000; ++i) huge += "\xc3\xa9";
    auto c = hook::make_commit("site", u, {"Dev <d@example.com>", "Sun Nov 22 10:00:00 2026 +0000", huge});
    CHECK(c.ref == "refs/heads/master");
    CHECK(c.new_rev == std::string(40, 'a'));
    CHECK(c.message.size() <= 64 * 1024);
    CHECK(c.message.starts_with("Subject\n\n"));
    CHECK(c.message.ends_with("\n[commit message truncated by stomp-post-receive]"));
    auto body = c.message.substr(0, c.message.size() - hook::truncation_marker.size() - 1);
    CHECK((body.size() - 9) % 2 == 0);  // whole characters only
    auto ev = bus::make_event(c);
    CHECK(bus::validate(ev).empty());  // consumers accept it
    // A short one is left as it is.
    CHECK(hook::make_commit("site", u, {"a", "b", "short\n"}).message == "short");
}

TEST_CASE("git hook - the syslog line names the repository the refs and the outcome")
{
    std::vector<hook::ref_update> u{{std::string(40, '0'), std::string(40, 'a'), "refs/heads/master"},
                                    {std::string(40, 'b'), std::string(40, 'c'), "refs/tags/v1"}};
    CHECK(hook::log_line("site", u, "published") == "[site] published 2 ref update(s): refs/heads/master " +
                                                        std::string(40, 'a') + ", refs/tags/v1 " + std::string(40, 'c'));
    std::vector<hook::ref_update> many(12, u[0]);
    auto line = hook::log_line("site", many, "spooled in /x");
    CHECK(line.starts_with("[site] spooled in /x 12 ref update(s): "));
    CHECK(line.ends_with(", +2 more"));
}

TEST_CASE("svn-stomp - the syslog line names the revision the Project and the outcome but not the log")
{
    svn_hook::revision_info info{"alice", "2026-11-22 10:00:00 +0000 (Sun, 22 Nov 2026)", "secret-ish log text", false};
    auto c = svn_hook::make_commit("webapp", "42", info, {"proj/trunk/src/", "proj/trunk/"});
    auto line = svn_hook::log_line(c, "published");
    CHECK(line == "[webapp] r42 published: project 'proj', 2 dir(s)");
    CHECK(line.find("log text") == std::string::npos);
}

TEST_CASE("git hook - commits read from loose objects as libgit2 and git log describe them")
{
    using namespace std::string_literals;
    // A signed merge commit: continuation lines (gpgsig) are not headers; the first author wins.
    std::string body = "tree 2561a62d4223eb7660d3b6b02b707048382f4019\n"
                       "parent 1111111111111111111111111111111111111111\n"
                       "author Ann  Example <ann@example.org> 1700000000 +0530\n"
                       "committer C <c@x> 1796403454 +0000\n"
                       "gpgsig -----BEGIN PGP SIGNATURE-----\n"
                       " author Mallory <m@x> 1 +0000\n"
                       " -----END PGP SIGNATURE-----\n"
                       "\n"
                       "\n"
                       "subject line\n\nbody\n";
    std::string raw = "commit " + std::to_string(body.size()) + "\0"s + body;
    auto obj = hook::split_object(raw);  // views into raw
    REQUIRE(obj);
    CHECK(obj->type == "commit");
    auto info = hook::parse_commit_object(obj->body);
    REQUIRE(info);
    CHECK(info->author == "Ann  Example <ann@example.org>");
    CHECK(info->date == "Wed Nov 15 03:43:20 2023 +0530");  // git log -1 --format=%ad
    CHECK(info->message == "subject line\n\nbody\n");       // leading newlines dropped, as libgit2
    auto west = hook::parse_commit_object("tree 2561a62d4223eb7660d3b6b02b707048382f4019\n"
                                          "author B <b@x> 1700000000 -0700\n\nm2\n");
    REQUIRE(west);
    CHECK(west->date == "Tue Nov 14 15:13:20 2023 -0700");
    // What the reader cannot vouch for is left to git.
    CHECK(!hook::split_object("commit 5\0abc"s));               // size does not match
    CHECK(!hook::split_object("commit x\0abc"s));
    CHECK(!hook::parse_commit_object("author B <b@x> 1 +0000\n\nm\n"));  // no tree
    CHECK(!hook::parse_commit_object("tree 2561a62d4223eb7660d3b6b02b707048382f4019\nauthor B <b@x>\n\nm\n"));
    std::string tag = "object 2561a62d4223eb7660d3b6b02b707048382f4019\ntype commit\ntag v1\n\nrelease\n";
    CHECK(hook::tag_target(tag) == "2561a62d4223eb7660d3b6b02b707048382f4019");
    CHECK(!hook::tag_target("object ../../etc\ntype commit\n\nx\n"));
}

TEST_CASE("post-commit takes the first parent of the commit git prints")
{
    std::string merge = "tree 2561a62d4223eb7660d3b6b02b707048382f4019\n"
                        "parent 1111111111111111111111111111111111111111\n"
                        "parent 2222222222222222222222222222222222222222\n"
                        "author B <b@x> 1700000000 +0000\n\nparent 3333333333333333333333333333333333333333\n";
    CHECK(hook::first_parent(merge) == "1111111111111111111111111111111111111111");
    // A root commit has none (the branch was created); the message is never read as a header.
    CHECK(!hook::first_parent("tree 2561a62d4223eb7660d3b6b02b707048382f4019\nauthor B <b@x> 1 +0000\n\n"
                              "parent 3333333333333333333333333333333333333333\n"));
    CHECK(!hook::first_parent("tree 2561a62d4223eb7660d3b6b02b707048382f4019\nparent ../../x\n\nm\n"));
}
