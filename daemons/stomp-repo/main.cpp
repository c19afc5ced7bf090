// stomp-repo: refresh this host's apt lists as soon as the site's repository publishes a newer
// version of a watched package, and say so on the bus.
//
//   stomp-repo [-c /etc/stomp-repo/stomp-repo.yaml] [-d] [--daemonize --pidfile FILE]
//
// The common options (--check-config, --log-format, --syslog, --version) come from the runtime
// (docs/runtime.md); the daemon itself is daemon.cpp, its decisions stomp_repo.cpp.
#include "daemon.hpp"

int main(int argc, char** argv)
{
    return bus::runtime::run_main(argc, argv,
                                  {.name = "stomp-repo",
                                   .description = "stomp-repo - refresh apt lists when the repository publishes a watched package",
                                   .default_config = "/etc/stomp-repo/stomp-repo.yaml"},
                                  {}, stomp_repo::run);
}
