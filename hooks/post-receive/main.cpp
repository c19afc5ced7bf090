// stomp-post-receive: the git post-receive hook. Publishes one commit event per updated ref
// (through the outbox: a push never waits more than about a second for a broker), then runs the
// repository's previous post-receive hook, if there was one, with the same input.
//
//   stomp-post-receive [-c FILE]                  as the hook (git runs it in the repository)
//   stomp-post-receive --install PATH...          install into repositories, or every *.git
//                                                 directory under PATH (gitolite: its hooks dir)
#include "post_receive.hpp"

#include "bus/config.hpp"
#include "bus/delivery.hpp"
#include "bus/wire.hpp"

#include <CLI/CLI.hpp>
#include <git2.h>
#include <spawn.h>
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

extern char** environ;

namespace fs = std::filesystem;

namespace {

constexpr const char* chained_name = "post-receive.chained";

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

// Runs the previous hook with the same stdin, argv only (no shell); returns its exit status.
int run_chained(const fs::path& hook, const std::string& input)
{
    int pipefd[2];
    if (::pipe(pipefd) != 0) return 1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, pipefd[0], 0);
    posix_spawn_file_actions_addclose(&fa, pipefd[1]);
    std::string path = hook.string();
    char* argv[] = {path.data(), nullptr};
    pid_t pid = 0;
    int rc = posix_spawn(&pid, path.c_str(), &fa, nullptr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(pipefd[0]);
    if (rc != 0) {
        ::close(pipefd[1]);
        std::cerr << "deploykit: cannot run " << path << ": " << std::strerror(rc) << "\n";
        return 1;
    }
    std::string_view rest = input;
    while (!rest.empty()) {
        ssize_t n = ::write(pipefd[1], rest.data(), rest.size());
        if (n <= 0) break;
        rest.remove_prefix(static_cast<std::size_t>(n));
    }
    ::close(pipefd[1]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

// Installs this binary as hooks/post-receive of one repository, keeping an existing hook as
// post-receive.chained (run after ours).
void install_one(const fs::path& repo, const fs::path& self)
{
    fs::path hooks = fs::exists(repo / "hooks") ? repo / "hooks" : repo / ".git" / "hooks";
    if (!fs::is_directory(hooks)) throw std::runtime_error(repo.string() + ": not a git repository (no hooks/)");
    fs::path hook = hooks / "post-receive";
    std::error_code ec;
    if (fs::is_symlink(hook) && fs::read_symlink(hook, ec) == self) {
        std::cout << hook.string() << ": already installed\n";
        return;
    }
    if (fs::exists(hook) || fs::is_symlink(hook)) {
        if (fs::exists(hooks / chained_name))
            throw std::runtime_error(hook.string() + ": exists and so does " + chained_name + "; merge them by hand");
        fs::rename(hook, hooks / chained_name);
        std::cout << hook.string() << ": previous hook kept as " << chained_name << " (runs after ours)\n";
    }
    fs::create_symlink(self, hook);
    std::cout << hook.string() << " -> " << self.string() << "\n";
}

int install(const std::vector<std::string>& paths)
{
    fs::path self = fs::canonical("/proc/self/exe");
    int rc = 0;
    for (auto& p : paths) {
        try {
            fs::path root(p);
            if (fs::exists(root / "HEAD") || fs::exists(root / ".git")) {
                install_one(root, self);
                continue;
            }
            // A directory of repositories (e.g. /srv/git or gitolite's repositories/).
            int n = 0;
            for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
                if (it->is_directory() && it->path().extension() == ".git" && fs::exists(it->path() / "HEAD")) {
                    install_one(it->path(), self);
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

} // namespace

int main(int argc, char** argv)
{
    CLI::App app{"stomp-post-receive - deploykit's git post-receive hook"};
    std::string config = "/etc/stomp-postrec/stomp-postrec.yaml";
    std::vector<std::string> install_paths;
    bool debug = false;
    app.add_option("-c,--config", config, "configuration file")->envname("DEPLOYKIT_HOOK_CONFIG");
    app.add_option("--install", install_paths, "install as the post-receive hook of these repositories");
    app.add_flag("-d,--debug", debug, "log to stderr");
    CLI11_PARSE(app, argc, argv);
    if (!install_paths.empty()) return install(install_paths);

    std::string input((std::istreambuf_iterator<char>(std::cin)), {});
    fs::path git_dir = env("GIT_DIR").empty() ? fs::current_path() : fs::absolute(env("GIT_DIR"));
    std::error_code ec;
    git_dir = fs::weakly_canonical(git_dir, ec);
    fs::path hooks = fs::exists(git_dir / "hooks") ? git_dir / "hooks" : git_dir / ".git" / "hooks";

    // Whatever happens below, the push has already succeeded: report, never fail it.
    try {
        auto root = bus::load_yaml(config);
        auto cfg = bus::read_bus_config(root, config);
        std::string trigger = root["trigger-topic"] ? root["trigger-topic"].as<std::string>() : "future.git.commits";
        std::string report = root["report-topic"] ? root["report-topic"].as<std::string>() : "future.events.gitolite";
        auto parsed = hook::parse_updates(input);
        for (auto& r : parsed.rejected) std::cerr << "deploykit: " << r << "\n";
        std::string repo = hook::repo_name(env("GL_REPO"), git_dir.string());
        if (!bus::valid_repo_name(repo)) throw std::runtime_error("repository name '" + repo + "' refused");

        git_libgit2_init();
        git_repository* gr = nullptr;
        if (git_repository_open(&gr, git_dir.c_str()) != 0) gr = nullptr;
        std::vector<bus::stomp::frame> frames;
        auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch()).count();
        for (auto& u : parsed.updates) {
            auto commit = hook::make_commit(repo, u, read_commit(gr, u.new_rev));
            auto ev = bus::make_event(commit);
            for (auto& f : bus::encode(ev, "/topic/" + trigger, cfg.format)) frames.push_back(std::move(f));
            std::string line = "[" + repo + "] " + u.ref + " " + u.new_rev;
            for (auto& f : bus::encode(bus::make_event(bus::notice_event{line}), "/topic/" + report,
                                       bus::wire_format::legacy))
                frames.push_back(std::move(f));
        }
        if (gr) git_repository_free(gr);
        git_libgit2_shutdown();
        if (cfg.signing)
            for (auto& f : frames) bus::sign(f, *cfg.signing, now);
        if (!frames.empty()) {
            auto spool = cfg.spool.value_or(bus::outbox_options{.dir = git_dir / "deploykit-spool"});
            std::shared_ptr<spdlog::logger> log =
                debug ? spdlog::stderr_color_mt("hook")
                      : std::make_shared<spdlog::logger>("hook", std::make_shared<spdlog::sinks::null_sink_mt>());
            auto rep = bus::send_once(cfg.client, spool, std::move(frames), std::chrono::milliseconds(1000), *log);
            if (rep.spooled)
                std::cerr << "deploykit: broker unreachable; " << parsed.updates.size()
                          << " ref update(s) spooled in " << spool.dir.string() << " (delivered by the next push or "
                          << "'stompctl drain')\n";
        }
    } catch (const std::exception& e) {
        std::cerr << "deploykit: " << e.what() << "\n";
    }
    if (fs::exists(hooks / chained_name)) return run_chained(hooks / chained_name, input);
    return 0;
}
