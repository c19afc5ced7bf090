// The deploy CLI's bus session: one client, a private reply topic, the agent heartbeat topic,
// and one command's coroutine. Requests and job events are published with receipts (signed when
// the config has a signing key); replies and heartbeats go through bus::intake (signature check
// with verify keys, dedupe by event id). Every wait has a deadline. The health gate's blocking
// work (libcurl, bus::runtime::spawn) runs on a worker thread, never on the I/O thread.
#include "core.hpp"
#include "shell.hpp"

#include "bus/client.hpp"
#include "bus/crypto.hpp"
#include "bus/detail/hex.hpp"
#include "bus/intake.hpp"
#include "bus/runtime/spawn.hpp"
#include "bus/wire.hpp"
#include "curl_init.hpp"
#include "deploy/protocol.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <curl/curl.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>
#include <set>
#include <unistd.h>

namespace deploy::cli {

namespace net = boost::asio;
namespace proto = ::deploy;
using json = nlohmann::json;
using clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

milliseconds ms(double s) { return milliseconds(static_cast<long>(s * 1000)); }

std::string random_hex(std::size_t bytes)
{
    const std::string b = bus::crypto::random_bytes(bytes);  // getrandom(2), unchecked RAND_bytes before
    return bus::detail::to_hex(reinterpret_cast<const unsigned char*>(b.data()), b.size());
}

// ---- the health gate (blocking: called on the worker thread) ----

std::size_t discard(char*, std::size_t size, std::size_t n, void*) { return size * n; }

std::string check_url(const std::string& url, double timeout_s)
{
    if (auto e = deploykit::curl_init_once(); !e.empty()) return e;  // loads libcurl at the first check
    std::unique_ptr<CURL, void (*)(CURL*)> h(curl_easy_init(), curl_easy_cleanup);
    if (!h) return "cannot initialise libcurl";
    curl_easy_setopt(h.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(h.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_s * 1000));
    curl_easy_setopt(h.get(), CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h.get(), CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h.get(), CURLOPT_WRITEFUNCTION, discard);
    auto rc = curl_easy_perform(h.get());
    if (rc != CURLE_OK) return std::string("GET failed: ") + curl_easy_strerror(rc);
    long code = 0;
    curl_easy_getinfo(h.get(), CURLINFO_RESPONSE_CODE, &code);
    if (code < 200 || code > 299) return "GET answered " + std::to_string(code);
    return {};
}

std::string resolve_program(const std::string& name)
{
    if (name.find('/') != std::string::npos) return name;
    for (const char* dir : {"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"}) {
        std::string p = std::string(dir) + "/" + name;
        if (access(p.c_str(), X_OK) == 0) return p;
    }
    return name;
}

std::string check_cmd(std::vector<std::string> argv, double timeout_s)
{
    bus::runtime::spawn_options o;
    argv[0] = resolve_program(argv[0]);
    o.argv = std::move(argv);
    o.env = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"};
    o.timeout = ms(timeout_s);
    o.max_out = 16 << 10;
    o.max_err = 16 << 10;
    o.die_with_parent = true;
    auto r = bus::runtime::spawn(o);
    if (r.ok()) return {};
    std::string why = r.describe();
    auto tail = r.err.empty() ? r.out : r.err;
    while (!tail.empty() && (tail.back() == '\n' || tail.back() == '\r')) tail.pop_back();
    if (auto nl = tail.rfind('\n'); nl != std::string::npos) tail = tail.substr(nl + 1);
    if (!tail.empty()) why += ": " + tail.substr(0, 200);
    return why;
}

// A stage's output, last line, for a progress line.
std::string last_line(std::string s)
{
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    if (auto nl = s.rfind('\n'); nl != std::string::npos) s = s.substr(nl + 1);
    for (auto& c : s)
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
    return s.size() > 160 ? s.substr(0, 160) + "…" : s;
}

net::awaitable<std::string> health_work(std::string url, std::vector<std::string> argv, double timeout_s)
{
    if (!url.empty())
        if (auto e = check_url(url, timeout_s); !e.empty()) co_return "health-url: " + e;
    if (!argv.empty())
        if (auto e = check_cmd(std::move(argv), timeout_s); !e.empty()) co_return "health-cmd: " + e;
    co_return std::string();
}

// ---- the session ----

class session {
public:
    session(net::any_io_executor ex, const config& cfg, const command& cmd, spdlog::logger& log, const session_sinks& sinks)
        : cfg_(cfg), cmd_(cmd), log_(log), sinks_(sinks), client_(ex, client_opts(cfg), log), wake_(ex),
          in_(bus::intake_options{.require_signatures = cfg.bus.require_signatures}, cfg.bus.verify_keys),
          reply_topic_(cfg.dest.reply_prefix + random_hex(8))
    {
    }

    bus::client& client() { return client_; }
    bool interrupted = false;
    bool client_ended = false;
    void poke() { wake_.cancel(); }

    net::awaitable<int> main()
    {
        auto sel = selector(selection_args{cmd_.identities, cmd_.facts, cmd_.classes, cmd_.nodes});
        // Refused before anything is sent.
        if (cmd_.name == "run" && !proto::valid_tag(cmd_.tag)) {
            err() << "deploy: refused: '" << cmd_.tag << "' is not a valid tag name\n";
            co_return exit_refused;
        }
        if (!cmd_.repo.empty() && !bus::valid_repo_name(cmd_.repo)) {
            err() << "deploy: refused: '" << cmd_.repo << "' is not a valid repository name\n";
            co_return exit_refused;
        }
        if (cmd_.name == "exec" && !proto::valid_id(cmd_.exec_name)) {
            err() << "deploy: refused: '" << cmd_.exec_name << "' is not a command name\n";
            co_return exit_refused;
        }
        if (!(co_await client_.wait_connected(cfg_.bus.client.connect_timeout + milliseconds(1000)))) {
            err() << "deploy: cannot reach the broker" << (client_.last_error().empty() ? "" : ": " + client_.last_error())
                  << "\n";
            co_return exit_failed;
        }
        auto rsub = client_.subscribe({.destination = reply_topic_, .ack = bus::ack_mode::automatic},
                                      [this](const bus::message& m) { return on_reply(m); });
        auto asub = client_.subscribe({.destination = cfg_.dest.agent_topic, .ack = bus::ack_mode::automatic},
                                      [this](const bus::message& m) { return on_heartbeat(m); });
        if (!(co_await client_.wait_subscribed(rsub, ms(10))) || !(co_await client_.wait_subscribed(asub, ms(10)))) {
            err() << "deploy: could not subscribe to " << reply_topic_ << " and " << cfg_.dest.agent_topic << "\n";
            co_return exit_failed;
        }
        int rc = co_await dispatch(sel);
        client_.unsubscribe(rsub);
        client_.unsubscribe(asub);
        co_return rc;
    }

private:
    static bus::client_options client_opts(const config& cfg)
    {
        auto o = cfg.bus.client;
        // A one-shot command gives up after a few attempts, as stompctl does.
        if (o.url.reconnect.max_attempts == 0)
            o.url.reconnect.max_attempts = static_cast<int>(2 * o.url.endpoints.size() + 1);
        return o;
    }

    std::ostream& out() { return sinks_.out ? *sinks_.out : null_; }  // progress
    std::ostream& err() { return sinks_.err ? *sinks_.err : null_; }
    std::ostream& res() { return sinks_.result ? *sinks_.result : null_; }  // the command's answer

    // ---- inbound ----

    std::optional<bus::event> take(const bus::message& m)
    {
        auto now = std::chrono::system_clock::now();
        auto r = in_.accept(m.frame, now);
        if (!r.process()) {
            if (r.decision != bus::intake_decision::keepalive) log_.warn("dropped {}: {}", m.id(), r.reason);
            return std::nullopt;
        }
        in_.processed(r.ev->id, now);
        return std::move(r.ev);
    }

    net::awaitable<bus::disposition> on_reply(const bus::message& m)
    {
        if (auto ev = take(m)) {
            auto r = proto::reply_from(*ev);
            if (!r) {
                log_.warn("malformed reply from {}: {}", ev->host, r.error);
            } else if (outstanding_.contains(r.value->request_id)) {
                if (r.value->action == "ping" && r.value->code == proto::status::ok)
                    if (auto a = proto::agent_info_from_json(r.value->data)) learn(*a.value);
                auto& v = replies_[r.value->request_id];
                if (v.size() < 10000) v.push_back(std::move(*r.value));
                poke();
            }
        }
        co_return bus::disposition::ack;
    }

    net::awaitable<bus::disposition> on_heartbeat(const bus::message& m)
    {
        if (auto ev = take(m))
            if (auto a = proto::agent_info_from(*ev)) {
                learn(*a.value);
                poke();
            }
        co_return bus::disposition::ack;
    }

    void learn(const proto::agent_info& a)
    {
        if (!valid_identity(a.identity) || (heard_.size() > 100000 && !heard_.contains(a.identity))) return;
        node_info n{a.identity, a.facts, a.classes, {}};
        for (auto& r : a.repos) n.repos.push_back({r.name, r.tag, r.commit});
        heard_[a.identity] = std::move(n);
    }

    // ---- waits ----

    template <class Pred>
    net::awaitable<bool> wait_until(Pred done, clock::time_point deadline)
    {
        while (!done()) {
            if (client_ended || clock::now() >= deadline) co_return false;
            wake_.expires_at(deadline);
            co_await wake_.async_wait(net::as_tuple(net::use_awaitable));
        }
        co_return true;
    }

    net::awaitable<void> sleep(double s)
    {
        if (s <= 0) co_return;
        co_await wait_until([this] { return interrupted; }, clock::now() + ms(s));
    }

    // ---- outbound ----

    net::awaitable<bool> publish(const bus::event& e, const std::string& destination, bool reply_to)
    {
        for (auto& f : bus::encode(e, destination, bus::wire_format::native)) {
            if (reply_to) f.set("reply-to", reply_topic_);
            if (cfg_.bus.signing)
                bus::sign(f, *cfg_.bus.signing,
                          std::chrono::duration_cast<std::chrono::seconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count());
            auto ec = co_await client_.publish(std::move(f));
            if (ec) {
                err() << "deploy: publishing to " << destination << " failed: " << ec.message() << "\n";
                co_return false;
            }
        }
        co_return true;
    }

    proto::request make_request(std::string action, proto::phase ph, double deadline_s)
    {
        proto::request r;
        r.request_id = "r-" + random_hex(8);
        r.job_id = job_id_;
        r.action = std::move(action);
        r.ph = ph;
        r.args.repo = cmd_.repo;
        if (r.action == "deploy") r.args.tag = cmd_.tag;
        if (r.action == "run") {
            r.args.command = cmd_.exec_name;
            r.args.repo.clear();
        }
        if (r.action == "tags") r.args.count = cmd_.tags_count;
        if (r.action == "ping") r.args.repo.clear();
        r.caller = cfg_.caller;
        r.deadline = proto::format_time(std::chrono::system_clock::now() + ms(deadline_s));
        r.reply_to = reply_topic_;
        if (r.ph != proto::phase::release) outstanding_.insert(r.request_id);
        return r;
    }

    net::awaitable<bool> broadcast(const proto::request& r)
    {
        co_return co_await publish(proto::to_event(r), cfg_.dest.request_topic, true);
    }

    net::awaitable<bool> to_node(const proto::request& r, const std::string& node)
    {
        co_return co_await publish(proto::to_event(r), cfg_.dest.request_queue_prefix + node, true);
    }

    // The latest reply of `node` to request `rid`.
    const proto::reply* reply_of(const std::string& rid, const std::string& node) const
    {
        auto it = replies_.find(rid);
        if (it == replies_.end()) return nullptr;
        const proto::reply* last = nullptr;
        for (auto& r : it->second)
            if (r.identity == node) last = &r;
        return last;
    }

    bool all_replied(const std::string& rid, const std::vector<std::string>& nodes) const
    {
        for (auto& n : nodes)
            if (!reply_of(rid, n)) return false;
        return true;
    }

    // ---- discovery ----

    net::awaitable<std::vector<std::string>> discover(const selector& sel)
    {
        double t = cmd_.discovery_timeout.value_or(cfg_.discovery_timeout);
        auto ping = make_request("ping", proto::phase::direct, t + 5);
        std::vector<std::string> listed;
        for (auto& l : cmd_.nodes)
            for (std::size_t i = 0; i < l.size();) {
                auto j = l.find(',', i);
                if (j == std::string::npos) j = l.size();
                if (j > i) listed.push_back(l.substr(i, j - i));
                i = j + 1;
            }
        ping.nodes = listed;
        if (!(co_await broadcast(ping))) co_return std::vector<std::string>{};
        // With only a static list, discovery ends as soon as every listed node answered.
        bool only_list = !listed.empty() && cmd_.facts.empty() && cmd_.classes.empty();
        co_await wait_until(
            [&] {
                if (interrupted) return true;
                if (!only_list) return false;
                for (auto& n : listed)
                    if (!heard_.contains(n)) return false;
                return true;
            },
            clock::now() + ms(t));
        std::vector<node_info> nodes;
        for (auto& [id, n] : heard_) nodes.push_back(n);
        co_return sel.select(nodes);
    }

    // `answer` with "discovered": what each selected node's ping or heartbeat said
    // (identity, facts, classes, repos), for callers that show nodes (herald's deploy page).
    json with_discovered(json answer, const std::vector<std::string>& nodes) const
    {
        json d = json::object();
        for (auto& n : nodes) {
            auto it = heard_.find(n);
            if (it == heard_.end()) continue;
            json repos = json::array();
            for (auto& r : it->second.repos) repos.push_back({{"name", r.name}, {"tag", r.tag}, {"commit", r.commit}});
            d[n] = {{"facts", it->second.facts}, {"classes", it->second.classes}, {"repos", repos}};
        }
        answer["discovered"] = std::move(d);
        return answer;
    }

    // ---- commands ----

    net::awaitable<int> dispatch(const selector& sel)
    {
        started_ = clock::now();
        auto nodes = co_await discover(sel);
        if (interrupted) co_return 130;
        if (nodes.empty()) {
            err() << "deploy: no node matched (" << heard_.size() << " discovered)\n";
            co_return exit_refused;
        }
        if (cmd_.name == "discover") {  // herald: the nodes and their repos, nothing asked of them
            if (sinks_.on_result) sinks_.on_result(with_discovered(json::object(), nodes));
            co_return exit_ok;
        }
        if (cmd_.name == "tags" || cmd_.name == "state") co_return co_await direct(nodes);
        co_return co_await rollout(nodes);
    }

    net::awaitable<int> direct(const std::vector<std::string>& nodes)
    {
        auto r = make_request(cmd_.name, proto::phase::direct, cmd_.ro.timeout);
        r.nodes = nodes;
        if (!(co_await broadcast(r))) co_return exit_failed;
        co_await wait_until([&] { return interrupted || all_replied(r.request_id, nodes); },
                            clock::now() + ms(cmd_.ro.timeout));
        std::vector<std::string> no_reply, failed;
        json per = json::object();
        std::map<std::string, std::vector<std::pair<std::string, std::string>>> by;
        for (auto& n : nodes) {
            auto* rep = reply_of(r.request_id, n);
            if (!rep) {
                no_reply.push_back(n);
                continue;
            }
            per[n] = proto::to_json(*rep);
            if (rep->code != proto::status::ok) {
                failed.push_back(n);
                continue;
            }
            if (cmd_.name == "tags") {
                auto& v = by[n];
                if (rep->data.contains("tags") && rep->data["tags"].is_array())
                    for (auto& t : rep->data["tags"])
                        if (t.is_object() && t.value("name", json()).is_string())
                            v.emplace_back(t["name"].get<std::string>(), t.value("time", std::string()));
            }
        }
        double dur = std::chrono::duration<double>(clock::now() - started_).count();
        if (cmd_.name == "tags") {
            auto rows = intersect_tags(by);
            json t = json::array();
            for (auto& row : rows)
                t.push_back({{"name", row.name}, {"time", row.time}, {"on_every_node", row.missing.empty()},
                             {"missing", row.missing}});
            json answer{{"repo", cmd_.repo}, {"tags", t}, {"nodes", per}, {"no_reply", no_reply}};
            if (sinks_.on_result) sinks_.on_result(with_discovered(answer, nodes));
            if (cmd_.json) {
                res() << answer.dump(2) << "\n";
            } else {
                res() << "[Tags] " << cmd_.repo << " on " << by.size() << " node(s); * = missing on some\n";
                for (auto& row : rows) {
                    res() << (row.missing.empty() ? "  " : "* ") << row.name;
                    if (!row.missing.empty()) {
                        res() << "  (missing on";
                        for (auto& m : row.missing) res() << " " << m;
                        res() << ")";
                    }
                    res() << "\n";
                }
                res() << "[/Tags]\n";
            }
        } else if (json answer{{"repo", cmd_.repo}, {"nodes", per}, {"no_reply", no_reply}}; cmd_.json) {
            if (sinks_.on_result) sinks_.on_result(with_discovered(answer, nodes));
            res() << answer.dump(2) << "\n";
        } else {
            if (sinks_.on_result) sinks_.on_result(with_discovered(answer, nodes));
            for (auto& n : nodes) {
                auto* rep = reply_of(r.request_id, n);
                if (!rep) continue;
                auto& d = rep->data;
                auto s = [&](const json& j, const char* k) {
                    return j.is_object() && j.contains(k) && j[k].is_string() ? j[k].get<std::string>() : std::string("-");
                };
                if (rep->code != proto::status::ok) {
                    res() << n << "  error " << static_cast<int>(rep->code) << ": " << last_line(rep->message) << "\n";
                    continue;
                }
                res() << n << "  " << cmd_.repo << "  " << s(d, "tag") << "  " << s(d, "commit").substr(0, 12) << "  "
                          << s(d, "time") << "  by " << s(d, "by") << "  previous "
                          << s(d.is_object() && d.contains("previous") ? d["previous"] : json(), "tag") << "\n";
            }
        }
        for (auto& n : failed) err() << "deploy: " << n << " answered an error\n";
        if (!no_reply.empty()) {
            err() << "deploy: no reply from " << no_reply.size() << " node(s):";
            for (auto& n : no_reply) err() << " " << n;
            err() << "\n";
        }
        log_.info("{} done in {:.3f} s", cmd_.name, dur);
        co_return no_reply.empty() && failed.empty() ? exit_ok : exit_failed;
    }

    // ---- rollouts: run, rollback, exec ----

    std::string action() const
    {
        return cmd_.name == "run" ? "deploy" : cmd_.name == "exec" ? "run" : "rollback";
    }

    net::awaitable<void> publish_job(const job& j, const summary* s)
    {
        proto::job pj;
        pj.job_id = j.id();
        pj.state = std::string(to_string(j.state()));
        pj.action = action();
        pj.repo = j.repo;
        pj.tag = j.tag;
        pj.caller = j.caller;
        for (auto& [k, v] : j.options.items()) pj.options[k] = v.is_string() ? v.get<std::string>() : v.dump();
        pj.batch = j.batch;
        pj.batches = j.batches;
        for (auto& n : j.nodes())
            if (auto st = j.state_of(n)) pj.nodes[n] = std::string(to_string(*st));
        if (s) pj.summary = proto::job_summary{s->discovered, s->responded, s->ok, s->failed, s->no_reply, s->duration_s};
        if (sinks_.on_job) sinks_.on_job(job_json(j, s));
        co_await publish(proto::to_event(pj), cfg_.dest.job_topic, false);
    }

    // The job as `--json` prints it: the job event, the action, and each node's last reply
    // (message, data, stages with their output).
    json job_json(const job& j, const summary* s) const
    {
        json per = json::object();
        for (auto& n : j.nodes()) {
            auto& r = j.result(n);
            auto st = j.state_of(n);
            per[n] = {{"state", st ? std::string(to_string(*st)) : "unavailable"},
                      {"status", r.status},
                      {"message", r.message},
                      {"tries", r.tries}};
            if (!r.detail.is_null()) per[n]["detail"] = r.detail;
        }
        auto ev = job_event(j, s);
        ev["action"] = action();
        ev["nodes_detail"] = per;
        return ev;
    }

    net::awaitable<void> transition(job& j, job_state s)
    {
        j.set(s);
        co_await publish_job(j, nullptr);
    }

    // Votes of `nodes` for this job; sets each node ready, nacked or unavailable.
    net::awaitable<void> vote(job& j, const std::vector<std::string>& nodes, double reserve_s)
    {
        auto r = make_request(action(), proto::phase::vote, reserve_s);
        r.nodes = nodes;
        if (!(co_await broadcast(r))) co_return;
        co_await wait_until([&] { return interrupted || all_replied(r.request_id, nodes); },
                            clock::now() + ms(cmd_.ro.vote_timeout));
        for (auto& n : nodes) {
            auto* rep = reply_of(r.request_id, n);
            if (!rep) {
                j.set(n, node_state::unavailable);
                continue;
            }
            j.note_reply(n, static_cast<int>(rep->code), rep->message);
            if (rep->code == proto::status::ok && rep->vote == "ready") {
                j.set(n, node_state::ready);
            } else {
                j.set(n, node_state::nacked);
                if (rep->code == proto::status::invalid_data) tag_refused_ = true;
                out() << "   ...... " << n << " [" << (rep->vote.empty() ? "REFUSED" : rep->vote) << "] "
                      << last_line(rep->message) << "\n";
            }
        }
    }

    net::awaitable<void> release(const std::vector<std::string>& nodes)
    {
        if (nodes.empty()) co_return;
        auto r = make_request(action(), proto::phase::release, 30);
        r.nodes = nodes;
        co_await broadcast(r);
    }

    // One batch with its tries. Returns when every node of it has an outcome.
    net::awaitable<void> run_batch(job& j, const std::vector<std::string>& batch, double reserve_s)
    {
        std::vector<std::string> pending = batch;
        for (int attempt = 1; !pending.empty(); ++attempt) {
            std::map<std::string, std::string> rids;
            for (auto& n : pending) {
                j.set(n, node_state::running);
                j.note_try(n);
                auto r = make_request(action(), proto::phase::commit, cmd_.ro.timeout);
                r.nodes = {n};
                rids[n] = r.request_id;
                co_await to_node(r, n);
            }
            co_await publish_job(j, nullptr);
            auto until = clock::now() + ms(cmd_.ro.timeout);
            co_await wait_until(
                [&] {
                    for (auto& [n, rid] : rids)
                        if (!reply_of(rid, n)) return false;
                    return true;
                },
                until);
            std::vector<std::string> again;
            for (auto& n : pending) {
                auto* rep = reply_of(rids[n], n);
                if (!rep) {
                    j.set(n, node_state::timed_out);
                    out() << "   ...... " << n << " [NO REPLY] within " << cmd_.ro.timeout << " s\n";
                } else {
                    json detail{{"data", rep->data}, {"stages", proto::to_json(*rep)["stages"]}};
                    j.note_reply(n, static_cast<int>(rep->code), rep->message, detail);
                    bool ok = rep->code == proto::status::ok;
                    j.set(n, ok ? node_state::succeeded : node_state::failed);
                    out() << "   ...... " << n << " [" << (ok ? "OK" : "FAILED") << "] " << last_line(rep->message);
                    for (auto& st : rep->stages)
                        if (st.exit_code != 0 || cmd_.name == "exec")
                            out() << " | " << st.name << " exit " << st.exit_code
                                  << (st.output.empty() ? "" : ": " + last_line(st.output));
                    char d[32];
                    std::snprintf(d, sizeof d, " (%.2f s)", rep->duration_s);
                    out() << d << "\n";
                }
                if (j.state_of(n) != node_state::succeeded && attempt < cmd_.ro.tries) again.push_back(n);
            }
            co_await publish_job(j, nullptr);
            if (again.empty() || interrupted) co_return;
            co_await sleep(cmd_.ro.try_sleep);
            out() << ">>>>>>>>> retrying " << again.size() << " node(s), attempt " << attempt + 1 << " of "
                  << cmd_.ro.tries << "\n";
            co_await vote(j, again, reserve_s);
            pending.clear();
            for (auto& n : again)
                if (j.state_of(n) == node_state::ready) pending.push_back(n);
        }
    }

    net::awaitable<std::string> health_gate()
    {
        const auto& ro = cmd_.ro;
        if (ro.health_url.empty() && ro.health_cmd.empty()) co_return std::string();
        auto argv = ro.health_cmd.empty() ? std::vector<std::string>{} : parse_argv(ro.health_cmd);
        // Blocking work on the worker thread; the result comes back to the I/O thread. A plain
        // function with its arguments by value (a capturing coroutine lambda's captures would be
        // gone once co_spawn returned: GCC 12).
        std::string why = co_await net::co_spawn(workers_, health_work(ro.health_url, argv, ro.health_timeout),
                                                 net::use_awaitable);
        co_return why;
    }

    net::awaitable<int> rollout(const std::vector<std::string>& nodes)
    {
        const auto& ro = cmd_.ro;
        auto batch = amount::parse(ro.batch, "--batch");
        auto max_failures = amount::parse(ro.max_failures, "--max-failures");
        auto quorum = amount::parse(ro.quorum, "--quorum");
        if (!ro.health_cmd.empty()) parse_argv(ro.health_cmd);  // a usage error before anything runs

        job_id_ = proto::valid_id(cmd_.job_id) ? cmd_.job_id : "j-" + random_hex(8);
        job j(job_id_, action(), nodes);
        j.repo = cmd_.repo;
        j.tag = cmd_.name == "exec" ? cmd_.exec_name : cmd_.tag;
        j.caller = cfg_.caller;
        j.options = {{"canary", std::to_string(ro.canary)}, {"batch", batch.str()},
                     {"max_failures", max_failures.str()}, {"quorum", quorum.str()},
                     {"tries", std::to_string(ro.tries)}};
        // The reservation a ready vote makes must outlast the whole rollout at its slowest.
        auto plan_all = plan_batches(nodes, ro.canary, batch);
        double reserve_s = ro.vote_timeout + 30 +
                           static_cast<double>(plan_all.size()) *
                               (ro.tries * (ro.timeout + ro.try_sleep + ro.vote_timeout) + ro.batch_sleep +
                                ro.health_timeout);
        out() << ">>>>>>>>> " << cmd_.name << " " << (cmd_.name == "exec" ? cmd_.exec_name : cmd_.repo)
              << (cmd_.tag.empty() ? "" : " " + cmd_.tag) << " on " << nodes.size() << " node(s), job " << job_id_ << "\n";
        co_await publish_job(j, nullptr);
        co_await transition(j, job_state::voting);
        co_await vote(j, nodes, reserve_s);
        long ready = j.count(node_state::ready);
        if (interrupted || tag_refused_ || !quorum_met(ready, static_cast<long>(nodes.size()), quorum)) {
            j.stop_reason = interrupted   ? "interrupted"
                            : tag_refused_ ? "refused by a node (invalid data)"
                                           : "quorum not met: " + std::to_string(ready) + " of " +
                                                 std::to_string(nodes.size()) + " ready, " + quorum.str() + " needed";
            out() << ">>>>>>>>> refused: " << j.stop_reason << "\n";
            co_await transition(j, job_state::quorum_failed);
            co_await release(j.in_state(node_state::ready));
            co_return co_await finish(j);
        }
        co_await transition(j, job_state::running);
        auto plan = plan_batches(j.in_state(node_state::ready), ro.canary, batch);
        j.batches = static_cast<int>(plan.size());
        std::optional<job_state> stopped;
        for (std::size_t i = 0; i < plan.size(); ++i) {
            if (interrupted) {
                j.stop_reason = "interrupted";
                stopped = job_state::aborted;
                break;
            }
            j.batch = static_cast<int>(i + 1);
            out() << ">>>>>>>>> " << (i == 0 && ro.canary > 0 ? "canary" : "batch") << " " << i + 1 << "/" << plan.size()
                  << ":";
            for (auto& n : plan[i]) out() << " " << n;
            out() << "\n";
            auto t0 = clock::now();
            co_await run_batch(j, plan[i], reserve_s);
            log_.info("batch {} took {:.3f} s", i + 1, std::chrono::duration<double>(clock::now() - t0).count());
            if (past_threshold(j.failures(), static_cast<long>(nodes.size()), max_failures)) {
                bool all_silent = true;
                for (auto& n : plan[i])
                    if (j.state_of(n) == node_state::failed) all_silent = false;
                j.stop_reason = std::to_string(j.failures()) + " failure(s), more than --max-failures " +
                                max_failures.str();
                stopped = all_silent ? job_state::timed_out : job_state::aborted;
                break;
            }
            if (!j.in_state(node_state::succeeded).empty()) {
                if (auto why = co_await health_gate(); !why.empty()) {
                    out() << ">>>>>>>>> health gate failed: " << why << "\n";
                    j.stop_reason = "health gate failed: " + why;
                    stopped = job_state::aborted;
                    break;
                }
                if (!ro.health_url.empty() || !ro.health_cmd.empty()) out() << ">>>>>>>>> health gate passed\n";
            }
            if (i + 1 < plan.size()) co_await sleep(ro.batch_sleep);
        }
        if (stopped) {
            out() << ">>>>>>>>> stopped: " << j.stop_reason << "; " << j.count(node_state::ready)
                  << " node(s) left untouched\n";
            co_await transition(j, *stopped);
        } else {
            co_await transition(j, job_state::complete);
        }
        co_await release(j.in_state(node_state::ready));
        co_return co_await finish(j);
    }

    net::awaitable<int> finish(job& j)
    {
        auto s = summarize(j, std::chrono::duration<double>(clock::now() - started_).count());
        co_await publish_job(j, &s);
        if (sinks_.on_result) sinks_.on_result(job_json(j, &s));
        if (cmd_.json) {
            res() << job_json(j, &s).dump(2) << "\n";
        } else {
            res() << ">>>>>>>>> " << to_text(s, action() + " " + std::string(to_string(j.state())));
        }
        co_return exit_code(j);
    }

    const config& cfg_;
    const command& cmd_;
    spdlog::logger& log_;
    const session_sinks& sinks_;
    std::ostream null_{nullptr};  // discards what it is given
    bus::client client_;
    net::steady_timer wake_;
    bus::intake in_;
    std::string reply_topic_;
    std::string job_id_;
    std::set<std::string> outstanding_;
    std::map<std::string, std::vector<proto::reply>> replies_;
    std::map<std::string, node_info> heard_;
    clock::time_point started_ = clock::now();
    bool tag_refused_ = false;
    net::thread_pool workers_{1};
};

// The bus client's life next to the session's: ends when the client stops.
net::awaitable<void> run_client(std::shared_ptr<session> s, spdlog::logger* log)
{
    try {
        co_await s->client().run();
    } catch (const std::exception& e) {
        log->error("{}", e.what());
    }
    s->client_ended = true;
    s->poke();
}

} // namespace

net::awaitable<int> run_session(net::any_io_executor ex, std::shared_ptr<session_request> req, spdlog::logger& log)
{
    auto s = std::make_shared<session>(ex, req->cfg, req->cmd, log, req->sinks);
    std::weak_ptr<session> weak = s;
    req->interrupt = [weak] {
        if (auto p = weak.lock()) {
            p->interrupted = true;
            p->poke();
        }
    };
    auto client_task = run_client(s, &log);
    net::co_spawn(ex, std::move(client_task), net::detached);
    int rc = exit_failed;
    std::string failure;
    try {
        rc = co_await s->main();
    } catch (const usage_error& ue) {
        failure = ue.what();
        rc = exit_usage;
    } catch (const std::exception& e) {
        failure = e.what();
        rc = exit_failed;
    }
    if (!failure.empty() && req->sinks.err) *req->sinks.err << "deploy: " << failure << "\n";
    s->client().stop();
    // the client's coroutine holds the session until it has ended; wait for it (bounded)
    auto until = clock::now() + std::chrono::seconds(5);
    net::steady_timer t(ex);
    while (!s->client_ended && clock::now() < until) {
        t.expires_after(milliseconds(20));
        co_await t.async_wait(net::as_tuple(net::use_awaitable));
    }
    req->interrupt = nullptr;
    co_return rc;
}

int run_command(const config& cfg, const command& cmd)
{
    auto log = std::make_shared<spdlog::logger>("deploy", std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
    log->set_level(cmd.verbose ? spdlog::level::info : spdlog::level::critical);
    net::io_context io(1);
    auto req = std::make_shared<session_request>();
    req->cfg = cfg;
    req->cmd = cmd;
    req->sinks.out = cmd.json ? &std::cerr : &std::cout;
    req->sinks.err = &std::cerr;
    req->sinks.result = &std::cout;
    int sigs = 0;
    net::signal_set signals(io, SIGINT, SIGTERM);
    std::function<void(boost::system::error_code, int)> on_signal = [&](boost::system::error_code ec, int) {
        if (ec) return;
        if (++sigs == 1) {
            std::cerr << "deploy: interrupted: stopping after the current batch (again to stop now)\n";
            if (req->interrupt) req->interrupt();
            signals.async_wait(on_signal);
        } else {
            std::cerr << "deploy: stopped at once; reservations expire at their deadline\n";
            std::fflush(nullptr);
            _exit(130);
        }
    };
    signals.async_wait(on_signal);
    int rc = exit_failed;
    net::co_spawn(io, run_session(io.get_executor(), req, *log), [&](std::exception_ptr e, int r) {
        rc = e ? exit_failed : r;
        signals.cancel();
    });
    io.run();
    return rc;
}

} // namespace deploy::cli
