#include "send.hpp"

#include "curl_init.hpp"

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <memory>

namespace herald::alerts {

namespace {

std::string header_text(std::string_view s, std::size_t limit)
{
    std::string out;
    for (unsigned char c : s) {
        if (out.size() >= limit) break;
        out.push_back(c < 0x20 || c >= 0x7f ? (c == '\t' ? ' ' : '?') : static_cast<char>(c));
    }
    return out;
}

std::string body_line(std::string_view s)
{
    // Keep lines well under SMTP's 998 octets; CR and LF never come from the data.
    std::string out;
    for (char c : s) out.push_back(c == '\r' || c == '\n' ? ' ' : c);
    if (out.size() > 900) out.resize(900);
    return out;
}

struct upload {
    const std::string* data;
    std::size_t pos = 0;
};

std::size_t on_read(char* buf, std::size_t size, std::size_t n, void* p)
{
    auto* u = static_cast<upload*>(p);
    std::size_t take = std::min(size * n, u->data->size() - u->pos);
    std::memcpy(buf, u->data->data() + u->pos, take);
    u->pos += take;
    return take;
}

std::size_t on_discard(char*, std::size_t size, std::size_t n, void*) { return size * n; }

struct easy_deleter {
    void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
struct slist_deleter {
    void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

}  // namespace

std::string mail_message(const mail_settings& m, const decision& d, std::string_view herald_host, time_point now)
{
    std::string to;
    for (const auto& t : m.to) to += (to.empty() ? "" : ", ") + t;
    char date[64];
    std::time_t tt = std::chrono::system_clock::to_time_t(now);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S +0000", &tm);
    std::string state = d.action == decision::what::fire ? "FIRING" : "RECOVERED";
    std::string msg;
    msg += "Date: " + std::string(date) + "\r\n";
    msg += "From: herald <" + m.from + ">\r\n";
    msg += "To: " + to + "\r\n";
    msg += "Subject: " + header_text("[herald] " + state + " " + d.rule + ": " + d.text, 200) + "\r\n";
    msg += "Auto-Submitted: auto-generated\r\n";
    msg += "MIME-Version: 1.0\r\n";
    msg += "Content-Type: text/plain; charset=utf-8\r\n";
    msg += "Content-Transfer-Encoding: 8bit\r\n";
    msg += "\r\n";
    msg += body_line(d.text) + "\r\n\r\n";
    msg += "rule: " + body_line(d.rule) + " (" + d.kind + ")\r\n";
    msg += "state: " + d.state() + "\r\n";
    if (!d.daemon.empty()) msg += "daemon: " + body_line(d.daemon) + "\r\n";
    if (!d.host.empty()) msg += "host: " + body_line(d.host) + "\r\n";
    if (d.kind == "heartbeat") msg += "last heartbeat: " + rfc3339(d.last_seen) + "\r\n";
    if (!d.event_id.empty()) msg += "event: " + body_line(d.event_type) + " " + body_line(d.event_id) + "\r\n";
    if (d.suppressed) msg += "matches held back by the cool-down: " + std::to_string(d.suppressed) + "\r\n";
    msg += "sent by herald on " + body_line(herald_host) + " at " + rfc3339(now) + "\r\n";
    return msg;
}

std::string webhook_body(const decision& d, std::string_view herald_host, time_point now)
{
    nlohmann::json j{{"rule", d.rule},
                     {"kind", d.kind},
                     {"state", d.state()},
                     {"text", d.text},
                     {"daemon", d.daemon},
                     {"host", d.host},
                     {"event_id", d.event_id},
                     {"event_type", d.event_type},
                     {"suppressed", d.suppressed},
                     {"time", rfc3339(now)},
                     {"herald", herald_host}};
    if (d.kind == "heartbeat") j["last_seen"] = rfc3339(d.last_seen);
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string init_curl() { return deploykit::curl_init_once(); }

outcome send_mail(const mail_settings& m, const std::string& message)
{
    if (auto e = init_curl(); !e.empty()) return {false, true, e};
    std::unique_ptr<CURL, easy_deleter> h(curl_easy_init());
    if (!h) return {false, true, "curl_easy_init failed"};
    CURL* c = h.get();
    char errbuf[CURL_ERROR_SIZE] = {};
    upload up{&message};
    std::unique_ptr<curl_slist, slist_deleter> rcpt;
    for (const auto& t : m.to) {
        auto* l = curl_slist_append(rcpt.get(), ("<" + t + ">").c_str());
        if (!l) return {false, true, "out of memory"};
        rcpt.release();
        rcpt.reset(l);
    }
    std::string from = "<" + m.from + ">";
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_URL, m.url.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
    // smtp:// must upgrade with STARTTLS or fail: credentials and alert text never go in clear.
    curl_easy_setopt(c, CURLOPT_USE_SSL, static_cast<long>(CURLUSESSL_ALL));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min<std::int64_t>(m.timeout.count(), 10000)));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(m.timeout.count()));
    if (!m.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, m.ca_file.c_str());
    if (!m.user.empty()) {
        curl_easy_setopt(c, CURLOPT_USERNAME, m.user.c_str());
        curl_easy_setopt(c, CURLOPT_PASSWORD, m.password.c_str());
    }
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, from.c_str());
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt.get());
    curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &up);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(message.size()));
    CURLcode rc = curl_easy_perform(c);
    if (rc == CURLE_OK) return {true, false, {}};
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    std::string why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
    if (code) why += " (SMTP " + std::to_string(code) + ")";
    // 5xx from the server (recipient refused, auth failed) will not change on retry.
    bool retry = !(code >= 500 && code < 600) && rc != CURLE_USE_SSL_FAILED && rc != CURLE_LOGIN_DENIED;
    return {false, retry, why};
}

outcome post_webhook(const webhook_settings& w, const std::string& body)
{
    if (auto e = init_curl(); !e.empty()) return {false, true, e};
    std::unique_ptr<CURL, easy_deleter> h(curl_easy_init());
    if (!h) return {false, true, "curl_easy_init failed"};
    CURL* c = h.get();
    char errbuf[CURL_ERROR_SIZE] = {};
    std::unique_ptr<curl_slist, slist_deleter> headers(curl_slist_append(nullptr, "Content-Type: application/json"));
    if (!w.token.empty()) {
        std::string auth = "Authorization: Bearer " + w.token;
        auto* l = curl_slist_append(headers.get(), auth.c_str());
        if (!l) return {false, true, "out of memory"};
        headers.release();
        headers.reset(l);
    }
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_URL, w.url.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(std::min<std::int64_t>(w.timeout.count(), 10000)));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(w.timeout.count()));
    curl_easy_setopt(c, CURLOPT_USERAGENT, "deploykit-herald/0.1");
    if (!w.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, w.ca_file.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_discard);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) return {false, true, errbuf[0] ? errbuf : curl_easy_strerror(rc)};
    long code = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 200 && code < 300) return {true, false, {}};
    return {false, code >= 500 || code == 429 || code == 408, "HTTP " + std::to_string(code)};
}

} // namespace herald::alerts
