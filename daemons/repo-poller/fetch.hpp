#pragma once

// Blocking HTTP GETs with libcurl for repo-poller: conditional (If-None-Match /
// If-Modified-Since), bounded in size and time, abortable. Called only in the fetch child
// (`repo-poller --fetch-worker`, fetch_child.hpp), never in the daemon, which therefore never maps
// libcurl's tree. Nothing here logs; URLs with credentials are never put in errors. libcurl is
// loaded and initialised (OpenSSL with it) at the first request (daemons/common/curl_init.hpp).

#include "config.hpp"

#include <atomic>
#include <string>

namespace repo_poller {

/// Loads and initialises libcurl, once (curl_init_once: thread-safe, a failure retried at the
/// next call). Called by http_get; a failure is that request's error (status 0).
std::string http_global_init();

struct fetch_result {
    long status = 0;            ///< HTTP status; 0 when the transfer failed
    std::string body;
    std::string etag;           ///< response ETag, as sent
    std::string last_modified;  ///< response Last-Modified, as sent
    std::string date;           ///< response Date, as sent
    std::string error;          ///< why the transfer failed (status 0), without credentials
};

/// GET `url`; `etag`/`last_modified` (may be empty) make it conditional. A body above `max_bytes`
/// aborts the transfer with an error. Redirects are followed (at most 5, http/https only).
fetch_result http_get(const std::string& url, const http_limits& limits, std::size_t max_bytes, const std::string& etag,
                      const std::string& last_modified, const std::atomic<bool>* stop);

} // namespace repo_poller
