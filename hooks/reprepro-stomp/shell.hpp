#pragma once

// reprepro-stomp's glue around its pure logic (reprepro_stomp.hpp): the config, sending through
// bus_hook's spool-then-send, and one call of the notifier (at once, or from a detached child
// that waits for reprepro's export).

#include <string>
#include <vector>

namespace reprepro_stomp {

/// The command line, as main() read it.
struct options {
    std::string config;  ///< -c, else $REPREPRO_STOMP_CONFIG, else the default
    bool changes = false;
    bool debug = false;
    bool check_config = false;
    std::vector<std::string> args;  ///< reprepro's arguments, `--` separators included
};

/// The config path when no -c is given: $REPREPRO_STOMP_CONFIG, else
/// /etc/reprepro-stomp/reprepro-stomp.yaml.
std::string default_config();

/// Prints `why` and the usage on stderr; returns 2 (the exit status of a bad command line).
int usage(const std::string& why);

/// One call: --check-config, or publish the notification's package event (at once, or from a
/// detached child once the export replaced dists/CODENAME/Release). Never blocks reprepro.
int run(const options& o);
/// The program's argv, kept for handing over to the OpenSSL build of the hook (run()).
void set_argv(char** argv) noexcept;

} // namespace reprepro_stomp
