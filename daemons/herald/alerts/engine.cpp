#include "engine.hpp"

#include "bus/event.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <ctime>

namespace herald::alerts {

using nlohmann::json;
using namespace std::chrono;

namespace {

constexpr std::size_t max_text = 64 * 1024;  // of an event's free text searched by a rule

std::int64_t ms(time_point t) { return duration_cast<milliseconds>(t.time_since_epoch()).count(); }
time_point from_ms(std::int64_t v) { return time_point(duration_cast<system_clock::duration>(milliseconds(v))); }
std::int64_t secs(system_clock::duration d) { return duration_cast<seconds>(d).count(); }

// Every string in the event's data, one per line, capped: the "text" a rule searches.
void collect_text(const json& j, std::string& out)
{
    if (out.size() >= max_text) return;
    if (j.is_string()) {
        out += j.get_ref<const std::string&>();
        out += '\n';
    } else if (j.is_structured()) {
        for (const auto& v : j) collect_text(v, out);
    }
    if (out.size() > max_text) out.resize(max_text);
}

std::optional<std::string> field_value(const input& e, const json& data, const std::string& field)
{
    if (field == "type") return e.type;
    if (field == "host") return e.host;
    if (field == "id") return e.id;
    if (field == "daemon") return e.daemon;
    if (field == "level") return e.level;
    if (field == "message") return e.message;
    auto it = data.find(field);
    if (it == data.end() || it->is_null()) return std::nullopt;
    if (it->is_string()) return it->get<std::string>();
    return it->dump();
}

bool matches(const pattern_rule& r, const input& e, const json& data)
{
    const auto& type = e.type;
    if (r.types.empty()) {
        if (type == "alert" || type == "heartbeat") return false;
    } else if (std::find(r.types.begin(), r.types.end(), type) == r.types.end()) {
        return false;
    }
    for (const auto& f : r.fields) {
        auto v = field_value(e, data, f.field);
        if (!v) return false;
        if (f.equals && *v != *f.equals) return false;
        if (f.matches && !f.matches->search(*v)) return false;
    }
    if (r.text) {
        std::string text = e.message + "\n";
        collect_text(data, text);
        if (!r.text->search(text)) return false;
    }
    return true;
}

std::string one_line(std::string s, std::size_t limit)
{
    for (auto& c : s)
        if (c == '\n' || c == '\r' || c == '\t') c = ' ';
    if (s.size() > limit) s = s.substr(0, limit) + "…";
    return s;
}

}  // namespace

std::string rfc3339(time_point t)
{
    std::time_t tt = system_clock::to_time_t(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

input input_of(const bus::event& e)
{
    input in;
    in.id = e.id;
    in.type = std::string(e.type());
    json data = bus::to_json(e)["data"];
    in.host = e.host;
    // The data's host (a fetch's, a heartbeat's) when it has one, else the envelope's.
    if (auto it = data.find("host"); it != data.end() && it->is_string() && !it->get_ref<const std::string&>().empty())
        in.host = it->get<std::string>();
    if (auto it = data.find("daemon"); it != data.end() && it->is_string()) in.daemon = it->get<std::string>();
    if (auto it = data.find("text"); it != data.end() && it->is_string()) in.message = it->get<std::string>();
    in.data = data.dump(-1, ' ', false, json::error_handler_t::replace);
    return in;
}

rule_engine::rule_engine(settings s, time_point now) : s_(std::move(s)), started_(now) {}

decision rule_engine::heartbeat_decision(decision::what w, const heartbeat_rule& r, const source_key& k,
                                    const source_state& s, time_point now) const
{
    decision d;
    d.action = w;
    d.rule = r.name;
    d.kind = "heartbeat";
    d.daemon = k.daemon;
    d.host = k.host;
    d.last_seen = s.last_seen;
    d.channels = r.channels;
    d.suppressed = s.rules.count(r.name) ? s.rules.at(r.name).suppressed : 0;
    if (w == decision::what::fire)
        d.text = k.daemon + " on " + k.host + ": no heartbeat for " + std::to_string(secs(now - s.last_seen)) +
                 " s (max-age " + std::to_string(duration_cast<seconds>(r.max_age).count()) + " s)";
    else
        d.text = k.daemon + " on " + k.host + ": heartbeats are back";
    return d;
}

decision rule_engine::pattern_decision(decision::what w, const pattern_rule& r, const pattern_state& p,
                                       std::string event_id, std::string text)
{
    decision d;
    d.action = w;
    d.rule = r.name;
    d.kind = "pattern";
    d.host = p.last_host;
    d.event_id = std::move(event_id);
    d.event_type = p.last_event_type;
    d.suppressed = p.n.suppressed;
    d.channels = r.channels;
    d.text = std::move(text);
    return d;
}

std::vector<decision> rule_engine::on_event(const input& e, time_point now)
{
    std::vector<decision> out;
    if (e.type == "heartbeat" && !e.daemon.empty()) {
        source_key k{e.daemon, e.host};
        auto seen = e.seen ? std::min(*e.seen, now) : now;
        auto it = sources_.find(k);
        if (it == sources_.end()) {
            bool watched = std::any_of(s_.heartbeat.begin(), s_.heartbeat.end(), [&](const heartbeat_rule& r) {
                return glob_match(r.daemon, k.daemon) && glob_match(r.host, k.host);
            });
            if (watched) {
                if (sources_.size() >= s_.max_sources) {
                    ++untracked_;
                } else {
                    it = sources_.emplace(k, source_state{}).first;
                    it->second.last_seen = seen;
                    dirty_ = true;
                }
            }
        }
        if (it != sources_.end() && seen >= it->second.last_seen) {
            auto& src = it->second;
            src.last_seen = seen;
            // A heartbeat older than max-age (a replayed backlog, the start-up's last-seen table)
            // does not end a loss.
            for (const auto& r : s_.heartbeat) {
                auto st = src.rules.find(r.name);
                if (st == src.rules.end() || !st->second.firing || now - seen > r.max_age) continue;
                st->second.firing = false;
                if (st->second.notified) out.push_back(heartbeat_decision(decision::what::recover, r, k, src, now));
                st->second.notified = false;
                st->second.suppressed = 0;
            }
            dirty_ = true;
        }
    }
    if (s_.patterns.empty()) return out;
    json data = json::parse(e.data, nullptr, false);
    if (data.is_discarded() || !data.is_object()) data = json::object();
    for (const auto& r : s_.patterns) {
        if (!matches(r, e, data)) continue;
        auto& p = patterns_[r.name];
        p.last_match = now;
        p.last_event_id = e.id;
        p.last_event_type = e.type;
        p.last_host = e.host;
        std::string text = e.message.empty() ? std::string() : e.message + "\n";
        if (text.empty()) collect_text(data, text);
        p.last_text = one_line(text, 300);
        while (!p.last_text.empty() && p.last_text.back() == ' ') p.last_text.pop_back();
        p.n.firing = true;
        dirty_ = true;
        if (p.n.last_notice && now - *p.n.last_notice < r.cool_down) {
            ++p.n.suppressed;
            continue;
        }
        auto d = pattern_decision(decision::what::fire, r, p, e.id,
                                  r.name + ": " + p.last_event_type + " event from " + p.last_host + ": " + p.last_text);
        p.n.notified = true;
        p.n.last_notice = now;
        p.n.suppressed = 0;
        out.push_back(std::move(d));
    }
    return out;
}

std::vector<decision> rule_engine::tick(time_point now)
{
    std::vector<decision> out;
    for (auto it = sources_.begin(); it != sources_.end();) {
        auto& [k, src] = *it;
        if (now - src.last_seen > s_.forget_after && now - started_ > s_.forget_after) {
            it = sources_.erase(it);
            dirty_ = true;
            continue;
        }
        for (const auto& r : s_.heartbeat) {
            if (!glob_match(r.daemon, k.daemon) || !glob_match(r.host, k.host)) continue;
            auto base = std::max(src.last_seen, started_);
            if (now - base <= r.max_age) continue;
            auto& st = src.rules[r.name];
            if (st.firing && st.notified) continue;
            if (!st.firing) {
                st.firing = true;
                dirty_ = true;
            }
            if (st.last_notice && now - *st.last_notice < r.cool_down) {
                if (st.suppressed == 0) {
                    st.suppressed = 1;  // one loss waiting for the cool-down
                    dirty_ = true;
                }
                continue;
            }
            st.notified = true;
            st.last_notice = now;
            out.push_back(heartbeat_decision(decision::what::fire, r, k, src, now));
            st.suppressed = 0;
            dirty_ = true;
        }
        ++it;
    }
    for (const auto& r : s_.patterns) {
        auto it = patterns_.find(r.name);
        if (it == patterns_.end() || !it->second.n.firing) continue;
        auto& p = it->second;
        if (now - p.last_match >= r.recover_after) {
            auto d = pattern_decision(
                decision::what::recover, r, p, p.last_event_id,
                r.name + ": no match for " + std::to_string(secs(now - p.last_match)) + " s" +
                    (p.n.suppressed ? " (" + std::to_string(p.n.suppressed) + " more matches during the cool-down)" : ""));
            p.n.firing = false;
            p.n.notified = false;
            p.n.suppressed = 0;
            dirty_ = true;
            out.push_back(std::move(d));
        } else if (p.n.suppressed > 0 && p.n.last_notice && now - *p.n.last_notice >= r.cool_down) {
            // Matches held back by the cool-down: one summary notice once it has passed.
            auto d = pattern_decision(decision::what::fire, r, p, p.last_event_id,
                                      r.name + ": " + std::to_string(p.n.suppressed) + " more matches; last: " +
                                          p.last_event_type + " event from " + p.last_host + ": " + p.last_text);
            p.n.last_notice = now;
            p.n.suppressed = 0;
            dirty_ = true;
            out.push_back(std::move(d));
        }
    }
    return out;
}

std::size_t rule_engine::firing() const noexcept
{
    std::size_t n = 0;
    for (const auto& [k, s] : sources_)
        for (const auto& [r, st] : s.rules) n += st.firing ? 1 : 0;
    for (const auto& [r, p] : patterns_) n += p.n.firing ? 1 : 0;
    return n;
}

std::vector<std::pair<rule_engine::source_key, time_point>> rule_engine::last_seen() const
{
    std::vector<std::pair<source_key, time_point>> out;
    out.reserve(sources_.size());
    for (const auto& [k, s] : sources_) out.emplace_back(k, s.last_seen);
    return out;
}

namespace {

json notice_json(bool firing, bool notified, const std::optional<time_point>& last_notice, std::int64_t suppressed)
{
    json j{{"firing", firing}, {"notified", notified}, {"suppressed", suppressed}};
    if (last_notice) j["last_notice"] = ms(*last_notice);
    return j;
}

}  // namespace

std::string rule_engine::snapshot()
{
    json src = json::array();
    for (const auto& [k, s] : sources_) {
        json rules = json::object();
        for (const auto& [name, st] : s.rules) rules[name] = notice_json(st.firing, st.notified, st.last_notice, st.suppressed);
        src.push_back(json{{"daemon", k.daemon}, {"host", k.host}, {"last_seen", ms(s.last_seen)}, {"rules", rules}});
    }
    json pat = json::object();
    for (const auto& [name, p] : patterns_) {
        auto j = notice_json(p.n.firing, p.n.notified, p.n.last_notice, p.n.suppressed);
        j["last_match"] = ms(p.last_match);
        j["event_id"] = p.last_event_id;
        j["event_type"] = p.last_event_type;
        j["host"] = p.last_host;
        j["text"] = p.last_text;
        pat[name] = std::move(j);
    }
    dirty_ = false;
    return json{{"version", 1}, {"sources", src}, {"patterns", pat}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::string rule_engine::restore(std::string_view text)
{
    json j = json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object() || j.value("version", 0) != 1) return "not an alert state file (version 1)";
    std::map<source_key, source_state> sources;
    std::map<std::string, pattern_state> patterns;
    auto read_notice = [](const json& n, notice_state& st) {
        st.firing = n.value("firing", false);
        st.notified = n.value("notified", false);
        st.suppressed = n.value("suppressed", std::int64_t{0});
        if (auto it = n.find("last_notice"); it != n.end() && it->is_number_integer()) st.last_notice = from_ms(it->get<std::int64_t>());
    };
    try {
        for (const auto& s : j.at("sources")) {
            if (sources.size() >= s_.max_sources) break;
            source_key k{s.at("daemon").get<std::string>(), s.at("host").get<std::string>()};
            source_state st;
            st.last_seen = from_ms(s.at("last_seen").get<std::int64_t>());
            for (auto& [name, n] : s.at("rules").items())
                if (std::any_of(s_.heartbeat.begin(), s_.heartbeat.end(), [&](const heartbeat_rule& r) { return r.name == name; }))
                    read_notice(n, st.rules[name]);
            sources.emplace(std::move(k), std::move(st));
        }
        for (auto& [name, p] : j.at("patterns").items()) {
            if (std::none_of(s_.patterns.begin(), s_.patterns.end(), [&](const pattern_rule& r) { return r.name == name; })) continue;
            pattern_state ps;
            read_notice(p, ps.n);
            ps.last_match = from_ms(p.value("last_match", std::int64_t{0}));
            ps.last_event_id = p.value("event_id", "");
            ps.last_event_type = p.value("event_type", "");
            ps.last_host = p.value("host", "");
            ps.last_text = p.value("text", "");
            patterns.emplace(name, std::move(ps));
        }
    } catch (const json::exception& e) {
        return std::string("malformed alert state: ") + e.what();
    }
    sources_ = std::move(sources);
    patterns_ = std::move(patterns);
    dirty_ = false;
    return {};
}

} // namespace herald::alerts
