#pragma once

// One run on this machine, blocking (the daemon calls it on its worker pool): the repository's
// local mirror made fresh (libgit2, stomp-git's fetch), the exact revision checked out into a
// clean work dir owned by the job user, then each step through bus::runtime::spawn: argv, the
// job's environment only, the job user, setrlimit limits, its own process group ended as a whole
// at the deadline or on cancel, output streamed to the run's log file.

#include "cgroup.hpp"
#include "ci.hpp"

#include "bus/runtime/spawn.hpp"

#include <atomic>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

namespace stomp_ci {

/// libgit2 initialised for the whole process, once (at the first mirror refresh or checkout, not
/// at start), and never shut down: runs check out on
/// several threads at once, and a shutdown of the last user frees libgit2's global state under
/// another thread that is just starting.
void init_git();

/// Where a repository's mirror lives: `/` in the name becomes `%2F` (names have no `%`), so
/// distinct names never share a mirror.
std::filesystem::path mirror_path(const std::filesystem::path& mirror_dir, std::string_view repo);

/// Creates the bare mirror (origin = `url`) when missing, and fetches when `commit` is not in it
/// (or always when `always`). Empty on success, else why not.
std::string refresh_mirror(const std::filesystem::path& mirror, const std::string& name, const std::string& url,
                           const std::string& commit, bool always);

/// Writes the tree of `commit` from `mirror` into `dir` (which must exist and be empty).
std::string checkout(const std::filesystem::path& mirror, const std::string& commit, const std::filesystem::path& dir);

/// Where `who` could modify the dataset `path` (the path itself or anything under it, symlinks
/// not followed; by mode bits: owner, group, other; root always), or why it cannot be checked
/// (missing, more than `max_entries` entries). Empty: `who` can only read it.
std::string dataset_writable(const std::filesystem::path& path, const bus::runtime::identity& who,
                             std::size_t max_entries = 100000);

/// Copies the job's artifacts (regular files whose path relative to `workdir` artifact_wanted()
/// says yes to) into `dest`, keeping their relative paths. Symlinks are never followed (neither
/// listed nor opened: O_NOFOLLOW and the opened file must be inside `workdir`), at most
/// `max_files` files and `max_bytes` bytes in all; past that the rest is skipped and `note` says
/// so. Returns the relative paths copied.
std::vector<std::string> collect_artifacts(const std::filesystem::path& workdir, const std::vector<std::string>& globs,
                                           const std::filesystem::path& dest, std::uint64_t max_bytes,
                                           std::uint64_t max_files, std::string& note);

struct run_plan {
    job_request req;
    const job_config* job = nullptr;  ///< valid while the run lasts (the daemon keeps the config)
    std::string repo_url;
    std::filesystem::path mirror;
    std::filesystem::path workdir;   ///< created here; removed by the caller's cleanup
    std::filesystem::path log_file;
    std::optional<bus::runtime::identity> user;
    std::mutex* mirror_lock = nullptr;  ///< one fetch per mirror at a time
    const std::atomic<bool>* cancel = nullptr;
    /// Datasets: true: read-only bind mounts in each step's private mount namespace; false: the
    /// run is refused when `job_identity` could write a dataset.
    bool isolate_datasets = false;
    bus::runtime::identity job_identity;  ///< who the steps run as (also when not dropping)
    std::filesystem::path artifacts_dir;  ///< where this run's artifacts go (created when there are any)
    std::uint64_t artifacts_max_bytes = 100ull << 20;
    std::uint64_t artifacts_max_files = 1000;
    const cgroup_base* cgroups = nullptr;  ///< set: the run gets a cgroup of its own there
};

struct run_outcome {
    std::string status;  ///< SUCCESS, FAILURE, TIMEOUT, ABORTED
    std::vector<step_result> steps;
    std::string error;    ///< preparation failure (fetch, checkout), or empty
    double duration_s = 0;
    double prepare_s = 0;  ///< mirror + checkout
    bool cancelled = false;
    std::vector<std::string> artifacts;  ///< kept files, relative to the checkout
    std::vector<std::string> warnings;   ///< e.g. artifacts past the limits
};

run_outcome run_job(const run_plan& p);

} // namespace stomp_ci
