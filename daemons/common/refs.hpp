#pragma once

// Which refs a job wants, as every commit consumer decides it (stomp-jenkins, stomp-ci): fnmatch
// globs on branch and tag names and the original's `ignore_refs` regular expression (Ruby syntax,
// its \A and \z anchors translated). Pure, no I/O.

#include <memory>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

namespace deploykit::refs {

/// True when `name` matches the glob `pattern` (`*`, `?`, `[…]`, as fnmatch without flags).
bool glob_match(std::string_view pattern, std::string_view name);

/// Ruby-only anchors in an `ignore_refs` regex: `\\A` → `^`, `\\z`/`\\Z` → `$` (std::regex
/// ECMAScript has no such escapes; without multiline, ^ and $ are the string's ends).
std::string translate_ruby_anchors(std::string_view re);

/// `ignore_refs` compiled (ECMAScript after translate_ruby_anchors); throws std::regex_error.
std::shared_ptr<const std::regex> compile_ignore_refs(std::string_view re);

/// A job's ref filter: `branches` globs (on refs/heads/X's X), `tags` globs (on refs/tags/X's
/// X), `ignore` (the whole ref). No branches and no tags: every branch (no tags).
struct filter {
    std::vector<std::string> branches;
    std::vector<std::string> tags;
    std::shared_ptr<const std::regex> ignore;
};

/// Empty when `ref` passes `f`; otherwise why not (for logs).
std::string rejects(const filter& f, std::string_view ref);

} // namespace deploykit::refs
