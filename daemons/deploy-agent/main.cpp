// deploy-agent: deploys tags of the configured repos on this server on request over the bus
// (docs/deploy-agent.md, docs/deploy-protocol.md), replacing MCollective's gitagent.
//
//   deploy-agent [-c /etc/deploy-agent/deploy-agent.yaml] [-d] [--daemonize --pidfile FILE]
//
// The common options come from the runtime (docs/runtime.md); the daemon is daemon.cpp, its
// decisions core.cpp, its blocking steps deployer.cpp. `--checkout-worker` is internal: the agent
// runs itself that way, as the repo's user, to write a release with libgit2.
#include "daemon.hpp"
#include "deployer.hpp"

#include <cstring>

int main(int argc, char** argv)
{
    if (argc > 1 && std::strcmp(argv[1], "--checkout-worker") == 0) return deploy_agent::checkout_worker_main(argc, argv);
    return bus::runtime::run_main(argc, argv,
                                  {.name = "deploy-agent",
                                   .description = "deploy-agent - deploy tags on this server on request over the bus",
                                   .default_config = "/etc/deploy-agent/deploy-agent.yaml"},
                                  {}, deploy_agent::run);
}
