// stomp-post-receive: the git post-receive hook. Publishes one commit event per updated ref
// (through the outbox: a push never waits more than about a second for a broker), then runs the
// repository's previous post-receive hook, if there was one, with the same input.
// Invoked as `post-commit` (or with --post-commit) it is the hook for non-bare repositories: the
// commit just made on HEAD's branch is published as that branch's ref update.
//
//   stomp-post-receive [-c FILE]                  as the hook (git runs it in the repository)
//   stomp-post-receive --install PATH...          install into repositories, or every *.git
//                                                 directory under PATH (gitolite: its hooks dir)
//   stomp-post-receive --post-commit [--install PATH...]
//                                                 the same for .git/hooks/post-commit of work
//                                                 trees (PATH: work trees, or directories of them)
#include "post_receive.hpp"

#include "bus/config.hpp"
#include "bus/delivery.hpp"
#include "bus/wire.hpp"
#include "bus/outbox.hpp"
#include "bus/runtime/spawn.hpp"

#include <CLI/CLI.hpp>
#include <git2.h>
#include <fcntl.h>
#include <signal.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <iterator>

namespace fs = std::filesystem;

namespace {

std::string env(const char* k)
{
    const char* v = std::getenv(k);
    return v ? v : "";
}

hook::commit_info read_commit(git_repository* repo, const std::string& rev)
{
    hook::commit_info info;
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
        info.date = hook::git_date(a->when.time, a->when.offset);
    }
    if (const char* m = git_commit_message(commit)) info.message = m;
    git_commit_free(commit);
    return info;
}

// Runs the previous hook with the same stdin and environment (git's GIT_DIR, GL_* and the push
// options are its input), through spawn(): argv only, no descriptor of ours but its stdio, its
// output passed on to the pusher. Returns its exit status.
int run_chained(const fs::path& hook, const std::string& input)
{
    // A chained hook may deploy; git itself waits without limit.
    return bus::runtime::run_chained_hook({hook.string()}, input, std::chrono::hours(1), "deploykit");
}

// The hooks directory of a repository: GIT_DIR/hooks for a bare one, .git/hooks for a work tree
// (a work tree may have a hooks/ directory of its own: never that one).
fs::path hooks_dir(const fs::path& repo)
{
    if (fs::is_directory(repo / ".git")) return repo / ".git" / "hooks";
    return repo / "hooks";
}

// Installs this binary as hooks/<name> of one repository, keeping an existing hook as
// <name>.chained (run after ours).
void install_one(const fs::path& repo, const fs::path& self, const std::string& name)
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
        return;
    }
    if (fs::exists(hook) || fs::is_symlink(hook)) {
        if (fs::exists(hooks / chained))
            throw std::runtime_error(hook.string() + ": exists and so does " + chained + "; merge them by hand");
        fs::rename(hook, hooks / chained);
        std::cout << hook.string() << ": previous hook kept as " << chained << " (runs after ours)\n";
    }
    fs::create_symlink(self, hook);
    std::cout << hook.string() << " -> " << self.string() << "\n";
}

int install(const std::vector<std::string>& paths, const std::string& name)
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
                install_one(root, self, name);
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
                    install_one(it->path(), self, name);
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

// post-commit: HEAD's branch moved from the new commit's first parent to it.
std::optional<hook::ref_update> head_update(git_repository* repo)
{
    git_reference* head = nullptr;
    if (git_repository_head(&head, repo) != 0) {
        std::cerr << "deploykit: no HEAD commit: nothing published\n";
        return std::nullopt;
    }
    std::optional<hook::ref_update> out;
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
            out = hook::post_commit_update(git_reference_name(head), id, parent);
            if (!out)
                std::cerr << "deploykit: ref '" << git_reference_name(head) << "' refused (not a safe ref name)\n";
            git_commit_free(commit);
        }
    }
    git_reference_free(head);
    return out;
}

} // namespace

int main(int argc, char** argv)
{
    CLI::App app{"stomp-post-receive - deploykit's git post-receive (and post-commit) hook"};
    std::string config = "/etc/stomp-postrec/stomp-postrec.yaml";
    std::vector<std::string> install_paths;
    bool debug = false;
    // git runs a hook by its path: a post-commit symlink to this binary is the post-commit hook.
    bool post_commit = argc > 0 && fs::path(argv[0]).filename() == "post-commit";
    app.add_option("-c,--config", config, "configuration file")->envname("DEPLOYKIT_HOOK_CONFIG");
    app.add_option("--install", install_paths, "install as the hook of these repositories");
    app.add_flag("--post-commit", post_commit, "be (or install) the post-commit hook of a non-bare repository");
    app.add_flag("-d,--debug", debug, "log to stderr");
    CLI11_PARSE(app, argc, argv);
    const std::string hook_name = post_commit ? "post-commit" : "post-receive";
    if (!install_paths.empty()) return install(install_paths, hook_name);

    // post-receive reads the ref updates on stdin; post-commit gets nothing there.
    std::string input;
    if (!post_commit) input.assign(std::istreambuf_iterator<char>(std::cin), {});
    fs::path git_dir = env("GIT_DIR").empty() ? fs::current_path() : fs::absolute(env("GIT_DIR"));
    std::error_code ec;
    git_dir = fs::weakly_canonical(git_dir, ec);
    fs::path hooks = hooks_dir(git_dir);
    if (git_dir.filename() == ".git") hooks = git_dir / "hooks";

    // Whatever happens below, the push (or commit) has already succeeded: report, never fail it.
    git_libgit2_init();
    git_repository* gr = nullptr;
    if (git_repository_open(&gr, git_dir.c_str()) != 0) gr = nullptr;
    if (gr) hooks = fs::path(git_repository_path(gr)) / "hooks";
    std::size_t published = 0;
    try {
        auto root = bus::load_yaml(config);
        auto cfg = bus::read_bus_config(root, config);
        std::string trigger = root["trigger-topic"] ? root["trigger-topic"].as<std::string>() : "future.git.commits";
        std::string report = root["report-topic"] ? root["report-topic"].as<std::string>() : "future.events.gitolite";
        std::vector<hook::ref_update> updates;
        if (post_commit) {
            if (!gr) throw std::runtime_error(git_dir.string() + ": cannot open the repository");
            if (auto u = head_update(gr)) updates.push_back(std::move(*u));
        } else {
            auto parsed = hook::parse_updates(input);
            for (auto& r : parsed.rejected) std::cerr << "deploykit: " << r << "\n";
            updates = std::move(parsed.updates);
        }
        std::string repo = hook::repo_name(env("GL_REPO"), git_dir.string());
        if (!bus::valid_repo_name(repo)) throw std::runtime_error("repository name '" + repo + "' refused");

        std::vector<bus::stomp::frame> frames;
        auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
        for (auto& u : updates) {
            auto commit = hook::make_commit(repo, u, read_commit(gr, u.new_rev));
            auto ev = bus::make_event(commit);
            for (auto& f : bus::encode(ev, "/topic/" + trigger, cfg.format)) frames.push_back(std::move(f));
            std::string line = "[" + repo + "] " + u.ref + " " + u.new_rev;
            for (auto& f : bus::encode(bus::make_event(bus::notice_event{line}), "/topic/" + report,
                                       bus::wire_format::legacy))
                frames.push_back(std::move(f));
        }
        published = updates.size();
        if (cfg.signing)
            for (auto& f : frames) bus::sign(f, *cfg.signing, now);
        if (!frames.empty()) {
            fs::path git_path = gr ? fs::path(git_repository_path(gr)) : git_dir;
            auto spool = cfg.spool.value_or(bus::outbox_options{.dir = git_path / "deploykit-spool"});
            std::shared_ptr<spdlog::logger> log =
                debug ? spdlog::stderr_color_mt("hook")
                      : std::make_shared<spdlog::logger>("hook", std::make_shared<spdlog::sinks::null_sink_mt>());
            auto rep = bus::send_once(cfg.client, spool, std::move(frames), std::chrono::milliseconds(1000), *log);
            if (rep.spooled)
                std::cerr << "deploykit: broker unreachable; " << published
                          << " ref update(s) spooled in " << spool.dir.string() << " (delivered by the next "
                          << (post_commit ? "commit" : "push") << " or 'stompctl drain')\n";
        }
    } catch (const bus::outbox_error& e) {
        // The push itself succeeded and is never failed (exit 0), but nobody must think this
        // event is on its way.
        std::cerr << "deploykit: ERROR: the event for " << published << " ref update(s) was NOT kept: the broker did "
                  << "not take it and it could not be spooled (" << e.what() << "). Consumers will not hear of this "
                  << (post_commit ? "commit" : "push") << "; free space, then push again or publish it by hand.\n";
    } catch (const std::exception& e) {
        std::cerr << "deploykit: " << e.what() << "\n";
    }
    if (gr) git_repository_free(gr);
    git_libgit2_shutdown();
    fs::path chained = hooks / (hook_name + ".chained");
    if (fs::exists(chained)) return run_chained(chained, input);
    return 0;
}
