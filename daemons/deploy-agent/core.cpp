#include "core.hpp"

#include <ctime>

namespace deploy_agent {

using nlohmann::json;

void reservations::expire(sys_clock::time_point now)
{
    for (auto it = held_.begin(); it != held_.end();)
        if (!it->second.running && it->second.until <= now) it = held_.erase(it);
        else ++it;
}

reservations::vote_result reservations::vote(const std::string& key, const std::string& job, const std::string& action,
                                             const deploy::request_args& args, sys_clock::time_point until,
                                             sys_clock::time_point now)
{
    expire(now);
    auto it = held_.find(key);
    if (it != held_.end() && (it->second.job_id != job || it->second.running)) return vote_result::busy;
    held_[key] = reservation{job, action, args, until, false};
    return vote_result::ready;
}

std::optional<std::string> reservations::begin(const std::string& key, const std::string& job,
                                               const std::string& action, const deploy::request_args& args,
                                               sys_clock::time_point now)
{
    expire(now);
    auto it = held_.find(key);
    if (it == held_.end()) return std::string("no vote for this job");
    auto& r = it->second;
    if (r.job_id != job) return std::string("busy: reserved by another job");
    if (r.running) return std::string("busy: this job is already running here");
    if (r.action != action || r.args != args) return std::string("the commit differs from the vote");
    r.running = true;
    return std::nullopt;
}

void reservations::end(const std::string& key, const std::string& job)
{
    auto it = held_.find(key);
    if (it != held_.end() && it->second.job_id == job) held_.erase(it);
}

void reservations::release(const std::string& job)
{
    for (auto it = held_.begin(); it != held_.end();)
        if (it->second.job_id == job && !it->second.running) it = held_.erase(it);
        else ++it;
}

bool reservations::busy(const std::string& key, sys_clock::time_point now) const
{
    auto it = held_.find(key);
    return it != held_.end() && (it->second.running || it->second.until > now);
}

std::string reservation_key(const deploy::request& r)
{
    if (r.action == "run") return "run:" + r.args.command;
    return r.args.repo;
}

std::string release_name(sys_clock::time_point t, std::string_view tag)
{
    std::time_t tt = sys_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
    std::string out = buf;
    out += '-';
    for (char c : tag) {
        if (c == '%') out += "%25";
        else if (c == '/') out += "%2F";
        else out += c;
    }
    return out;
}

namespace {

json rel_json(const release_record& r)
{
    return json{{"tag", r.tag},   {"commit", r.commit}, {"release", r.release},
                {"time", r.time}, {"by", r.by},         {"request_id", r.request_id}};
}

} // namespace

json to_json(const repo_record& r)
{
    json a = json::array();
    for (const auto& x : r.releases) a.push_back(rel_json(x));
    return json{{"repo", r.repo}, {"releases", a}};
}

std::optional<repo_record> repo_record_from_json(std::string_view text, std::string& error)
{
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
        error = "not a JSON object";
        return std::nullopt;
    }
    repo_record r;
    auto s = [](const json& o, const char* k) {
        auto it = o.find(k);
        return it != o.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    r.repo = s(j, "repo");
    auto it = j.find("releases");
    if (it != j.end()) {
        if (!it->is_array()) {
            error = "releases: not a list";
            return std::nullopt;
        }
        for (const auto& x : *it) {
            if (!x.is_object()) {
                error = "releases: not a list of objects";
                return std::nullopt;
            }
            r.releases.push_back(release_record{s(x, "tag"), s(x, "commit"), s(x, "release"), s(x, "time"), s(x, "by"),
                                                s(x, "request_id")});
        }
    }
    return r;
}

json state_data(const repo_record& r)
{
    json d{{"repo", r.repo}, {"tag", ""}, {"commit", ""}, {"time", ""}, {"by", ""}, {"request_id", ""},
           {"release", ""},  {"previous", nullptr}};
    if (auto* l = r.live()) {
        d["tag"] = l->tag;
        d["commit"] = l->commit;
        d["time"] = l->time;
        d["by"] = l->by;
        d["request_id"] = l->request_id;
        d["release"] = l->release;
    }
    if (auto* p = r.previous()) d["previous"] = json{{"tag", p->tag}, {"commit", p->commit}, {"release", p->release}};
    return d;
}

std::vector<std::string> push_release(repo_record& r, release_record rel, int keep)
{
    if (keep < 2) keep = 2;
    r.releases.push_back(std::move(rel));
    std::vector<std::string> drop;
    while (r.releases.size() > static_cast<std::size_t>(keep)) {
        drop.push_back(r.releases.front().release);
        r.releases.erase(r.releases.begin());
    }
    return drop;
}

bool valid_env_entry(std::string_view e) noexcept
{
    auto eq = e.find('=');
    if (eq == 0 || eq == std::string_view::npos || eq > 128) return false;
    for (std::size_t i = 0; i < eq; ++i) {
        char c = e[i];
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || (i > 0 && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    for (char c : e.substr(eq + 1))
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t') return false;
    return true;
}

} // namespace deploy_agent
