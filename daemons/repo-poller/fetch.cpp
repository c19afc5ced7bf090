#include "fetch.hpp"

#include "curl_init.hpp"

#include <curl/curl.h>

#include <memory>
#include <mutex>

namespace repo_poller {

namespace {

struct sink {
    fetch_result* r;
    std::size_t max;
    bool overflow = false;
};

std::size_t on_body(char* p, std::size_t size, std::size_t n, void* ud)
{
    auto* s = static_cast<sink*>(ud);
    const std::size_t len = size * n;
    if (s->r->body.size() + len > s->max) {
        s->overflow = true;
        return 0;  // aborts the transfer
    }
    s->r->body.append(p, len);
    return len;
}

std::string header_value(std::string_view line, std::string_view name)
{
    if (line.size() <= name.size() + 1 || line[name.size()] != ':') return {};
    for (std::size_t i = 0; i < name.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(line[i])) != name[i]) return {};
    auto v = line.substr(name.size() + 1);
    while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
    while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.remove_suffix(1);
    if (v.size() > 1024) return {};
    return std::string(v);
}

std::size_t on_header(char* p, std::size_t size, std::size_t n, void* ud)
{
    auto* r = static_cast<fetch_result*>(ud);
    std::string_view line(p, size * n);
    if (line.starts_with("HTTP/")) {  // a new response (after a redirect): forget the previous one's
        r->etag.clear();
        r->last_modified.clear();
        r->date.clear();
    }
    if (auto v = header_value(line, "date"); !v.empty()) r->date = v;
    if (auto v = header_value(line, "etag"); !v.empty()) r->etag = v;
    if (auto v = header_value(line, "last-modified"); !v.empty()) r->last_modified = v;
    return size * n;
}

int on_progress(void* ud, curl_off_t, curl_off_t, curl_off_t, curl_off_t)
{
    const auto* stop = static_cast<const std::atomic<bool>*>(ud);
    return stop && stop->load() ? 1 : 0;
}

} // namespace

std::string http_global_init() { return deploykit::curl_init_once(); }

fetch_result http_get(const std::string& url, const http_limits& limits, std::size_t max_bytes, const std::string& etag,
                      const std::string& last_modified, const std::atomic<bool>* stop)
{
    fetch_result r;
    if (auto e = http_global_init(); !e.empty()) {
        r.error = e;
        return r;
    }
    std::unique_ptr<CURL, void (*)(CURL*)> h(curl_easy_init(), curl_easy_cleanup);
    if (!h) {
        r.error = "curl_easy_init failed";
        return r;
    }
    sink body{&r, max_bytes};
    char errbuf[CURL_ERROR_SIZE] = {};
    CURL* c = h.get();
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(limits.connect_timeout.count()));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(limits.request_timeout.count()));
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(max_bytes));
    curl_easy_setopt(c, CURLOPT_USERAGENT, "deploykit-repo-poller/0.1");
    // Indices are compressed already; an identity transfer keeps max_bytes meaning bytes on the wire.
    if (!limits.ca_file.empty()) curl_easy_setopt(c, CURLOPT_CAINFO, limits.ca_file.c_str());
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, stop);
    curl_slist* headers = nullptr;
    std::unique_ptr<curl_slist, void (*)(curl_slist*)> hguard(nullptr, curl_slist_free_all);
    auto add = [&](const std::string& line) {
        if (line.find_first_of("\r\n") != std::string::npos) return;  // never a header injection
        headers = curl_slist_append(headers, line.c_str());
        hguard.release();
        hguard.reset(headers);
    };
    if (!etag.empty()) add("If-None-Match: " + etag);
    if (!last_modified.empty()) add("If-Modified-Since: " + last_modified);
    add("Cache-Control: max-age=0");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        r.body.clear();
        if (body.overflow || rc == CURLE_FILESIZE_EXCEEDED)
            r.error = "larger than " + std::to_string(max_bytes) + " bytes";
        else if (rc == CURLE_ABORTED_BY_CALLBACK)
            r.error = "aborted (stopping)";
        else
            r.error = curl_easy_strerror(rc);  // errbuf may quote the URL (and its credentials)
        return r;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    return r;
}

} // namespace repo_poller
