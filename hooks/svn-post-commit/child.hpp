#pragma once

// Runs a program and captures its output: an argv vector (no shell), the environment given (and
// nothing else), stdin from /dev/null, a deadline after which the child is killed, and a bound on
// what is read. Blocking: for a hook's main thread, not for an I/O thread.

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

namespace svn_hook {

struct child_result {
    bool started = false;     ///< false: `error` says why the program could not be started
    int exit_code = -1;       ///< the exit status, or -1 if it was killed by a signal
    bool timed_out = false;   ///< killed at the deadline
    bool truncated = false;   ///< stdout exceeded the limit: killed, `out` holds the first bytes
    std::string out;
    std::string err;          ///< the first 4 KiB of stderr
    std::string error;
    bool ok() const noexcept { return started && exit_code == 0 && !timed_out; }
};

/// Runs `argv[0]` (an absolute path) with `argv` and exactly `env`.
child_result run_child(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                       std::chrono::milliseconds timeout, std::size_t max_out);

} // namespace svn_hook
