// PCRE2 loaded at the first regular expression an alert rule compiles (bus/lazy_library.hpp)
// instead of at herald's start: linked, libpcre2-8 costs every herald 80 kB of RSS, though only a
// configuration with a `match: /.../` rule uses it. Rules are compiled when the configuration is
// read, at start or SIGHUP, so a missing library still stops the start, naming it. The functions
// herald calls are defined here with PCRE2's own names and signatures (the 8-bit ones the macros of
// pcre2.h name) and forwarded through a table resolved once. Nothing links -lpcre2-8.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "bus/detail/lazy_forward.hpp"
#include "bus/lazy_library.hpp"

#include <pcre2.h>

#include <cstddef>

namespace {

// X(function, number of parameters)
#define HERALD_PCRE2_FUNCTIONS(X)              \
    X(pcre2_code_free_8, 1)                    \
    X(pcre2_compile_8, 6)                      \
    X(pcre2_get_error_message_8, 3)            \
    X(pcre2_match_8, 7)                        \
    X(pcre2_match_context_create_8, 1)         \
    X(pcre2_match_context_free_8, 1)           \
    X(pcre2_match_data_create_from_pattern_8, 2) \
    X(pcre2_match_data_free_8, 1)              \
    X(pcre2_set_depth_limit_8, 2)              \
    X(pcre2_set_match_limit_8, 2)

bus::lazy_library& pcre2_library();
BUS_LAZY_TABLE(HERALD_PCRE2_FUNCTIONS, pcre2_library)

bus::lazy_library& pcre2_library()
{
    static bus::lazy_library lib(HERALD_LIBPCRE2_SONAME, names);
    return lib;
}

} // namespace

extern "C" {
HERALD_PCRE2_FUNCTIONS(BUS_LAZY_FORWARD)
}
