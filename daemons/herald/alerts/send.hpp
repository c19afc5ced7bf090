#pragma once

// The blocking deliveries of an alert: one mail over SMTP and one webhook POST, each a libcurl
// easy transfer with deadlines. Called on the service's worker pool, never on the I/O thread
// (notifier.cpp). The message builders are pure and tested.

#include "engine.hpp"
#include "rules.hpp"

#include <string>

namespace herald::alerts {

struct outcome {
    bool ok = false;
    bool retry = false;  ///< worth another attempt (network error, 5xx, 429, SMTP 4xx)
    std::string error;   ///< nothing secret: curl's message and the status
};

/// The RFC 5322 message for a decision: ASCII headers (anything else in the subject becomes `?`),
/// text/plain UTF-8 body, `Auto-Submitted: auto-generated`, CRLF line ends.
std::string mail_message(const mail_settings& m, const decision& d, std::string_view herald_host, time_point now);
/// The webhook's JSON body.
std::string webhook_body(const decision& d, std::string_view herald_host, time_point now);

/// curl_global_init, once, at the first send (send_mail and post_webhook call it; not at start:
/// see send.cpp). Empty, or why it failed.
std::string init_curl();
/// smtp:// requires STARTTLS (CURLUSESSL_ALL); smtps:// is TLS from the start.
outcome send_mail(const mail_settings& m, const std::string& message);
outcome post_webhook(const webhook_settings& w, const std::string& body);

} // namespace herald::alerts
