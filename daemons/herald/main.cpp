// herald: the event log of the bus (every event recorded in SQLite, searchable on a web page
// and a JSON API, live over server-sent events), records POSTed by applications off the bus,
// and the alert engine.
//
//   herald [-c /etc/herald/herald.yaml] [-d] [--daemonize --pidfile FILE]
//
// The common options come from the runtime (docs/runtime.md); docs/herald.md says the rest.
#include "daemon.hpp"

int main(int argc, char** argv)
{
    return bus::runtime::run_main(argc, argv,
                                  {.name = "herald",
                                   .description = "herald - the event log of the deploykit bus: record, search, watch, alert",
                                   .default_config = "/etc/herald/herald.yaml"},
                                  {}, herald::run);
}
