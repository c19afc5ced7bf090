#include "core.hpp"
#include "bus/numeric.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <set>

namespace deploy::cli {

namespace {

std::regex compile(const std::string& re, std::string_view what)
{
    if (re.size() > 1024) throw usage_error(std::string(what) + ": regular expression too long");
    try {
        return std::regex(re, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
        throw usage_error(std::string(what) + ": bad regular expression /" + re + "/: " + e.what());
    }
}

bool slashed(const std::string& s) { return s.size() >= 2 && s.front() == '/' && s.back() == '/'; }

std::optional<double> number(const std::string& s)
{
    return bus::parse_decimal(s);
}

std::vector<std::string> split(const std::string& s, char sep)
{
    std::vector<std::string> out;
    std::string cur;
    for (char c : s) {
        if (c == sep) {
            if (!cur.empty()) out.push_back(cur);
            cur.clear();
        } else {
            cur += c;
        }
    }
    if (!cur.empty()) out.push_back(cur);
    return out;
}

} // namespace

// ---- selection ----

matcher::matcher(const std::string& spec) : spec_(spec)
{
    if (slashed(spec)) re_ = compile(spec.substr(1, spec.size() - 2), spec);
}

bool matcher::operator()(const std::string& s) const { return re_ ? std::regex_search(s, *re_) : s == spec_; }

fact_filter::fact_filter(const std::string& spec)
{
    // The operator is the first of these found after a non-empty key, longest spelling first.
    static const std::pair<std::string_view, op> ops[] = {{"=~", op::re}, {"==", op::eq}, {"!=", op::ne},
                                                          {"<=", op::le}, {">=", op::ge}, {"<", op::lt},
                                                          {">", op::gt},  {"=", op::eq}};
    std::size_t at = std::string::npos;
    std::size_t len = 0;
    for (std::size_t i = 1; i < spec.size() && at == std::string::npos; ++i)
        for (auto& [s, o] : ops)
            if (spec.compare(i, s.size(), s) == 0) {
                at = i;
                len = s.size();
                op_ = o;
                break;
            }
    if (at == std::string::npos || at + len >= spec.size())
        throw usage_error("-F " + spec + ": expected KEY=VALUE, KEY=/REGEX/, or KEY<VALUE (<, >, <=, >=, !=)");
    key_ = spec.substr(0, at);
    value_ = spec.substr(at + len);
    if (op_ == op::re) re_ = compile(slashed(value_) ? value_.substr(1, value_.size() - 2) : value_, "-F " + spec);
    else if (op_ == op::eq && slashed(value_)) {
        op_ = op::re;
        re_ = compile(value_.substr(1, value_.size() - 2), "-F " + spec);
    }
}

bool fact_filter::operator()(const std::map<std::string, std::string>& facts) const
{
    auto it = facts.find(key_);
    if (it == facts.end()) return false;
    const std::string& v = it->second;
    if (op_ == op::re) return std::regex_search(v, *re_);
    int cmp = 0;
    auto a = number(v), b = number(value_);
    if (a && b) cmp = *a < *b ? -1 : (*a > *b ? 1 : 0);
    else cmp = v.compare(value_) < 0 ? -1 : (v == value_ ? 0 : 1);
    switch (op_) {
    case op::eq: return cmp == 0;
    case op::ne: return cmp != 0;
    case op::lt: return cmp < 0;
    case op::gt: return cmp > 0;
    case op::le: return cmp <= 0;
    case op::ge: return cmp >= 0;
    case op::re: break;
    }
    return false;
}

bool valid_identity(std::string_view s) noexcept
{
    if (s.empty() || s.size() > 64) return false;
    auto alnum = [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'); };
    if (!alnum(s[0])) return false;
    return std::all_of(s.begin(), s.end(), [&](char c) { return alnum(c) || c == '.' || c == '_' || c == '-'; });
}

selector::selector(const selection_args& a)
{
    for (auto& i : a.identities) identities_.emplace_back(i);
    for (auto& c : a.classes) classes_.emplace_back(c);
    for (auto& f : a.facts) facts_.emplace_back(f);
    for (auto& list : a.nodes)
        for (auto& n : split(list, ',')) {
            if (!valid_identity(n)) throw usage_error("--nodes: '" + n + "' is not a node identity");
            nodes_.push_back(n);
        }
}

bool selector::matches(const node_info& n) const
{
    if (!nodes_.empty() && std::find(nodes_.begin(), nodes_.end(), n.identity) == nodes_.end()) return false;
    if (!identities_.empty() &&
        std::none_of(identities_.begin(), identities_.end(), [&](const matcher& m) { return m(n.identity); }))
        return false;
    for (auto& f : facts_)
        if (!f(n.facts)) return false;
    for (auto& c : classes_)
        if (std::none_of(n.classes.begin(), n.classes.end(), [&](const std::string& k) { return c(k); })) return false;
    return true;
}

std::vector<std::string> selector::select(const std::vector<node_info>& discovered) const
{
    std::set<std::string> out;
    std::set<std::string> seen;
    for (auto& n : discovered) {
        seen.insert(n.identity);
        if (matches(n)) out.insert(n.identity);
    }
    if (facts_.empty() && classes_.empty())
        for (auto& n : nodes_) {
            if (seen.contains(n)) continue;
            if (!identities_.empty() &&
                std::none_of(identities_.begin(), identities_.end(), [&](const matcher& m) { return m(n); }))
                continue;
            out.insert(n);
        }
    return {out.begin(), out.end()};
}

// ---- counts ----

amount amount::parse(std::string_view s, std::string_view what)
{
    amount a;
    std::string_view digits = s;
    if (!digits.empty() && digits.back() == '%') {
        a.percent = true;
        digits.remove_suffix(1);
    }
    auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), a.value);
    if (digits.empty() || ec != std::errc() || p != digits.data() + digits.size() || a.value < 0 ||
        (a.percent && a.value > 100) || a.value > 1000000)
        throw usage_error(std::string(what) + ": '" + std::string(s) + "' must be a count N or a percentage N% (0-100)");
    return a;
}

long amount::of(long total) const noexcept
{
    if (!percent) return value;
    return static_cast<long>((total * value + 99) / 100);
}

std::string amount::str() const { return std::to_string(value) + (percent ? "%" : ""); }

std::vector<std::vector<std::string>> plan_batches(const std::vector<std::string>& nodes, long canary, amount batch)
{
    std::vector<std::vector<std::string>> out;
    const long n = static_cast<long>(nodes.size());
    canary = std::clamp(canary, 0L, n);
    if (canary > 0) out.emplace_back(nodes.begin(), nodes.begin() + canary);
    const long size = std::max(1L, batch.of(n));
    for (long i = canary; i < n; i += size)
        out.emplace_back(nodes.begin() + i, nodes.begin() + std::min(n, i + size));
    return out;
}

bool quorum_met(long ready, long selected, amount quorum) noexcept
{
    return ready > 0 && ready >= quorum.of(selected);
}

bool past_threshold(long failures, long selected, amount max) noexcept { return failures > max.of(selected); }

// ---- state machines ----

std::string_view to_string(job_state s) noexcept
{
    switch (s) {
    case job_state::new_: return "new";
    case job_state::voting: return "voting";
    case job_state::running: return "running";
    case job_state::complete: return "complete";
    case job_state::quorum_failed: return "quorum_failed";
    case job_state::aborted: return "aborted";
    case job_state::timed_out: return "timed_out";
    }
    return "?";
}

std::string_view to_string(node_state s) noexcept
{
    switch (s) {
    case node_state::ready: return "ready";
    case node_state::running: return "running";
    case node_state::succeeded: return "succeeded";
    case node_state::failed: return "failed";
    case node_state::unavailable: return "unavailable";
    case node_state::nacked: return "nacked";
    case node_state::timed_out: return "timed_out";
    }
    return "?";
}

bool terminal(job_state s) noexcept
{
    return s == job_state::complete || s == job_state::quorum_failed || s == job_state::aborted ||
           s == job_state::timed_out;
}

bool allowed(job_state a, job_state b) noexcept
{
    switch (a) {
    case job_state::new_: return b == job_state::voting || b == job_state::aborted;
    case job_state::voting: return b == job_state::running || b == job_state::quorum_failed || b == job_state::aborted;
    case job_state::running: return b == job_state::complete || b == job_state::aborted || b == job_state::timed_out;
    default: return false;
    }
}

bool allowed(std::optional<node_state> a, node_state b) noexcept
{
    if (!a) return b == node_state::ready || b == node_state::unavailable || b == node_state::nacked;
    switch (*a) {
    case node_state::ready: return b == node_state::running;
    case node_state::running:
        return b == node_state::succeeded || b == node_state::failed || b == node_state::timed_out;
    // A retry: voted again (ready) or refused now (nacked/unavailable).
    case node_state::failed:
    case node_state::timed_out:
        return b == node_state::ready || b == node_state::nacked || b == node_state::unavailable;
    default: return false;
    }
}

job::job(std::string id, std::string action, std::vector<std::string> nodes)
    : id_(std::move(id)), action_(std::move(action)), order_(std::move(nodes))
{
    for (auto& n : order_) nodes_[n].identity = n;
}

void job::set(job_state s)
{
    if (!allowed(state_, s))
        throw std::logic_error("job " + id_ + ": " + std::string(to_string(state_)) + " -> " + std::string(to_string(s)));
    state_ = s;
}

void job::set(const std::string& node, node_state s)
{
    auto it = nodes_.find(node);
    if (it == nodes_.end()) throw std::logic_error("job " + id_ + ": unknown node " + node);
    if (!allowed(it->second.state, s))
        throw std::logic_error("node " + node + ": " +
                               (it->second.state ? std::string(to_string(*it->second.state)) : "-") + " -> " +
                               std::string(to_string(s)));
    it->second.state = s;
}

std::optional<node_state> job::state_of(const std::string& node) const
{
    auto it = nodes_.find(node);
    return it == nodes_.end() ? std::nullopt : it->second.state;
}

std::vector<std::string> job::in_state(node_state s) const
{
    std::vector<std::string> out;
    for (auto& n : order_)
        if (nodes_.at(n).state == s) out.push_back(n);
    return out;
}

long job::count(node_state s) const { return static_cast<long>(in_state(s).size()); }

long job::failures() const { return count(node_state::failed) + count(node_state::timed_out); }

void job::note_reply(const std::string& node, int status, std::string message, nlohmann::json detail)
{
    auto& r = nodes_.at(node);
    r.replied = true;
    r.status = status;
    r.message = std::move(message);
    if (!detail.is_null()) r.detail = std::move(detail);
}

void job::note_try(const std::string& node) { ++nodes_.at(node).tries; }

const node_result& job::result(const std::string& node) const { return nodes_.at(node); }

summary summarize(const job& j, double duration_s)
{
    summary s;
    s.discovered = static_cast<long>(j.nodes().size());
    s.duration_s = duration_s;
    for (auto& n : j.nodes()) {
        auto& r = j.result(n);
        if (r.replied) ++s.responded;
        if (r.state == node_state::succeeded) ++s.ok;
        else if (r.state == node_state::failed || r.state == node_state::nacked || r.state == node_state::timed_out)
            ++s.failed;
        if (!r.replied || r.state == node_state::timed_out || r.state == node_state::unavailable)
            s.no_reply.push_back(n);
    }
    return s;
}

nlohmann::json to_json(const summary& s)
{
    return {{"discovered", s.discovered}, {"responded", s.responded}, {"ok", s.ok},
            {"failed", s.failed},         {"no_reply", s.no_reply},   {"duration_s", s.duration_s}};
}

std::string to_text(const summary& s, std::string_view what)
{
    char t[32];
    std::snprintf(t, sizeof t, "%.3f", s.duration_s);
    std::string out = "done " + std::string(what) + " [discovered=" + std::to_string(s.discovered) +
                      " responses=" + std::to_string(s.responded) + " failcount=" + std::to_string(s.failed) +
                      " okcount=" + std::to_string(s.ok) + " totaltime=" + t + "]\n";
    if (!s.no_reply.empty()) {
        out += "no reply from " + std::to_string(s.no_reply.size()) + " node(s):";
        for (auto& n : s.no_reply) out += " " + n;
        out += "\n";
    }
    return out;
}

int exit_code(const job& j) noexcept
{
    switch (j.state()) {
    case job_state::new_:
    case job_state::voting:
    case job_state::quorum_failed: return exit_refused;
    case job_state::complete: {
        for (auto& n : j.nodes())
            if (j.result(n).state != node_state::succeeded) return exit_failed;
        return exit_ok;
    }
    default: return exit_failed;
    }
}

nlohmann::json job_event(const job& j, const summary* s)
{
    nlohmann::json nodes = nlohmann::json::object();
    for (auto& n : j.nodes())
        if (auto st = j.state_of(n)) nodes[n] = std::string(to_string(*st));
    nlohmann::json e{{"job_id", j.id()},      {"state", std::string(to_string(j.state()))},
                     {"repo", j.repo},        {"tag", j.tag},
                     {"caller", j.caller},    {"options", j.options},
                     {"batch", j.batch},      {"batches", j.batches},
                     {"nodes", nodes},        {"summary", s ? to_json(*s) : nlohmann::json()}};
    if (!j.stop_reason.empty()) e["reason"] = j.stop_reason;
    return e;
}

// ---- tags ----

std::vector<tag_row> intersect_tags(
    const std::map<std::string, std::vector<std::pair<std::string, std::string>>>& by_node)
{
    std::map<std::string, tag_row> rows;
    for (auto& [node, tags] : by_node)
        for (auto& [name, time] : tags) {
            auto& r = rows[name];
            r.name = name;
            if (time > r.time) r.time = time;
        }
    for (auto& [node, tags] : by_node)
        for (auto& [name, r] : rows)
            if (std::none_of(tags.begin(), tags.end(), [&](auto& t) { return t.first == name; }))
                r.missing.push_back(node);
    std::vector<tag_row> out;
    for (auto& [name, r] : rows) out.push_back(std::move(r));
    std::stable_sort(out.begin(), out.end(), [](const tag_row& a, const tag_row& b) {
        return a.time != b.time ? a.time > b.time : a.name > b.name;
    });
    return out;
}

std::vector<std::string> parse_argv(const std::string& s)
{
    std::vector<std::string> argv;
    auto first = s.find_first_not_of(' ');
    if (first != std::string::npos && s[first] == '[') {
        auto j = nlohmann::json::parse(s, nullptr, false);
        if (j.is_discarded() || !j.is_array()) throw usage_error("--health-cmd: malformed JSON list");
        for (auto& v : j) {
            if (!v.is_string()) throw usage_error("--health-cmd: every element of the list must be a string");
            argv.push_back(v.get<std::string>());
        }
    } else {
        argv = split(s, ' ');
    }
    if (argv.empty() || argv[0].empty()) throw usage_error("--health-cmd: empty command");
    for (auto& a : argv)
        if (a.find('\0') != std::string::npos) throw usage_error("--health-cmd: NUL in an argument");
    return argv;
}

} // namespace deploy::cli
