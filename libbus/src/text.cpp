#include "bus/text.hpp"

#include <cstdio>

namespace bus {

namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is not one (overlong forms,
// surrogates and code points above U+10FFFF are invalid).
std::size_t utf8_length(std::string_view s, std::size_t i) noexcept
{
    auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[i + k]); };
    auto cont = [&](std::size_t k) { return i + k < s.size() && (b(k) & 0xc0) == 0x80; };
    unsigned char c = b(0);
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (!cont(1) || !cont(2)) return 0;
        if (c == 0xe0 && b(1) < 0xa0) return 0;  // overlong
        if (c == 0xed && b(1) >= 0xa0) return 0;  // surrogate
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (!cont(1) || !cont(2) || !cont(3)) return 0;
        if (c == 0xf0 && b(1) < 0x90) return 0;
        if (c == 0xf4 && b(1) >= 0x90) return 0;
        return 4;
    }
    return 0;
}

bool is_c0(unsigned char c) noexcept { return c < 0x20 || c == 0x7f; }

// U+0080-U+009F encoded as UTF-8: C2 80 .. C2 9F.
bool is_c1_at(std::string_view s, std::size_t i) noexcept
{
    return i + 1 < s.size() && static_cast<unsigned char>(s[i]) == 0xc2 && static_cast<unsigned char>(s[i + 1]) >= 0x80 &&
           static_cast<unsigned char>(s[i + 1]) <= 0x9f;
}

// End of the ANSI escape sequence whose introducer (`[` for CSI, `]` OSC, `P` DCS, `_` APC, `^`
// PM, `X` SOS, or an nF intermediate/final byte) is `intro` and whose parameters start at s[j]:
// ECMA-48 CSI `params intermediates final`, string sequences up to BEL or ST, two-byte `ESC x`
// sequences. An unterminated sequence runs to the end of the text.
std::size_t escape_end(std::string_view s, char intro, std::size_t j) noexcept
{
    auto in = [&](std::size_t k, unsigned lo, unsigned hi) {
        return k < s.size() && static_cast<unsigned char>(s[k]) >= lo && static_cast<unsigned char>(s[k]) <= hi;
    };
    if (intro == '[') {
        while (in(j, 0x20, 0x3f)) ++j;
        if (in(j, 0x40, 0x7e)) ++j;
        return j;
    }
    if (intro == ']' || intro == 'P' || intro == '_' || intro == '^' || intro == 'X') {
        for (; j < s.size(); ++j) {
            if (s[j] == '\a') return j + 1;
            if (s[j] == '\x1b' && j + 1 < s.size() && s[j + 1] == '\\') return j + 2;
            if (static_cast<unsigned char>(s[j]) == 0xc2 && j + 1 < s.size() &&
                static_cast<unsigned char>(s[j + 1]) == 0x9c)
                return j + 2;  // C1 ST
        }
        return s.size();
    }
    if (static_cast<unsigned char>(intro) < 0x20 || static_cast<unsigned char>(intro) > 0x7e) return j - 1;
    // nF: intermediates 0x20-0x2f (the introducer may be one), then a final byte.
    if (static_cast<unsigned char>(intro) >= 0x20 && static_cast<unsigned char>(intro) <= 0x2f) {
        while (in(j, 0x20, 0x2f)) ++j;
        if (in(j, 0x30, 0x7e)) ++j;
    }
    return j;
}

} // namespace

std::string log_escape(std::string_view s)
{
    std::string out;
    out.reserve(s.size());
    char buf[8];
    for (std::size_t i = 0; i < s.size();) {
        auto c = static_cast<unsigned char>(s[i]);
        if (is_c0(c)) {
            switch (c) {
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                std::snprintf(buf, sizeof buf, "\\x%02x", c);
                out += buf;
            }
            ++i;
            continue;
        }
        if (is_c1_at(s, i)) {
            std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(s[i + 1])));
            out += buf;
            i += 2;
            continue;
        }
        std::size_t n = utf8_length(s, i);
        if (n == 0) {
            std::snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
            ++i;
            continue;
        }
        out.append(s.substr(i, n));
        i += n;
    }
    return out;
}

bool has_control(std::string_view s) noexcept
{
    for (std::size_t i = 0; i < s.size(); ++i)
        if (is_c0(static_cast<unsigned char>(s[i])) || is_c1_at(s, i)) return true;
    return false;
}

std::string strip_control(std::string_view s, bool multiline)
{
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c == 0x1b) {
            i = i + 1 < s.size() ? escape_end(s, s[i + 1], i + 2) : i + 1;
            continue;
        }
        if (is_c1_at(s, i)) {
            // C1 CSI (U+009B), OSC (U+009D), DCS, PM and APC start sequences as ESC [ etc. do.
            switch (static_cast<unsigned char>(s[i + 1])) {
            case 0x9b: i = escape_end(s, '[', i + 2); break;
            case 0x9d: i = escape_end(s, ']', i + 2); break;
            case 0x90: i = escape_end(s, 'P', i + 2); break;
            case 0x9e: i = escape_end(s, '^', i + 2); break;
            case 0x9f: i = escape_end(s, '_', i + 2); break;
            default: i += 2;
            }
            continue;
        }
        if (c == '\r' && i + 1 < s.size() && s[i + 1] == '\n') {
            ++i;
            continue;
        }
        if (c == '\n' || c == '\t' || c == '\r') {
            out.push_back(multiline && c != '\r' ? static_cast<char>(c) : ' ');
            ++i;
            continue;
        }
        if (is_c0(c)) {
            ++i;
            continue;
        }
        out.push_back(static_cast<char>(c));
        ++i;
    }
    return out;
}

} // namespace bus
