// stomp-post-receive: the git post-receive hook. Publishes one commit event per updated ref
// (through the outbox: a push never waits more than about a second for a broker), then runs the
// repository's previous post-receive hook, if there was one, with the same input.
// Invoked as `post-commit` (or with --post-commit) it is the hook for non-bare repositories: the
// commit just made on HEAD's branch is published as that branch's ref update.
//
//   stomp-post-receive [-c FILE]                  as the hook (git runs it in the repository)
//   stomp-post-receive --install PATH...          install into repositories, or every *.git
//                                                 directory under PATH (gitolite: its hooks dir)
//   stomp-post-receive --install PATH... --check  change nothing; exit 0 if every repository has
//                                                 the hook, 1 if not (Puppet's `unless`)
//   stomp-post-receive --post-commit [--install PATH...]
//                                                 the same for .git/hooks/post-commit of work
//                                                 trees (PATH: work trees, or directories of them)
//   stomp-post-receive --check-config [-c FILE]   validate the configuration (exit 0 or 2)
//
// The common options (-d, --log-format, --syslog, --version) come from the runtime
// (docs/runtime.md); each call logs one line to syslog, as the original did.
#include "shell.hpp"

#include "bus/runtime/hook.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <filesystem>

int main(int argc, char** argv)
{
    hook::set_argv(argv);
    std::vector<std::string> install_paths;
    bool check_only = false;
    // git runs a hook by its path: a post-commit symlink to this binary is the post-commit hook.
    bool post_commit = argc > 0 && std::filesystem::path(argv[0]).filename() == "post-commit";
    auto flags = [&](CLI::App& app) {
        app.add_option("--install", install_paths, "install as the hook of these repositories");
        app.add_flag("--check", check_only, "with --install: change nothing; exit 0 if every repository has the hook, 1 if not");
        app.add_flag("--post-commit", post_commit, "be (or install) the post-commit hook of a non-bare repository");
    };
    auto check = [](const std::string& config, bus::runtime::notice_fn notice) {
        bus::runtime::load_hook_config(config, "future.events.gitolite", std::move(notice));
    };
    auto body = [&](const bus::runtime::common_options& o, spdlog::logger& log) {
        if (install_paths.empty()) return hook::run(o.config_path, post_commit, o.debug, log);
        return hook::install(install_paths, post_commit ? "post-commit" : "post-receive", check_only);
    };
    return bus::runtime::run_hook_main(argc, argv,
                                       {.name = "stomp-post-receive",
                                        .description = "stomp-post-receive - deploykit's git post-receive "
                                                       "(and post-commit) hook",
                                        .default_config = "/etc/stomp-postrec/stomp-postrec.yaml",
                                        .config_env = "DEPLOYKIT_HOOK_CONFIG"},
                                       flags, check, body);
}
