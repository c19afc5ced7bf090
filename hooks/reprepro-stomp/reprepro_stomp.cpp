#include "reprepro_stomp.hpp"

#include <algorithm>

namespace reprepro_stomp {

namespace {

std::string basename(std::string_view p)
{
    if (auto s = p.rfind('/'); s != std::string_view::npos) p.remove_prefix(s + 1);
    return std::string(p);
}

} // namespace

parsed parse_arguments(const std::vector<std::string>& args, bool changes)
{
    parsed out;
    notification n;
    if (changes) {
        // ACTION CODENAME SOURCE VERSION CHANGESFILE [FILEKEYS...]
        if (args.size() < 5) {
            out.error = "expected ACTION CODENAME SOURCE VERSION CHANGESFILE [FILEKEYS...], got " + std::to_string(args.size()) +
                        " argument(s)";
            return out;
        }
        n.action = args[0];
        n.codename = args[1];
        n.type = "changes";
        n.name = args[2];
        n.new_version = args[3];
        n.architecture = "source";
        n.new_files.push_back(args[4]);
        for (std::size_t i = 5; i < args.size(); ++i)
            if (args[i] != "--") n.new_files.push_back(args[i]);
        out.value = std::move(n);
        return out;
    }
    auto dash = std::find(args.begin(), args.end(), std::string("--"));
    std::vector<std::string> head(args.begin(), dash);
    if (head.size() < 6) {
        out.error = "expected ACTION CODENAME TYPE COMPONENT ARCHITECTURE NAME [NEW] [OLD] -- FILEKEYS..., got " +
                    std::to_string(head.size()) + " argument(s) before --";
        return out;
    }
    n.action = head[0];
    n.codename = head[1];
    n.type = head[2];
    n.component = head[3];
    n.architecture = head[4];
    n.name = head[5];
    std::size_t versions = head.size() - 6;
    if (n.action == "add" || n.action == "info") {
        if (versions != 1) out.error = n.action + ": expected one version";
        else n.new_version = head[6];
    } else if (n.action == "remove") {
        if (versions != 1) out.error = "remove: expected one version";
        else n.old_version = head[6];
    } else if (n.action == "replace") {
        if (versions != 2) out.error = "replace: expected the new and the old version";
        else {
            n.new_version = head[6];
            n.old_version = head[7];
        }
    } else {
        out.error = "unknown action '" + n.action.substr(0, 40) + "' (expected add, replace, remove or info)";
    }
    if (!out.error.empty()) return out;
    // Files: after the first --, the new version's; after a second --, the old version's.
    auto* files = n.action == "remove" ? &n.old_files : &n.new_files;
    if (dash != args.end())
        for (auto it = dash + 1; it != args.end(); ++it) {
            if (*it == "--") {
                files = &n.old_files;
                continue;
            }
            files->push_back(*it);
        }
    if (n.type == "dsc") n.architecture = "source";
    out.value = std::move(n);
    return out;
}

bus::package_event to_event(const notification& n)
{
    bus::package_event p;
    p.name = n.name;
    p.new_version = n.new_version;
    p.old_version = n.old_version;
    p.codename = n.codename;
    p.component = n.component;
    p.architecture = n.architecture;
    if (!n.new_files.empty()) p.file = basename(n.new_files.front());
    else if (!n.old_files.empty()) p.file = basename(n.old_files.front());
    return p;
}

bool waits_for_export(const notification& n, std::string_view causing_command, std::string_view dist_dir)
{
    if (dist_dir.empty() || n.action == "info" || causing_command == "rerunnotifiers") return false;
    return true;
}

} // namespace reprepro_stomp
