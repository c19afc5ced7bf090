#include "bus/numeric.hpp"

#include <clocale>
#include <cmath>
#include <cstdlib>
#include <locale.h>
#include <string>

namespace bus {

namespace {

bool digit(char c) { return c >= '0' && c <= '9'; }

/// The C locale, for strtod_l: a decimal point is '.' even if something called setlocale.
locale_t c_locale()
{
    static const locale_t c = ::newlocale(LC_ALL_MASK, "C", static_cast<locale_t>(nullptr));
    return c;
}

} // namespace

std::optional<double> parse_decimal(std::string_view s)
{
    std::size_t i = 0;
    const std::size_t n = s.size();
    if (i < n && s[i] == '-') ++i;
    std::size_t digits = 0;
    for (; i < n && digit(s[i]); ++i) ++digits;
    if (i < n && s[i] == '.')
        for (++i; i < n && digit(s[i]); ++i) ++digits;
    if (digits == 0) return std::nullopt;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        ++i;
        if (i < n && (s[i] == '+' || s[i] == '-')) ++i;
        std::size_t exp_digits = 0;
        for (; i < n && digit(s[i]); ++i) ++exp_digits;
        if (exp_digits == 0) return std::nullopt;
    }
    if (i != n) return std::nullopt;
    const std::string text(s);  // strtod wants a terminated string
    char* end = nullptr;
    locale_t c = c_locale();
    double d = c ? ::strtod_l(text.c_str(), &end, c) : std::strtod(text.c_str(), &end);
    if (end != text.c_str() + text.size() || !std::isfinite(d)) return std::nullopt;
    return d;
}

} // namespace bus
