#include "runner.hpp"

#include "git_ops.hpp"

#include <git2.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

namespace stomp_ci {

namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

namespace {

std::string git_failure(const std::string& what)
{
    const ::git_error* e = git_error_last();
    return what + ": " + (e && e->message ? e->message : "libgit2 error");
}

struct libgit {
    libgit()
    {
        init_git();  // the first job initialises libgit2 for the life of the process
        git_libgit2_init();
    }
    ~libgit() { git_libgit2_shutdown(); }
};

bool has_commit(git_repository* repo, const std::string& commit)
{
    git_oid oid;
    if (git_oid_fromstr(&oid, commit.c_str()) != 0) return false;
    git_commit* c = nullptr;
    if (git_commit_lookup(&c, repo, &oid) != 0) return false;
    git_commit_free(c);
    return true;
}

std::string create_mirror(const fs::path& mirror, const std::string& url)
{
    git_repository* repo = nullptr;
    fs::create_directories(mirror.parent_path());
    const fs::path tmp = mirror.string() + ".new";
    fs::remove_all(tmp);
    if (git_repository_init(&repo, tmp.c_str(), 1) != 0) return git_failure("creating the mirror " + mirror.string());
    git_remote* remote = nullptr;
    int rc = git_remote_create(&remote, repo, "origin", url.c_str());
    std::string err = rc != 0 ? git_failure("origin of " + mirror.string()) : std::string();
    git_remote_free(remote);
    git_repository_free(repo);
    if (!err.empty()) return err;
    std::error_code ec;
    fs::rename(tmp, mirror, ec);  // complete or absent, never half made
    return ec ? "creating the mirror " + mirror.string() + ": " + ec.message() : std::string();
}

std::string step_name(const std::vector<std::string>& argv)
{
    std::string s;
    for (const auto& a : argv) s += (s.empty() ? "" : " ") + a;
    return s.size() > 200 ? s.substr(0, 200) + "…" : s;
}

void log_line(int fd, const std::string& s)
{
    std::string l = "[stomp-ci] " + s + "\n";
    [[maybe_unused]] auto n = ::write(fd, l.data(), l.size());
}

std::string chown_tree(const fs::path& dir, uid_t uid, gid_t gid)
{
    if (::lchown(dir.c_str(), uid, gid) != 0) return "chown " + dir.string() + ": " + std::strerror(errno);
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec))
        if (::lchown(it->path().c_str(), uid, gid) != 0) return "chown " + it->path().string() + ": " + std::strerror(errno);
    return ec ? "walking " + dir.string() + ": " + ec.message() : std::string();
}

bool may_write(const struct ::stat& st, const bus::runtime::identity& who)
{
    if (who.uid == 0) return true;
    if (st.st_uid == who.uid) return (st.st_mode & S_IWUSR) != 0;
    bool in_group = st.st_gid == who.gid;
    for (gid_t g : who.groups) in_group = in_group || g == st.st_gid;
    if (in_group) return (st.st_mode & S_IWGRP) != 0;
    return (st.st_mode & S_IWOTH) != 0;
}

// Copies the open regular file `in` (`size` bytes at most) to a new file `to`.
bool copy_fd(int in, const fs::path& to, std::uint64_t size)
{
    int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (out < 0) return false;
    char buf[65536];
    bool ok = true;
    while (size > 0) {
        ssize_t n = ::read(in, buf, static_cast<std::size_t>(std::min<std::uint64_t>(sizeof buf, size)));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        if (::write(out, buf, static_cast<std::size_t>(n)) != n) {
            ok = false;
            break;
        }
        size -= static_cast<std::uint64_t>(n);
    }
    ::close(out);
    return ok;
}

} // namespace

std::string dataset_writable(const fs::path& path, const bus::runtime::identity& who, std::size_t max_entries)
{
    struct ::stat st {};
    if (::lstat(path.c_str(), &st) != 0) return path.string() + ": " + std::strerror(errno);
    // On a read-only mount (systemd's ProtectSystem=strict, a read-only export): nobody writes
    // what is on that file system; a mount below it is checked by modes.
    struct ::statvfs sv {};
    const bool ro_mount = ::statvfs(path.c_str(), &sv) == 0 && (sv.f_flag & ST_RDONLY);
    const dev_t top_dev = st.st_dev;
    auto writable = [&](const struct ::stat& s) { return !(ro_mount && s.st_dev == top_dev) && may_write(s, who); };
    if (writable(st)) return path.string() + " is writable by " + who.name;
    if (!S_ISDIR(st.st_mode)) return {};
    std::error_code ec;
    std::size_t n = 0;
    for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
        if (++n > max_entries) return path.string() + ": more than " + std::to_string(max_entries) + " entries to check";
        if (::lstat(it->path().c_str(), &st) != 0) return it->path().string() + ": " + std::strerror(errno);
        if (S_ISLNK(st.st_mode)) continue;  // not followed: its target is checked where it is, if a dataset
        if (writable(st)) return it->path().string() + " is writable by " + who.name;
    }
    return ec ? path.string() + ": " + ec.message() : std::string();
}

std::vector<std::string> collect_artifacts(const fs::path& workdir, const std::vector<std::string>& globs,
                                           const fs::path& dest, std::uint64_t max_bytes, std::uint64_t max_files,
                                           std::string& note)
{
    std::vector<std::string> kept;
    if (globs.empty()) return kept;
    std::error_code ec;
    const fs::path root = fs::canonical(workdir, ec);
    if (ec) return kept;
    const std::string inside = root.string() + "/";
    std::uint64_t total = 0;
    // Sorted, so which files fit under the limits does not depend on directory order.
    std::vector<std::string> wanted;
    for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
         !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
        if (!it->is_regular_file(ec) || it->is_symlink(ec)) continue;
        std::string rel = it->path().lexically_relative(root).generic_string();
        if (artifact_wanted(globs, rel)) wanted.push_back(std::move(rel));
        if (wanted.size() > 100000) break;
    }
    std::sort(wanted.begin(), wanted.end());
    for (const auto& rel : wanted) {
        if (kept.size() >= max_files) {
            note = "artifacts: only the first " + std::to_string(max_files) + " files kept (artifacts-max-files)";
            break;
        }
        int fd = ::open((root / rel).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0) continue;
        struct ::stat st {};
        char real[4096];
        const std::string self = "/proc/self/fd/" + std::to_string(fd);
        ssize_t rl = ::readlink(self.c_str(), real, sizeof real - 1);
        bool ok = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && rl > 0 &&
                  std::string_view(real, static_cast<std::size_t>(rl)).starts_with(inside);
        if (ok && total + static_cast<std::uint64_t>(st.st_size) > max_bytes) {
            note = "artifacts: " + rel + " and later files not kept: over " + std::to_string(max_bytes) +
                   " bytes (artifacts-max-size)";
            ::close(fd);
            break;
        }
        if (ok) {
            fs::create_directories((dest / rel).parent_path(), ec);
            if (!ec && copy_fd(fd, dest / rel, static_cast<std::uint64_t>(st.st_size))) {
                total += static_cast<std::uint64_t>(st.st_size);
                kept.push_back(rel);
            }
        }
        ::close(fd);
    }
    return kept;
}

void init_git()
{
    // At the first job, not at start: libgit2's init initialises OpenSSL through libssh2 (1.5 MB
    // of RSS a stomp-ci that never ran a job does not need). A failing init shows as the job's
    // libgit2 error.
    static const int once = git_libgit2_init();
    (void)once;
}

fs::path mirror_path(const fs::path& mirror_dir, std::string_view repo)
{
    std::string n;
    for (char c : repo) {
        if (c == '/') n += "%2F";
        else n += c;
    }
    return mirror_dir / (n + ".git");
}

std::string refresh_mirror(const fs::path& mirror, const std::string& name, const std::string& url,
                           const std::string& commit, bool always)
{
    libgit lg;
    if (!fs::exists(mirror / "HEAD"))
        if (auto e = create_mirror(mirror, url); !e.empty()) return e;
    if (!always) {
        git_repository* repo = nullptr;
        if (git_repository_open_bare(&repo, mirror.c_str()) != 0) return git_failure("opening " + mirror.string());
        bool have = has_commit(repo, commit);
        git_repository_free(repo);
        if (have) return {};
    }
    // stomp-git's fetch (all branches, tags, prune; strict host keys; no secret in errors).
    stomp_git::repo_entry e;
    e.name = name;
    e.path = mirror;
    e.how = stomp_git::mode::normal;
    auto o = stomp_git::fetch_and_publish(e, stomp_git::credentials{});
    return o.ok || o.error.empty() ? std::string() : o.error;
}

std::string checkout(const fs::path& mirror, const std::string& commit, const fs::path& dir)
{
    libgit lg;
    git_repository* repo = nullptr;
    if (git_repository_open_bare(&repo, mirror.c_str()) != 0) return git_failure("opening " + mirror.string());
    std::string err;
    git_oid oid;
    git_commit* c = nullptr;
    git_tree* tree = nullptr;
    if (git_oid_fromstr(&oid, commit.c_str()) != 0) err = "bad commit id";
    else if (git_commit_lookup(&c, repo, &oid) != 0) err = git_failure("commit " + commit);
    else if (git_commit_tree(&tree, c) != 0) err = git_failure("tree of " + commit);
    else {
        git_checkout_options co;
        git_checkout_options_init(&co, GIT_CHECKOUT_OPTIONS_VERSION);
        co.checkout_strategy = GIT_CHECKOUT_FORCE | GIT_CHECKOUT_DONT_UPDATE_INDEX;
        co.target_directory = dir.c_str();
        if (git_checkout_tree(repo, reinterpret_cast<git_object*>(tree), &co) != 0) err = git_failure("checkout of " + commit);
    }
    git_tree_free(tree);
    git_commit_free(c);
    git_repository_free(repo);
    return err;
}

run_outcome run_job(const run_plan& p)
{
    run_outcome out;
    const auto t0 = clock_type::now();
    const job_config& j = *p.job;
    auto secs = [](auto d) { return std::chrono::duration<double>(d).count(); };

    int log = ::open(p.log_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (log < 0) {
        out.error = "log file " + p.log_file.string() + ": " + std::strerror(errno);
        out.status = "FAILURE";
        return out;
    }
    struct closer {
        int fd;
        ~closer() { ::close(fd); }
    } log_guard{log};
    log_line(log, "run " + p.req.run_id + ": " + p.req.repo + " " + p.req.ref + " " + p.req.commit + " job " + j.name);

    // The mirror, then a clean checkout owned by the job user (the mirror stays ours).
    {
        std::unique_lock lk(*p.mirror_lock);
        out.error = refresh_mirror(p.mirror, p.req.repo, p.repo_url, p.req.commit, false);
    }
    std::error_code ec;
    if (out.error.empty()) {
        fs::remove_all(p.workdir, ec);
        fs::create_directories(p.workdir, ec);
        if (ec) out.error = "work dir " + p.workdir.string() + ": " + ec.message();
    }
    const double mirror_s = secs(clock_type::now() - t0);
    if (out.error.empty()) out.error = checkout(p.mirror, p.req.commit, p.workdir);
    if (out.error.empty() && p.user) out.error = chown_tree(p.workdir, p.user->uid, p.user->gid);
    if (out.error.empty()) ::chmod(p.workdir.c_str(), 0700);
    out.prepare_s = secs(clock_type::now() - t0);
    if (!out.error.empty()) {
        log_line(log, "preparation failed: " + out.error);
        out.status = "FAILURE";
        out.duration_s = secs(clock_type::now() - t0);
        return out;
    }
    log_line(log, "checked out " + p.req.commit + " in " + std::to_string(out.prepare_s) + " s (mirror " +
                      std::to_string(mirror_s) + " s)");

    // Datasets: read-only mounts in each step's own mount namespace, or (unprivileged) refused
    // when the job's user could change them.
    std::vector<bus::runtime::read_only_bind> ro;
    for (const auto& d : j.datasets) {
        std::string why;
        if (!fs::exists(d, ec)) why = "dataset " + d + " does not exist";
        else if (!p.isolate_datasets) why = dataset_writable(d, p.job_identity);
        if (!why.empty()) {
            out.error = p.isolate_datasets ? why : why + " (no mount namespace here: datasets must not be writable by the job's user)";
            log_line(log, "refused: " + out.error);
            out.status = "FAILURE";
            out.duration_s = secs(clock_type::now() - t0);
            return out;
        }
        ro.push_back({d, d});
    }
    if (!j.datasets.empty())
        log_line(log, p.isolate_datasets ? "datasets read-only (bind mounts in a private mount namespace)"
                                         : "datasets read-only (not writable by " + p.job_identity.name + ")");

    // A cgroup for the run where the host gives us one; its processes cannot outlive the run.
    std::string cg_why;
    std::optional<run_cgroup> cg =
        p.cgroups ? run_cgroup::create(*p.cgroups, p.req.run_id, j.lim.memory_bytes, j.lim.processes, cg_why) : std::nullopt;
    if (p.cgroups) log_line(log, cg ? "cgroup " + cg->dir().string() : "no cgroup (" + cg_why + "): rlimits only");

    const auto deadline = t0 + j.timeout;
    const auto env = job_environment(j, p.req, p.workdir.string());
    bool stop = false;
    for (const auto& argv0 : j.steps) {
        step_result sr;
        sr.name = step_name(argv0);
        if (stop) {
            out.steps.push_back(std::move(sr));
            continue;
        }
        bus::runtime::spawn_options so;
        so.argv = argv0;
        if (so.argv[0].starts_with("./")) so.argv[0] = (p.workdir / so.argv[0].substr(2)).string();
        so.env = env;
        so.cwd = p.workdir.string();
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now());
        so.timeout = std::max(std::chrono::milliseconds(1), std::min(j.step_timeout, left));
        so.kill_grace = std::chrono::milliseconds(2000);
        so.user = p.user;
        so.die_with_parent = true;
        so.output_fd = log;
        so.cancel = p.cancel;
        if (p.isolate_datasets) so.read_only = ro;
        if (cg) so.cgroup_fd = cg->fd();
        so.limits = {{RLIMIT_CPU, j.lim.cpu_seconds},
                     {RLIMIT_AS, j.lim.memory_bytes},
                     {RLIMIT_NPROC, j.lim.processes},
                     {RLIMIT_FSIZE, j.lim.file_bytes},
                     {RLIMIT_CORE, 0}};
        log_line(log, "step: " + sr.name);
        const auto s0 = clock_type::now();
        auto r = bus::runtime::spawn(so);
        sr.duration_s = secs(clock_type::now() - s0);
        sr.exit_code = r.exit_code;
        if (!r.started) {
            sr.end = step_end::failed;
            log_line(log, r.error);
        } else if (r.cancelled) {
            sr.end = step_end::cancelled;
            out.cancelled = true;
        } else if (r.timed_out) {
            sr.end = step_end::timed_out;
        } else {
            sr.end = r.exit_code == 0 ? step_end::ok : step_end::failed;
        }
        log_line(log, "step " + std::string(sr.end == step_end::ok ? "succeeded" : "failed") + ": " + r.describe() +
                          " after " + std::to_string(sr.duration_s) + " s");
        if (cg && (r.timed_out || r.cancelled)) cg->kill();  // also what left the process group
        if (sr.end != step_end::ok) stop = true;
        out.steps.push_back(std::move(sr));
    }
    out.status = run_status(out.steps, false);
    cg.reset();  // whatever the steps left running ends with the run
    if (!j.artifacts.empty() && !out.cancelled) {
        std::string note;
        out.artifacts = collect_artifacts(p.workdir, j.artifacts, p.artifacts_dir, p.artifacts_max_bytes,
                                          p.artifacts_max_files, note);
        if (!note.empty()) {
            out.warnings.push_back(note);
            log_line(log, note);
        }
        log_line(log, "artifacts kept: " + std::to_string(out.artifacts.size()));
    }
    out.duration_s = secs(clock_type::now() - t0);
    log_line(log, "finished: " + out.status + " in " + std::to_string(out.duration_s) + " s");
    return out;
}

} // namespace stomp_ci
