// github-webhook: receives forge webhooks (GitHub, GitHub Enterprise, GitLab, Gitea/Gogs/Forgejo,
// Bitbucket Cloud and Server) and publishes each push as a commit event.
//
//   github-webhook [-c /etc/github-webhook/github-webhook.yaml] [-d] [--daemonize --pidfile FILE]
//
// The common options (--check-config, --log-format, --syslog, --version) come from the runtime
// (docs/runtime.md); the daemon itself is daemon.cpp, its decisions webhook.cpp.
#include "daemon.hpp"

int main(int argc, char** argv)
{
    return bus::runtime::run_main(
        argc, argv,
        {.name = "github-webhook",
         .description = "github-webhook - forge webhooks (GitHub, GitLab, Gitea, Bitbucket) to commit events on the bus",
         .default_config = "/etc/github-webhook/github-webhook.yaml"},
        {}, webhook::run);
}
