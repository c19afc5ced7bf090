// libcurl, loaded at a daemon's first transfer (libcurl_lazy.cpp, lazy_library.hpp) and
// initialised then rather than at its start: linked, libcurl's tree (GnuTLS through librtmp and
// libldap, which initialises itself before main) costs 3.1 MB of RSS, and curl_global_init
// initialises OpenSSL (~1.7 MB more) in a daemon that may never call out. Thread-safe (a mutex;
// libcurl >= 7.84, bookworm's 7.88, is thread-safe too).
#pragma once
#include "bus/lazy_library.hpp"

#include <string>

namespace deploykit {

using bus::lazy_library;
using bus::lazy_library_error;

/// The libcurl every call of a curl_* function goes to (soname libcurl.so.4, the OpenSSL flavour).
lazy_library& libcurl_library();

/// At start and for --check-config: whether libcurl loads (checked in a child process, so the
/// daemon itself does not load it); "" when it does, else why not, naming the library.
std::string curl_library_check();

/// Loads and initialises libcurl once; "" when it is (or already was) initialised, else why it
/// failed (naming the library if it cannot be loaded). A failure is not remembered: the next call
/// tries again.
std::string curl_init_once();

} // namespace deploykit
