// The one translation unit that compiles Asio and Beast (separate compilation: every other TU
// sees only declarations, which keeps 2-core builds fast). Asio's SSL code is compiled in
// src/openssl/with.cpp, so that a program can be linked without OpenSSL (bus/detail/openssl.hpp).
#include <boost/asio/impl/src.hpp>
#include <boost/beast/src.hpp>
