#include "bus/stomp/parser.hpp"
#include "bus/stomp/serializer.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace bus::stomp {

// ---- errors ---------------------------------------------------------------------------------

namespace {

class category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "bus.stomp"; }
    std::string message(int ev) const override
    {
        switch (static_cast<error>(ev)) {
        case error::need_more: return "need more input";
        case error::bad_command: return "bad or unknown STOMP command";
        case error::line_too_long: return "header line too long";
        case error::too_many_headers: return "too many headers";
        case error::bad_header: return "malformed header line";
        case error::bad_escape: return "undefined escape sequence in header";
        case error::bad_content_length: return "bad content-length";
        case error::body_too_large: return "body too large";
        case error::frame_too_large: return "frame too large";
        case error::missing_nul: return "body not terminated by NUL";
        case error::bad_eol: return "CR not followed by LF";
        case error::unencodable_header: return "header cannot be encoded in this STOMP version";
        }
        return "unknown bus.stomp error";
    }
};

} // namespace

const std::error_category& error_category() noexcept
{
    static const category_impl cat;
    return cat;
}

// ---- frame ----------------------------------------------------------------------------------

std::string_view to_string(version v) noexcept
{
    switch (v) {
    case version::v1_0: return "1.0";
    case version::v1_1: return "1.1";
    case version::v1_2: return "1.2";
    }
    return "1.0";
}

std::optional<version> parse_version(std::string_view s) noexcept
{
    if (s == "1.0") return version::v1_0;
    if (s == "1.1") return version::v1_1;
    if (s == "1.2") return version::v1_2;
    return std::nullopt;
}

std::optional<std::string_view> frame::find(std::string_view name) const noexcept
{
    for (const auto& [k, v] : headers)
        if (k == name) return std::string_view{v};
    return std::nullopt;
}

std::string_view frame::get(std::string_view name, std::string_view fallback) const noexcept
{
    auto v = find(name);
    return v ? *v : fallback;
}

frame& frame::set(std::string_view name, std::string_view value)
{
    auto it = std::find_if(headers.begin(), headers.end(), [&](auto& h) { return h.first == name; });
    if (it == headers.end()) {
        headers.emplace_back(name, value);
        return *this;
    }
    it->second.assign(value);
    headers.erase(std::remove_if(std::next(it), headers.end(),
                                 [&](auto& h) { return h.first == name; }),
                  headers.end());
    return *this;
}

frame& frame::add(std::string_view name, std::string_view value)
{
    headers.emplace_back(name, value);
    return *this;
}

void frame::erase(std::string_view name)
{
    std::erase_if(headers, [&](auto& h) { return h.first == name; });
}

bool is_legacy_keepalive(const frame& f) noexcept
{
    return (f.command == "SEND" || f.command == "MESSAGE") && f.body == "\n";
}

// ---- parser ---------------------------------------------------------------------------------

namespace {

// By length first: one or two comparisons instead of a walk over all fifteen.
bool known_command(std::string_view c) noexcept
{
    switch (c.size()) {
    case 3: return c == "ACK";
    case 4: return c == "SEND" || c == "NACK";
    case 5: return c == "BEGIN" || c == "ABORT" || c == "STOMP" || c == "ERROR";
    case 6: return c == "COMMIT";
    case 7: return c == "MESSAGE" || c == "RECEIPT" || c == "CONNECT";
    case 9: return c == "SUBSCRIBE" || c == "CONNECTED";
    case 10: return c == "DISCONNECT";
    case 11: return c == "UNSUBSCRIBE";
    default: return false;
    }
}

// What one pass over a command or header line finds.
struct line_marks {
    const char* nl = nullptr;     // the LF ending the line; nullptr: none within the window
    const char* colon = nullptr;  // the first ':' before it
    bool backslash = false;       // a '\\' before it (the line needs unescaping)
};

// Searches [p, p + n) once for the line's LF, its first ':' and any backslash: 16 bytes per
// step with SSE2 (part of the x86-64 baseline, so no -march and no dispatch), then bytewise.
line_marks mark_line(const char* p, std::size_t n) noexcept
{
    line_marks m;
    std::size_t i = 0;
#if defined(__SSE2__)
    const __m128i lf = _mm_set1_epi8('\n');
    const __m128i colon = _mm_set1_epi8(':');
    const __m128i bs = _mm_set1_epi8('\\');
    for (; i + 16 <= n; i += 16) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
        const unsigned ml = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, lf)));
        const unsigned before = ml ? (ml & (0u - ml)) - 1 : 0xffffu;  // the bytes before the LF
        const unsigned mc = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, colon))) & before;
        const unsigned mb = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(v, bs))) & before;
        if (mc && !m.colon) m.colon = p + i + __builtin_ctz(mc);
        if (mb) m.backslash = true;
        if (ml) {
            m.nl = p + i + __builtin_ctz(ml);
            return m;
        }
    }
#endif
    for (; i < n; ++i) {
        const char c = p[i];
        if (c == '\n') {
            m.nl = p + i;
            return m;
        }
        if (c == ':') {
            if (!m.colon) m.colon = p + i;
        } else if (c == '\\') {
            m.backslash = true;
        }
    }
    return m;
}

// Appends `in` with STOMP header escapes decoded to `out`. Strict (1.1/1.2) rejects undefined
// escapes; lenient (1.0) decodes the defined ones and keeps anything else literally. Never
// needs more than in.size() bytes of room.
bool unescape(std::string_view in, std::string& out, version v)
{
    const bool strict = v != version::v1_0;
    for (std::size_t i = 0; i < in.size(); ++i) {
        char c = in[i];
        if (c != '\\') {
            out.push_back(c);
            continue;
        }
        if (i + 1 == in.size()) {
            if (strict) return false;
            out.push_back(c);
            continue;
        }
        char n = in[i + 1];
        char decoded = 0;
        switch (n) {
        case '\\': decoded = '\\'; break;
        case 'n': decoded = '\n'; break;
        case 'c': decoded = ':'; break;
        case 'r':
            // \r is defined from 1.2 on; 1.0 input is decoded leniently.
            if (v != version::v1_1) decoded = '\r';
            break;
        default: break;
        }
        if (decoded == 0) {
            if (strict) return false;
            out.push_back(c);
            continue;
        }
        out.push_back(decoded);
        ++i;
    }
    return true;
}

// A header name or value as a view: the raw bytes when nothing is escaped (the common case),
// else decoded into `scratch`, which has room reserved for the whole block (no reallocation,
// so earlier views into it stay valid).
bool decode(std::string_view raw, std::string& scratch, version v, std::string_view& out)
{
    if (std::memchr(raw.data(), '\\', raw.size()) == nullptr) {
        out = raw;
        return true;
    }
    std::size_t at = scratch.size();
    if (!unescape(raw, scratch, v)) return false;
    out = std::string_view(scratch.data() + at, scratch.size() - at);
    return true;
}

} // namespace

std::size_t parser::fail(std::error_code& ec, error e) noexcept
{
    ec = e;
    return 0;
}

void parser::reset() noexcept
{
    got_ = item::none;
    frame_ = {};
    owned_ = false;
    command_ = {};
    body_ = {};
    views_.clear();
    scratch_.clear();
    scan_ = 0;
    lines_ = 0;
    head_len_ = 0;
    have_head_ = false;
    have_length_ = false;
    body_len_ = 0;
    escaped_ = true;
    head_room_ = 0;
}

frame parser::release() noexcept
{
    got_ = item::none;
    if (!owned_) return view().to_frame();
    owned_ = false;
    return std::move(frame_);
}

// Line `lines_` of the header block: the command (the first) or a header. `colon` is its first
// ':', `backslash` whether it holds one (else no unescaping is needed).
[[gnu::always_inline]] inline bool parser::parse_line(std::string_view line, const char* colon, bool backslash, error& e)
{
    if (lines_ == 1) {
        if (!known_command(line)) {
            e = error::bad_command;
            return false;
        }
        command_ = line;
        escaped_ = line != "CONNECT" && line != "CONNECTED";
        if (escaped_ && head_room_ != 0 && scratch_.capacity() < head_room_) scratch_.reserve(head_room_);
        return true;
    }
    if (colon == nullptr || colon == line.data()) {
        e = error::bad_header;
        return false;
    }
    const std::size_t at = static_cast<std::size_t>(colon - line.data());
    // Name and value stay in registers on the common path (no escapes): going through a
    // header_view on the stack cost a store-forwarding stall per header (perf annotate).
    std::string_view name = line.substr(0, at);
    std::string_view value = line.substr(at + 1);
    if (backslash && escaped_) [[unlikely]] {
        std::string_view n, v;
        if (!decode(name, scratch_, version_, n) || !decode(value, scratch_, version_, v)) {
            e = error::bad_escape;
            return false;
        }
        name = n;
        value = v;
    }
    if (!have_length_ && name == "content-length") {
        // Repeated headers: the first one wins, so later content-lengths are ignored.
        std::string_view digits = value;
        while (!digits.empty() && digits.front() == ' ') digits.remove_prefix(1);
        while (!digits.empty() && digits.back() == ' ') digits.remove_suffix(1);
        std::size_t n = 0;
        auto [p, err] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
        if (digits.empty() || err != std::errc{} || p != digits.data() + digits.size()) {
            e = error::bad_content_length;
            return false;
        }
        if (n > limits_.max_body) {
            e = error::body_too_large;
            return false;
        }
        have_length_ = true;
        body_len_ = n;
    }
    views_.push_back(header_view{name, value});
    return true;
}

// Walks the header block line by line from `scan_`, checking the limits as each line is found
// (so `scan_`/`lines_` let a later call resume without searching a byte twice). With `parse`
// (from the start of a frame) the same pass also parses each line: the command, the headers as
// views, content-length. A line's error is kept until the block is complete, so a limit
// broken further down, or a block still incomplete, is reported first, whichever way the
// input was split. `done` leaves head_len_ set and the head parsed.
parser::head_state parser::walk_head(std::string_view in, bool parse, std::error_code& ec)
{
    bool parsing = parse;
    bool reparse = false;     // an escaped line needs more scratch room than is reserved
    bool bad_line = false;
    error line_error{};
    if (parse) {
        views_.clear();
        scratch_.clear();
        have_length_ = false;
        body_len_ = 0;
    }
    for (;;) {
        const char* base = in.data() + scan_;
        const std::size_t avail = in.size() - scan_;
        const line_marks m = mark_line(base, std::min(avail, limits_.max_line + 2));
        if (m.nl == nullptr) {
            if (avail > limits_.max_line + 1) ec = error::line_too_long;
            else if (in.size() > limits_.max_frame) ec = error::frame_too_large;
            else {
                ec = error::need_more;
                return head_state::more;
            }
            return head_state::failed;
        }
        const std::size_t len = static_cast<std::size_t>(m.nl - base);
        std::string_view line{base, len};
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        if (line.size() > limits_.max_line) {
            ec = error::line_too_long;
            return head_state::failed;
        }
        scan_ += len + 1;
        if (scan_ > limits_.max_frame) {
            ec = error::frame_too_large;
            return head_state::failed;
        }
        if (line.empty() && lines_ > 0) break;
        if (++lines_ > limits_.max_headers + 1) {
            ec = error::too_many_headers;
            return head_state::failed;
        }
        if (!parsing) continue;
        if (m.backslash && lines_ > 1 && escaped_ && head_room_ == 0 &&
            scratch_.capacity() - scratch_.size() < line.size()) {
            reparse = true;  // rare: parse the complete block again with room reserved for it
            parsing = false;
        } else if (!parse_line(line, m.colon, m.backslash, line_error)) {
            bad_line = true;
            parsing = false;
        }
    }
    head_len_ = scan_;
    if (bad_line) {
        ec = line_error;
        return head_state::failed;
    }
    if (!parse || reparse) return parse_head(in.substr(0, head_len_), ec) ? head_state::done : head_state::failed;
    return head_state::done;
}

// A complete header block (ending with its empty line), parsed in one walk with room for
// every unescaped byte reserved up front.
bool parser::parse_head(std::string_view head, std::error_code& ec)
{
    scan_ = 0;
    lines_ = 0;
    head_room_ = head.size();
    const bool ok = walk_head(head, true, ec) == head_state::done;
    head_room_ = 0;
    return ok;
}

std::size_t parser::put(std::string_view in, std::error_code& ec)
{
    std::size_t used = scan(in, ec);
    if (got_ == item::frame) {
        // The owning frame, reusing frame_'s storage when the last one was not moved out.
        frame_.command.assign(command_);
        frame_.headers.clear();
        frame_.headers.reserve(views_.size());
        for (const auto& h : views_) frame_.headers.emplace_back(h.name, h.value);
        frame_.body.assign(body_);
        owned_ = true;
    }
    return used;
}

std::size_t parser::put_view(std::string_view in, std::error_code& ec)
{
    return scan(in, ec);
}

std::size_t parser::scan(std::string_view in, std::error_code& ec)
{
    ec = {};
    got_ = item::none;
    owned_ = false;
    bool fresh = false;  // the head was parsed in this call, so its views point into `in`

    if (!have_head_) {
        if (scan_ == 0) {
            // Between frames: each EOL is a heart-beat.
            if (in.empty()) return fail(ec, error::need_more);
            if (in[0] == '\n') {
                got_ = item::heartbeat;
                return 1;
            }
            if (in[0] == '\r') {
                if (in.size() < 2) return fail(ec, error::need_more);
                if (in[1] != '\n') return fail(ec, error::bad_eol);
                got_ = item::heartbeat;
                return 2;
            }
        }
        // From the start of a frame the header block is found and parsed in one pass; a block
        // that arrives in pieces is walked for its limits as it grows, then parsed once whole.
        if (walk_head(in, scan_ == 0, ec) != head_state::done) return 0;
        have_head_ = true;
        if (have_length_ && head_len_ + body_len_ + 1 > limits_.max_frame)
            return fail(ec, error::frame_too_large);
        fresh = true;
    }

    std::size_t end = 0;  // offset of the terminating NUL
    if (have_length_) {
        end = head_len_ + body_len_;
        if (in.size() <= end) return fail(ec, error::need_more);
        // The body is not scanned: its length is declared, so only the NUL after it is read.
        // That read brings in the next frame's first bytes; ask for the line after them too,
        // so the next header block's two cache misses overlap instead of following each other.
        if (in.size() - end > 64) __builtin_prefetch(in.data() + end + 64);
        if (in[end] != '\0') return fail(ec, error::missing_nul);
    } else {
        // The NUL may sit at most at head + max_body, and the frame may not exceed max_frame.
        const std::size_t body_end = head_len_ + limits_.max_body + 1;
        const std::size_t frame_end = limits_.max_frame;
        const std::size_t from = std::max(scan_, head_len_);
        const std::size_t limit = std::min({in.size(), body_end, frame_end});
        const void* nul = from < limit ? std::memchr(in.data() + from, '\0', limit - from) : nullptr;
        if (nul == nullptr) {
            if (frame_end <= body_end && in.size() >= frame_end) return fail(ec, error::frame_too_large);
            if (in.size() >= body_end) return fail(ec, error::body_too_large);
            scan_ = in.size();
            return fail(ec, error::need_more);
        }
        end = static_cast<std::size_t>(static_cast<const char*>(nul) - in.data());
    }
    if (!fresh) {
        // The head came in an earlier call, and the caller's buffer may have moved (grown)
        // since: the same bytes parse the same way, at the same offsets of `in`.
        have_length_ = false;
        if (!parse_head(in.substr(0, head_len_), ec)) return 0;
    }
    body_ = in.substr(head_len_, end - head_len_);
    got_ = item::frame;
    scan_ = 0;
    lines_ = 0;
    head_len_ = 0;
    have_head_ = false;
    have_length_ = false;
    body_len_ = 0;
    return end + 1;
}

// ---- serializer -----------------------------------------------------------------------------

namespace {

// Appends `s` escaped for `v`; false if it cannot be represented.
bool put_escaped(std::string& out, std::string_view s, version v, bool escaping, bool is_name)
{
    if (!escaping || v == version::v1_0) {
        for (char c : s)
            if (c == '\n' || c == '\r' || (is_name && c == ':') ||
                (v == version::v1_0 && escaping && c == '\\'))
                return false;
        out.append(s);
        return true;
    }
    for (char c : s) {
        switch (c) {
        case '\\': out.append("\\\\"); break;
        case '\n': out.append("\\n"); break;
        case ':': out.append("\\c"); break;
        case '\r':
            if (v != version::v1_2) return false;
            out.append("\\r");
            break;
        default: out.push_back(c);
        }
    }
    return true;
}

} // namespace

void serialize(std::string& out, const frame& f, version v, std::error_code& ec)
{
    ec = {};
    const std::size_t mark = out.size();
    const bool escaping = f.command != "CONNECT" && f.command != "CONNECTED";
    out.append(f.command);
    out.push_back('\n');
    bool wrote_length = false;
    char digits[24];
    for (const auto& [name, value] : f.headers) {
        if (name == "content-length") {
            if (wrote_length) continue;
            wrote_length = true;
            auto r = std::to_chars(digits, digits + sizeof digits, f.body.size());
            out.append("content-length:").append(digits, r.ptr).push_back('\n');
            continue;
        }
        if (!put_escaped(out, name, v, escaping, true)) {
            out.resize(mark);
            ec = error::unencodable_header;
            return;
        }
        out.push_back(':');
        if (!put_escaped(out, value, v, escaping, false)) {
            out.resize(mark);
            ec = error::unencodable_header;
            return;
        }
        out.push_back('\n');
    }
    if (!wrote_length && !f.body.empty()) {
        auto r = std::to_chars(digits, digits + sizeof digits, f.body.size());
        out.append("content-length:").append(digits, r.ptr).push_back('\n');
    }
    out.push_back('\n');
    out.append(f.body);
    out.push_back('\0');
}

std::string serialize(const frame& f, version v)
{
    std::string out;
    std::error_code ec;
    serialize(out, f, v, ec);
    if (ec) throw std::system_error(ec, f.command);
    return out;
}

} // namespace bus::stomp
