#include "cgroup.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

namespace stomp_ci {

namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p)
{
    std::ifstream f(p);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// One write(2) of `text` to a cgroup control file: the kernel's answer is the result.
bool put(const fs::path& file, const std::string& text)
{
    int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    return ok;
}

bool has_word(const std::string& list, std::string_view w)
{
    std::istringstream in(list);
    for (std::string t; in >> t;)
        if (t == w) return true;
    return false;
}

// Hands `memory` and `pids` (those available) from `dir` to its children.
void delegate(const fs::path& dir)
{
    const auto have = slurp(dir / "cgroup.controllers");
    for (const char* c : {"memory", "pids"})
        if (has_word(have, c)) put(dir / "cgroup.subtree_control", std::string("+") + c);
}

} // namespace

std::optional<std::string> unified_cgroup_path(std::string_view text)
{
    while (!text.empty()) {
        auto nl = text.find('\n');
        auto line = text.substr(0, nl);
        if (line.starts_with("0::/")) return std::string(line.substr(3));
        if (nl == std::string_view::npos) break;
        text.remove_prefix(nl + 1);
    }
    return std::nullopt;
}

std::optional<cgroup_base> setup_cgroups(const fs::path& root, std::string& why)
{
    struct ::statfs sf {};
    if (::statfs(root.c_str(), &sf) != 0) return why = root.string() + ": " + std::strerror(errno), std::nullopt;
    if (sf.f_type != CGROUP2_SUPER_MAGIC) return why = root.string() + " is not a cgroup v2 hierarchy", std::nullopt;
    auto own = unified_cgroup_path(slurp("/proc/self/cgroup"));
    if (!own) return why = "this process is in no cgroup v2", std::nullopt;
    fs::path mine = root / fs::path(*own).relative_path();
    std::error_code ec;
    if (*own != "/") {
        const fs::path daemon = mine / "stomp-ci.daemon";
        fs::create_directory(daemon, ec);
        if (ec || !put(daemon / "cgroup.procs", std::to_string(::getpid())))
            return why = "cannot move into " + daemon.string() + (ec ? ": " + ec.message() : std::string(": ") + std::strerror(errno)),
                   std::nullopt;
    }
    delegate(mine);
    cgroup_base b;
    b.dir = mine / "stomp-ci.runs";
    fs::create_directory(b.dir, ec);
    if (ec) return why = "cannot create " + b.dir.string() + ": " + ec.message(), std::nullopt;
    delegate(b.dir);
    const auto enabled = slurp(b.dir / "cgroup.subtree_control");
    b.memory = has_word(enabled, "memory");
    b.pids = has_word(enabled, "pids");
    return b;
}

std::optional<run_cgroup> run_cgroup::create(const cgroup_base& base, const std::string& name, std::uint64_t memory_max,
                                             std::uint64_t pids_max, std::string& why)
{
    const fs::path dir = base.dir / name;
    std::error_code ec;
    if (fs::exists(dir, ec)) {  // a rerun here, after a crash: whatever is left goes first
        int old = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (old >= 0) {
            run_cgroup stale(dir, old);  // killed and removed as it goes out of scope
        }
    }
    if (!fs::create_directory(dir, ec) || ec) return why = "cannot create " + dir.string() + ": " + ec.message(), std::nullopt;
    int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        why = dir.string() + ": " + std::strerror(errno);
        ::rmdir(dir.c_str());
        return std::nullopt;
    }
    run_cgroup cg(dir, fd);
    if ((base.memory && !put(dir / "memory.max", std::to_string(memory_max))) ||
        (base.pids && !put(dir / "pids.max", std::to_string(pids_max))))
        return why = "cannot set the limits of " + dir.string() + ": " + std::strerror(errno), std::nullopt;
    return std::optional<run_cgroup>(std::move(cg));
}

void run_cgroup::kill() const
{
    if (put(dir_ / "cgroup.kill", "1")) return;
    std::istringstream procs(slurp(dir_ / "cgroup.procs"));
    for (long pid; procs >> pid;)
        if (pid > 0) ::kill(static_cast<pid_t>(pid), SIGKILL);
}

run_cgroup::~run_cgroup()
{
    if (fd_ < 0) return;
    // Killed, then removed once empty (SIGKILL is not instant): bounded, a busy one is left.
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    for (;;) {
        kill();
        if (::rmdir(dir_.c_str()) == 0 || errno != EBUSY || std::chrono::steady_clock::now() > until) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    ::close(fd_);
    fd_ = -1;
}

} // namespace stomp_ci
