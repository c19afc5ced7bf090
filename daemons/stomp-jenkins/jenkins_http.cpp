#include "jenkins_http.hpp"

#include "curl_init.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <string_view>

namespace stomp_jenkins {

namespace {

constexpr std::size_t max_body = 64 * 1024;

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user)
{
    auto* out = static_cast<std::string*>(user);
    std::size_t len = size * n;
    if (out->size() < max_body) out->append(data, std::min(len, max_body - out->size()));
    return len;  // the rest is read and dropped: a huge page is not an error
}

std::string trim(std::string_view v)
{
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
    return std::string(v.substr(0, 2048));
}

bool iequals_prefix(std::string_view line, std::string_view name)
{
    if (line.size() <= name.size() || line[name.size()] != ':') return false;
    for (std::size_t i = 0; i < name.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(line[i])) != std::tolower(static_cast<unsigned char>(name[i]))) return false;
    return true;
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user)
{
    auto* r = static_cast<http_response*>(user);
    std::string_view line(data, size * n);
    if (line.starts_with("HTTP/")) {  // a new response (after 100 Continue): start over
        r->location.clear();
        r->retry_after.clear();
    } else if (iequals_prefix(line, "location")) {
        r->location = trim(line.substr(9));
    } else if (iequals_prefix(line, "retry-after")) {
        r->retry_after = trim(line.substr(12));
    } else if (iequals_prefix(line, "x-jenkins")) {
        r->jenkins = trim(line.substr(10));
    }
    return size * n;
}

int on_progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t)
{
    const auto* stop = static_cast<const std::atomic<bool>*>(user);
    return stop && stop->load() ? 1 : 0;
}

} // namespace

void http_global_init()
{
    // At the first request, not at start; a failure is the request's error, the next one retries.
    if (auto e = deploykit::curl_init_once(); !e.empty()) throw std::runtime_error(e);
}

http_session::http_session(const http_settings& s, credentials c, const std::atomic<bool>* stop)
    : settings_(s), creds_(std::move(c)), stop_(stop)
{
    http_global_init();
    curl_ = curl_easy_init();
    if (!curl_) throw std::runtime_error("curl_easy_init failed");
}

http_session::~http_session() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

http_response http_session::perform(const http_request& req)
{
    http_response r;
    CURL* h = static_cast<CURL*>(curl_);
    // Reset keeps the handle's cookies and connections; every option is set again below.
    curl_easy_reset(h);
    char errbuf[CURL_ERROR_SIZE] = {};
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_URL, req.url.c_str());
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(settings_.connect_timeout.count()));
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(settings_.request_timeout.count()));
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_COOKIEFILE, "");  // in-memory cookie engine: JSESSIONID for the crumb
    curl_easy_setopt(h, CURLOPT_USERAGENT, "deploykit-stomp-jenkins/0.1");
    if (!settings_.ca_file.empty()) curl_easy_setopt(h, CURLOPT_CAINFO, settings_.ca_file.c_str());
    if (!creds_.empty()) {
        curl_easy_setopt(h, CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
        curl_easy_setopt(h, CURLOPT_USERNAME, creds_.user.c_str());
        curl_easy_setopt(h, CURLOPT_PASSWORD, creds_.token.c_str());
    }
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, stop_);

    curl_slist* headers = nullptr;
    std::vector<std::string> lines;
    lines.emplace_back("Accept: application/json, text/plain, */*");
    lines.emplace_back("Expect:");
    if (!req.content_type.empty() && req.method == "POST") lines.push_back("Content-Type: " + req.content_type);
    for (const auto& [k, v] : req.headers) lines.push_back(k + ": " + v);
    for (const auto& l : lines) headers = curl_slist_append(headers, l.c_str());
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    if (req.method == "POST") {
        curl_easy_setopt(h, CURLOPT_POST, 1L);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, req.body.c_str());
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
    } else {
        curl_easy_setopt(h, CURLOPT_HTTPGET, 1L);
    }

    CURLcode rc = curl_easy_perform(h);
    // The handle is pooled: nothing may keep pointing at this frame's buffers or headers.
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, nullptr);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, nullptr);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, nullptr);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, nullptr);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, nullptr);
    curl_slist_free_all(headers);
    if (rc != CURLE_OK) {
        r.status = 0;
        r.error = errbuf[0] ? std::string(errbuf) : std::string(curl_easy_strerror(rc));
        if (rc == CURLE_ABORTED_BY_CALLBACK) r.error = "stopped";
        return r;
    }
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    r.status = code;
    return r;
}

http_response http_session::run(exchange& x)
{
    while (auto req = x.next()) x.on_response(perform(*req));
    return x.result();
}

session_pool::session_pool(http_settings s, credentials c, const std::atomic<bool>* stop)
    : settings_(std::move(s)), creds_(std::move(c)), stop_(stop)
{
}

std::unique_ptr<http_session> session_pool::acquire()
{
    std::lock_guard lock(mu_);
    while (!free_.empty()) {
        auto s = std::move(free_.back());
        free_.pop_back();
        if (s->generation == generation_) return s;
    }
    auto s = std::make_unique<http_session>(settings_, creds_, stop_);
    s->generation = generation_;
    return s;
}

void session_pool::release(std::unique_ptr<http_session> s)
{
    std::lock_guard lock(mu_);
    if (s->generation == generation_ && free_.size() < settings_.workers) free_.push_back(std::move(s));
}

void session_pool::reset(credentials c)
{
    std::lock_guard lock(mu_);
    creds_ = std::move(c);
    ++generation_;
    free_.clear();
}

} // namespace stomp_jenkins
