#pragma once

#include <system_error>

namespace bus::stomp {

/// Errors reported by the STOMP frame codec. Every value except `need_more` is final:
/// the byte stream cannot be resynchronised and the connection must be closed.
enum class error {
    /// Not an error: the input ends inside a frame; call `put` again with more bytes.
    need_more = 1,
    /// The command line is empty or is not a STOMP command.
    bad_command,
    /// A command or header line is longer than `limits::max_line`.
    line_too_long,
    /// A frame has more headers than `limits::max_headers`.
    too_many_headers,
    /// A header line has no `:` separator, or an empty name.
    bad_header,
    /// A 1.1/1.2 header contains a backslash escape the spec does not define.
    bad_escape,
    /// `content-length` is not a decimal number, or does not fit.
    bad_content_length,
    /// The body is larger than `limits::max_body`.
    body_too_large,
    /// The frame (headers and body) is larger than `limits::max_frame`.
    frame_too_large,
    /// A body read by `content-length` is not followed by a NUL octet.
    missing_nul,
    /// A CR that is not followed by LF where the grammar expects an end of line.
    bad_eol,
    /// Serialising: a header name or value cannot be written in the frame's protocol version
    /// (1.0 has no escaping, so CR, LF and backslash cannot be carried; `:` in a name).
    unencodable_header,
};

const std::error_category& error_category() noexcept;

inline std::error_code make_error_code(error e) noexcept
{
    return {static_cast<int>(e), error_category()};
}

} // namespace bus::stomp

template <>
struct std::is_error_code_enum<bus::stomp::error> : std::true_type {};
