// stomp-ci: run a repository's checks on every commit, in a clean checkout, and report the
// result as a Jenkins-style build event (docs/stomp-ci.md).
//
//   stomp-ci [-c /etc/stomp-ci/stomp-ci.yaml] [-d] [--daemonize --pidfile FILE]
//
// The common options come from the runtime (docs/runtime.md); the daemon is daemon.cpp, its
// decisions ci.cpp, a run runner.cpp.
#include "daemon.hpp"

int main(int argc, char** argv)
{
    return bus::runtime::run_main(argc, argv,
                                  {.name = "stomp-ci",
                                   .description = "stomp-ci - run a repository's checks on every commit and report builds",
                                   .default_config = "/etc/stomp-ci/stomp-ci.yaml"},
                                  {}, stomp_ci::run);
}
