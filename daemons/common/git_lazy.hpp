// libgit2, loaded at the first fetch, job or deploy (libgit2_lazy.cpp, lazy_library.hpp) instead
// of at start: linked, libgit2 and its 13 libraries cost 1.4 MB of RSS from the first moment.
#pragma once
#include "bus/lazy_library.hpp"

#include <string>

namespace deploykit {

using bus::lazy_library;
using bus::lazy_library_error;

/// The libgit2 every call of a git_* function goes to.
lazy_library& libgit2_library();

/// At start and for --check-config: whether libgit2 loads (checked in a child process, so the
/// daemon itself does not load it); "" when it does, else why not, naming the library.
std::string libgit2_check();

} // namespace deploykit
