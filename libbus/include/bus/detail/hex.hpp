#pragma once

#include <cstddef>
#include <string>

namespace bus::detail {

/// Lower-case hex of `n` bytes.
inline std::string to_hex(const unsigned char* p, std::size_t n)
{
    static constexpr char digits[] = "0123456789abcdef";
    std::string out;
    out.reserve(2 * n);
    for (std::size_t i = 0; i < n; ++i) {
        out.push_back(digits[p[i] >> 4]);
        out.push_back(digits[p[i] & 15]);
    }
    return out;
}

} // namespace bus::detail
