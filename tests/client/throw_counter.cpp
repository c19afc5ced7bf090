// Counts the C++ exceptions this test program throws: __cxa_throw defined here takes precedence
// over the C++ runtime's (and the sanitizer's interceptor), then hands over to the next one.
// No header that declares __cxa_throw is included here.
#include "throw_counter.hpp"

#include <dlfcn.h>

#include <atomic>
#include <cstdlib>
#include <typeinfo>

namespace {
std::atomic<long> thrown{0};
using cxa_throw_fn = void (*)(void*, std::type_info*, void (*)(void*));
} // namespace

namespace test {
long cxx_throws() { return thrown.load(); }
} // namespace test

extern "C" [[noreturn]] void __cxa_throw(void* obj, std::type_info* type, void (*destroy)(void*))
{
    thrown.fetch_add(1);
    static auto next = reinterpret_cast<cxa_throw_fn>(::dlsym(RTLD_NEXT, "__cxa_throw"));
    if (!next) std::abort();
    next(obj, type, destroy);
    __builtin_unreachable();
}
