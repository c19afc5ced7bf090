#include "bus/stomp/parser.hpp"
#include "bus/stomp/serializer.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstring>

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

bool known_command(std::string_view c) noexcept
{
    static constexpr std::array<std::string_view, 15> commands{
        "SEND",   "MESSAGE", "SUBSCRIBE", "UNSUBSCRIBE", "ACK",     "NACK",
        "BEGIN",  "COMMIT",  "ABORT",     "CONNECT",     "STOMP",   "CONNECTED",
        "RECEIPT", "ERROR",  "DISCONNECT"};
    return std::find(commands.begin(), commands.end(), c) != commands.end();
}

std::string_view chomp_cr(std::string_view line) noexcept
{
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
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
}

frame parser::release() noexcept
{
    got_ = item::none;
    if (!owned_) return view().to_frame();
    owned_ = false;
    return std::move(frame_);
}

bool parser::parse_head(std::string_view head, std::error_code& ec)
{
    // `head` is complete lines ending with the empty line.
    const char* nl = static_cast<const char*>(std::memchr(head.data(), '\n', head.size()));
    std::size_t pos = static_cast<std::size_t>(nl - head.data());
    std::string_view command = chomp_cr(head.substr(0, pos));
    if (!known_command(command)) {
        ec = error::bad_command;
        return false;
    }
    command_ = command;
    views_.clear();
    scratch_.clear();
    const bool escaped = command != "CONNECT" && command != "CONNECTED";
    if (escaped && scratch_.capacity() < head.size()) scratch_.reserve(head.size());
    for (;;) {
        std::size_t start = pos + 1;
        nl = static_cast<const char*>(std::memchr(head.data() + start, '\n', head.size() - start));
        pos = static_cast<std::size_t>(nl - head.data());
        std::string_view line = chomp_cr(head.substr(start, pos - start));
        if (line.empty()) break;
        const void* colon_at = std::memchr(line.data(), ':', line.size());
        if (colon_at == nullptr || colon_at == line.data()) {
            ec = error::bad_header;
            return false;
        }
        std::size_t colon = static_cast<std::size_t>(static_cast<const char*>(colon_at) - line.data());
        header_view h{line.substr(0, colon), line.substr(colon + 1)};
        if (escaped && (!decode(h.name, scratch_, version_, h.name) || !decode(h.value, scratch_, version_, h.value))) {
            ec = error::bad_escape;
            return false;
        }
        if (!have_length_ && h.name == "content-length") {
            // Repeated headers: the first one wins, so later content-lengths are ignored.
            std::string_view digits = h.value;
            while (!digits.empty() && digits.front() == ' ') digits.remove_prefix(1);
            while (!digits.empty() && digits.back() == ' ') digits.remove_suffix(1);
            std::size_t n = 0;
            auto [p, err] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
            if (digits.empty() || err != std::errc{} || p != digits.data() + digits.size()) {
                ec = error::bad_content_length;
                return false;
            }
            if (n > limits_.max_body) {
                ec = error::body_too_large;
                return false;
            }
            have_length_ = true;
            body_len_ = n;
        }
        views_.push_back(h);
    }
    return true;
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
        // Find the end of the header block one complete line at a time; `scan_` is the start
        // of the first line not yet seen whole, so no byte is searched twice.
        for (;;) {
            const char* base = in.data() + scan_;
            std::size_t avail = in.size() - scan_;
            std::size_t window = std::min(avail, limits_.max_line + 2);
            const void* nl = std::memchr(base, '\n', window);
            if (nl == nullptr) {
                if (avail > limits_.max_line + 1) return fail(ec, error::line_too_long);
                if (in.size() > limits_.max_frame) return fail(ec, error::frame_too_large);
                return fail(ec, error::need_more);
            }
            std::size_t len = static_cast<std::size_t>(static_cast<const char*>(nl) - base);
            std::string_view line{base, len};
            if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
            if (line.size() > limits_.max_line) return fail(ec, error::line_too_long);
            scan_ += len + 1;
            if (scan_ > limits_.max_frame) return fail(ec, error::frame_too_large);
            if (line.empty() && lines_ > 0) break;
            if (++lines_ > limits_.max_headers + 1) return fail(ec, error::too_many_headers);
        }
        head_len_ = scan_;
        if (!parse_head(in.substr(0, head_len_), ec)) return 0;
        have_head_ = true;
        if (have_length_ && head_len_ + body_len_ + 1 > limits_.max_frame)
            return fail(ec, error::frame_too_large);
        fresh = true;
    }

    std::size_t end = 0;  // offset of the terminating NUL
    if (have_length_) {
        end = head_len_ + body_len_;
        if (in.size() <= end) return fail(ec, error::need_more);
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
