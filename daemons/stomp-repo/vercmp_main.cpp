// stomp-repo-vercmp: libapt-pkg's Debian version order for stomp-repo, out of its process.
//
//   stomp-repo-vercmp < VERSIONS     (one version a line)
//
// Prints one line per input line: the version's dense rank in libapt-pkg's order (0 = lowest;
// equal versions such as `1.0` and `0:1.0` share a rank). Exit 0; 2 for input it refuses (an
// empty line, a control character, a line over 255 bytes, more than 100,000 lines), with the line
// number on stderr and nothing on stdout. stomp-repo runs it through bus::runtime::spawn (no
// shell, a clean environment, a deadline) once per event that needs an order, so the daemon
// itself maps neither libapt-pkg nor the shared C++ runtime while it idles
// (bench/results/perf-4-repo4.md). Not meant to be run by hand; installed in /usr/lib/deploykit.
#include "vercmp.hpp"

#include <cstdio>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

int main(int argc, char** argv)
{
    if (argc > 1) {
        std::string_view a = argv[1];
        if (a == "--help" || a == "-h") {
            std::cout << "usage: stomp-repo-vercmp < VERSIONS\n"
                         "Prints the rank of each version (one a line) in libapt-pkg's Debian order.\n";
            return 0;
        }
        std::cerr << "stomp-repo-vercmp: no arguments expected (versions come on stdin)\n";
        return 2;
    }
    std::vector<std::string> versions;
    std::string line;
    std::size_t n = 0;
    while (std::getline(std::cin, line)) {
        ++n;
        auto bad = [&](const char* why) {
            std::cerr << "stomp-repo-vercmp: line " << n << ": " << why << "\n";
            return 2;
        };
        if (n > 100000) return bad("more than 100000 versions");
        if (line.empty()) return bad("empty version");
        if (line.size() > 255) return bad("version longer than 255 bytes");
        for (unsigned char c : line)
            if (c < 0x20 || c == 0x7f) return bad("control character in version");
        versions.push_back(std::move(line));
        line.clear();
    }
    if (std::cin.bad()) {
        std::cerr << "stomp-repo-vercmp: cannot read stdin\n";
        return 2;
    }
    std::string out;
    for (unsigned r : stomp_repo::apt_version_ranks(versions)) out += std::to_string(r) + "\n";
    if (std::fwrite(out.data(), 1, out.size(), stdout) != out.size() || std::fflush(stdout) != 0) {
        std::cerr << "stomp-repo-vercmp: cannot write stdout\n";
        return 1;
    }
    return 0;
}
