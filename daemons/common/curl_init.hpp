// libcurl's global initialisation, at a daemon's first transfer rather than at its start:
// curl_global_init initialises OpenSSL (~1.7 MB of RSS a daemon that never calls out does not
// need). Thread-safe (a mutex; libcurl >= 7.84, bookworm's 7.88, is thread-safe too).
#pragma once
#include <string>

namespace deploykit {

/// Initialises libcurl once; "" when it is (or already was) initialised, else why it failed.
/// A failure is not remembered: the next call tries again.
std::string curl_init_once();

} // namespace deploykit
