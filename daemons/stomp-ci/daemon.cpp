// stomp-ci's glue between the bus, its decisions (ci.hpp), the runner (runner.hpp) and the runtime.
//
// Dispatcher (dispatch: true): commit events through bus::intake, recheck requests; each matching
// job becomes one job message on /queue/<job-queue>, published with a receipt (or spooled), and
// the event is acknowledged after that. Worker (every instance): a client-individual
// subscription to the job queue with prefetch = workers, so several workers share it as
// competing consumers; each message is validated against the config before anything runs, run on
// the worker pool, and acknowledged only after its completed event was receipted or spooled. A
// worker that dies mid-job leaves its message unacknowledged: the broker gives it to another
// worker, which reruns it under the same run id (the completed event's id is derived from it).
#include "daemon.hpp"
#include "bus/numeric.hpp"

#include "ci.hpp"
#include "config.hpp"
#include "git_lazy.hpp"
#include "runner.hpp"

#include "bus/client.hpp"
#include "bus/http/metrics.hpp"
#include "bus/http/server.hpp"
#include "bus/intake.hpp"
#include "bus/publisher.hpp"
#include "bus/runtime/consumer.hpp"
#include "bus/runtime/heartbeat.hpp"
#include "bus/runtime/service.hpp"
#include "bus/text.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <fstream>
#include <set>
#include <sstream>
#include <type_traits>
#include <unordered_set>

namespace stomp_ci {

namespace net = boost::asio;
namespace fs = std::filesystem;
using std::chrono::milliseconds;
using clock_type = std::chrono::steady_clock;

namespace {

std::int64_t now_ms()
{
    return std::chrono::duration_cast<milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

struct running_job {
    job_request req;
    bus::message msg;
    std::string worker_status = "preparing";
    clock_type::time_point started = clock_type::now();
    std::atomic<bool> cancel{false};
    bool started_sent = false;  // the started event's publish ended (kept or not)
};

struct last_result {
    std::string run_id, repo, job, commit, status, url;
    double duration_s = 0;
    bool slow = false;
};

std::string read_file(const fs::path& p, std::size_t max)
{
    std::ifstream f(p, std::ios::binary);
    if (!f) return {};
    std::string s(max, '\0');
    f.read(s.data(), static_cast<std::streamsize>(max));
    s.resize(static_cast<std::size_t>(f.gcount()));
    return s;
}

void write_atomically(const fs::path& p, const std::string& text)
{
    const fs::path tmp = p.string() + ".tmp";
    {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        f << text;
        f.flush();
        if (!f) return;
    }
    std::error_code ec;
    fs::rename(tmp, p, ec);
}

struct daemon_state {
    daemon_state(bus::runtime::service& svc_, std::string config_path_, config c)
        : svc(svc_), config_path(std::move(config_path_)), cfg(std::make_shared<const config>(std::move(c))),
          log(svc.log()), client(svc.io().get_executor(), cfg->bus.client, log),
          out(svc.io().get_executor(), client, cfg->bus.spool, cfg->bus.signing, svc.workers(), log),
          in(bus::intake_options{.require_signatures = cfg->bus.require_signatures}, cfg->bus.verify_keys),
          host(bus::runtime::hostname())
    {
    }
    bus::runtime::service& svc;
    std::string config_path;
    std::shared_ptr<const config> cfg;  // runs keep the one they started with
    spdlog::logger& log;
    bus::client client;
    bus::spooling_publisher out;
    bus::intake in;
    std::string host;
    std::optional<bus::runtime::identity> user;  // set: steps drop to it (we are root)
    bus::runtime::identity job_identity;          // who steps run as, either way
    bool isolate_datasets = false;                // read-only bind mounts (root, mount namespaces work)
    std::optional<cgroup_base> cgroups;           // per-run cgroups go there
    history hist;
    std::map<std::string, std::shared_ptr<running_job>> running;  // by run id
    std::set<std::string> busy_repos;
    std::unordered_set<std::string> done;  // run ids reported by this worker
    std::deque<std::string> done_order;
    std::deque<last_result> last;
    std::map<std::string, std::unique_ptr<std::mutex>> mirror_locks;
    std::unique_ptr<bus::http::server> logs;
    std::string job_sub;
    bool accepting = true;
    // counters
    std::uint64_t dispatched = 0, refused = 0, runs = 0, successes = 0, failures = 0, timeouts = 0, aborted = 0,
                  slow_runs = 0, requeued = 0, duplicates = 0;
    bus::http::registry metrics{"stomp_ci"};
    bus::http::daemon_metrics common{metrics, bus::runtime::version()};

    fs::path log_file(const std::string& run_id) const { return cfg->state_dir / "logs" / (run_id + ".log"); }
    fs::path artifacts_dir(const std::string& run_id) const { return cfg->state_dir / "artifacts" / run_id; }

    std::mutex* mirror_lock(const std::string& repo)
    {
        auto& m = mirror_locks[repo];
        if (!m) m = std::make_unique<std::mutex>();
        return m.get();
    }

    void load_state()
    {
        std::error_code ec;
        fs::create_directories(cfg->state_dir / "logs", ec);
        fs::create_directories(cfg->work_dir, ec);
        fs::create_directories(cfg->mirror_dir, ec);
        ::chmod(cfg->work_dir.c_str(), 0755);
        if (auto h = read_file(cfg->state_dir / "history.json", 16 << 20); !h.empty() && !hist.from_json(h))
            log.warn("stomp-ci: {}: unreadable duration history; starting a new one", (cfg->state_dir / "history.json").string());
        std::istringstream d(read_file(cfg->state_dir / "done", 4 << 20));
        for (std::string l; std::getline(d, l);)
            if (valid_run_id(l)) remember_done(l);
    }

    void remember_done(const std::string& id)
    {
        if (!done.insert(id).second) return;
        done_order.push_back(id);
        while (done_order.size() > 20000) {
            done.erase(done_order.front());
            done_order.pop_front();
        }
    }

    void register_metrics()
    {
        bus::runtime::register_consumer_metrics(metrics, common, client, out,
                                                [this] { return static_cast<double>(running.size()); });
        auto counter = [this](const char* name, const char* help, const std::uint64_t* v) {
            metrics.add_callback(name, help, "counter", [v] { return static_cast<double>(*v); });
        };
        counter("jobs_dispatched_total", "job messages put on the job queue", &dispatched);
        counter("refused_total", "events and job messages refused (unknown repo or job, bad ref or revision)", &refused);
        counter("runs_total", "runs finished on this worker", &runs);
        counter("runs_success_total", "runs that ended SUCCESS", &successes);
        counter("runs_failure_total", "runs that ended FAILURE", &failures);
        counter("runs_timeout_total", "runs that ended TIMEOUT", &timeouts);
        counter("runs_aborted_total", "runs that ended ABORTED", &aborted);
        counter("slow_runs_total", "runs flagged slow against their duration history", &slow_runs);
        counter("requeued_total", "runs handed back to the queue at a stop", &requeued);
        counter("duplicate_jobs_total", "job messages for runs this worker had already reported", &duplicates);
        metrics.add_callback("running_jobs", "runs in progress", "gauge", [this] { return static_cast<double>(running.size()); });
    }

    // ---- publishing -----------------------------------------------------------------------

    net::awaitable<bool> publish(std::vector<bus::stomp::frame> frames)
    {
        const auto n = frames.size();
        auto sent = co_await out.publish(std::move(frames), milliseconds(5000));
        if (!sent.kept()) {
            common.dropped("report_not_kept").inc();
            log.warn("stomp-ci: message not kept: {}", sent.why);
            co_return false;
        }
        common.events_out.inc(static_cast<double>(n));
        co_return true;
    }

    std::vector<bus::stomp::frame> job_frames(const std::vector<job_request>& reqs)
    {
        std::vector<bus::stomp::frame> frames;
        for (const auto& r : reqs) {
            bus::stomp::frame f("SEND");
            f.set("destination", "/queue/" + cfg->job_queue);
            f.set("persistent", "true");
            f.set("content-type", "application/json");
            f.set("dk-event-id", "ci-" + r.run_id + "-job");
            f.body = encode_job(r);
            frames.push_back(std::move(f));
            auto b = make_build(r, bus::build_phase::queued, 0, log_link(cfg->log_url, r.run_id), host);
            for (auto& q : build_frames(b, topics_of(*cfg), cfg->bus.format, host)) frames.push_back(std::move(q));
        }
        return frames;
    }

    // ---- dispatch ---------------------------------------------------------------------------

    net::awaitable<bus::disposition> dispatch(selection s, std::string what)
    {
        if (s.unknown_repo) {  // a repository without CI: not an attack, not worth a warning
            log.debug("stomp-ci: {} ignored: {}", bus::log_escape(what), bus::log_escape(s.refused));
            co_return bus::disposition::ack;
        }
        if (!s.refused.empty()) {
            ++refused;
            common.dropped("refused").inc();
            log.warn("stomp-ci: {} refused: {}", bus::log_escape(what), bus::log_escape(s.refused));
            co_return bus::disposition::ack;
        }
        for (const auto& sk : s.skipped) log.debug("stomp-ci: {}: skipped {}", what, sk);
        if (s.requests.empty()) co_return bus::disposition::ack;
        auto frames = job_frames(s.requests);
        bool kept = co_await publish(std::move(frames));
        if (!kept) co_return bus::disposition::leave;  // redelivered after a reconnect
        dispatched += s.requests.size();
        for (const auto& r : s.requests) log.info("stomp-ci: queued {} for {} {} {} (run {})", r.job, r.repo, r.ref, r.commit, r.run_id);
        co_return bus::disposition::ack;
    }

    net::awaitable<bus::disposition> on_commit(const bus::message& m)
    {
        auto r = in.accept(m.frame, std::chrono::system_clock::now());
        if (r.decision != bus::intake_decision::keepalive) common.events_in.inc();
        if (!bus::runtime::screen(r, m.id(), common, log, "stomp-ci")) co_return bus::disposition::ack;
        auto* c = std::get_if<bus::commit_event>(&r.ev->data);
        if (!c) co_return bus::disposition::ack;
        std::string what = "commit event " + r.ev->id;
        auto sel = select_jobs(*cfg, *c, r.ev->id, now_ms());
        auto d = co_await dispatch(std::move(sel), std::move(what));
        if (d == bus::disposition::ack) in.processed(r.ev->id, std::chrono::system_clock::now());
        co_return d;
    }

    net::awaitable<bus::disposition> on_recheck(const bus::message& m)
    {
        common.events_in.inc();
        std::string id(m.frame.get("dk-event-id", m.id()));
        if (id.size() > 128) id.resize(128);
        std::string what = "recheck " + id;
        auto sel = select_recheck(*cfg, m.body(), id, now_ms());
        auto d = co_await dispatch(std::move(sel), std::move(what));
        co_return d;
    }

    // ---- work -------------------------------------------------------------------------------

    net::awaitable<bus::disposition> on_job(const bus::message& m)
    {
        std::string err;
        auto req = decode_job(m.body(), err);
        if (!req) {
            ++refused;
            common.dropped("invalid").inc();
            log.warn("stomp-ci: job message {} refused: {}", bus::log_escape(m.id()), bus::log_escape(err));
            co_return bus::disposition::ack;
        }
        if (auto why = check_request(*cfg, *req); !why.empty()) {
            ++refused;
            common.dropped("refused").inc();
            log.warn("stomp-ci: job message {} refused, nothing run: {}", bus::log_escape(m.id()), bus::log_escape(why));
            co_return bus::disposition::ack;
        }
        if (done.count(req->run_id)) {
            ++duplicates;
            log.info("stomp-ci: run {} was reported already; acknowledging the copy", req->run_id);
            co_return bus::disposition::ack;
        }
        if (running.count(req->run_id)) co_return bus::disposition::leave;  // a copy of one in progress
        if (!accepting) co_return bus::disposition::nack;
        auto rj = std::make_shared<running_job>();
        rj->req = *req;
        rj->msg = m;
        running[req->run_id] = rj;
        std::string task_name = "stomp-ci: run " + req->run_id;
        svc.spawn(run(rj), std::move(task_name));
        co_return bus::disposition::leave;  // acknowledged once the result is on the bus
    }

    // The started event goes out while the run prepares: its receipt is not worth a delay.
    net::awaitable<void> publish_started(std::vector<bus::stomp::frame> frames, std::shared_ptr<running_job> rj)
    {
        co_await publish(std::move(frames));
        rj->started_sent = true;
    }

    net::awaitable<void> run(std::shared_ptr<running_job> rj)
    {
        auto c = cfg;  // this run's config, whatever a reload does
        const job_request& req = rj->req;
        const job_config* job = find_job(*c, req.repo, req.job);
        const std::string key = req.repo + "/" + req.job;
        const std::string url = log_link(c->log_url, req.run_id);
        const auto number = static_cast<std::int64_t>(hist.runs(key) + 1);
        // Per-repository serialisation: wait while another run of this repository is in progress.
        while (c->serialize_repos && busy_repos.count(req.repo) && !svc.stopping()) co_await svc.sleep_for(milliseconds(20));
        busy_repos.insert(req.repo);
        const auto queued_ms = req.queued_ms;
        const auto start_ms = now_ms();
        log.info("stomp-ci: starting {} for {} {} {} (run {}, queued {} ms ago)", req.job, req.repo, req.ref, req.commit,
                 req.run_id, queued_ms > 0 ? start_ms - queued_ms : 0);
        // Every value named before a co_await: GCC 12 destroys temporaries of a co_await's full
        // expression twice.
        const topics where = topics_of(*c);
        auto started_ev = make_build(req, bus::build_phase::started, number, url, host);
        auto started_frames = build_frames(started_ev, where, c->bus.format, host);
        std::string started_task = "stomp-ci: started event of " + req.run_id;
        svc.spawn(publish_started(std::move(started_frames), rj), std::move(started_task));

        auto plan = std::make_shared<run_plan>();
        plan->req = req;
        plan->job = job;
        plan->repo_url = c->repos.find(req.repo)->second.url;
        plan->mirror = mirror_path(c->mirror_dir, req.repo);
        plan->workdir = c->work_dir / req.run_id;
        plan->log_file = log_file(req.run_id);
        plan->user = user;
        plan->mirror_lock = mirror_lock(req.repo);
        plan->cancel = &rj->cancel;
        plan->isolate_datasets = isolate_datasets;
        plan->cgroups = cgroups ? &*cgroups : nullptr;
        plan->job_identity = job_identity;
        plan->artifacts_dir = artifacts_dir(req.run_id);
        plan->artifacts_max_bytes = c->artifacts_max_bytes;
        plan->artifacts_max_files = c->artifacts_max_files;
        rj->worker_status = "running";
        // Only a raw pointer captured (`plan` keeps it alive until the run ends): GCC 12.2 destroys
        // the closure passed by value to svc.blocking() inside a co_await twice, so a captured
        // shared_ptr is released twice and its object freed while still in use (heap corruption
        // after a few runs). A trivially destructible closure makes the second destruction a no-op.
        const run_plan* pp = plan.get();
        auto work = [pp] { return run_job(*pp); };
        static_assert(std::is_trivially_destructible_v<decltype(work)>);
        run_outcome o = co_await svc.blocking(work);
        busy_repos.erase(req.repo);
        // Completed after started, on the wire too (bounded: publish() gives up after 5 s).
        while (!rj->started_sent) {
            net::steady_timer t(svc.io(), milliseconds(1));
            co_await t.async_wait(net::use_awaitable);
        }

        if (o.cancelled && svc.stopping()) {
            // SIGTERM: the run goes back to the queue for another worker (or our restart).
            ++requeued;
            log.warn("stomp-ci: stopping: run {} ({} for {}) handed back to the queue", req.run_id, req.job, req.repo);
            client.acknowledge(rj->msg, bus::disposition::nack);
            running.erase(req.run_id);
            co_return;
        }
        auto b = make_build(req, bus::build_phase::completed, number, url, host);
        b.status = o.status;
        b.duration_s = bus::round_half_away(o.duration_s * 1000) / 1000;
        b.steps = to_build_steps(o.steps);
        if (!o.error.empty()) b.warnings.push_back("preparation failed: " + o.error);
        for (const auto& w : o.warnings) b.warnings.push_back(w);
        for (const auto& a : o.artifacts) b.artifacts.push_back(artifact_link(c->log_url, req.run_id, a));
        auto slow = slow_warning(hist.of(key), o.duration_s, job->slow_factor,
                                 std::chrono::duration<double>(job->slow_after).count());
        if (slow) {
            b.slow = true;
            b.warnings.push_back(*slow);
            ++slow_runs;
            log.warn("stomp-ci: {} for {}: {}", req.job, req.repo, *slow);
        }
        ++runs;
        if (o.status == "SUCCESS") {
            ++successes;
            hist.add(key, o.duration_s);
        } else if (o.status == "TIMEOUT") {
            ++timeouts;
        } else if (o.status == "ABORTED") {
            ++aborted;
        } else {
            ++failures;
        }
        common.finished("run", rj->started, o.status == "SUCCESS");
        log.info("stomp-ci: {} for {} {}: {} in {:.3f} s (prepare {:.3f} s){}", req.job, req.repo, req.commit, o.status,
                 o.duration_s, o.prepare_s, b.slow ? " [slow]" : "");
        auto done_frames = build_frames(b, where, c->bus.format, host);
        bool kept = co_await publish(std::move(done_frames));
        if (kept) {
            remember_done(req.run_id);
            client.acknowledge(rj->msg, bus::disposition::ack);
            const double total_ms = std::chrono::duration<double, std::milli>(clock_type::now() - rj->started).count();
            double steps_ms = 0;
            for (const auto& st : o.steps) steps_ms += st.duration_s * 1000;
            log.info("stomp-ci: run {} reported: {:.1f} ms from its job message to the receipted completed event, steps {:.1f} ms",
                     req.run_id, total_ms, steps_ms);
        } else {
            client.acknowledge(rj->msg, bus::disposition::leave);
        }
        last_result lr;
        lr.run_id = req.run_id;
        lr.repo = req.repo;
        lr.job = req.job;
        lr.commit = req.commit;
        lr.status = o.status;
        lr.url = url;
        lr.duration_s = b.duration_s;
        lr.slow = b.slow;
        last.push_front(std::move(lr));
        while (last.size() > 20) last.pop_back();
        running.erase(req.run_id);
        // The closure holds a raw pointer only (`sj` outlives the co_await): GCC 12.2 destroys a
        // closure passed by value to svc.blocking() twice, which must then be a no-op.
        struct save_job {
            std::string hist_text;
            fs::path state_dir, work_dir;
            unsigned keep = 0, keep_artifacts = 0;
            std::string id;
            std::set<std::string> busy;  // runs in progress here: their dirs stay
        };
        auto sj = std::make_shared<save_job>();
        sj->hist_text = hist.to_json();
        sj->state_dir = c->state_dir;
        sj->work_dir = c->work_dir;
        sj->keep = c->keep_runs;
        sj->keep_artifacts = c->keep_artifacts;
        for (const auto& [id, r] : running) sj->busy.insert(id);
        sj->id = req.run_id;
        const save_job* sp = sj.get();
        auto save = [sp] {
            static std::mutex one_at_a_time;  // runs ending together share these files
            std::lock_guard lk(one_at_a_time);
            write_atomically(sp->state_dir / "history.json", sp->hist_text);
            std::ofstream(sp->state_dir / "done", std::ios::app) << sp->id << "\n";
            // Keep the newest `keep` run directories (and `keep_artifacts` runs' artifacts); never
            // one of a run still in progress.
            auto prune = [sp](const fs::path& dir, unsigned keep) {
                std::vector<std::pair<std::string, std::int64_t>> dirs;
                std::error_code ec;
                for (auto& e : fs::directory_iterator(dir, ec)) {
                    auto name = e.path().filename().string();
                    if (!e.is_directory() || !valid_run_id(name) || sp->busy.count(name)) continue;
                    auto t = fs::last_write_time(e.path(), ec);
                    dirs.emplace_back(name, static_cast<std::int64_t>(t.time_since_epoch().count()));
                }
                for (const auto& n : runs_to_remove(std::move(dirs), keep)) fs::remove_all(dir / n, ec);
            };
            prune(sp->work_dir, sp->keep);
            prune(sp->state_dir / "artifacts", sp->keep_artifacts);
        };
        static_assert(std::is_trivially_destructible_v<decltype(save)>);
        co_await svc.blocking(save);
    }

    // ---- the log server and /status --------------------------------------------------------

    std::string status_json() const
    {
        nlohmann::json j;
        j["host"] = host;
        j["workers"] = cfg->workers;
        j["dispatch"] = cfg->dispatch;
        j["connected"] = client.connected();
        auto& rr = j["running"] = nlohmann::json::array();
        for (const auto& [id, r] : running)
            rr.push_back({{"run_id", id},
                          {"repo", r->req.repo},
                          {"job", r->req.job},
                          {"commit", r->req.commit},
                          {"state", r->worker_status},
                          {"seconds", std::chrono::duration<double>(clock_type::now() - r->started).count()},
                          {"url", log_link(cfg->log_url, id)}});
        auto& lr = j["last"] = nlohmann::json::array();
        for (const auto& l : last)
            lr.push_back({{"run_id", l.run_id}, {"repo", l.repo}, {"job", l.job}, {"commit", l.commit},
                          {"status", l.status}, {"duration_s", l.duration_s}, {"slow", l.slow}, {"url", l.url}});
        j["counters"] = {{"runs", runs},         {"success", successes}, {"failure", failures},
                         {"timeout", timeouts},  {"aborted", aborted},   {"slow", slow_runs},
                         {"refused", refused},   {"dispatched", dispatched}};
        return j.dump();
    }

    void serve_logs()
    {
        bus::http::server_options so;
        so.address = cfg->log_listen->address;
        so.port = cfg->log_listen->port;
        so.max_body_bytes = 0;
        so.log_name = "stomp-ci logs";
        auto check = [](const bus::http::request& h) -> std::optional<bus::http::response> {
            if (h.method != "GET" && h.method != "HEAD") {
                auto r = bus::http::text(405, "read-only: GET only");
                r.headers.emplace_back("Allow", "GET, HEAD");
                return r;
            }
            if (h.path != "/status" && !log_path_run_id(h.path) && !artifact_path(h.path)) return bus::http::text(404, "not found");
            return std::nullopt;
        };
        auto handle = [this](bus::http::request& req) -> net::awaitable<bus::http::response> {
            if (req.path == "/status") {
                bus::http::response r;
                r.content_type = "application/json";
                r.body = status_json();
                co_return r;
            }
            auto id = log_path_run_id(req.path);
            auto art = id ? std::nullopt : artifact_path(req.path);
            // Artifacts were written by us, below a directory of ours: no symlink in that tree.
            const fs::path path = id ? log_file(*id) : artifacts_dir(art->first) / art->second;
            const fs::path* pp = &path;  // a trivially destructible closure (GCC 12.2, see run())
            auto read = [pp] { return read_file(*pp, 64 << 20); };
            std::error_code ec;
            bool exists = fs::is_regular_file(fs::symlink_status(path, ec));
            bus::http::response r;
            if (!exists) {
                r = bus::http::text(404, "no such log");
                co_return r;
            }
            r.body = co_await svc.blocking(read);
            r.content_type = id ? "text/plain; charset=utf-8" : "application/octet-stream";
            r.headers.emplace_back("X-Content-Type-Options", "nosniff");
            co_return r;
        };
        logs = std::make_unique<bus::http::server>(svc.executor(), so, log, check, handle);
        logs->listen();
        log.info("stomp-ci: logs and /status on {}:{}, linked as {}", so.address, logs->port(), cfg->log_url);
        svc.spawn(logs->run(), "stomp-ci: log server");
    }

    net::awaitable<void> drain()
    {
        accepting = false;
        log.info("stomp-ci: stopping; {} run(s) in progress finish or go back to the queue", running.size());
        // Runs get most of the drain deadline to finish; what is left is ended and requeued.
        const auto finish_by = clock_type::now() + cfg->stop_grace;
        while (!running.empty() && clock_type::now() < finish_by) co_await svc.sleep_for(milliseconds(50));
        for (auto& [id, r] : running) r->cancel = true;
        const auto cancel_by = clock_type::now() + milliseconds(5000);
        while (!running.empty() && clock_type::now() < cancel_by) {
            net::steady_timer t(svc.io(), milliseconds(50));
            co_await t.async_wait(net::use_awaitable);
        }
        if (logs) logs->stop();
        out.stop();
        client.stop();
    }
};

// READY=1 (and a log line) once every subscription this instance needs is confirmed.
net::awaitable<void> announce_ready(daemon_state* d, std::vector<std::string> subs, std::string text)
{
    for (const auto& id : subs) {
        bool ok = false;
        while (!ok && !d->svc.stopping()) ok = co_await d->client.wait_subscribed(id, std::chrono::seconds(1));
    }
    if (d->svc.stopping()) co_return;
    d->log.info("stomp-ci: ready: {}", text);
    d->svc.ready(text);
}

void reload(daemon_state& d)
{
    auto fresh = load_config(d.config_path, [&](std::string_view n) { d.log.info("stomp-ci: {}", n); });
    bus::runtime::log_restart_needed(d.log, "stomp-ci", needs_restart(*d.cfg, fresh));
    auto merged = std::make_shared<config>(*d.cfg);
    merged->repos = std::move(fresh.repos);
    merged->file = std::move(fresh.file);
    d.cfg = std::move(merged);
    d.log.info("stomp-ci: re-read {}: {} repositories", d.config_path, d.cfg->repos.size());
}

} // namespace

int run(const bus::runtime::common_options& opts, spdlog::logger& log)
{
    auto cfg = load_config(opts.config_path, [&](std::string_view n) { log.info("stomp-ci: {}", n); });
    // libgit2 is loaded at the first job (git_lazy.hpp); that it can be is checked now, so a
    // missing library stops the start (and --check-config), not the first job.
    if (auto e = deploykit::libgit2_check(); !e.empty()) throw std::runtime_error(e);
    if (opts.check_config) return 0;
    auto user = bus::runtime::lookup_user(cfg.user);
    if (!user) {
        log.error("stomp-ci: user '{}' (who runs jobs) does not exist", cfg.user);
        return 2;
    }
    if (user->uid == 0) {
        log.error("stomp-ci: user '{}' is root; jobs never run as root", cfg.user);
        return 2;
    }
    // The drain: `stop-grace` for runs to finish, then 5 s to end and requeue them, and the rest.
    const auto drain_deadline = std::chrono::duration_cast<std::chrono::seconds>(cfg.stop_grace) + std::chrono::seconds(10);
    bus::runtime::service svc(opts, log, {.drain_deadline = drain_deadline, .workers = cfg.workers + 2});
    daemon_state d(svc, opts.config_path, std::move(cfg));
    if (::geteuid() == 0) {
        d.user = *user;
        d.job_identity = *user;
    } else {  // not root: jobs run as ourselves (tests, unprivileged setups)
        d.job_identity.uid = ::geteuid();
        d.job_identity.gid = ::getegid();
        d.job_identity.groups.resize(static_cast<std::size_t>(std::max(0, ::getgroups(0, nullptr))));
        int ng = ::getgroups(static_cast<int>(d.job_identity.groups.size()), d.job_identity.groups.data());
        d.job_identity.groups.resize(static_cast<std::size_t>(std::max(0, ng)));
        d.job_identity.name = "uid " + std::to_string(d.job_identity.uid);
    }
    if (::geteuid() == 0 && !d.cfg->cgroup_root.empty() && d.cfg->workers > 0) {
        std::string why;
        d.cgroups = setup_cgroups(d.cfg->cgroup_root, why);
        if (d.cgroups)
            log.info("stomp-ci: a cgroup per run under {} (memory.max {}, pids.max {}), ended with cgroup.kill",
                     d.cgroups->dir.string(), d.cgroups->memory ? "set" : "unavailable", d.cgroups->pids ? "set" : "unavailable");
        else
            log.info("stomp-ci: no cgroup per run ({}): setrlimit limits only", why);
    } else if (d.cfg->workers > 0) {
        log.info("stomp-ci: no cgroup per run ({}): setrlimit limits only",
                 ::geteuid() != 0 ? "not root" : "cgroup-root is empty");
    }
    d.isolate_datasets = ::geteuid() == 0 && bus::runtime::mount_namespaces_available();
    if (d.isolate_datasets)
        log.info("stomp-ci: datasets: read-only bind mounts in each step's private mount namespace");
    else
        log.info("stomp-ci: datasets: no mount namespaces ({}): a job whose dataset {} could write is refused",
                 ::geteuid() == 0 ? "unshare/mount refused" : "not root", d.job_identity.name);
    d.load_state();
    const config& c = *d.cfg;
    log.info("stomp-ci {} on {}: {} repositories, {} worker(s), jobs as {}, queue /queue/{}{}", bus::runtime::version(),
             d.host, c.repos.size(), c.workers, c.user, c.job_queue, c.dispatch ? ", dispatching" : "");
    std::string commit_sub;
    if (c.dispatch) {
        auto so = bus::runtime::consumer_subscription(c.listen_topic, c.durable_name,
                                                      c.bus.client.client_id, 0, log, "stomp-ci");
        commit_sub = d.client.subscribe(so, [&d](const bus::message& m) { return d.on_commit(m); });
        bus::subscription_options rs;
        rs.destination = "/topic/" + c.recheck_topic;
        rs.ack = bus::ack_mode::client_individual;
        d.client.subscribe(rs, [&d](const bus::message& m) { return d.on_recheck(m); });
    }
    std::string ready_text;
    if (c.workers > 0) {
        // Competing consumers: at most `workers` unacknowledged job messages on this worker.
        bus::subscription_options js;
        js.destination = "/queue/" + c.job_queue;
        js.ack = bus::ack_mode::client_individual;
        js.prefetch = c.workers;
        d.job_sub = d.client.subscribe(js, [&d](const bus::message& m) { return d.on_job(m); });
        ready_text = "subscribed to /queue/" + c.job_queue;
    } else {
        d.job_sub = commit_sub;
        ready_text = "dispatching from /topic/" + c.listen_topic;
    }
    d.register_metrics();
    if (c.admin_listen)
        svc.serve_admin(*c.admin_listen, d.metrics,
                        [&d] { return bus::runtime::consumer_not_ready(d.client, d.job_sub, d.cfg->workers > 0 ? "/queue/" + d.cfg->job_queue : "/topic/" + d.cfg->listen_topic); });
    if (c.log_listen) d.serve_logs();
    svc.on_reload([&] { reload(d); });
    svc.on_stop([&] { return d.drain(); });
    svc.spawn(d.client.run(), "stomp-ci: bus client", bus::runtime::task::critical);
    svc.spawn(d.out.run(), "stomp-ci: outbox");
    svc.spawn(bus::runtime::heartbeat(svc, d.client, c.heartbeat, "stomp-ci",
                                      [&] {
                                          return std::map<std::string, std::uint64_t>{
                                              {"runs", d.runs},         {"running", d.running.size()},
                                              {"success", d.successes}, {"failure", d.failures},
                                              {"slow", d.slow_runs},    {"refused", d.refused}};
                                      },
                                      c.bus.signing),
              "stomp-ci: heartbeat");
    std::vector<std::string> subs;
    if (!commit_sub.empty()) subs.push_back(commit_sub);
    if (c.workers > 0) subs.push_back(d.job_sub);
    net::co_spawn(svc.io(), announce_ready(&d, std::move(subs), ready_text), net::detached);
    return svc.run();
}

} // namespace stomp_ci
