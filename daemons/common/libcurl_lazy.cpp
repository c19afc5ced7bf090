// libcurl loaded at the first transfer (lazy_library.hpp): the functions deploykit calls, each
// defined here with libcurl's own name and signature (the compiler checks them against curl.h)
// and forwarded to libcurl.so.4 through a table resolved once. No target links -lcurl.
#define CURL_DISABLE_TYPECHECK  // curl_easy_setopt/getinfo are macros otherwise (typecheck-gcc.h)
#include "bus/detail/lazy_forward.hpp"
#include "curl_init.hpp"

#include <curl/curl.h>

#include <cstdarg>

namespace {

#define DK_CURL_FUNCTIONS(X) \
    X(curl_global_init)      \
    X(curl_easy_init)        \
    X(curl_easy_cleanup)     \
    X(curl_easy_reset)       \
    X(curl_easy_perform)     \
    X(curl_easy_setopt)      \
    X(curl_easy_getinfo)     \
    X(curl_easy_strerror)    \
    X(curl_slist_append)     \
    X(curl_slist_free_all)

BUS_LAZY_TABLE(DK_CURL_FUNCTIONS, deploykit::libcurl_library)

} // namespace

namespace deploykit {

lazy_library& libcurl_library()
{
    static lazy_library lib(DK_LIBCURL_SONAME, names);
    return lib;
}

} // namespace deploykit

extern "C" {

CURLcode curl_global_init(long flags) { return BUS_LAZY_CALL(curl_global_init)(flags); }
CURL* curl_easy_init() { return BUS_LAZY_CALL(curl_easy_init)(); }
void curl_easy_cleanup(CURL* h) { BUS_LAZY_CALL(curl_easy_cleanup)(h); }
void curl_easy_reset(CURL* h) { BUS_LAZY_CALL(curl_easy_reset)(h); }
CURLcode curl_easy_perform(CURL* h) { return BUS_LAZY_CALL(curl_easy_perform)(h); }
const char* curl_easy_strerror(CURLcode c) { return BUS_LAZY_CALL(curl_easy_strerror)(c); }
curl_slist* curl_slist_append(curl_slist* l, const char* s) { return BUS_LAZY_CALL(curl_slist_append)(l, s); }
void curl_slist_free_all(curl_slist* l) { BUS_LAZY_CALL(curl_slist_free_all)(l); }

// The variadic pair: the argument's type follows from the option's number range, as in curl's own
// lib/setopt.c (CURLOPTTYPE_*): below OBJECTPOINT a long, then object/string/slist/callback-data
// pointers, function pointers, curl_off_t, and blobs (pointers).
CURLcode curl_easy_setopt(CURL* h, CURLoption option, ...)
{
    auto f = BUS_LAZY_CALL(curl_easy_setopt);
    va_list ap;
    va_start(ap, option);
    CURLcode rc;
    if (option < CURLOPTTYPE_OBJECTPOINT) rc = f(h, option, va_arg(ap, long));
    else if (option < CURLOPTTYPE_FUNCTIONPOINT) rc = f(h, option, va_arg(ap, void*));
    else if (option < CURLOPTTYPE_OFF_T) rc = f(h, option, va_arg(ap, void (*)()));
    else if (option < CURLOPTTYPE_BLOB) rc = f(h, option, va_arg(ap, curl_off_t));
    else rc = f(h, option, va_arg(ap, void*));
    va_end(ap);
    return rc;
}

// Every CURLINFO_* takes a pointer to where the answer goes.
CURLcode curl_easy_getinfo(CURL* h, CURLINFO info, ...)
{
    auto f = BUS_LAZY_CALL(curl_easy_getinfo);
    va_list ap;
    va_start(ap, info);
    CURLcode rc = f(h, info, va_arg(ap, void*));
    va_end(ap);
    return rc;
}

} // extern "C"
