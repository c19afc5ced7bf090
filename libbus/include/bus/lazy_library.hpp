// A C library loaded at its first use instead of at the daemon's start, the way systemd loads
// its optional libraries (src/shared/dlfcn-util.c, dlopen_many_sym_or_warn): dlopen by versioned
// soname, every symbol the daemon uses resolved once into a table, and an error that names the
// library when it (or one of its symbols) is missing.
//
// Why: a library that is linked is mapped, relocated and its constructors run before main
// (libcurl's tree with GnuTLS: 3.1 MB of RSS; libgit2 and its 13 libraries: 1.4 MB), though a
// daemon needs it only at its first request or job. The forwarding definitions
// (daemons/common/libcurl_lazy.cpp, libgit2_lazy.cpp; libbus/src/openssl/libssl_lazy.cpp for
// libssl and libcrypto, loaded only by a program that uses TLS) keep every call site as it is.
//
// A missing library must not surface only at the first job: probe() checks at start, in a child
// process, that the library and every symbol load (so the daemon's own RSS does not grow).
#pragma once

#include <atomic>
#include <chrono>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

namespace bus {

/// A library that could not be loaded, or lacks a symbol; what() names the soname.
class lazy_library_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

class lazy_library {
public:
    /// `symbols` must outlive the object (a static array of names).
    lazy_library(const char* soname, std::span<const char* const> symbols);
    lazy_library(const lazy_library&) = delete;
    lazy_library& operator=(const lazy_library&) = delete;

    /// Loads the library and resolves every symbol, once; "" when loaded (now or before), else
    /// why not, naming the library. A failure is not remembered: the next call tries again.
    std::string load();

    /// The address of symbols[i], loading the library first; throws lazy_library_error.
    void* symbol(std::size_t i)
    {
        if (!loaded_.load(std::memory_order_acquire))
            if (auto e = load(); !e.empty()) throw lazy_library_error(e);
        return table_[i];
    }

    /// Whether the library and every symbol would load, checked in a child process (dlopen runs
    /// the library's constructors; the daemon's memory stays as it is). "" when they do, else
    /// why not. Within `deadline`. Call it at start, before threads exist.
    std::string probe(std::chrono::milliseconds deadline = std::chrono::seconds(10)) const;

    /// Whether load() has succeeded (for tests and metrics).
    bool loaded() const { return loaded_.load(std::memory_order_acquire); }
    const char* soname() const { return soname_; }

private:
    std::string open_and_resolve(void*& handle, std::vector<void*>& table) const;

    const char* soname_;
    std::span<const char* const> names_;
    std::mutex mu_;
    std::atomic<bool> loaded_{false};
    std::vector<void*> table_;
};

/// libssl.so.3 (and libcrypto, its dependency), loaded at the program's first TLS call
/// (src/openssl/libssl_lazy.cpp; in programs linked with the CMake target bus_libssl).
lazy_library& libssl_library();

} // namespace bus
