#pragma once

// The SVN post-commit hook's logic, pure: checking the hook's arguments, reading `svnlook`'s
// output, deriving the repository name and the Project as the original svn-stomp.rb did, and the
// commit event to publish. Running svnlook and sending are the caller's.

#include "bus/event.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace svn_hook {

/// Longest log message kept (below the event model's 64 KiB message limit); longer ones are cut
/// at a UTF-8 character boundary and marked.
inline constexpr std::size_t max_log = 60 * 1024;
/// Longest author or date kept.
inline constexpr std::size_t max_line = 1024;
/// At most this many changed directories are listed (a commit touching more is still published).
inline constexpr std::size_t max_dirs = 1000;
/// Longest directory path kept; longer ones are dropped from the list.
inline constexpr std::size_t max_dir = 4096;

/// Why the hook's arguments are refused, or empty if they are fine: REPOS must be an absolute
/// path (no control characters), REV a revision number (1 to 12 digits).
std::string check_args(std::string_view repos, std::string_view rev);

/// The repository's name as the original derived it: the basename of REPOS (trailing slashes
/// ignored, as Ruby's File.basename does).
std::string repo_name(std::string_view repos);

struct revision_info {
    std::string author;
    std::string date;  ///< as svnlook prints it: "2026-11-22 10:00:00 +0000 (Sun, 22 Nov 2026)"
    std::string log;   ///< stripped of surrounding whitespace, as the original did
    bool log_truncated = false;
    bool operator==(const revision_info&) const = default;
};

/// Parses `svnlook info` output: the author, date and log-size lines, then the log. nullopt when
/// the three lines are not there (or the size is not a number). Output cut short by a read limit
/// still parses; the log is then what was read.
std::optional<revision_info> parse_info(std::string_view out);

struct changed_dirs {
    std::vector<std::string> dirs;  ///< as svnlook prints them: "proj/trunk/src/"
    std::size_t dropped = 0;        ///< beyond max_dirs, or longer than max_dir
};

/// Parses `svnlook dirs-changed` output, one directory per line; empty lines are skipped.
changed_dirs parse_dirs(std::string_view out);

/// The Project of one directory: the path component just before a `trunk` component (the
/// original's `line.split('/trunk')[0].split('/').last`), "" when `trunk` is at the repository
/// root (the repository is the project). Without a `trunk` component: the component before
/// `branches` or `tags` ("" at the root), else the first component ("" for "/").
std::string project_of_dir(std::string_view dir);

/// The commit's Project. As the original, the last directory decides; unlike it, a directory with
/// a `trunk` component wins over ones without (so a commit touching `proj/trunk/` and
/// `proj/branches/b/` is proj's, not `b`'s).
std::string project_of(const std::vector<std::string>& dirs);

/// The commit event for revision `rev` of `repo`.
bus::commit_event make_commit(const std::string& repo, const std::string& rev, const revision_info& info,
                              std::vector<std::string> dirs);

/// The one-liner for the report topic: the legacy subject, `[repo] REV ` (trailing space).
std::string report_line(const bus::commit_event& c);

/// The one line a hook call logs (to syslog, as the original did): the repository, the
/// revision, what happened (`outcome`: "published", "spooled in DIR", ...), the Project and the
/// number of changed directories. Never a secret, never the log message.
std::string log_line(const bus::commit_event& c, std::string_view outcome);

/// REPOS/hooks/post-commit as `svn-stomp --install` writes it: svn needs an executable file, so
/// this is the exec line and nothing else. Paths are single-quoted for sh. svn passes
/// `REPOS REV [TXN-NAME]`; all are handed on (the chained hook may want TXN-NAME).
std::string hook_script(std::string_view self, std::string_view config);

/// True if `text` is a script hook_script() wrote (whatever the paths), so reinstalling replaces
/// it instead of chaining to it.
bool is_hook_script(std::string_view text);

/// `s` quoted for sh with single quotes (`'` becomes `'\''`).
std::string sh_quote(std::string_view s);

} // namespace svn_hook
