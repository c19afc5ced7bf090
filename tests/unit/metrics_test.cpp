// The metrics registry (bus/http/metrics.hpp): pure, so tested as text in, text out.
#include "bus/http/metrics.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace bus::http;

namespace {
bool has_line(const std::string& text, const std::string& line)
{
    return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}
} // namespace

TEST_CASE("metrics: counters gauges and labels in the Prometheus text format")
{
    registry r("demo");
    auto& c = r.add_counter("requests_total", "requests served");
    c.inc();
    c.inc(2);
    r.add_counter("responses_total", "by code", {{"code", "202"}}).inc();
    r.add_counter("responses_total", "by code", {{"code", "503"}}).inc(4);
    // Asking again for the same series returns it.
    r.add_counter("responses_total", "by code", {{"code", "202"}}).inc();
    auto& g = r.add_gauge("queue_length", "messages waiting");
    g.set(7);
    g.dec();
    auto text = r.expose();
    CHECK(has_line(text, "# HELP demo_requests_total requests served"));
    CHECK(has_line(text, "# TYPE demo_requests_total counter"));
    CHECK(has_line(text, "demo_requests_total 3"));
    CHECK(has_line(text, "demo_responses_total{code=\"202\"} 2"));
    CHECK(has_line(text, "demo_responses_total{code=\"503\"} 4"));
    CHECK(has_line(text, "# TYPE demo_queue_length gauge"));
    CHECK(has_line(text, "demo_queue_length 6"));
    // One HELP/TYPE per family.
    CHECK(text.find("# TYPE demo_responses_total") == text.rfind("# TYPE demo_responses_total"));
}

TEST_CASE("metrics: label values and help text are escaped")
{
    registry r("x");
    r.add_gauge("info", "a \\ help\nline", {{"v", "a\"b\\c\nd"}}).set(1);
    auto text = r.expose();
    CHECK(has_line(text, "# HELP x_info a \\\\ help\\nline"));
    CHECK(has_line(text, "x_info{v=\"a\\\"b\\\\c\\nd\"} 1"));
}

TEST_CASE("metrics: histograms are cumulative with sum and count")
{
    registry r("d");
    auto& h = r.add_histogram("action_duration_seconds", "durations", {0.1, 1, 10}, {{"action", "fetch"}});
    h.observe(0.05);
    h.observe(0.1);  // on the bound: counted in le="0.1"
    h.observe(5);
    h.observe(50);
    auto text = r.expose();
    CHECK(has_line(text, "# TYPE d_action_duration_seconds histogram"));
    CHECK(has_line(text, "d_action_duration_seconds_bucket{action=\"fetch\",le=\"0.1\"} 2"));
    CHECK(has_line(text, "d_action_duration_seconds_bucket{action=\"fetch\",le=\"1\"} 2"));
    CHECK(has_line(text, "d_action_duration_seconds_bucket{action=\"fetch\",le=\"10\"} 3"));
    CHECK(has_line(text, "d_action_duration_seconds_bucket{action=\"fetch\",le=\"+Inf\"} 4"));
    CHECK(has_line(text, "d_action_duration_seconds_sum{action=\"fetch\"} 55.15"));
    CHECK(has_line(text, "d_action_duration_seconds_count{action=\"fetch\"} 4"));
    CHECK_THROWS_AS(histogram({1, 0.5}), metrics_error);
}

TEST_CASE("metrics: bad names and a name reused with another type are refused")
{
    registry r("d");
    CHECK_THROWS_AS(r.add_counter("bad-name", "x"), metrics_error);
    CHECK_THROWS_AS(r.add_counter("ok", "x", {{"bad label", "v"}}), metrics_error);
    CHECK_THROWS_AS(r.add_histogram("h", "x", {1}, {{"le", "1"}}), metrics_error);
    r.add_counter("thing_total", "x");
    CHECK_THROWS_AS(r.add_gauge("thing_total", "x"), metrics_error);
    CHECK(valid_metric_name("a_b:c1"));
    CHECK_FALSE(valid_metric_name("1abc"));
}

TEST_CASE("metrics: callbacks and collectors are read at every scrape")
{
    registry r("d");
    int queue = 3;
    r.add_callback("queue_length", "q", "gauge", [&] { return queue; });
    auto& state = r.add_gauge("broker_connected", "c");
    bool connected = false;
    r.add_collector([&] { state.set(connected ? 1 : 0); });
    CHECK(has_line(r.expose(), "d_queue_length 3"));
    CHECK(has_line(r.expose(), "d_broker_connected 0"));
    queue = 9;
    connected = true;
    auto text = r.expose();
    CHECK(has_line(text, "d_queue_length 9"));
    CHECK(has_line(text, "d_broker_connected 1"));
}

TEST_CASE("metrics: a counter the daemon keeps as an integer is read at every scrape")
{
    registry r("d");
    std::uint64_t deploys = 0;
    r.add_counter_of("deploys_total", "deploys that went live", deploys);
    auto text = r.expose();
    CHECK(text.find("# TYPE d_deploys_total counter") != std::string::npos);
    CHECK(has_line(text, "d_deploys_total 0"));
    deploys = 12;
    CHECK(has_line(r.expose(), "d_deploys_total 12"));
}

TEST_CASE("metrics: a family callback lists the series that exist now and none that are gone")
{
    registry r("d");
    std::vector<std::pair<labels, double>> queues{{{{"queue", "/queue/a"}}, 2}, {{{"queue", "/queue/\"b"}}, 5}};
    r.add_family_callback("queue_depth", "messages waiting", "gauge", [&] { return queues; });
    auto text = r.expose();
    CHECK(has_line(text, "# TYPE d_queue_depth gauge"));
    CHECK(has_line(text, "d_queue_depth{queue=\"/queue/a\"} 2"));
    CHECK(has_line(text, "d_queue_depth{queue=\"/queue/\\\"b\"} 5"));
    queues.erase(queues.begin());
    text = r.expose();
    CHECK(text.find("/queue/a") == std::string::npos);
    CHECK_THROWS_AS(r.add_family_callback("queue_depth", "again", "gauge", [] { return std::vector<std::pair<labels, double>>{}; }),
                    metrics_error);
}

TEST_CASE("metrics: the common daemon set has the same names in every daemon")
{
    registry r("stomp_git");
    daemon_metrics m(r, "1.2.3");
    m.events_in.inc();
    m.events_out.inc(2);
    m.dropped("not_our_repo").inc();
    m.broker_connected.set(1);
    m.finished("fetch", std::chrono::steady_clock::now(), true);
    auto text = r.expose();
    CHECK(has_line(text, "stomp_git_build_info{version=\"1.2.3\"} 1"));
    CHECK(has_line(text, "stomp_git_broker_connected 1"));
    CHECK(has_line(text, "stomp_git_events_in_total 1"));
    CHECK(has_line(text, "stomp_git_events_out_total 2"));
    CHECK(has_line(text, "stomp_git_events_dropped_total{reason=\"not_our_repo\"} 1"));
    CHECK(has_line(text, "stomp_git_action_duration_seconds_count{action=\"fetch\"} 1"));
    CHECK(text.find("stomp_git_last_success_timestamp_seconds 0\n") == std::string::npos);
    CHECK(text.find("stomp_git_start_time_seconds ") != std::string::npos);
}
