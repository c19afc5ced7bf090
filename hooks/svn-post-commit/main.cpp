// svn-stomp: the SVN post-commit hook. Reads the revision with svnlook (argv, clean environment,
// deadline), publishes one commit event to the trigger topic and the original's one-liner to the
// report topic (through the outbox: a commit never waits more than about a second for a broker),
// then runs the repository's previous post-commit hook, if there was one, with the same arguments.
//
//   svn-stomp [-c FILE] REPOS REV [TXN-NAME]     as the hook (svn runs it with an empty environment)
//   svn-stomp [-c FILE] --install REPOS...       write REPOS/hooks/post-commit for these repositories
//   svn-stomp [-c FILE] --install REPOS... --check  change nothing; exit 0 if each has that hook, 1 if not
//   svn-stomp [-c FILE] --check-config           validate the configuration (exit 0 or 2)
//
// The common options (-d, --log-format, --syslog, --version) come from the runtime
// (docs/runtime.md); each call logs one line to syslog, as the original did.
#include "shell.hpp"

#include <CLI/CLI.hpp>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <iostream>

int main(int argc, char** argv)
{
    svn_hook::set_argv(argv);
    // svnlook's exit status must be collectable, whatever disposition we inherited.
    ::signal(SIGCHLD, SIG_DFL);
    std::vector<std::string> install_paths, args;
    bool check_only = false;
    return bus::runtime::run_hook_main(
        argc, argv,
        {.name = "svn-stomp",
         .description = "svn-stomp - deploykit's SVN post-commit hook",
         .default_config = "/etc/svn-stomp/svn-stomp.yaml"},
        [&](CLI::App& app) {
            app.add_option("--install", install_paths, "write the post-commit hook of these repositories");
            app.add_flag("--check", check_only,
                         "with --install: change nothing; exit 0 if every repository has this hook (same -c), 1 if not");
            app.add_option("args", args, "REPOS REV [TXN-NAME], as svn passes them");
        },
        [](const std::string& config, bus::runtime::notice_fn notice) { svn_hook::load_settings(config, notice); },
        [&](const bus::runtime::common_options& o, spdlog::logger& log) {
            if (install_paths.empty()) return svn_hook::run(o.config_path, args, o.debug, log);
            if (args.empty()) return svn_hook::install(install_paths, o.config_path, check_only);
            std::cerr << "svn-stomp: --install takes repositories only\n";
            return 2;
        });
}
