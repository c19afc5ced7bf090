// stomp-jenkins: trigger Jenkins jobs when commits are announced on the bus.
//
//   stomp-jenkins [-c /etc/stomp-jenkins/stomp-jenkins.yaml] [-d] [--daemonize --pidfile FILE]
//
// The common options (--check-config, --log-format, --syslog, --version) come from the runtime
// (docs/runtime.md); the daemon itself is daemon.cpp, its decisions stomp_jenkins.cpp.
#include "daemon.hpp"

int main(int argc, char** argv)
{
    return bus::runtime::run_main(argc, argv,
                                  {.name = "stomp-jenkins",
                                   .description = "stomp-jenkins - trigger Jenkins jobs for commits announced on the bus",
                                   .default_config = "/etc/stomp-jenkins/stomp-jenkins.yaml"},
                                  {}, stomp_jenkins::run);
}
