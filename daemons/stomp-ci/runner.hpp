#pragma once

// One run on this machine, blocking (the daemon calls it on its worker pool): the repository's
// local mirror made fresh (libgit2, stomp-git's fetch), the exact revision checked out into a
// clean work dir owned by the job user, then each step through bus::runtime::spawn: argv, the
// job's environment only, the job user, setrlimit limits, its own process group ended as a whole
// at the deadline or on cancel, output streamed to the run's log file.

#include "ci.hpp"

#include "bus/runtime/spawn.hpp"

#include <atomic>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

namespace stomp_ci {

/// libgit2 initialised for the whole process, once, and never shut down: runs check out on
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
};

struct run_outcome {
    std::string status;  ///< SUCCESS, FAILURE, TIMEOUT, ABORTED
    std::vector<step_result> steps;
    std::string error;    ///< preparation failure (fetch, checkout), or empty
    double duration_s = 0;
    double prepare_s = 0;  ///< mirror + checkout
    bool cancelled = false;
};

run_outcome run_job(const run_plan& p);

} // namespace stomp_ci
