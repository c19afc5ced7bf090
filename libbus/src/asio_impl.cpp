// The one translation unit that compiles Asio, its SSL support and Beast (separate compilation:
// every other TU sees only declarations, which keeps 2-core builds fast).
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
