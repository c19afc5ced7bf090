// reprepro-stomp: a reprepro notifier. One package event per call, published once reprepro's
// export made the new version visible to apt (shell.cpp: the detached wait, then bus_hook's
// spool-then-send; one line per call to syslog).
//
//   reprepro-stomp [-c FILE] [--changes] [-d] ACTION CODENAME TYPE COMPONENT ARCH NAME [NEW] [OLD] -- FILEKEYS...
//   reprepro-stomp [-c FILE] --changes ACTION CODENAME SOURCE VERSION CHANGESFILE [FILEKEYS...]
//   reprepro-stomp [-c FILE] --check-config
//
// In conf/distributions:   Log: logfile
//                           --via includedeb /usr/bin/reprepro-stomp
// A `Log:` line takes no options after the script, so the config is -c, else $REPREPRO_STOMP_CONFIG,
// else /etc/reprepro-stomp/reprepro-stomp.yaml. The options are read by hand, not by the runtime's
// CLI: reprepro's `--` separators are arguments.
#include "shell.hpp"

#include "bus/runtime/program.hpp"

#include <iostream>

int main(int argc, char** argv)
{
    reprepro_stomp::set_argv(argv);
    reprepro_stomp::options o{.config = reprepro_stomp::default_config()};
    int i = 1;
    for (; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "-c" || a == "--config") {
            if (++i >= argc) return reprepro_stomp::usage(a + " needs a file");
            o.config = argv[i];
        } else if (a.starts_with("--config=")) {
            o.config = a.substr(9);
        } else if (a == "--changes") {
            o.changes = true;
        } else if (a == "-d" || a == "--debug") {
            o.debug = true;
        } else if (a == "--check-config") {
            o.check_config = true;
        } else if (a == "-h" || a == "--help") {
            std::cout << "reprepro-stomp - a reprepro notifier (conf/distributions Log: lines)\n"
                         "Usage: reprepro-stomp [-c FILE] [-d] ACTION CODENAME TYPE COMPONENT ARCH NAME [NEW] [OLD] -- "
                         "FILEKEYS...\n"
                         "  or:  reprepro-stomp [-c FILE] [-d] --changes ACTION CODENAME SOURCE VERSION CHANGESFILE "
                         "[FILEKEYS...]\n"
                         "  or:  reprepro-stomp [-c FILE] --check-config\n\n"
                         "Options:\n"
                         "  -c, --config FILE  configuration file (else $REPREPRO_STOMP_CONFIG, else\n"
                         "                     /etc/reprepro-stomp/reprepro-stomp.yaml)\n"
                         "  --changes          a --changes notifier call (LogChanges)\n"
                         "  -d, --debug        debug logging on stderr\n"
                         "  --check-config     validate the configuration and exit (0 valid, 2 not)\n"
                         "  -h, --help         print this help and exit\n"
                         "  --version          print the version and exit\n";
            return 0;
        } else if (a == "--version") {
            std::cout << "reprepro-stomp " << bus::runtime::version() << "\n";
            return 0;
        } else if (a.starts_with("-") && a != "--") {
            return reprepro_stomp::usage("unknown option " + a);
        } else {
            break;
        }
    }
    for (; i < argc; ++i) o.args.emplace_back(argv[i]);
    return reprepro_stomp::run(o);
}
