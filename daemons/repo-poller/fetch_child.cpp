#include "fetch_child.hpp"

#include "bus/text.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

extern char** environ;

namespace repo_poller {

namespace {

using json = nlohmann::json;

// A validator or the date as a server sent it: at most 1024 bytes (fetch.cpp keeps no more).
constexpr std::size_t max_field = 1024;

std::string string_field(const json& j, const char* key, std::size_t max, bool required = false)
{
    auto it = j.find(key);
    if (it == j.end()) {
        if (required) throw protocol_error(std::string("no '") + key + "'");
        return {};
    }
    if (!it->is_string()) throw protocol_error(std::string("'") + key + "' is not a string");
    const auto& s = it->get_ref<const std::string&>();
    if (s.size() > max) throw protocol_error(std::string("'") + key + "' is longer than " + std::to_string(max) + " bytes");
    return s;
}

std::uint64_t number_field(const json& j, const char* key, std::uint64_t max)
{
    auto it = j.find(key);
    if (it == j.end()) throw protocol_error(std::string("no '") + key + "'");
    if (!it->is_number_unsigned()) throw protocol_error(std::string("'") + key + "' is not a non-negative integer");
    auto v = it->get<std::uint64_t>();
    if (v > max) throw protocol_error(std::string("'") + key + "' is above " + std::to_string(max));
    return v;
}

json parse_object(std::string_view text)
{
    json j = json::parse(text.begin(), text.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw protocol_error("not a JSON object");
    return j;
}

} // namespace

std::string encode_batch(const fetch_batch& b)
{
    json reqs = json::array();
    for (const auto& r : b.requests)
        reqs.push_back({{"url", r.url}, {"max_bytes", r.max_bytes}, {"etag", r.etag}, {"last_modified", r.last_modified}});
    json j = {{"connect_timeout_ms", b.limits.connect_timeout.count()},
              {"request_timeout_ms", b.limits.request_timeout.count()},
              {"ca_file", b.limits.ca_file},
              {"requests", std::move(reqs)}};
    return j.dump();
}

fetch_batch decode_batch(std::string_view text)
{
    if (text.size() > max_request_bytes) throw protocol_error("request larger than " + std::to_string(max_request_bytes) + " bytes");
    auto j = parse_object(text);
    fetch_batch b;
    constexpr std::uint64_t day_ms = 86'400'000;
    b.limits.connect_timeout = std::chrono::milliseconds(number_field(j, "connect_timeout_ms", day_ms));
    b.limits.request_timeout = std::chrono::milliseconds(number_field(j, "request_timeout_ms", day_ms));
    b.limits.ca_file = string_field(j, "ca_file", 4096);
    auto it = j.find("requests");
    if (it == j.end() || !it->is_array() || it->empty()) throw protocol_error("no 'requests' list");
    for (const auto& r : *it) {
        if (!r.is_object()) throw protocol_error("a request is not an object");
        fetch_request q;
        q.url = string_field(r, "url", 8192, true);
        q.max_bytes = number_field(r, "max_bytes", std::uint64_t{1} << 40);
        q.etag = string_field(r, "etag", max_field);
        q.last_modified = string_field(r, "last_modified", max_field);
        b.requests.push_back(std::move(q));
    }
    return b;
}

std::string encode_reply_header(const fetch_result& r)
{
    // http_get keeps validators of at most max_field bytes; an error longer than that (a loader's
    // message) is cut rather than make the reply malformed.
    json j = {{"status", r.status},
              {"etag", r.etag.substr(0, max_field)},
              {"last_modified", r.last_modified.substr(0, max_field)},
              {"date", r.date.substr(0, max_field)},
              {"error", r.error.substr(0, max_field)},
              {"length", r.body.size()}};
    auto line = j.dump(-1, ' ', false, json::error_handler_t::replace);
    line += '\n';
    return line;
}

reply_header parse_reply_header(std::string_view line, std::size_t max_bytes)
{
    if (line.size() >= max_reply_header) throw protocol_error("reply header longer than " + std::to_string(max_reply_header) + " bytes");
    auto j = parse_object(line);
    reply_header h;
    h.r.status = static_cast<long>(number_field(j, "status", 999));
    h.r.etag = string_field(j, "etag", max_field);
    h.r.last_modified = string_field(j, "last_modified", max_field);
    h.r.date = string_field(j, "date", max_field);
    h.r.error = string_field(j, "error", max_field);
    h.length = number_field(j, "length", std::numeric_limits<std::uint64_t>::max());
    if (h.length > max_bytes)
        throw protocol_error("reply announces " + std::to_string(h.length) + " body bytes, more than the " +
                             std::to_string(max_bytes) + " allowed");
    if (h.length > 0 && h.r.status != 200) throw protocol_error("a body for HTTP status " + std::to_string(h.r.status));
    if (h.r.status == 0 && h.r.error.empty()) throw protocol_error("status 0 without an error");
    return h;
}

fetch_result read_reply(const read_fn& read, std::size_t max_bytes, std::size_t* consumed)
{
    // The header line: read in runs until its '\n', never past max_reply_header.
    std::string line;
    std::size_t body_at = 0;
    char buf[512];
    for (;;) {
        const std::size_t want = std::min(sizeof buf, max_reply_header - line.size());
        if (want == 0) throw protocol_error("reply header longer than " + std::to_string(max_reply_header) + " bytes");
        const std::size_t n = read(line.size(), buf, want);
        if (n == 0) throw protocol_error(line.empty() ? "no reply" : "reply header cut short");
        std::string_view got(buf, std::min(n, want));
        if (auto nl = got.find('\n'); nl != std::string_view::npos) {
            line.append(got.substr(0, nl));
            body_at = line.size() + 1;
            break;
        }
        line.append(got);
    }
    auto h = parse_reply_header(line, max_bytes);
    // Exactly `length` body bytes (bounded by max_bytes above), not one more.
    h.r.body.resize(h.length);
    std::size_t have = 0;
    while (have < h.length) {
        const std::size_t n = read(body_at + have, h.r.body.data() + have, h.length - have);
        if (n == 0) throw protocol_error("reply body cut short: " + std::to_string(have) + " of " + std::to_string(h.length) + " bytes");
        have += std::min(n, h.length - have);
    }
    if (consumed) *consumed = body_at + h.length;
    return std::move(h.r);
}

std::vector<std::string> fetch_environment(const std::vector<std::string>& env)
{
    static constexpr std::string_view passed[] = {"http_proxy",    "https_proxy",  "HTTPS_PROXY", "all_proxy",
                                                  "ALL_PROXY",     "no_proxy",     "NO_PROXY",    "SSL_CERT_FILE",
                                                  "SSL_CERT_DIR",  "CURL_CA_BUNDLE"};
    std::vector<std::string> out;
    for (const auto& kv : env) {
        auto eq = kv.find('=');
        if (eq == std::string::npos) continue;
        const std::string_view name(kv.data(), eq);
        if (std::find(std::begin(passed), std::end(passed), name) != std::end(passed)) out.push_back(kv);
    }
    out.push_back("LC_ALL=C");
    out.push_back("PATH=/usr/bin:/bin");
    return out;
}

bus::runtime::spawn_options fetch_spawn_options(const std::string& self, const fetch_batch& batch,
                                                const std::vector<std::string>& env, int out_fd,
                                                const std::atomic<bool>* stop)
{
    bus::runtime::spawn_options so;
    so.argv = {self, std::string(fetch_worker_flag)};
    so.env = fetch_environment(env);
    so.input = encode_batch(batch);
    so.pass = {{out_fd, reply_fd}};
    // Each transfer is bounded by request-timeout (connect included); the margin covers the
    // start, loading libcurl and writing the replies.
    so.timeout = batch.limits.request_timeout * static_cast<long>(batch.requests.size()) + std::chrono::seconds(10);
    so.kill_grace = std::chrono::milliseconds(500);
    so.max_out = 4096;  // the child writes nothing on stdout
    so.kill_on_overflow = true;
    so.max_err = 4096;
    so.die_with_parent = true;
    so.cancel = stop;
    unsigned long long file_max = 0;
    for (const auto& r : batch.requests) file_max += r.max_bytes + max_reply_header;
    so.limits = {{RLIMIT_FSIZE, file_max}};
    return so;
}

namespace {

// An unlinked file in `dir` for the child's replies: O_TMPFILE, else a named one removed at once.
int reply_file(const std::filesystem::path& dir, std::string& error)
{
    int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0) return fd;
    std::string tmpl = (dir / ".fetch-XXXXXX").string();
    fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
    if (fd < 0) {
        error = "cannot create a temporary file in " + dir.string() + ": " + std::strerror(errno);
        return -1;
    }
    ::unlink(tmpl.c_str());
    return fd;
}

std::vector<std::string> our_environment()
{
    std::vector<std::string> env;
    for (char** e = environ; e && *e; ++e) env.emplace_back(*e);
    return env;
}

} // namespace

child_fetch::child_fetch(const std::string& self, const std::filesystem::path& dir, const fetch_batch& batch,
                         const std::atomic<bool>* stop)
{
    for (const auto& r : batch.requests) max_.push_back(r.max_bytes);
    fd_ = reply_file(dir, failure_);
    if (fd_ < 0) return;
    auto so = fetch_spawn_options(self, batch, our_environment(), fd_, stop);
    auto r = bus::runtime::spawn(so);
    if (r.cancelled) {
        failure_ = "aborted (stopping)";
    } else if (!r.ok()) {
        // Its stderr says why (never a URL: the child names no request in its messages).
        auto first = r.err.substr(0, r.err.find('\n'));
        failure_ = "fetch child " + r.describe() + (first.empty() ? "" : ": " + bus::log_escape(first.substr(0, 200)));
    }
}

child_fetch::~child_fetch()
{
    if (fd_ >= 0) ::close(fd_);
}

fetch_result child_fetch::next()
{
    fetch_result r;
    if (!failure_.empty()) {
        r.error = failure_;
        return r;
    }
    if (index_ >= max_.size()) {
        r.error = "fetch child: no such request";
        return r;
    }
    const std::size_t max = max_[index_++];
    const int fd = fd_;
    const std::size_t base = pos_;
    try {
        std::size_t used = 0;
        r = read_reply(
            [fd, base](std::size_t off, char* buf, std::size_t n) -> std::size_t {
                for (;;) {
                    auto got = ::pread(fd, buf, n, static_cast<off_t>(base + off));
                    if (got < 0 && errno == EINTR) continue;
                    if (got < 0) throw protocol_error(std::string("cannot read the reply: ") + std::strerror(errno));
                    return static_cast<std::size_t>(got);
                }
            },
            max, &used);
        pos_ += used;
    } catch (const protocol_error& e) {
        failure_ = std::string("fetch child: malformed reply: ") + e.what();
        r = {};
        r.error = failure_;
    }
    return r;
}


} // namespace repo_poller
