#pragma once

namespace test {
/// How many C++ exceptions this process has thrown so far (throw_counter.cpp).
long cxx_throws();
} // namespace test
