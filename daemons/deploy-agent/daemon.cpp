// deploy-agent's glue between the bus, its pure logic (core.hpp, deploy/protocol.hpp) and its
// blocking steps (deployer.hpp).
//
// Two subscriptions, both client-individual: the broadcast request topic (ping, tags, state,
// votes) and this node's queue (commits and targeted requests). Every request goes through
// bus::intake (signature, replay), then deploy::validate, the config (repo, command), the policy,
// and the deadline. Direct requests and votes are answered in the topic's handler (libgit2 and
// file reads on the worker pool); a commit runs as its own task so that commits for other repos
// and votes are not held up, and its message is acknowledged once the reply was receipted. Every
// request is audited: a JSON line in the log and a deploy.audit event.
#include "daemon.hpp"

#include "config.hpp"
#include "git_lazy.hpp"
#include "core.hpp"
#include "deployer.hpp"
#include "git_ops.hpp"

#include "bus/client.hpp"
#include "bus/http/metrics.hpp"
#include "bus/intake.hpp"
#include "bus/publisher.hpp"
#include "bus/runtime/consumer.hpp"
#include "bus/runtime/service.hpp"
#include "bus/signing.hpp"
#include "bus/text.hpp"
#include "bus/wire.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>

namespace deploy_agent {

namespace net = boost::asio;
using std::chrono::milliseconds;
using clock_type = std::chrono::steady_clock;
using nlohmann::json;

namespace {

double since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

std::int64_t unix_now()
{
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// JSON built outside the coroutines: GCC 12 destroys braced-list temporaries in a coroutine frame
// twice (heap corruption seen here).
json ref_array(const std::vector<ref_info>& v)
{
    json a = json::array();
    for (const auto& x : v) a.push_back(json{{"name", x.name}, {"commit", x.commit}, {"time", x.time}});
    return a;
}

json tags_data(const std::string& repo, const ref_list& refs)
{
    return json{{"repo", repo}, {"tags", ref_array(refs.tags)}, {"branches", ref_array(refs.branches)}};
}

json vote_data(const std::string& repo, const std::string& tag, const std::string& commit, const std::string& command = {})
{
    if (!command.empty()) return json{{"command", command}};
    return json{{"repo", repo}, {"tag", tag}, {"commit", commit}};
}

std::string topic_dest(const std::string& t) { return t.starts_with("/") ? t : "/topic/" + t; }

// Inputs of one blocking step, shared by the I/O side and the job given to svc.blocking(), which
// captures a std::shared_ptr to one of these (cheap to copy; blocking() itself keeps any closure
// safe from GCC 12.2's double destruction, see bus/runtime/service.hpp).
struct step_input {
    std::string path;       // clone (tags, resolve)
    std::string state_dir;  // state, rollback vote
    std::string repo;
    std::string tag;
    std::size_t count = 0;
    bool branches = false;
};

struct deploy_input {
    deploy_params params;
    std::string tag;
    std::string commit;
};

struct command_input {
    command_config cmd;
    std::size_t max_output = 0;
};

struct state_result {
    repo_record rec;
    std::string error;
};

// What a commit or direct action needs from the I/O thread, copied for the worker pool.
struct job_input {
    deploy::request q;
    std::string caller;
    bool verified = false;
    bus::message msg;
    std::string event_id;
    clock_type::time_point t0;
};

struct agent {
    agent(bus::runtime::service& svc_, std::string config_path_, config cfg_)
        : svc(svc_), io(svc.io()), config_path(std::move(config_path_)), cfg(std::move(cfg_)), log(svc.log()),
          client(io.get_executor(), cfg.bus.client, log),
          out(io.get_executor(), client, cfg.bus.spool, cfg.bus.signing, svc.workers(), log),
          in(bus::intake_options{.require_signatures = cfg.bus.require_signatures, .replay_cache = cfg.replay_cache},
             cfg.bus.verify_keys),
          beat(io)
    {
        std::error_code ec;
        self_exe = std::filesystem::read_symlink("/proc/self/exe", ec).string();
    }
    bus::runtime::service& svc;
    net::io_context& io;
    std::string config_path;
    config cfg;
    spdlog::logger& log;
    bus::client client;
    bus::spooling_publisher out;
    bus::intake in;
    reservations held;
    net::steady_timer beat;
    std::string self_exe;
    std::string topic_id, queue_id;
    clock_type::time_point started = clock_type::now();
    std::size_t running = 0;  // commits in progress
    std::uint64_t requests = 0, deploys = 0, rollbacks = 0, runs = 0, failures = 0, refused = 0, expired = 0;
    bus::http::registry metrics{"deploy_agent"};
    bus::http::daemon_metrics common{metrics, bus::runtime::version()};

    std::optional<std::string> not_ready() const
    {
        if (!client.connected()) return std::string("broker unreachable");
        for (const auto& id : {topic_id, queue_id})
            if (!client.subscription(id).confirmed) return std::string("not subscribed yet");
        return std::nullopt;
    }

    void register_metrics()
    {
        metrics.add_collector([this] { common.broker_connected.set(client.connected() ? 1 : 0); });
        metrics.add_counter_of("requests_total", "requests received for this node", requests);
        metrics.add_counter_of("deploys_total", "deploys that went live", deploys);
        metrics.add_counter_of("rollbacks_total", "rollbacks that went live", rollbacks);
        metrics.add_counter_of("runs_total", "whitelisted commands run", runs);
        metrics.add_counter_of("failures_total", "deploys, rollbacks and commands that failed", failures);
        metrics.add_counter_of("refused_total", "requests refused (signature, replay, policy, invalid)", refused);
        metrics.add_counter_of("expired_total", "requests dropped past their deadline", expired);
        metrics.add_callback("running_commits", "commits being carried out", "gauge",
                             [this] { return static_cast<double>(running); });
    }

    std::map<std::string, std::uint64_t> counters() const
    {
        return {{"requests", requests}, {"deploys", deploys},   {"rollbacks", rollbacks}, {"runs", runs},
                {"failures", failures}, {"refused", refused}, {"expired", expired}};
    }

    // ---- publishing ----

    net::awaitable<bool> send_reply(const std::string& reply_to, deploy::reply rep)
    {
        auto ev = deploy::to_event(rep, cfg.identity);
        auto frames = bus::encode(ev, reply_to, bus::wire_format::native);
        bool ok = true;
        for (auto& f : frames) {
            if (cfg.bus.signing) bus::sign(f, *cfg.bus.signing, unix_now());
            auto ec = co_await client.publish(std::move(f), milliseconds(5000));
            if (ec) {
                ok = false;
                log.warn("deploy-agent: reply {} to {} not receipted: {}", rep.request_id, reply_to, ec.message());
            }
        }
        if (ok) common.events_out.inc();
        co_return ok;
    }

    net::awaitable<void> publish(std::vector<bus::stomp::frame> frames)
    {
        const auto n = frames.size();
        auto sent = co_await out.publish(std::move(frames), milliseconds(5000));
        if (!sent.kept()) {
            common.dropped("report_not_kept").inc();
            log.warn("deploy-agent: event not kept: {}", sent.why);
        } else {
            common.events_out.inc(static_cast<double>(n));
        }
    }

    // The audit line goes into the log at once (before the caller sees a reply); the frames of
    // its deploy.audit event are returned for publishing.
    std::vector<bus::stomp::frame> audit_line(const deploy::request& q, const deploy::reply& rep, std::string caller,
                                       bool verified)
    {
        auto a = deploy::make_audit(q, rep, std::move(caller), verified);
        auto line = deploy::to_json(a).dump(-1, ' ', false, json::error_handler_t::replace);
        log.info("deploy-agent: audit {}", line);
        auto ev = deploy::to_event(a, cfg.identity);
        return bus::encode(ev, cfg.audit_topic, bus::wire_format::native);
    }

    net::awaitable<void> audit(const deploy::request& q, const deploy::reply& rep, std::string caller, bool verified)
    {
        auto frames = audit_line(q, rep, std::move(caller), verified);
        co_await publish(std::move(frames));
    }

    // deploy.result natively and the original's one-liner on the event topic (eventbot).
    net::awaitable<void> announce(const deploy::request& q, const outcome& o)
    {
        bus::deploy_result d;
        d.repo = q.args.repo;
        d.tag = o.tag;
        d.request_id = q.request_id;
        d.host = cfg.identity;
        d.ok = o.code == deploy::status::ok;
        d.stage = "done";
        if (!d.ok) {
            d.stage = o.failed_stage;
            d.error = o.message;
        }
        d.previous_tag = o.previous_tag;
        auto ev = bus::make_event(d, cfg.identity);
        std::vector<bus::stomp::frame> frames;
        auto native = bus::encode(ev, cfg.result_topic, bus::wire_format::native);
        auto legacy = bus::encode(ev, topic_dest(cfg.event_topic), bus::wire_format::legacy);
        if (cfg.bus.format != bus::wire_format::legacy)
            for (auto& f : native) frames.push_back(std::move(f));
        for (auto& f : legacy) frames.push_back(std::move(f));
        co_await publish(std::move(frames));
    }

    // ---- heartbeats ----

    deploy::agent_info info()
    {
        deploy::agent_info a;
        a.identity = cfg.identity;
        a.version = std::string(bus::runtime::version());
        a.facts = cfg.facts;
        a.classes = cfg.classes;
        a.interval_s = std::chrono::duration<double>(cfg.agent_interval).count();
        for (const auto& [name, r] : cfg.repos) {
            auto rec = load_state(cfg.state_dir, name);
            deploy::repo_state s{name, "", ""};
            if (auto* l = rec.live()) {
                s.tag = l->tag;
                s.commit = l->commit;
            }
            a.repos.push_back(std::move(s));
        }
        return a;
    }

    net::awaitable<deploy::agent_info> info_async()
    {
        auto job = [this] { return info(); };
        auto a = co_await svc.blocking(job);
        co_return a;
    }

    net::awaitable<void> heartbeat_loop()
    {
        bool interval_off = cfg.agent_interval.count() == 0;
        while (!svc.stopping()) {
            if (client.connected()) {
                auto a = co_await info_async();
                auto up = std::chrono::duration<double>(clock_type::now() - started);
                auto ev = deploy::to_heartbeat(a, up, counters(), cfg.identity);
                std::vector<std::string> dests;
                dests.push_back(cfg.agent_topic);
                if (!interval_off && !cfg.heartbeat.topic.empty()) dests.push_back(topic_dest(cfg.heartbeat.topic));
                // Named vectors: GCC 12 loses range-for temporaries across a co_await.
                std::vector<bus::stomp::frame> frames;
                for (const auto& d : dests) {
                    auto some = bus::encode(ev, d, bus::wire_format::native);
                    for (auto& f : some) frames.push_back(std::move(f));
                }
                for (auto& f : frames) {
                    if (cfg.bus.signing) bus::sign(f, *cfg.bus.signing, unix_now());
                    auto ec = co_await client.publish(std::move(f), milliseconds(5000));
                    if (ec) log.debug("deploy-agent: heartbeat not receipted: {}", ec.message());
                }
            }
            // Every interval (agents: 30 s), and at once after a deploy or rollback (kick()).
            milliseconds wait = cfg.agent_interval;
            if (interval_off) wait = std::chrono::hours(1);
            if (!client.connected()) wait = std::min(wait, milliseconds(1000));
            beat.expires_after(wait);
            co_await beat.async_wait(net::as_tuple(net::use_awaitable));
        }
    }
    void kick() { beat.cancel(); }

    // ---- requests ----

    deploy::reply reply_for(const deploy::request& q) const
    {
        deploy::reply r;
        r.request_id = q.request_id;
        r.job_id = q.job_id;
        r.identity = cfg.identity;
        r.action = q.action;
        r.ph = q.ph;
        return r;
    }

    // Finishes a request: audit line, reply (when it has a usable reply_to), audit event, acknowledge.
    net::awaitable<void> finish(job_input in_, deploy::reply rep, bool do_reply)
    {
        rep.duration_s = since(in_.t0);
        if (rep.code != deploy::status::ok) {
            std::string what = std::string(deploy::to_string(rep.code));
            log.info("deploy-agent: {} {} from {} (request {}): {}: {}", in_.q.action, deploy::to_string(in_.q.ph),
                     bus::log_escape(in_.caller), bus::log_escape(in_.q.request_id), what, bus::log_escape(rep.message));
        }
        std::string caller = in_.caller;
        auto audit_frames = audit_line(in_.q, rep, std::move(caller), in_.verified);
        bool ok = true;
        if (do_reply) ok = co_await send_reply(in_.q.reply_to, rep);
        co_await publish(std::move(audit_frames));
        if (ok) {
            client.acknowledge(in_.msg, bus::disposition::ack);
            in.processed(in_.event_id, std::chrono::system_clock::now());
        } else {
            client.acknowledge(in_.msg, bus::disposition::leave);
        }
    }

    deploy::reply refuse(const deploy::request& q, deploy::status code, std::string message)
    {
        auto rep = reply_for(q);
        rep.code = code;
        rep.message = std::move(message);
        if (q.ph == deploy::phase::vote) rep.vote = "refusing";
        if (code != deploy::status::ok) ++refused;
        return rep;
    }

    // A refused frame (signature, replay, malformed): audited, never answered (its reply_to is
    // not to be trusted, and a replay's requester already has its answer).
    net::awaitable<void> audit_dropped(const bus::intake::result& r, const bus::message& m)
    {
        ++refused;
        deploy::request q;
        if (auto ev = bus::from_native(m.frame.body); ev && ev.value->type() == deploy::request_type)
            if (auto got = deploy::request_from(*ev.value)) q = *got.value;
        if (q.action.empty()) q.action = "unknown";
        deploy::reply rep = reply_for(q);
        rep.code = deploy::status::aborted;
        rep.message = "refused: " + r.reason;
        if (r.decision == bus::intake_decision::duplicate) rep.message = "refused: replay of a request already processed";
        log.warn("deploy-agent: message {} {}", bus::log_escape(m.id()), bus::log_escape(rep.message));
        std::string caller = q.caller;
        co_await audit(q, rep, std::move(caller), false);
    }

    net::awaitable<bus::disposition> on_message(const bus::message& m, bool queue)
    {
        auto r = in.accept(m.frame, std::chrono::system_clock::now());
        if (r.decision == bus::intake_decision::keepalive) co_return bus::disposition::ack;
        common.events_in.inc();
        if (!r.process()) {
            if (r.decision == bus::intake_decision::duplicate || r.decision == bus::intake_decision::signature)
                co_await audit_dropped(r, m);
            else
                bus::runtime::screen(r, m.id(), common, log, "deploy-agent");
            co_return bus::disposition::ack;
        }
        const std::string event_id = r.ev->id;
        if (r.ev->type() != deploy::request_type) {  // our own heartbeats, other traffic
            in.processed(event_id, std::chrono::system_clock::now());
            co_return bus::disposition::ack;
        }
        job_input ji;
        ji.t0 = clock_type::now();
        ji.msg = m;
        ji.event_id = event_id;
        ji.verified = r.authenticated;
        auto got = deploy::request_from(*r.ev);
        if (!got) {
            ++refused;
            log.warn("deploy-agent: request {} refused: {}", bus::log_escape(event_id), bus::log_escape(got.error));
            in.processed(event_id, std::chrono::system_clock::now());
            co_return bus::disposition::ack;
        }
        ji.q = std::move(*got.value);
        const auto& q = ji.q;
        if (!q.nodes.empty() && std::find(q.nodes.begin(), q.nodes.end(), cfg.identity) == q.nodes.end()) {
            in.processed(event_id, std::chrono::system_clock::now());
            co_return bus::disposition::ack;  // a broadcast for other nodes
        }
        ++requests;
        // With signatures, the caller is the signing key's name; otherwise the claimed one.
        ji.caller = q.caller;
        if (r.authenticated) ji.caller = std::string(m.frame.get(bus::header::sig_key));
        bool can_reply = deploy::valid_reply_to(q.reply_to, cfg.reply_prefix) && q.ph != deploy::phase::release;

        auto v = deploy::validate(q, cfg.reply_prefix);
        if (!v) {
            auto rep = refuse(q, v.code, v.message);
            co_await finish(std::move(ji), std::move(rep), can_reply);
            co_return bus::disposition::leave;
        }
        auto deadline = deploy::parse_time(q.deadline);
        if (*deadline <= std::chrono::system_clock::now()) {
            ++expired;
            auto rep = refuse(q, deploy::status::aborted, "expired: past its deadline");
            co_await finish(std::move(ji), std::move(rep), false);
            co_return bus::disposition::leave;
        }
        // Config: the repo or command must be ours.
        std::string object;
        if (!q.args.repo.empty() && q.action != "ping" && q.action != "run") {
            if (!cfg.repos.count(q.args.repo)) {
                auto rep = refuse(q, deploy::status::invalid_data, "unknown repo " + q.args.repo);
                co_await finish(std::move(ji), std::move(rep), can_reply);
                co_return bus::disposition::leave;
            }
            object = q.args.repo;
        }
        if (q.action == "run") {
            if (!cfg.commands.count(q.args.command)) {
                auto rep = refuse(q, deploy::status::invalid_data, "unknown command " + q.args.command);
                co_await finish(std::move(ji), std::move(rep), can_reply);
                co_return bus::disposition::leave;
            }
            object = q.args.command;
        }
        auto pd = deploy::evaluate(cfg.policy, ji.caller, q.action, object);
        if (!pd.allow) {
            std::string why = "denied by policy (no rule matched)";
            if (pd.rule >= 0) why = "denied by policy rule " + std::to_string(pd.rule + 1);
            auto rep = refuse(q, deploy::status::aborted, why);
            co_await finish(std::move(ji), std::move(rep), can_reply);
            co_return bus::disposition::leave;
        }

        switch (q.ph) {
        case deploy::phase::release: {
            held.release(q.job_id);
            auto rep = reply_for(q);
            rep.message = "released";
            co_await finish(std::move(ji), std::move(rep), false);
            co_return bus::disposition::leave;
        }
        case deploy::phase::direct: {
            auto rep = co_await direct(q);
            co_await finish(std::move(ji), std::move(rep), true);
            co_return bus::disposition::leave;
        }
        case deploy::phase::vote: {
            auto rep = co_await vote(q, *deadline);
            co_await finish(std::move(ji), std::move(rep), true);
            co_return bus::disposition::leave;
        }
        case deploy::phase::commit: break;
        }
        if (!queue) {
            auto rep = refuse(q, deploy::status::invalid_data, "commits are sent to the node's queue");
            co_await finish(std::move(ji), std::move(rep), true);
            co_return bus::disposition::leave;
        }
        auto key = reservation_key(q);
        if (auto why = held.begin(key, q.job_id, q.action, q.args, std::chrono::system_clock::now())) {
            auto rep = refuse(q, deploy::status::aborted, *why);
            co_await finish(std::move(ji), std::move(rep), true);
            co_return bus::disposition::leave;
        }
        ++running;
        svc.spawn(commit(std::move(ji), key), "deploy-agent: commit");
        co_return bus::disposition::leave;  // acknowledged once the reply is receipted
    }

    net::awaitable<deploy::reply> direct(const deploy::request& q)
    {
        auto rep = reply_for(q);
        if (q.action == "ping") {
            auto a = co_await info_async();
            rep.data = deploy::to_json(a);
            rep.message = "pong";
        } else if (q.action == "tags") {
            auto in_ = std::make_shared<step_input>();
            in_->path = cfg.repos.at(q.args.repo).repo;
            if (q.args.count) in_->count = static_cast<std::size_t>(*q.args.count);
            auto job = [in_] { return list_refs(in_->path, in_->count); };
            auto refs = co_await svc.blocking(job);
            if (!refs.error.empty()) {
                rep.code = deploy::status::error;
                rep.message = refs.error;
            } else {
                rep.data = tags_data(q.args.repo, refs);
                rep.message = std::to_string(refs.tags.size()) + " tags";
            }
        } else if (q.action == "state") {
            auto in_ = std::make_shared<step_input>();
            in_->state_dir = cfg.state_dir;
            in_->repo = q.args.repo;
            auto job = [in_] {
                state_result r;
                r.rec = load_state(in_->state_dir, in_->repo, &r.error);
                return r;
            };
            auto got = co_await svc.blocking(job);
            const auto& rec = got.rec;
            if (!got.error.empty()) {
                rep.code = deploy::status::error;
                rep.message = got.error;
            } else {
                rep.data = state_data(rec);
                rep.message = "nothing deployed";
                if (rec.live()) rep.message = "live: " + rec.live()->tag;
            }
        }
        co_return rep;
    }

    // The tag's commit in the clone (worker pool): nullopt with the reason when absent.
    // `in_` carries path, branches and tag (see step_input).
    net::awaitable<std::pair<std::optional<std::string>, std::string>> resolve(std::shared_ptr<step_input> in_)
    {
        auto job = [in_] {
            std::pair<std::optional<std::string>, std::string> r;
            r.first = resolve_tag(in_->path, in_->tag, in_->branches, r.second);
            return r;
        };
        auto r = co_await svc.blocking(job);
        co_return r;
    }

    std::shared_ptr<step_input> resolve_input(const repo_config& rc, const std::string& tag) const
    {
        auto in_ = std::make_shared<step_input>();
        in_->path = rc.repo;
        in_->branches = rc.allow_branches;
        in_->tag = tag;
        return in_;
    }

    net::awaitable<deploy::reply> vote(const deploy::request& q, std::chrono::system_clock::time_point until)
    {
        auto rep = reply_for(q);
        json data = json::object();
        if (q.action == "deploy") {
            auto rin = resolve_input(cfg.repos.at(q.args.repo), q.args.tag);
            auto res = co_await resolve(rin);
            if (!res.first) {
                auto refused_rep = refuse(q, deploy::status::invalid_data, res.second);
                co_return refused_rep;
            }
            data = vote_data(q.args.repo, q.args.tag, *res.first);
        } else if (q.action == "rollback") {
            auto in_ = std::make_shared<step_input>();
            in_->state_dir = cfg.state_dir;
            in_->repo = q.args.repo;
            auto job = [in_] { return load_state(in_->state_dir, in_->repo); };
            auto rec = co_await svc.blocking(job);
            if (!rec.previous()) {
                auto refused_rep = refuse(q, deploy::status::aborted, "no previous release to roll back to");
                co_return refused_rep;
            }
            data = vote_data(q.args.repo, rec.previous()->tag, rec.previous()->commit);
        } else {
            data = vote_data("", "", "", q.args.command);
        }
        auto got = held.vote(reservation_key(q), q.job_id, q.action, q.args, until, std::chrono::system_clock::now());
        if (got == reservations::vote_result::busy) {
            rep.code = deploy::status::aborted;
            rep.vote = "busy";
            rep.message = "busy: another job holds " + reservation_key(q);
            co_return rep;
        }
        rep.vote = "ready";
        rep.message = "ready";
        rep.data = std::move(data);
        co_return rep;
    }

    net::awaitable<void> commit(job_input ji, std::string key)
    {
        const auto& q = ji.q;
        auto rep = reply_for(q);
        auto din = std::make_shared<deploy_input>();
        auto* params = &din->params;
        params->state_dir = cfg.state_dir;
        params->self_exe = self_exe;
        params->hook_timeout = cfg.hook_timeout;
        params->checkout_timeout = cfg.checkout_timeout;
        params->max_output = cfg.max_output;
        params->request_id = q.request_id;
        params->caller = ji.caller;
        outcome o;
        bool announce_it = false;
        if (q.action == "run") {
            auto cin = std::make_shared<command_input>();
            cin->cmd = cfg.commands.at(q.args.command);
            cin->max_output = cfg.max_output;
            auto job = [cin] { return run_command(cin->cmd, cin->max_output); };
            o = co_await svc.blocking(job);
            ++runs;
        } else {
            params->repo = &cfg.repos.at(q.args.repo);
            announce_it = true;
            if (q.action == "deploy") {
                auto rin = resolve_input(*params->repo, q.args.tag);
                auto res = co_await resolve(rin);
                const auto& commit_id = res.first;
                if (!commit_id) {
                    o.code = deploy::status::invalid_data;
                    o.message = res.second;
                    o.tag = q.args.tag;
                    o.failed_stage = "validate";
                } else {
                    log.info("deploy-agent: deploying {} {} ({}) for {} (request {})", q.args.repo, q.args.tag,
                             *commit_id, bus::log_escape(ji.caller), q.request_id);
                    din->tag = q.args.tag;
                    din->commit = *commit_id;
                    auto job = [din] { return run_deploy(din->params, din->tag, din->commit); };
                    o = co_await svc.blocking(job);
                }
            } else {
                log.info("deploy-agent: rolling back {} for {} (request {})", q.args.repo, bus::log_escape(ji.caller),
                         q.request_id);
                auto job = [din] { return run_rollback(din->params); };
                o = co_await svc.blocking(job);
            }
        }
        held.end(key, q.job_id);
        --running;
        bool ok = o.code == deploy::status::ok;
        if (ok && q.action == "deploy") ++deploys;
        if (ok && q.action == "rollback") ++rollbacks;
        if (!ok) ++failures;
        common.finished(q.action, ji.t0, ok);
        std::string target = q.args.repo;
        if (q.action == "run") target = q.args.command;
        log.info("deploy-agent: {} {}: {} ({})", q.action, target, bus::log_escape(o.message), deploy::to_string(o.code));
        rep.code = o.code;
        rep.message = o.message;
        rep.data = o.data;
        rep.stages = o.stages;
        if (announce_it && o.failed_stage != "validate") {
            co_await announce(q, o);
            kick();  // a heartbeat with the new tag
        }
        co_await finish(std::move(ji), std::move(rep), true);
    }

    net::awaitable<void> drain()
    {
        log.info("deploy-agent: stopping; unacknowledged requests go back to the broker");
        auto deadline = clock_type::now() + cfg.hook_timeout;
        while (running > 0 && clock_type::now() < deadline) {
            bool slept = co_await svc.sleep_for(milliseconds(100));
            if (!slept) break;
        }
        beat.cancel();
        out.stop();
        client.stop();
    }
};

bus::subscription_options subscription(std::string dest)
{
    bus::subscription_options so;
    so.destination = std::move(dest);
    so.ack = bus::ack_mode::client_individual;
    so.prefetch = 32;
    return so;
}

net::awaitable<void> ready_when_both(agent* a)
{
    bool ok = false;
    while (!ok && !a->svc.stopping()) {
        bool t = co_await a->client.wait_subscribed(a->topic_id, std::chrono::seconds(1));
        bool q = false;
        if (t) q = co_await a->client.wait_subscribed(a->queue_id, std::chrono::seconds(1));
        ok = t && q;
    }
    if (ok) {
        a->log.info("deploy-agent: subscribed to {} and {}{}", a->cfg.request_topic, a->cfg.request_queue_prefix,
                    a->cfg.identity);
        a->svc.ready("connected and subscribed");
    }
}

} // namespace

int run(const bus::runtime::common_options& opts, spdlog::logger& log)
{
    auto cfg = load_config(opts.config_path, [&](std::string_view n) { log.info("deploy-agent: {}", n); });
    // libgit2 is loaded at the first deploy or tag listing (git_lazy.hpp); that it can be is checked now, so a
    // missing library stops the start (and --check-config), not the first deploy.
    if (auto e = deploykit::libgit2_check(); !e.empty()) throw std::runtime_error(e);
    if (opts.check_config) return 0;
    std::error_code ec;
    std::filesystem::create_directories(cfg.state_dir, ec);
    if (ec) throw bus::runtime::config_error("state-dir: cannot create " + cfg.state_dir + ": " + ec.message());
    auto drain = cfg.hook_timeout + std::chrono::seconds(3);
    bus::runtime::service svc(opts, log, {.drain_deadline = drain, .workers = 4});
    agent a(svc, opts.config_path, std::move(cfg));
    log.info("deploy-agent {} as {}: {} repos, {} commands, {} policy rules, signatures {}", bus::runtime::version(),
             a.cfg.identity, a.cfg.repos.size(), a.cfg.commands.size(), a.cfg.policy.size(),
             a.cfg.bus.require_signatures ? "required" : "not required");
    if (a.cfg.policy.empty()) log.warn("deploy-agent: no policy rules: every request is denied (default deny)");
    a.topic_id = a.client.subscribe(subscription(a.cfg.request_topic),
                                    [&a](const bus::message& m) { return a.on_message(m, false); });
    a.queue_id = a.client.subscribe(subscription(a.cfg.request_queue_prefix + a.cfg.identity),
                                    [&a](const bus::message& m) { return a.on_message(m, true); });
    a.register_metrics();
    if (a.cfg.admin_listen) svc.serve_admin(*a.cfg.admin_listen, a.metrics, [&a] { return a.not_ready(); });
    svc.on_reload([&a] { a.log.info("deploy-agent: SIGHUP: restart to apply config changes"); });
    svc.on_stop([&a] { return a.drain(); });
    svc.spawn(a.client.run(), "deploy-agent: bus client", bus::runtime::task::critical);
    svc.spawn(a.out.run(), "deploy-agent: outbox");
    svc.spawn(a.heartbeat_loop(), "deploy-agent: heartbeat");
    net::co_spawn(svc.io(), ready_when_both(&a), net::detached);
    return svc.run();
}

} // namespace deploy_agent
