#pragma once

// What deploy-agent reads from and checks out of a repo's clone, with libgit2 (no git CLI, no
// shell). Blocking: call on the worker pool, or in the checkout worker process.

#include <optional>
#include <string>
#include <vector>

namespace deploy_agent {

struct ref_info {
    std::string name;    ///< short name (v1.2.3, main)
    std::string commit;  ///< peeled commit id
    std::string time;    ///< RFC 3339: tagger time for annotated tags, else the commit time
    long long when = 0;
};

struct ref_list {
    std::vector<ref_info> tags;      ///< newest first
    std::vector<ref_info> branches;  ///< newest first (local branches and origin's)
    std::string error;
};

/// Tags and branches of the clone at `path`, newest first, at most `count` of each (0: all).
ref_list list_refs(const std::string& path, std::size_t count);

/// The commit `refs/tags/<tag>` (or, with `allow_branches`, `refs/heads/<tag>` or
/// `refs/remotes/origin/<tag>`) peels to. Error message in `error` when absent.
std::optional<std::string> resolve_tag(const std::string& path, const std::string& tag, bool allow_branches,
                                       std::string& error);

/// Writes the tree of `commit` into the empty directory `dest` (no .git, no index). Run as the
/// repo's user. Returns an error message, or "".
std::string checkout_tree(const std::string& path, const std::string& commit, const std::string& dest);

} // namespace deploy_agent
