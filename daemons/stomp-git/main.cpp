// stomp-git: on every server, fetch the repositories it keeps when a commit event names them,
// and publish the result per mode. Runs as root only to start, for each job, a worker process
// (this binary with --worker) that drops to the repository owner's user before touching
// anything; no su, no shell. Catches up on start and after every reconnect.
//
//   stomp-git [-c /etc/stomp-git/stomp-git.yaml] [-d] [--daemonize --pidfile FILE]
//
// The common options (--check-config, --log-format, --syslog, --version) come from the runtime
// (docs/runtime.md); the daemon itself is daemon.cpp, the worker worker.cpp (`--worker REPO`,
// the internal per-job mode, parsed on its own).
#include "daemon.hpp"
#include "worker.hpp"

int main(int argc, char** argv)
{
    if (stomp_git::is_worker_mode(argc, argv)) return stomp_git::worker_entry(argc, argv);
    return bus::runtime::run_main(argc, argv,
                                  {.name = "stomp-git",
                                   .description = "stomp-git - fetch repositories when commits are announced on the bus",
                                   .default_config = "/etc/stomp-git/stomp-git.yaml"},
                                  {}, stomp_git::run);
}
