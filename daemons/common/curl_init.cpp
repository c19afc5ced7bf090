#include "curl_init.hpp"

#include <curl/curl.h>

#include <mutex>

namespace deploykit {

std::string curl_library_check() { return libcurl_library().probe(); }

std::string curl_init_once()
{
    static std::mutex mu;
    static bool done = false;
    std::lock_guard lock(mu);
    if (done) return {};
    if (auto e = libcurl_library().load(); !e.empty()) return e;
    if (auto rc = curl_global_init(CURL_GLOBAL_DEFAULT); rc != CURLE_OK)
        return std::string("libcurl initialisation failed: ") + curl_easy_strerror(rc);
    done = true;
    return {};
}

} // namespace deploykit
