#pragma once

// A metrics registry in the Prometheus data model: counters, gauges and histograms, each a family
// (name, help, type) of series told apart by labels, exposed in the text format 0.0.4. Pure: no
// Asio, no sockets; the admin endpoint (bus/http/admin.hpp) serves `expose()`.
//
// Values are atomics (histograms take a small lock), so blocking work on a pool may count too.
// References returned by the registry stay valid for the registry's lifetime; asking again for
// the same name and labels returns the same series.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bus::http {

/// Label names and values, in the order they are printed.
using labels = std::vector<std::pair<std::string, std::string>>;

class counter {
public:
    void inc(double by = 1) noexcept { value_.fetch_add(by, std::memory_order_relaxed); }
    double value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<double> value_{0};
};

class gauge {
public:
    void set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
    void inc(double by = 1) noexcept { value_.fetch_add(by, std::memory_order_relaxed); }
    void dec(double by = 1) noexcept { value_.fetch_sub(by, std::memory_order_relaxed); }
    /// Seconds since the Unix epoch, for `*_timestamp_seconds` gauges.
    void set_to_now() noexcept;
    double value() const noexcept { return value_.load(std::memory_order_relaxed); }

private:
    std::atomic<double> value_{0};
};

class histogram {
public:
    /// `bounds`: upper bounds, ascending; +Inf is implied.
    explicit histogram(std::vector<double> bounds);
    void observe(double v);
    /// Observes the seconds elapsed since `start`.
    void observe_since(std::chrono::steady_clock::time_point start);

    struct snapshot {
        std::vector<double> bounds;
        std::vector<std::uint64_t> cumulative;  ///< per bound, then +Inf (== count)
        double sum = 0;
        std::uint64_t count = 0;
    };
    snapshot read() const;

private:
    std::vector<double> bounds_;
    mutable std::mutex mutex_;
    std::vector<std::uint64_t> counts_;  // per bucket, not cumulative; last is +Inf
    double sum_ = 0;
};

/// Bucket bounds for durations of actions (fetches, builds, HTTP calls): 5 ms to 10 min.
std::vector<double> duration_buckets();

/// Thrown for an invalid metric or label name, or a name registered with another type.
class metrics_error : public std::logic_error {
public:
    using std::logic_error::logic_error;
};

class registry {
public:
    /// `prefix`: the daemon's name with `_` (`github_webhook`); every name gets `<prefix>_`.
    explicit registry(std::string prefix);
    registry(const registry&) = delete;
    registry& operator=(const registry&) = delete;
    ~registry();

    counter& add_counter(std::string_view name, std::string_view help, labels l = {});
    gauge& add_gauge(std::string_view name, std::string_view help, labels l = {});
    histogram& add_histogram(std::string_view name, std::string_view help, std::vector<double> bounds,
                             labels l = {});
    /// A value read at every scrape (queue lengths, connection state, a daemon's own counters).
    void add_callback(std::string_view name, std::string_view help, std::string_view type,
                      std::function<double()> read, labels l = {});

    /// A counter the daemon keeps itself as a plain integer, read at every scrape (`value` must
    /// live as long as the registry).
    void add_counter_of(std::string_view name, std::string_view help, const std::uint64_t& value);

    /// A family whose series come and go (one per queue, per destination): `read` returns every
    /// series with its labels at each scrape, so nothing lingers after its subject is gone.
    void add_family_callback(std::string_view name, std::string_view help, std::string_view type,
                             std::function<std::vector<std::pair<labels, double>>()> read);

    /// Runs before every exposition: sets gauges that are cheaper to read than to track
    /// (connection state, queue lengths).
    void add_collector(std::function<void()> collect);

    /// The Prometheus text exposition format, version 0.0.4.
    std::string expose() const;
    const std::string& prefix() const noexcept { return prefix_; }

private:
    struct series;
    struct family;
    family& family_for(std::string_view name, std::string_view help, std::string_view type);
    series& series_for(family& f, labels l);

    std::string prefix_;
    mutable std::mutex mutex_;
    std::vector<std::unique_ptr<family>> families_;  // in registration order
    std::vector<std::function<void()>> collectors_;
};

/// The metrics every daemon reports, registered in one call, so their names are the same in
/// every daemon:
///   <prefix>_build_info{version}                  1
///   <prefix>_start_time_seconds                   gauge
///   <prefix>_broker_connected                     gauge, 1 or 0
///   <prefix>_events_in_total                      counter (messages or requests taken in)
///   <prefix>_events_out_total                     counter (events published)
///   <prefix>_events_dropped_total{reason}         counter
///   <prefix>_action_duration_seconds{action}      histogram
///   <prefix>_last_success_timestamp_seconds       gauge
class daemon_metrics {
public:
    daemon_metrics(registry& r, std::string_view version);

    gauge& broker_connected;
    counter& events_in;
    counter& events_out;
    gauge& last_success;

    /// `events_dropped_total{reason=...}`; reasons are a small fixed set per daemon.
    counter& dropped(std::string_view reason);
    /// `action_duration_seconds{action=...}`.
    histogram& action(std::string_view action);
    /// Records one finished action: its duration and, when `ok`, the last success time.
    void finished(std::string_view action, std::chrono::steady_clock::time_point start, bool ok);

private:
    registry& registry_;
};

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`
bool valid_metric_name(std::string_view s) noexcept;
/// Escapes a label value for the text format (`\\`, `\"`, `\n`).
std::string escape_label_value(std::string_view s);

} // namespace bus::http
