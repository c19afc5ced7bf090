#pragma once

// Forwarding definitions for a C library loaded at its first use (bus/lazy_library.hpp): each
// function is defined with the library's own name, its signature taken from the library's
// declaration by the compiler (a mismatch does not compile), and its body calls through the
// resolved table. A file using these defines BUS_LAZY_CALL(f), the function pointer to call, then
// expands BUS_LAZY_FORWARD(f, number of parameters) inside extern "C" for each function.
// Users: libbus/src/openssl/libssl_lazy.cpp, daemons/herald/alerts/pcre2_lazy.cpp.

#include <cstddef>
#include <tuple>

namespace bus::detail {

template <class F>
struct c_signature;
template <class R, class... A>
struct c_signature<R (*)(A...)> {
    using ret = R;
    template <std::size_t I>
    using arg = std::tuple_element_t<I, std::tuple<A...>>;
};

} // namespace bus::detail

/// The table behind the forwarding definitions: enum index (i_<function>), names[] (what
/// bus::lazy_library resolves) and fn<index, type>(), the resolved function of `library()`, a
/// function returning the bus::lazy_library built from names.
#define BUS_LAZY_TABLE(list, library)                                  \
    enum index : std::size_t { list(BUS_LAZY_INDEX_) };                \
    constexpr const char* names[] = {list(BUS_LAZY_NAME_)};            \
    template <index I, class F>                                        \
    F fn()                                                             \
    {                                                                  \
        return reinterpret_cast<F>(library().symbol(I));               \
    }
#define BUS_LAZY_INDEX_(f, ...) i_##f,
#define BUS_LAZY_NAME_(f, ...) #f,
#define BUS_LAZY_CALL(f) fn<i_##f, decltype(&::f)>()

#define BUS_LAZY_R(f) ::bus::detail::c_signature<decltype(&::f)>::ret
#define BUS_LAZY_A(f, i) ::bus::detail::c_signature<decltype(&::f)>::template arg<i>
#define BUS_LAZY_FORWARD_0(f) \
    BUS_LAZY_R(f) f() { return BUS_LAZY_CALL(f)(); }
#define BUS_LAZY_FORWARD_1(f) \
    BUS_LAZY_R(f) f(BUS_LAZY_A(f, 0) a) { return BUS_LAZY_CALL(f)(a); }
#define BUS_LAZY_FORWARD_2(f) \
    BUS_LAZY_R(f) f(BUS_LAZY_A(f, 0) a, BUS_LAZY_A(f, 1) b) { return BUS_LAZY_CALL(f)(a, b); }
#define BUS_LAZY_FORWARD_3(f)                                                      \
    BUS_LAZY_R(f) f(BUS_LAZY_A(f, 0) a, BUS_LAZY_A(f, 1) b, BUS_LAZY_A(f, 2) c) \
    {                                                                              \
        return BUS_LAZY_CALL(f)(a, b, c);                                          \
    }
#define BUS_LAZY_FORWARD_4(f)                                                                           \
    BUS_LAZY_R(f) f(BUS_LAZY_A(f, 0) a, BUS_LAZY_A(f, 1) b, BUS_LAZY_A(f, 2) c, BUS_LAZY_A(f, 3) d) \
    {                                                                                                   \
        return BUS_LAZY_CALL(f)(a, b, c, d);                                                            \
    }
#define BUS_LAZY_FORWARD_5(f)                                                                          \
    BUS_LAZY_R(f) f(BUS_LAZY_A(f, 0) a, BUS_LAZY_A(f, 1) b, BUS_LAZY_A(f, 2) c, BUS_LAZY_A(f, 3) d, \
                    BUS_LAZY_A(f, 4) e)                                                                \
    {                                                                                                  \
        return BUS_LAZY_CALL(f)(a, b, c, d, e);                                                        \
    }
#define BUS_LAZY_FORWARD_6(f)                                                                          \
    BUS_LAZY_R(f) f(BUS_LAZY_A(f, 0) a, BUS_LAZY_A(f, 1) b, BUS_LAZY_A(f, 2) c, BUS_LAZY_A(f, 3) d, \
                    BUS_LAZY_A(f, 4) e, BUS_LAZY_A(f, 5) g)                                           \
    {                                                                                                  \
        return BUS_LAZY_CALL(f)(a, b, c, d, e, g);                                                     \
    }
#define BUS_LAZY_FORWARD_7(f)                                                                          \
    BUS_LAZY_R(f) f(BUS_LAZY_A(f, 0) a, BUS_LAZY_A(f, 1) b, BUS_LAZY_A(f, 2) c, BUS_LAZY_A(f, 3) d, \
                    BUS_LAZY_A(f, 4) e, BUS_LAZY_A(f, 5) g, BUS_LAZY_A(f, 6) h)                       \
    {                                                                                                  \
        return BUS_LAZY_CALL(f)(a, b, c, d, e, g, h);                                                  \
    }
#define BUS_LAZY_FORWARD(f, n) BUS_LAZY_FORWARD_##n(f)
