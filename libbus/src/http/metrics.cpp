#include "bus/http/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>

namespace bus::http {

namespace {

std::string number(double v)
{
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    char buf[64];
    if (std::fabs(v) < 1e15 && static_cast<double>(static_cast<std::int64_t>(v)) == v) {
        std::snprintf(buf, sizeof buf, "%.0f", v);
        return buf;
    }
    // The shortest form that reads back (fmt's Dragonbox, as std::to_chars; the latter would make
    // every daemon map libm for libstdc++'s fesetround: bus/numeric.hpp).
    return fmt::format("{}", v);
}

std::string escape_help(std::string_view s)
{
    std::string out;
    for (char c : s) {
        if (c == '\\') out += "\\\\";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

bool valid_label_name(std::string_view s) noexcept
{
    if (s.empty() || s.starts_with("__")) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (i > 0 && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

std::string label_text(const labels& l, std::string_view extra_name = {}, std::string_view extra_value = {})
{
    if (l.empty() && extra_name.empty()) return {};
    std::string out = "{";
    bool first = true;
    for (const auto& [k, v] : l) {
        out += (first ? "" : ",") + k + "=\"" + escape_label_value(v) + "\"";
        first = false;
    }
    if (!extra_name.empty()) out += (first ? "" : ",") + std::string(extra_name) + "=\"" + std::string(extra_value) + "\"";
    return out + "}";
}

} // namespace

bool valid_metric_name(std::string_view s) noexcept
{
    if (s.empty()) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                  (i > 0 && c >= '0' && c <= '9');
        if (!ok) return false;
    }
    return true;
}

std::string escape_label_value(std::string_view s)
{
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

void gauge::set_to_now() noexcept
{
    set(std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
}

// ---- histogram ----

histogram::histogram(std::vector<double> bounds) : bounds_(std::move(bounds))
{
    if (!std::is_sorted(bounds_.begin(), bounds_.end()) ||
        std::adjacent_find(bounds_.begin(), bounds_.end()) != bounds_.end())
        throw metrics_error("histogram bounds must be strictly ascending");
    counts_.assign(bounds_.size() + 1, 0);
}

void histogram::observe(double v)
{
    auto i = static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin());
    std::lock_guard lock(mutex_);
    ++counts_[i];
    sum_ += v;
}

void histogram::observe_since(std::chrono::steady_clock::time_point start)
{
    observe(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

histogram::snapshot histogram::read() const
{
    snapshot s;
    s.bounds = bounds_;
    std::lock_guard lock(mutex_);
    std::uint64_t running = 0;
    for (auto n : counts_) {
        running += n;
        s.cumulative.push_back(running);
    }
    s.count = running;
    s.sum = sum_;
    return s;
}

std::vector<double> duration_buckets()
{
    return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
}

// ---- registry ----

struct registry::series {
    labels names;
    std::unique_ptr<counter> c;
    std::unique_ptr<gauge> g;
    std::unique_ptr<histogram> h;
    std::function<double()> read;
};

struct registry::family {
    std::string name;  // with the prefix
    std::string help;
    std::string type;  // counter, gauge, histogram, untyped
    std::vector<std::unique_ptr<series>> members;
    std::function<std::vector<std::pair<labels, double>>()> dynamic;  // add_family_callback
};

registry::registry(std::string prefix) : prefix_(std::move(prefix))
{
    if (!prefix_.empty() && !valid_metric_name(prefix_)) throw metrics_error("bad metric prefix: " + prefix_);
}

registry::~registry() = default;

registry::family& registry::family_for(std::string_view name, std::string_view help, std::string_view type)
{
    std::string full = prefix_.empty() ? std::string(name) : prefix_ + "_" + std::string(name);
    if (!valid_metric_name(full)) throw metrics_error("bad metric name: " + full);
    for (auto& f : families_) {
        if (f->name != full) continue;
        if (f->type != type) throw metrics_error(full + " is already a " + f->type);
        return *f;
    }
    auto f = std::make_unique<family>();
    f->name = std::move(full);
    f->help = std::string(help);
    f->type = std::string(type);
    families_.push_back(std::move(f));
    return *families_.back();
}

registry::series& registry::series_for(family& f, labels l)
{
    for (const auto& [k, v] : l)
        if (!valid_label_name(k) || (f.type == "histogram" && k == "le"))
            throw metrics_error(f.name + ": bad label name " + k);
    for (auto& s : f.members)
        if (s->names == l) return *s;
    auto s = std::make_unique<series>();
    s->names = std::move(l);
    f.members.push_back(std::move(s));
    return *f.members.back();
}

counter& registry::add_counter(std::string_view name, std::string_view help, labels l)
{
    std::lock_guard lock(mutex_);
    auto& s = series_for(family_for(name, help, "counter"), std::move(l));
    if (!s.c) {
        if (s.read) throw metrics_error(std::string(name) + ": already a callback");
        s.c = std::make_unique<counter>();
    }
    return *s.c;
}

gauge& registry::add_gauge(std::string_view name, std::string_view help, labels l)
{
    std::lock_guard lock(mutex_);
    auto& s = series_for(family_for(name, help, "gauge"), std::move(l));
    if (!s.g) {
        if (s.read) throw metrics_error(std::string(name) + ": already a callback");
        s.g = std::make_unique<gauge>();
    }
    return *s.g;
}

histogram& registry::add_histogram(std::string_view name, std::string_view help, std::vector<double> bounds, labels l)
{
    std::lock_guard lock(mutex_);
    auto& s = series_for(family_for(name, help, "histogram"), std::move(l));
    if (!s.h) s.h = std::make_unique<histogram>(std::move(bounds));
    return *s.h;
}

void registry::add_counter_of(std::string_view name, std::string_view help, const std::uint64_t& value)
{
    add_callback(name, help, "counter", [v = &value] { return static_cast<double>(*v); });
}

void registry::add_callback(std::string_view name, std::string_view help, std::string_view type,
                            std::function<double()> read, labels l)
{
    if (type != "counter" && type != "gauge" && type != "untyped")
        throw metrics_error(std::string(name) + ": a callback is a counter, gauge or untyped");
    std::lock_guard lock(mutex_);
    auto& s = series_for(family_for(name, help, type), std::move(l));
    if (s.c || s.g) throw metrics_error(std::string(name) + ": already a value");
    s.read = std::move(read);
}

void registry::add_family_callback(std::string_view name, std::string_view help, std::string_view type,
                                   std::function<std::vector<std::pair<labels, double>>()> read)
{
    if (type != "counter" && type != "gauge" && type != "untyped")
        throw metrics_error(std::string(name) + ": a callback is a counter, gauge or untyped");
    std::lock_guard lock(mutex_);
    auto& f = family_for(name, help, type);
    if (!f.members.empty() || f.dynamic) throw metrics_error(f.name + ": already registered");
    f.dynamic = std::move(read);
}

void registry::add_collector(std::function<void()> collect)
{
    std::lock_guard lock(mutex_);
    collectors_.push_back(std::move(collect));
}

std::string registry::expose() const
{
    std::vector<std::function<void()>> collectors;
    {
        std::lock_guard lock(mutex_);
        collectors = collectors_;
    }
    for (auto& c : collectors) c();  // outside the lock: they set gauges
    std::lock_guard lock(mutex_);
    std::string out;
    for (const auto& f : families_) {
        if (f->members.empty() && !f->dynamic) continue;
        out += "# HELP " + f->name + " " + escape_help(f->help) + "\n";
        out += "# TYPE " + f->name + " " + f->type + "\n";
        if (f->dynamic)
            for (const auto& [l, v] : f->dynamic()) {
                bool ok = true;
                for (const auto& kv : l) ok = ok && valid_label_name(kv.first);
                if (ok) out += f->name + label_text(l) + " " + number(v) + "\n";
            }
        for (const auto& s : f->members) {
            if (s->h) {
                auto snap = s->h->read();
                for (std::size_t i = 0; i <= snap.bounds.size(); ++i) {
                    std::string le = i < snap.bounds.size() ? number(snap.bounds[i]) : "+Inf";
                    out += f->name + "_bucket" + label_text(s->names, "le", le) + " " +
                           std::to_string(snap.cumulative[i]) + "\n";
                }
                out += f->name + "_sum" + label_text(s->names) + " " + number(snap.sum) + "\n";
                out += f->name + "_count" + label_text(s->names) + " " + std::to_string(snap.count) + "\n";
                continue;
            }
            double v = s->c ? s->c->value() : s->g ? s->g->value() : s->read ? s->read() : 0;
            out += f->name + label_text(s->names) + " " + number(v) + "\n";
        }
    }
    return out;
}

// ---- the common set ----

daemon_metrics::daemon_metrics(registry& r, std::string_view version)
    : broker_connected(r.add_gauge("broker_connected", "1 when connected to the broker, else 0")),
      events_in(r.add_counter("events_in_total", "events (messages or requests) taken in")),
      events_out(r.add_counter("events_out_total", "events published")),
      last_success(r.add_gauge("last_success_timestamp_seconds", "when an action last succeeded (Unix time)")),
      registry_(r)
{
    r.add_gauge("build_info", "the running version", {{"version", std::string(version)}}).set(1);
    r.add_gauge("start_time_seconds", "when the process started (Unix time)").set_to_now();
}

counter& daemon_metrics::dropped(std::string_view reason)
{
    return registry_.add_counter("events_dropped_total", "events not acted upon, by reason",
                                 {{"reason", std::string(reason)}});
}

histogram& daemon_metrics::action(std::string_view action)
{
    return registry_.add_histogram("action_duration_seconds", "how long actions took", duration_buckets(),
                                   {{"action", std::string(action)}});
}

void daemon_metrics::finished(std::string_view name, std::chrono::steady_clock::time_point start, bool ok)
{
    action(name).observe_since(start);
    if (ok) last_success.set_to_now();
}

} // namespace bus::http
