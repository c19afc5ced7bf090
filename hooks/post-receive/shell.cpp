#include "shell.hpp"

#include "bus/outbox.hpp"
#include "bus/runtime/hook.hpp"
#include "bus/runtime/log.hpp"
#include "bus/runtime/spawn.hpp"

#include <spdlog/spdlog.h>
#include <zlib.h>

#include <cstdlib>
#include <exception>
#include <optional>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>

#include <unistd.h>

namespace fs = std::filesystem;

namespace hook {

namespace {

std::string env(const char* k)
{
    const char* v = std::getenv(k);
    return v ? v : "";
}

// A loose object of `objects` (git_dir/objects or GIT_OBJECT_DIRECTORY), inflated; nullopt if
// it is not loose (packed, in an alternate) or not readable. Bounded: commits and tags are small,
// and what is larger is left to git.
std::optional<std::string> read_loose(const fs::path& objects, const std::string& rev)
{
    if (rev.size() != 40) return std::nullopt;
    std::ifstream in(objects / rev.substr(0, 2) / rev.substr(2), std::ios::binary);
    if (!in) return std::nullopt;
    constexpr std::size_t max_object = 4 * 1024 * 1024;
    std::string packed;
    char buf[16384];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
        packed.append(buf, static_cast<std::size_t>(in.gcount()));
        if (packed.size() > max_object) return std::nullopt;
    }
    z_stream z{};
    if (inflateInit(&z) != Z_OK) return std::nullopt;
    std::string out;
    z.next_in = reinterpret_cast<Bytef*>(packed.data());
    z.avail_in = static_cast<uInt>(packed.size());
    int rc = Z_OK;
    while (rc == Z_OK) {
        if (out.size() > max_object) break;
        std::size_t at = out.size();
        out.resize(at + 16384);
        z.next_out = reinterpret_cast<Bytef*>(out.data() + at);
        z.avail_out = 16384;
        rc = inflate(&z, Z_NO_FLUSH);
        out.resize(at + 16384 - z.avail_out);
        if (rc == Z_BUF_ERROR && z.avail_in == 0) break;
    }
    inflateEnd(&z);
    if (rc != Z_STREAM_END) return std::nullopt;
    return out;
}

// The commit `rev` names (through annotated tags) from loose objects, without git: what a
// push just brought is loose unless it was large (git unpacks fewer than transfer.unpackLimit,
// 100, objects). nullopt: ask git.
std::optional<commit_info> read_commit_loose(const fs::path& objects, std::string rev)
{
    for (int depth = 0; depth < 5; ++depth) {
        auto raw = read_loose(objects, rev);
        if (!raw) return std::nullopt;
        auto obj = split_object(*raw);
        if (!obj) return std::nullopt;
        if (obj->type == "commit") return parse_commit_object(obj->body);
        if (obj->type != "tag") return commit_info{};  // a tree or blob: nothing to describe
        auto target = tag_target(obj->body);
        if (!target) return std::nullopt;
        rev = std::move(*target);
    }
    return std::nullopt;
}

// git itself, for what the hook does not read directly (packed objects, alternates, work trees,
// post-commit's HEAD): `git` from PATH (git puts its exec-path first for hooks) as a child with an
// argv, the repository given explicitly (GIT_DIR: no discovery, so no safe.directory refusal in a
// shared repository), a clean environment and a deadline. Linking libgit2 instead cost every
// push ~15 ms of loading and relocating its 14 libraries; this costs ~2 ms when it is needed.
class git_child {
public:
    enum mode { given, discover };
    /// given: `dir` is the git directory (GIT_DIR); discover: git finds it from `dir`.
    explicit git_child(fs::path dir, mode m = given) : git_dir_(std::move(dir)), mode_(m) {}

    // stdout of `git ARGS...` if it exited 0. With `prefix`, output beyond max_out ends git and
    // its first max_out bytes are the answer (a commit's headers and the start of its message:
    // the event carries 60 KiB of it at most).
    std::optional<std::string> run(std::vector<std::string> args, std::size_t max_out = 64 << 10,
                                   bool prefix = false) const
    {
        bus::runtime::spawn_options o;
        o.argv = {program()};
        o.argv.insert(o.argv.end(), std::make_move_iterator(args.begin()), std::make_move_iterator(args.end()));
        o.env = {"PATH=" + path_env(), "LC_ALL=C"};
        if (mode_ == given) o.env.push_back("GIT_DIR=" + git_dir_.string());
        // The object directories git gave this hook (a quarantine, alternates) stay in force.
        for (const char* k : {"GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES"})
            if (const char* v = std::getenv(k)) o.env.push_back(std::string(k) + "=" + v);
        o.cwd = git_dir_.string();
        o.timeout = std::chrono::seconds(10);
        o.max_out = max_out;
        o.kill_on_overflow = true;
        auto r = bus::runtime::spawn(o);
        if (r.out_truncated && prefix && r.started && !r.timed_out) return std::move(r.out);
        if (!r.ok() || r.out_truncated) return std::nullopt;
        return std::move(r.out);
    }

private:
    static std::string path_env()
    {
        const char* p = std::getenv("PATH");
        return p && *p ? p : "/usr/local/bin:/usr/bin:/bin";
    }
    static std::string program()
    {
        std::string_view dirs = path_env();
        while (!dirs.empty()) {
            auto colon = dirs.find(':');
            std::string dir(dirs.substr(0, colon));
            dirs.remove_prefix(colon == std::string_view::npos ? dirs.size() : colon + 1);
            if (dir.empty() || dir.front() != '/') continue;  // only absolute entries
            std::string candidate = dir + "/git";
            if (::access(candidate.c_str(), X_OK) == 0) return candidate;
        }
        return "/usr/bin/git";
    }
    fs::path git_dir_;
    mode mode_;
};

// The git directory of `dir`: itself if it is one (bare, or a .git), its .git directory for a
// work tree, else what git finds from there (a linked work tree's or a submodule's .git file).
// Empty when it is no repository.
fs::path resolve_git_dir(const fs::path& dir)
{
    if (fs::is_regular_file(dir / "HEAD") && fs::is_directory(dir / "objects")) return dir;
    if (fs::is_regular_file(dir / ".git" / "HEAD")) return dir / ".git";
    auto out = git_child(dir, git_child::discover).run({"rev-parse", "--absolute-git-dir"}, 4096);
    if (!out) return {};
    while (!out->empty() && (out->back() == '\n' || out->back() == '\r')) out->pop_back();
    return out->empty() ? fs::path() : fs::path(*out);
}

// The commit `rev` names (an annotated tag is peeled: `git cat-file commit` dereferences it).
// Nothing (an empty description) for a tree or blob, or an object git cannot read.
commit_info read_commit(const git_child& git, const std::string& rev)
{
    if (bus::is_zero_revision(rev) || rev.size() != 40) return {};
    auto raw = git.run({"cat-file", "commit", rev}, 1 << 20, true);
    if (!raw) return {};
    return parse_commit_object(*raw).value_or(commit_info{});
}

// The hooks directory of a repository: GIT_DIR/hooks for a bare one, .git/hooks for a work tree
// (a work tree may have a hooks/ directory of its own: never that one).
fs::path hooks_dir(const fs::path& repo)
{
    if (fs::is_directory(repo / ".git")) return repo / ".git" / "hooks";
    return repo / "hooks";
}

// Installs this binary as hooks/<name> of one repository, keeping an existing hook as
// <name>.chained (run after ours). With check_only, changes nothing and says whether it is there.
bool install_one(const fs::path& repo, const fs::path& self, const std::string& name, bool check_only)
{
    fs::path hooks = hooks_dir(repo);
    if (!fs::exists(repo / "HEAD") && !fs::is_directory(repo / ".git"))
        throw std::runtime_error(repo.string() + ": not a git repository");
    if (name == "post-commit" && !fs::is_directory(repo / ".git"))
        throw std::runtime_error(repo.string() + ": not a work tree (post-commit is for non-bare repositories)");
    fs::create_directories(hooks);
    fs::path hook = hooks / name;
    std::string chained = name + ".chained";
    std::error_code ec;
    if (fs::is_symlink(hook) && fs::read_symlink(hook, ec) == self) {
        std::cout << hook.string() << ": already installed\n";
        return true;
    }
    if (check_only) {
        std::cout << hook.string() << ": not installed\n";
        return false;
    }
    if (fs::exists(hook) || fs::is_symlink(hook)) {
        if (fs::exists(hooks / chained))
            throw std::runtime_error(hook.string() + ": exists and so does " + chained + "; merge them by hand");
        fs::rename(hook, hooks / chained);
        std::cout << hook.string() << ": previous hook kept as " << chained << " (runs after ours)\n";
    }
    fs::create_symlink(self, hook);
    std::cout << hook.string() << " -> " << self.string() << "\n";
    return true;
}

// post-commit: HEAD's branch moved from the new commit's first parent to it.
std::optional<ref_update> head_update(const git_child& git)
{
    auto head = git.run({"rev-parse", "-q", "--verify", "HEAD^{commit}"});
    if (!head) {
        std::cerr << "deploykit: no HEAD commit: nothing published\n";
        return std::nullopt;
    }
    auto branch = git.run({"symbolic-ref", "-q", "HEAD"});
    if (!branch) {
        std::cerr << "deploykit: detached HEAD (no branch): nothing published\n";
        return std::nullopt;
    }
    auto trim = [](std::string s) {
        while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
        return s;
    };
    std::string id = trim(*head), ref = trim(*branch), parent;
    if (auto raw = git.run({"cat-file", "commit", id}, 1 << 20, true)) parent = first_parent(*raw).value_or("");
    else return std::nullopt;
    auto out = post_commit_update(ref, id, parent);
    if (!out) std::cerr << "deploykit: ref '" << ref << "' refused (not a safe ref name)\n";
    return out;
}


// The updates of this call: stdin's for post-receive, HEAD's for post-commit.
std::vector<ref_update> read_updates(const git_child* git, const fs::path& git_dir, bool post_commit,
                                     const std::string& input)
{
    if (post_commit) {
        if (!git) throw std::runtime_error(git_dir.string() + ": cannot open the repository");
        if (auto u = head_update(*git)) return {std::move(*u)};
        return {};
    }
    auto parsed = parse_updates(input);
    for (auto& r : parsed.rejected) std::cerr << "deploykit: " << r << "\n";
    return std::move(parsed.updates);
}

} // namespace

int install(const std::vector<std::string>& paths, const std::string& name, bool check_only)
{
    fs::path self = fs::canonical("/proc/self/exe");
    bool work_trees = name == "post-commit";
    int rc = 0;
    for (auto& p : paths) {
        try {
            fs::path root = fs::absolute(p);
            bool one = work_trees ? fs::is_directory(root / ".git")
                                  : fs::exists(root / "HEAD") || fs::exists(root / ".git");
            if (one) {
                if (!install_one(root, self, name, check_only)) rc = 1;
                continue;
            }
            // A directory of repositories (e.g. /srv/git or gitolite's repositories/): bare *.git
            // for post-receive, work trees (with a .git directory) for post-commit.
            int n = 0;
            for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
                if (!it->is_directory()) continue;
                bool hit = work_trees ? fs::is_directory(it->path() / ".git")
                                      : it->path().extension() == ".git" && fs::exists(it->path() / "HEAD");
                if (hit) {
                    if (!install_one(it->path(), self, name, check_only)) rc = 1;
                    it.disable_recursion_pending();
                    ++n;
                }
            }
            if (n == 0) throw std::runtime_error(p + ": no git repositories found");
        } catch (const std::exception& e) {
            std::cerr << "stomp-post-receive: " << e.what() << "\n";
            rc = 1;
        }
    }
    return rc;
}

namespace {
char** program_argv = nullptr;

} // namespace

void set_argv(char** argv) noexcept { program_argv = argv; }

int run(const fs::path& config, bool post_commit, bool debug, spdlog::logger& log)
{
    const std::string hook_name = post_commit ? "post-commit" : "post-receive";
    const char* what = post_commit ? "commit" : "push";
    // The configuration first (stdin untouched, in case another build of this hook must take
    // over); an error in it is reported below, where every failure is, after the input is read.
    std::optional<bus::runtime::hook_config> loaded;
    std::exception_ptr config_error;
    std::vector<std::string> notices;
    try {
        loaded = bus::runtime::load_hook_config(config, "future.events.gitolite",
                                                [&](std::string_view n) { notices.emplace_back(n); });
    } catch (...) {
        config_error = std::current_exception();
    }
#ifdef DEPLOYKIT_OPENSSL_BUILD
    // This build links no OpenSSL: a configuration that needs TLS goes to the build that has it.
    if (loaded) bus::runtime::hand_over_to_openssl_build(*loaded, program_argv, DEPLOYKIT_OPENSSL_BUILD, log);
#endif
    for (const auto& n : notices) log.info("{}", n);
    // post-receive reads the ref updates on stdin; post-commit gets nothing there.
    std::string input;
    if (!post_commit) input.assign(std::istreambuf_iterator<char>(std::cin), {});
    fs::path git_dir = env("GIT_DIR").empty() ? fs::current_path() : fs::absolute(env("GIT_DIR"));
    std::error_code ec;
    git_dir = fs::weakly_canonical(git_dir, ec);
    fs::path hooks = git_dir.filename() == ".git" ? git_dir / "hooks" : hooks_dir(git_dir);

    // Whatever happens below, the push (or commit) has already succeeded: report, never fail it.
    // What a push just brought is read directly (loose objects); git itself only as a fallback.
    fs::path objects = env("GIT_OBJECT_DIRECTORY").empty() ? git_dir / "objects" : fs::path(env("GIT_OBJECT_DIRECTORY"));
    const bool plain_bare = !post_commit && fs::is_regular_file(git_dir / "HEAD") && fs::is_directory(objects);
    fs::path git_path = plain_bare ? git_dir : resolve_git_dir(git_dir);
    std::optional<git_child> git;
    if (!git_path.empty()) {
        git.emplace(git_path);
        hooks = git_path / "hooks";
    }
    std::string repo = repo_name(env("GL_REPO"), git_dir.string());
    std::vector<ref_update> updates;
    try {
        if (config_error) std::rethrow_exception(config_error);
        const auto& cfg = *loaded;
        updates = read_updates(git ? &*git : nullptr, git_dir, post_commit, input);
        if (!bus::valid_repo_name(repo)) throw std::runtime_error("repository name '" + repo + "' refused");
        std::vector<bus::stomp::frame> frames;
        std::vector<std::string> ids;
        for (auto& u : updates) {
            std::optional<commit_info> info;
            if (bus::is_zero_revision(u.new_rev)) info = commit_info{};  // a deleted ref
            else if (plain_bare) info = read_commit_loose(objects, u.new_rev);
            if (!info) info = git ? read_commit(*git, u.new_rev) : commit_info{};
            auto ev = bus::make_event(make_commit(repo, u, *info));
            ids.push_back(ev.id);
            bus::runtime::add_commit_frames(cfg, ev, "[" + repo + "] " + u.ref + " " + u.new_rev, frames);
        }
        auto sent = bus::runtime::send_hook_frames(cfg, std::move(frames), git_path / "deploykit-spool", debug);
        std::string outcome = sent.spooled ? "spooled in " + sent.spool_dir.string() : "published";
        bus::runtime::log_event(log, spdlog::level::info, ids.size() == 1 ? ids[0] : "", "{}",
                                    log_line(repo, updates, outcome));
        if (sent.spooled)
            std::cerr << "deploykit: broker unreachable; " << updates.size() << " ref update(s) spooled in "
                      << sent.spool_dir.string() << " (delivered by the next " << what << " or 'stompctl drain')\n";
    } catch (const bus::outbox_error& e) {
        // The push itself succeeded and is never failed (exit 0), but nobody must think this
        // event is on its way.
        log.error("{}", log_line(repo, updates, std::string("NOT kept (") + e.what() + ")"));
        std::cerr << "deploykit: ERROR: the event for " << updates.size() << " ref update(s) was NOT kept: the broker "
                  << "did not take it and it could not be spooled (" << e.what() << "). Consumers will not hear of "
                  << "this " << what << "; free space, then push again or publish it by hand.\n";
    } catch (const std::exception& e) {
        log.error("[{}] nothing published: {}", repo, e.what());
        std::cerr << "deploykit: " << e.what() << "\n";
    }
    fs::path chained = hooks / (hook_name + ".chained");
    // A chained hook may deploy; git itself waits without limit.
    if (fs::exists(chained))
        return bus::runtime::run_chained_hook({chained.string()}, input, std::chrono::hours(1), "deploykit");
    return 0;
}

} // namespace hook
