#pragma once

// spawn(): the one way a deploykit program starts another. An argv vector (no shell), exactly the
// environment given, its own process group, stdin/stdout/stderr on pipes of their own (never a
// protocol descriptor), bounded capture, a deadline after which the whole group is ended
// (SIGTERM, then SIGKILL), an optional drop to another user (supplementary groups, gid, uid —
// verified), an optional death signal when the caller dies, and no descriptor in the child but
// 0, 1, 2 and those the caller passes explicitly (close_range in the child).
//
// Blocking: it waits for the child. Call it from a worker pool or a hook's main thread, never from
// an I/O thread. Linux only (close_range, pidfd, PR_SET_PDEATHSIG).

#include <atomic>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <sys/types.h>

namespace bus::runtime {

/// A descriptor handed to the child: the caller's `fd` appears there as `as` (>= 3).
struct passed_fd {
    int fd;
    int as;
};

/// Who the child runs as: resolved before the fork (getpwnam/getgrouplist are not safe after it).
struct identity {
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;  ///< supplementary groups, as initgroups() would set them
    std::string name;           ///< for messages
};

/// The user's identity from the password and group databases; std::nullopt if there is no such
/// user.
std::optional<identity> lookup_user(const std::string& user);

/// A resource limit set in the child before exec (soft and hard): RLIMIT_CPU, RLIMIT_AS, ...
struct resource_limit {
    int resource;
    unsigned long long value;
};

/// A path the child sees read-only: `source` bind-mounted on `target` (an existing directory or
/// file; the same path to make it read-only where it is) in a mount namespace of the child's own.
struct read_only_bind {
    std::string source;
    std::string target;
};

struct spawn_options {
    std::vector<std::string> argv;            ///< argv[0]: the program's absolute path
    std::vector<std::string> env;             ///< the child's whole environment ("K=V")
    std::string cwd;                          ///< empty: the caller's working directory
    std::optional<std::string> input;         ///< written to stdin, then closed; none: /dev/null
    std::vector<passed_fd> pass;              ///< extra descriptors the child is given
    std::chrono::milliseconds timeout{60'000};
    std::chrono::milliseconds kill_grace{2'000};  ///< SIGTERM -> SIGKILL
    std::size_t max_out = 1 << 20;            ///< stdout bytes kept
    std::size_t max_err = 64 << 10;           ///< stderr bytes kept
    bool kill_on_overflow = false;            ///< stdout past max_out ends the child (else: discarded)
    std::optional<identity> user;             ///< drop to this user (the caller must be root, or already it)
    /// SIGKILL to the child when the caller dies. Linux ties this to the calling *thread*: call
    /// spawn from a thread that lives as long as the caller cares (a pool thread, the main thread).
    /// A child that changes its own credentials must set it again (setuid clears it).
    bool die_with_parent = false;
    /// setrlimit(2) in the child, before the drop to `user` (hard limits it cannot raise again).
    std::vector<resource_limit> limits;
    /// >= 0: the child's stdout and stderr both go to this descriptor (a log file), nothing is
    /// captured; the wait still ends with the child and still ends its process group.
    int output_fd = -1;
    /// When set and it becomes true, the whole process group is ended as at the deadline
    /// (checked every 100 ms); the result says `cancelled`.
    const std::atomic<bool>* cancel = nullptr;
    /// Non-empty: the child gets a private mount namespace (unshare(CLONE_NEWNS), / made
    /// MS_PRIVATE|MS_REC so nothing propagates back) with each of these bind-mounted read-only
    /// (MS_BIND, then MS_REMOUNT|MS_RDONLY keeping the source's nosuid/nodev/noexec), before the
    /// drop to `user`. Needs CAP_SYS_ADMIN: see mount_namespaces_available().
    std::vector<read_only_bind> read_only;
    /// >= 0: a cgroup v2 directory (O_DIRECTORY descriptor) the child moves itself into before
    /// anything else (writes 0 to its cgroup.procs), so all it starts stays there.
    int cgroup_fd = -1;
};

struct spawn_result {
    bool started = false;       ///< false: `error` says why it could not be started
    int exit_code = -1;         ///< exit status, -1 when ended by a signal
    int signal = 0;             ///< the signal that ended it
    bool timed_out = false;     ///< ended at the deadline
    bool cancelled = false;     ///< ended because `cancel` became true
    bool out_truncated = false; ///< stdout exceeded max_out: `out` holds the first bytes
    bool err_truncated = false;
    std::string out;
    std::string err;
    std::string error;
    bool ok() const noexcept { return started && !timed_out && exit_code == 0; }
    /// "exited 3", "killed by signal 9", "timed out after 5 s", "cannot run /x: No such file ...".
    std::string describe() const;
};

/// Whether this process may give a child a private mount namespace with read-only binds (root
/// with CAP_SYS_ADMIN, no seccomp or LSM refusing unshare/mount): tried once in a throwaway child.
bool mount_namespaces_available();

/// Runs the program and waits for it (and its pipes) within `timeout`. Never throws for the
/// child's failures; std::bad_alloc only.
spawn_result spawn(const spawn_options& opts);

/// Runs a chained hook (the one ours replaced) as its caller would: `argv` with this process's
/// environment and `input` on its stdin, its output (1 MiB of each stream at most) passed on to
/// our stdout/stderr once it ends. A failure to start or a timeout is said on stderr after
/// `who`. Returns its exit status (1 when it could not run or was ended by a signal).
int run_chained_hook(std::vector<std::string> argv, std::string input, std::chrono::milliseconds timeout,
                     std::string_view who);

} // namespace bus::runtime
