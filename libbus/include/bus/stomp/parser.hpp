#pragma once

#include "bus/stomp/error.hpp"
#include "bus/stomp/frame.hpp"
#include "bus/stomp/frame_view.hpp"

#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace bus::stomp {

/// Denial-of-service limits the parser enforces on untrusted input.
struct limits {
    std::size_t max_frame = 4 * 1024 * 1024;   ///< command, headers and body together
    std::size_t max_body = 4 * 1024 * 1024;    ///< body alone
    std::size_t max_headers = 128;             ///< header lines in one frame
    std::size_t max_line = 16 * 1024;          ///< one command or header line
};

/// Incremental, sans-IO STOMP frame parser (STOMP 1.0, 1.1, 1.2).
///
/// Usage mirrors Beast's `basic_parser`: the caller owns the input buffer and calls `put` with
/// every byte not yet consumed. `put` consumes at most one item — one end-of-line heart-beat
/// between frames, or one whole frame — and returns how many bytes it used:
///
///  - `ec == error::need_more`: nothing is complete yet; 0 bytes are used. Append more input and
///    call again with the same unconsumed bytes (state is kept, so bytes are not rescanned).
///  - `!ec` and `got() == item::heartbeat`: one EOL (LF or CRLF) between frames was consumed.
///  - `!ec` and `got() == item::frame`: a frame was consumed; take it with `release()`.
///  - any other error is final; the parser must not be used again until `reset()`.
///
/// Header values are unescaped according to `version()`: strictly on 1.1/1.2 (an undefined
/// escape is `bad_escape`), leniently on 1.0 (known escapes are decoded, since brokers emit
/// them even there, and anything else is kept literally). CONNECT and CONNECTED frames are never
/// unescaped, as STOMP 1.2 requires. Not thread-safe; no allocation beyond the frame itself.
class parser {
public:
    enum class item { none, heartbeat, frame };

    explicit parser(limits lim = {}) noexcept : limits_(lim) {}

    void set_version(version v) noexcept { version_ = v; }
    stomp::version version() const noexcept { return version_; }
    const stomp::limits& frame_limits() const noexcept { return limits_; }

    std::size_t put(std::string_view in, std::error_code& ec);
    /// The same, without building the owning frame: a completed frame is `view()`, which
    /// points into `in` (zero-copy, and no heap allocation once the parser's reused storage
    /// has grown to the largest header block seen). For the hot paths that look at a frame
    /// and let go of it before touching the buffer again.
    std::size_t put_view(std::string_view in, std::error_code& ec);

    item got() const noexcept { return got_; }
    /// The frame completed by the last `put` or `put_view`; see frame_view for its lifetime.
    frame_view view() const noexcept { return {command_, {views_.data(), views_.size()}, body_}; }
    /// Moves out the frame completed by the last `put`. After `put_view` it is copied from
    /// `view()`, so the input bytes must still be there.
    stomp::frame release() noexcept;
    /// Forgets any partial frame and error state; keeps version and limits.
    void reset() noexcept;

private:
    enum class head_state { done, more, failed };
    std::size_t fail(std::error_code& ec, error e) noexcept;
    head_state walk_head(std::string_view in, bool parse, std::error_code& ec);
    bool parse_head(std::string_view head, std::error_code& ec);
    bool parse_line(std::string_view line, const char* colon, bool backslash, error& e);
    std::size_t scan(std::string_view in, std::error_code& ec);

    stomp::limits limits_;
    stomp::version version_ = stomp::version::v1_0;
    item got_ = item::none;
    stomp::frame frame_;
    bool owned_ = false;                // frame_ holds the last frame (put), not only the views
    std::string_view command_;          // the last frame, as views (see frame_view)
    std::string_view body_;
    std::vector<header_view> views_;    // reused: capacity kept across frames
    std::string scratch_;               // unescaped header text; reserved per header block
    // Progress within the current frame, kept across need_more returns.
    std::size_t scan_ = 0;        // start of the first line (or body byte) not yet searched
    std::size_t lines_ = 0;       // complete non-empty lines seen in the header block
    std::size_t head_len_ = 0;    // header block length incl. the blank line, once parsed
    bool have_head_ = false;
    bool have_length_ = false;
    std::size_t body_len_ = 0;
    bool escaped_ = true;         // the current frame's header values are unescaped
    std::size_t head_room_ = 0;   // parse_head: size of the complete block (scratch room)
};

} // namespace bus::stomp
