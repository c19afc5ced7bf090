#pragma once

// What a stomp-git worker does to one repository, with libgit2 (no git CLI, no shell): fetch
// (all branches, tags, prune) and publish per mode. Runs in the worker process, after it dropped
// to the repository owner's user.

#include "config.hpp"

#include <string>

namespace stomp_git {

struct outcome {
    bool ok = false;
    std::string error;
    std::string ref;      ///< the published/checked branch ref (refs/remotes/origin/<branch>)
    std::string old_rev;
    std::string new_rev;
    std::string detail;   ///< what was published where
};

struct credentials {
    std::string ssh_key;
    std::string https_user;
    std::string https_token;
};

/// Fetches `e.path`'s origin and publishes per `e.how`. Never throws.
outcome fetch_and_publish(const repo_entry& e, const credentials& creds);

/// The directory name a puppetmaster branch is published to: [a-z0-9_] only, as Puppet
/// environment names must be (`feature/x-1` -> `feature_x_1`).
std::string environment_name(std::string_view branch);

} // namespace stomp_git
