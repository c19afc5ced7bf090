#pragma once

// stomp-git's worker: one fetch job in a process of its own. The daemon starts this binary with
// `--worker REPO -c CONFIG` through spawn() (run_worker, on the service's worker pool); the
// worker opens the per-clone lock as root, drops to the repository's user, fetches and publishes
// per mode (git_ops.hpp), runs post-fetch-command, and writes its result as one JSON line to
// descriptor 3.

#include <chrono>
#include <string>

namespace stomp_git {

/// What one fetch job did, as the daemon reads it back.
struct worker_result {
    bool ok = false;
    bool changed = false;
    std::string error, ref, old_rev, new_rev, detail, output;
    double duration_s = 0;
};

/// Starts a worker (this binary, `--worker`) through spawn(): clean environment, own process
/// group ended at the deadline, dead with the daemon, only its pipes and the result pipe (as
/// descriptor 3) open. Blocking: call it on the worker pool, never on the I/O thread.
worker_result run_worker(const std::string& self, const std::string& config, const std::string& repo,
                         std::chrono::seconds timeout);

/// Whether the command line asks for the internal worker mode (`--worker REPO`).
bool is_worker_mode(int argc, char** argv);
/// The worker mode's main(): parsed on its own (no logger, no daemonizing). Returns the exit status.
int worker_entry(int argc, char** argv);

} // namespace stomp_git
