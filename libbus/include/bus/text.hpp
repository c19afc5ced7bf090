#pragma once

// Free text from events (commit messages, authors, errors) is attacker-controlled: it must not
// forge log lines, drive a terminal, or be re-emitted on the bus with control characters. Pure.

#include <string>
#include <string_view>

namespace bus {

/// `s` made safe for one log line: control characters become C-style escapes (`\n`, `\r`, `\t`,
/// `\x1b`, ...), UTF-8-encoded C1 controls become `\u0085` etc., and bytes that are not valid
/// UTF-8 become `\xNN`. Printable text, including non-ASCII UTF-8, is unchanged. Use it for every
/// piece of event data (ids, repos, refs, messages, reasons that quote them) in a log line.
std::string log_escape(std::string_view s);

/// True if `s` holds a C0 control character, DEL, or a UTF-8-encoded C1 control (U+0080-U+009F).
bool has_control(std::string_view s) noexcept;

/// Free text cleaned at intake and at event construction: ANSI escape sequences (CSI, OSC, and
/// other ESC sequences) are removed, then every other control character; with `multiline`, `\n`
/// and `\t` are kept (commit messages), `\r\n` becomes `\n`; otherwise they become spaces.
/// Invalid UTF-8 is left for the JSON writer to replace.
std::string strip_control(std::string_view s, bool multiline);

} // namespace bus
