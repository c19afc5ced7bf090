// repo-poller: publish `package` events for Debian repositories that have no hooks (aptly
// publishes, mirrors, Artifactory, a plain dists/ tree over HTTP), by polling their InRelease.
//
//   repo-poller [-c /etc/repo-poller/repo-poller.yaml] [-d] [--daemonize --pidfile FILE]
//
// One per site, not one per host: it publishes the events the reprepro notifier publishes, so
// every host's stomp-repo consumes both unchanged. The common options come from the runtime
// (docs/runtime.md); the daemon is daemon.cpp, one poll poller.cpp, its decisions poll_logic.cpp.
//
// `repo-poller --fetch-worker` is internal: the child the daemon starts for a poll's HTTP
// transfers (fetch_child.hpp), so the daemon itself never loads libcurl.
#include "daemon.hpp"
#include "fetch_child.hpp"

#include <string_view>

int main(int argc, char** argv)
{
    if (argc == 2 && std::string_view(argv[1]) == repo_poller::fetch_worker_flag) return repo_poller::fetch_worker_main();
    return bus::runtime::run_main(argc, argv,
                                  {.name = "repo-poller",
                                   .description = "repo-poller - announce new package versions of Debian repositories without hooks",
                                   .default_config = "/etc/repo-poller/repo-poller.yaml"},
                                  {}, repo_poller::run);
}
