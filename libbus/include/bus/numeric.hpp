#pragma once

// The few rounding and power functions deploykit needs, without libm. Each of them was the only
// reason a program of ours mapped libm.so.6 (llround in the config reader, round and pow in three
// daemons): 0.9 MB mapped, ~0.33 MiB resident and one more library for the loader to relocate at
// every start of a hook (bench/results/perf-5-*.md). The linker's --as-needed then drops libm.
// Exact: each result equals libm's for every finite double in range (tests/unit/url_test.cpp).
// parse_decimal too: std::from_chars for double lives in libstdc++'s floating_from_chars.o, which
// needs libm's fesetround, and the linker decides what is needed before it drops unused code.

#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>

namespace bus {

/// std::round: to the nearest integer, halves away from zero. NaN, infinities and values already
/// integral (|x| >= 2^52) are returned as they are; a result of zero may lose its sign.
constexpr double round_half_away(double x) noexcept
{
    if (!(x > -0x1p52 && x < 0x1p52)) return x;  // NaN, ±inf, or no fraction to round
    // The cast truncates, exactly at this size; x - t is exact too (no rounding in between).
    double t = static_cast<double>(static_cast<std::int64_t>(x));
    double f = x - t;
    if (f >= 0.5) t += 1.0;
    else if (f <= -0.5) t -= 1.0;
    return t;
}

/// std::llround, saturating instead of undefined: beyond the range of int64 the nearest bound,
/// NaN is 0.
constexpr std::int64_t round_to_int64(double x) noexcept
{
    if (x != x) return 0;
    if (x >= 0x1p63) return std::numeric_limits<std::int64_t>::max();
    if (x < -0x1p63) return std::numeric_limits<std::int64_t>::min();
    return static_cast<std::int64_t>(round_half_away(x));
}

/// std::pow for a whole exponent, by repeated squaring (exact for powers of two within range;
/// otherwise within a few ulps of pow, as needed for back-off delays).
constexpr double pow_int(double base, unsigned n) noexcept
{
    double r = 1.0;
    while (n) {
        if (n & 1U) r *= base;
        base *= base;
        n >>= 1;
    }
    return r;
}

/// A finite decimal number: `-`? digits (`.` digits)? or `.` digits, then an optional exponent
/// (`e`/`E`, sign, digits); the whole text, nothing around it. What std::from_chars accepts,
/// except that `inf` and `nan` are not numbers here. Correctly rounded (glibc's strtod in the C
/// locale, whatever the process locale). nullopt for anything else, or beyond the range of double.
std::optional<double> parse_decimal(std::string_view s);

} // namespace bus
