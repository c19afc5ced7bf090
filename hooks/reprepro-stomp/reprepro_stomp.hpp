#pragma once

// reprepro-stomp's logic, pure: reading reprepro's notifier arguments (`Log:` lines, per package,
// and the `--changes` form) into package events, and deciding when the export is visible. The
// detached wait, the config and sending are shell.cpp's.

#include "bus/event.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace reprepro_stomp {

/// One call of a `Log:` notifier:
///   ACTION CODENAME TYPE COMPONENT ARCH NAME [NEW] [OLD] -- NEW-FILEKEYS... [-- OLD-FILEKEYS...]
/// (add: NEW; remove: OLD; replace: NEW OLD; info — `reprepro rerunnotifiers` — NEW), or of a
/// `--changes` notifier:
///   ACTION CODENAME SOURCE VERSION CHANGESFILE [FILEKEYS...]
struct notification {
    std::string action;
    std::string codename;
    std::string type;  ///< deb, udeb, dsc; "changes" for the --changes form
    std::string component;
    std::string architecture;
    std::string name;
    std::string new_version;
    std::string old_version;
    std::vector<std::string> new_files;
    std::vector<std::string> old_files;
};

struct parsed {
    std::optional<notification> value;
    std::string error;
};

/// Parses the arguments after the options. `changes`: the --changes form.
parsed parse_arguments(const std::vector<std::string>& args, bool changes);

/// The package event of a notification: name, versions, codename, component, architecture
/// (`source` for dsc and changes), and the file (basename of the first new file key, else of
/// the first old one) as auto-reprepro announced it.
bus::package_event to_event(const notification& n);

/// True when the event must wait for reprepro's export before it is published: reprepro calls
/// `Log:` notifiers before it writes the new indices. Not for `info` (rerunnotifiers: the
/// indices are already out) or when reprepro is not the caller (no REPREPRO_DIST_DIR).
bool waits_for_export(const notification& n, std::string_view causing_command, std::string_view dist_dir);

/// A file's identity for "has it been replaced": reprepro renames new indices into place.
struct file_state {
    bool exists = false;
    unsigned long long dev = 0, ino = 0;
    long long mtime_ns = 0;
    long long size = 0;
    bool operator==(const file_state&) const = default;
};

} // namespace reprepro_stomp
