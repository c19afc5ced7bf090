#include "shell.hpp"

#include "bus/outbox.hpp"
#include "bus/runtime/hook.hpp"
#include "bus/runtime/log.hpp"
#include "bus/runtime/spawn.hpp"

#include <git2.h>
#include <spdlog/spdlog.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>

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
// and what is larger is left to libgit2.
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

// The commit `rev` names (through annotated tags) from loose objects, without libgit2: what a
// push just brought is loose unless it was large (git unpacks fewer than transfer.unpackLimit,
// 100, objects). nullopt: ask libgit2.
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

commit_info read_commit(git_repository* repo, const std::string& rev)
{
    commit_info info;
    if (!repo || bus::is_zero_revision(rev)) return info;
    git_oid oid;
    git_commit* commit = nullptr;
    if (git_oid_fromstr(&oid, rev.c_str()) != 0) return info;
    git_object* obj = nullptr;
    if (git_object_lookup(&obj, repo, &oid, GIT_OBJECT_ANY) != 0) return info;
    // An annotated tag points at a commit: describe that commit.
    git_object* peeled = nullptr;
    if (git_object_peel(&peeled, obj, GIT_OBJECT_COMMIT) == 0) commit = reinterpret_cast<git_commit*>(peeled);
    git_object_free(obj);
    if (!commit) return info;
    if (const git_signature* a = git_commit_author(commit)) {
        info.author = std::string(a->name ? a->name : "") + " <" + (a->email ? a->email : "") + ">";
        info.date = git_date(a->when.time, a->when.offset);
    }
    if (const char* m = git_commit_message(commit)) info.message = m;
    git_commit_free(commit);
    return info;
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
std::optional<ref_update> head_update(git_repository* repo)
{
    git_reference* head = nullptr;
    if (git_repository_head(&head, repo) != 0) {
        std::cerr << "deploykit: no HEAD commit: nothing published\n";
        return std::nullopt;
    }
    std::optional<ref_update> out;
    const git_oid* oid = git_reference_target(head);
    if (git_repository_head_detached(repo) == 1 || !oid) {
        std::cerr << "deploykit: detached HEAD (no branch): nothing published\n";
    } else {
        git_commit* commit = nullptr;
        if (git_commit_lookup(&commit, repo, oid) == 0) {
            char id[GIT_OID_HEXSZ + 1], parent[GIT_OID_HEXSZ + 1] = "";
            git_oid_tostr(id, sizeof id, oid);
            if (git_commit_parentcount(commit) > 0)
                git_oid_tostr(parent, sizeof parent, git_commit_parent_id(commit, 0));
            out = post_commit_update(git_reference_name(head), id, parent);
            if (!out)
                std::cerr << "deploykit: ref '" << git_reference_name(head) << "' refused (not a safe ref name)\n";
            git_commit_free(commit);
        }
    }
    git_reference_free(head);
    return out;
}


// The updates of this call: stdin's for post-receive, HEAD's for post-commit.
std::vector<ref_update> read_updates(git_repository* gr, const fs::path& git_dir, bool post_commit,
                                     const std::string& input)
{
    if (post_commit) {
        if (!gr) throw std::runtime_error(git_dir.string() + ": cannot open the repository");
        if (auto u = head_update(gr)) return {std::move(*u)};
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

int run(const fs::path& config, bool post_commit, bool debug, spdlog::logger& log)
{
    const std::string hook_name = post_commit ? "post-commit" : "post-receive";
    const char* what = post_commit ? "commit" : "push";
    // post-receive reads the ref updates on stdin; post-commit gets nothing there.
    std::string input;
    if (!post_commit) input.assign(std::istreambuf_iterator<char>(std::cin), {});
    fs::path git_dir = env("GIT_DIR").empty() ? fs::current_path() : fs::absolute(env("GIT_DIR"));
    std::error_code ec;
    git_dir = fs::weakly_canonical(git_dir, ec);
    fs::path hooks = git_dir.filename() == ".git" ? git_dir / "hooks" : hooks_dir(git_dir);

    // Whatever happens below, the push (or commit) has already succeeded: report, never fail it.
    // libgit2 only when needed: its global init parses the system's CA bundle for HTTPS (about
    // 10 ms, a third of the hook's cost); a post-receive of loose objects in a plain bare
    // repository reads them itself.
    git_repository* gr = nullptr;
    bool git_ready = false;
    auto open_repo = [&] {
        if (git_ready) return gr;
        git_ready = true;
        git_libgit2_init();
        if (git_repository_open(&gr, git_dir.c_str()) != 0) gr = nullptr;
        return gr;
    };
    fs::path objects = env("GIT_OBJECT_DIRECTORY").empty() ? git_dir / "objects" : fs::path(env("GIT_OBJECT_DIRECTORY"));
    const bool plain_bare = !post_commit && fs::is_regular_file(git_dir / "HEAD") && fs::is_directory(objects);
    if (!plain_bare) open_repo();
    fs::path git_path = gr ? fs::path(git_repository_path(gr)) : git_dir;
    if (gr) hooks = git_path / "hooks";
    std::string repo = repo_name(env("GL_REPO"), git_dir.string());
    std::vector<ref_update> updates;
    try {
        auto cfg = bus::runtime::load_hook_config(config, "future.events.gitolite",
                                                  [&](std::string_view n) { log.info("{}", n); });
        updates = read_updates(gr, git_dir, post_commit, input);
        if (!bus::valid_repo_name(repo)) throw std::runtime_error("repository name '" + repo + "' refused");
        std::vector<bus::stomp::frame> frames;
        std::vector<std::string> ids;
        for (auto& u : updates) {
            std::optional<commit_info> info;
            if (bus::is_zero_revision(u.new_rev)) info = commit_info{};  // a deleted ref
            else if (plain_bare) info = read_commit_loose(objects, u.new_rev);
            if (!info) info = read_commit(open_repo(), u.new_rev);
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
    if (gr) git_repository_free(gr);
    if (git_ready) git_libgit2_shutdown();
    fs::path chained = hooks / (hook_name + ".chained");
    // A chained hook may deploy; git itself waits without limit.
    if (fs::exists(chained))
        return bus::runtime::run_chained_hook({chained.string()}, input, std::chrono::hours(1), "deploykit");
    return 0;
}

} // namespace hook
