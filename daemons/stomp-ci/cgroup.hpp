#pragma once

// A cgroup v2 per run, where the host lets stomp-ci have one (a writable cgroup2 hierarchy, e.g.
// no systemd, or a Delegate=yes unit): memory.max and pids.max from the job's limits (where those
// controllers are available), every process of the run inside it whatever it does to its process
// group or session, and all of them ended with cgroup.kill at a deadline and when the run ends.
// Elsewhere (cgroup v1, a read-only /sys/fs/cgroup as under ProtectControlGroups=yes) runs have
// setrlimit's limits only.

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace stomp_ci {

/// This process's cgroup v2 path from /proc/self/cgroup's text (its "0::/PATH" line), or nullopt.
std::optional<std::string> unified_cgroup_path(std::string_view proc_self_cgroup);

struct cgroup_base {
    std::filesystem::path dir;  ///< runs' cgroups are made here
    bool memory = false;        ///< memory.max can be set
    bool pids = false;          ///< pids.max can be set
};

/// Where runs' cgroups go under the cgroup2 mount `root`: `<our cgroup>/stomp-ci.runs`. When our
/// cgroup is not the root, stomp-ci first moves itself into `<our cgroup>/stomp-ci.daemon`
/// (cgroup v2 lets only a cgroup without processes hand controllers to its children). nullopt and
/// `why` when `root` is not a writable cgroup2 hierarchy.
std::optional<cgroup_base> setup_cgroups(const std::filesystem::path& root, std::string& why);

/// One run's cgroup: made (fresh) on create, killed, emptied and removed on destruction.
class run_cgroup {
public:
    static std::optional<run_cgroup> create(const cgroup_base& base, const std::string& name, std::uint64_t memory_max,
                                            std::uint64_t pids_max, std::string& why);
    run_cgroup(run_cgroup&& o) noexcept : dir_(std::move(o.dir_)), fd_(o.fd_) { o.fd_ = -1; }
    run_cgroup(const run_cgroup&) = delete;
    run_cgroup& operator=(const run_cgroup&) = delete;
    run_cgroup& operator=(run_cgroup&&) = delete;
    ~run_cgroup();
    int fd() const { return fd_; }  ///< for spawn_options::cgroup_fd
    const std::filesystem::path& dir() const { return dir_; }
    /// Every process in it, SIGKILL (cgroup.kill; one by one on kernels before 5.14).
    void kill() const;

private:
    run_cgroup(std::filesystem::path dir, int fd) : dir_(std::move(dir)), fd_(fd) {}
    std::filesystem::path dir_;
    int fd_ = -1;
};

} // namespace stomp_ci
