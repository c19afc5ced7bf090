#pragma once

// Blocking HTTP to Jenkins with libcurl easy handles. A session is one handle with its own
// in-memory cookie jar and the CSRF crumb bound to that jar's JSESSIONID; sessions are pooled
// and used by one thread at a time. Everything here runs on the HTTP thread pool, never on
// the I/O thread. Credentials go in the Authorization header only; nothing here logs.

#include "config.hpp"
#include "stomp_jenkins.hpp"

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace stomp_jenkins {

/// curl_global_init, once, at the first http_session (not at start: see jenkins_http.cpp); throws if it fails.
void http_global_init();

class http_session {
public:
    /// `stop`, when set, aborts transfers in progress (shutdown).
    http_session(const http_settings& s, credentials c, const std::atomic<bool>* stop);
    ~http_session();
    http_session(const http_session&) = delete;
    http_session& operator=(const http_session&) = delete;

    /// One request, bounded by the connect and total timeouts. Redirects are not followed.
    http_response perform(const http_request& r);
    /// Runs an exchange (crumb, POST, crumb refetch) to its end.
    http_response run(exchange& x);

    crumb_cache crumb;
    std::uint64_t generation = 0;

private:
    void* curl_;  // CURL*
    http_settings settings_;
    credentials creds_;
    const std::atomic<bool>* stop_;
};

/// At most one session per HTTP thread, created on demand and reused; `reset` (SIGHUP: new
/// credentials) retires the existing ones as they come back.
class session_pool {
public:
    session_pool(http_settings s, credentials c, const std::atomic<bool>* stop);
    std::unique_ptr<http_session> acquire();
    void release(std::unique_ptr<http_session> s);
    void reset(credentials c);

private:
    std::mutex mu_;
    std::vector<std::unique_ptr<http_session>> free_;
    http_settings settings_;
    credentials creds_;
    std::uint64_t generation_ = 0;
    const std::atomic<bool>* stop_;
};

} // namespace stomp_jenkins
