#pragma once

// The git post-receive hook's logic, pure: which repository this is, which refs changed, and the
// commit events to publish. Reading commits (loose objects, or git as a child) and sending are the caller's.

#include "bus/event.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace hook {

struct ref_update {
    std::string old_rev;
    std::string new_rev;
    std::string ref;
};

struct parsed_input {
    std::vector<ref_update> updates;
    std::vector<std::string> rejected;  ///< lines refused, with the reason
};

/// Parses post-receive's stdin: one `<old> <new> <ref>` per line. Lines with invalid revisions or
/// ref names (shell metacharacters, `..`) are refused and reported, never published.
parsed_input parse_updates(std::string_view stdin_text);

/// The post-commit hook's single update: `ref` (the branch HEAD is on) moved from `parent` to
/// `head`. A root commit (no parent) created the branch, so old_rev is all zeroes, as git reports
/// a created ref to post-receive. nullopt if the ref name or a revision is not acceptable.
std::optional<ref_update> post_commit_update(std::string_view ref, std::string_view head, std::string_view parent);

/// The repository's name as the original derived it: gitolite's GL_REPO if set, else the
/// basename of the repository path without `.git` (for a non-bare repo, of its work tree).
std::string repo_name(std::string_view gl_repo, std::string_view git_dir);

struct commit_info {
    std::string author;   ///< "Name <email>"
    std::string date;     ///< as git log prints it: "Sun Nov 22 10:00:00 2026 +0000"
    std::string message;
};

/// A git object's type and contents from its loose-object form (after inflating): the header
/// `<type> <size>\0` checked against the contents; nullopt if malformed.
struct loose_object {
    std::string_view type;
    std::string_view body;
};
std::optional<loose_object> split_object(std::string_view inflated);

/// What the event carries from a raw commit object (author "Name <email>", the author date as git
/// log prints it, the message after the header block, leading newlines removed as libgit2 does);
/// nullopt if it is not a well-formed commit.
std::optional<commit_info> parse_commit_object(std::string_view body);

/// The object an annotated tag points at (`object <40 hex>`), if it is a well-formed tag.
std::optional<std::string> tag_target(std::string_view body);

/// A raw commit's first parent (`parent <40 hex>`); nullopt for a root commit or a malformed one.
std::optional<std::string> first_parent(std::string_view body);

/// Bounds on what a commit event carries from the commit (consumers refuse messages over 64 KiB).
inline constexpr std::size_t max_message = 60 * 1024;
inline constexpr std::size_t max_field = 1024;  ///< author, date
inline constexpr std::string_view truncation_marker = "[commit message truncated by stomp-post-receive]";

/// The longest prefix of `s` of at most `max` bytes that does not cut a UTF-8 character.
std::string utf8_prefix(std::string_view s, std::size_t max);

/// The commit event for one ref update; a message over max_message is cut and marked.
bus::commit_event make_commit(const std::string& repo, const ref_update& u, const commit_info& info);

/// The one line a hook call logs (to syslog, as the original did): the repository, what
/// happened (`outcome`: "published", "spooled in DIR", ...) and each ref with its new revision
/// (at most 10 listed, then "+N more"). Never a secret: names and revisions only.
std::string log_line(std::string_view repo, const std::vector<ref_update>& updates, std::string_view outcome);

/// git's default date format for a time and a UTC offset in minutes.
std::string git_date(std::int64_t unix_time, int offset_minutes);

} // namespace hook
