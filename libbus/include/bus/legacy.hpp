#pragma once

// The original future-deploykit wire formats, both directions, byte-compatible with its Ruby
// producers and consumers (../shared/reference/original.md §3, §4). Pure functions.

#include "bus/event.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace bus::legacy {

/// A legacy message: the `subject` header and the body.
struct message {
    std::string subject;
    std::string body;
    bool operator==(const message&) const = default;
};

/// `subject` of the original's eventbot one-liners.
inline constexpr std::string_view eventbot_subject = "Talking to eventbot";

/// The subject grammar `[<repo>] <word> <word>` (`[repo] refname newrev` from the git hook and
/// github-stomp, `[repo] rev ` from the SVN hook).
struct subject_parts {
    std::string repo;
    std::string first;   ///< refname, or the SVN revision
    std::string second;  ///< newrev; empty for SVN
};
std::optional<subject_parts> parse_subject(std::string_view subject);

// ---- producers ----

/// post-receive hook: `[repo] ref new` and `repo:/oldrev:/newrev:/refname:` lines, then
/// ` <newrev>`, `Author:`, `Date:`, a blank line and the commit message.
message git_hook_commit(const commit_event& c);
/// svn-stomp: `[repo] rev ` and `repo:/revname:` lines, ` Author:`, `Date:`, `Project:`, then
/// `Dirs:` and the log.
message svn_hook_commit(const commit_event& c);
/// github-stomp: `[name] ref after`, the four key lines, then one ` commit <id>` block.
message github_stomp_commit(const commit_event& c);
/// The form the original producer of `c.source` used.
message commit_message(const commit_event& c);

/// jenkins-helper: `<Begin|Complete|Fail> job N - [JOB] BRANCH COMMIT` and
/// `Repo:/URL:/Status:` lines. (`Repo:` is the branch up to its first `/`, as the original.)
message jenkins_helper(const build_event& b);
/// auto-reprepro: `Package update: [<file>]` and `package: <file>` plus the import's status.
message auto_reprepro(const package_event& p, std::string_view status = {});
/// eventbot one-liner (newlines become spaces).
message notice(std::string_view text);

// ---- consumers ----

/// Parses a commit message of any of the three producers. Only the header block (up to the
/// first blank line) is read for keys, and the *first* occurrence of a routing key wins, so a
/// `repo: other` line inside a commit message can never re-route it (the original's bug 10).
/// A subject that disagrees with the body is an error (bug 8).
decoded<commit_event> parse_commit(std::string_view subject, std::string_view body);
/// jenkins-helper's subject and body.
decoded<build_event> parse_jenkins(std::string_view subject, std::string_view body);
/// auto-reprepro's `package: name_version_arch.deb` body.
decoded<package_event> parse_package(std::string_view body);

} // namespace bus::legacy
