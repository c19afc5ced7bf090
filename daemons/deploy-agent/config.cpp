#include "config.hpp"
#include "core.hpp"

#include "bus/runtime/config_yaml.hpp"
#include "bus/runtime/program.hpp"

#include <yaml-cpp/yaml.h>

#include <fstream>

namespace deploy_agent {

namespace {

using namespace std::chrono_literals;

void absolute(const bus::runtime::section& s, const char* key, const std::string& v)
{
    if (v.empty() || v[0] != '/') s.fail(key, "'" + v + "' must be an absolute path");
    if (v.find("/../") != std::string::npos || v.ends_with("/..")) s.fail(key, "'" + v + "' must not contain '..'");
}

void destination(const bus::runtime::section& s, const char* key, const std::string& v, bool prefix = false)
{
    if (!(v.starts_with("/topic/") || v.starts_with("/queue/")) || v.find_first_of(" \t\r\n") != std::string::npos ||
        (!prefix && v.size() <= 7))
        s.fail(key, "'" + v + "' must be a /topic/ or /queue/ destination");
}

bool valid_user_name(std::string_view u)
{
    if (u.empty() || u.size() > 32 || u[0] == '-') return false;
    for (char c : u)
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              c == '.'))
            return false;
    return true;
}

std::vector<std::string> read_classes(const std::string& path)
{
    std::vector<std::string> out;
    std::ifstream in(path);
    std::string line;
    while (out.size() < 10000 && std::getline(in, line)) {
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
        if (!line.empty() && line[0] != '#' && line.size() <= 256) out.push_back(line);
    }
    return out;
}

} // namespace

std::map<std::string, repo_config> repos_from_facts(const std::vector<std::pair<std::string, std::string>>& facts,
                                                    const std::string& file, const std::string& default_user)
{
    std::map<std::string, repo_config> out;
    std::map<std::string, std::string> f(facts.begin(), facts.end());
    for (const auto& [k, v] : facts) {
        if (!k.starts_with("repo_")) continue;
        std::string name = k.substr(5);
        if (!bus::valid_repo_name(name) || name.find('/') != std::string::npos)
            throw bus::runtime::config_error(file + ": " + k + ": '" + name + "' is not a usable repo name");
        repo_config r;
        r.name = name;
        r.repo = v;
        auto get = [&](const std::string& key) {
            auto it = f.find(key + "_" + name);
            return it == f.end() ? std::string() : it->second;
        };
        r.sitedir = get("sitedir");
        r.controldir = get("controldir");
        r.sitetype = get("sitetype");
        r.user = default_user;
        for (auto [key, val] : {std::pair{"repo", &r.repo}, std::pair{"sitedir", &r.sitedir},
                                std::pair{"controldir", &r.controldir}})
            if (val->empty() || (*val)[0] != '/')
                throw bus::runtime::config_error(file + ": " + std::string(key) + "_" + name +
                                                 ": missing or not an absolute path");
        while (r.sitedir.size() > 1 && r.sitedir.back() == '/') r.sitedir.pop_back();
        out[name] = std::move(r);
    }
    return out;
}

config load_config(const std::filesystem::path& path, bus::runtime::notice_fn notice)
{
    auto f = bus::runtime::config_file::load(path, notice);
    auto r = f.root();
    config c;
    r.known(bus::runtime::bus_config_keys());
    c.bus = bus::read_bus_config(r.node(), f.file());

    c.identity = r.str("identity", bus::runtime::hostname());
    if (!deploy::valid_identity(c.identity))
        r.fail("identity", "'" + c.identity + "' must be [A-Za-z0-9][A-Za-z0-9._-]{0,63}");
    c.default_user = r.str("default-user", c.default_user);
    if (!valid_user_name(c.default_user)) r.fail("default-user", "not a user name");

    // The gitagent facts file: scalar facts for discovery, repo_/sitedir_/... keys as repos.
    c.facts_file = r.str("facts-file", c.facts_file);
    if (!c.facts_file.empty() && std::filesystem::exists(c.facts_file)) {
        auto ff = bus::runtime::config_file::load(c.facts_file, notice);
        auto fr = ff.root();
        fr.any_keys();
        std::vector<std::pair<std::string, std::string>> flat;
        for (const auto& k : fr.keys())
            if (fr.kind_of(k) == bus::runtime::section::kind::scalar) {
                auto v = fr.str(k, "");
                flat.emplace_back(k, v);
                if (c.facts.size() < 1000 && k.size() <= 128 && v.size() <= 1024) c.facts[k] = v;
            }
        c.repos = repos_from_facts(flat, c.facts_file, c.default_user);
    }
    c.classes_file = r.str("classes-file", "");
    if (!c.classes_file.empty()) c.classes = read_classes(c.classes_file);

    // repos: name -> {repo, sitedir, controldir, user, keep, allow-branches}; overrides the facts.
    for (auto& [name, s] : r.named("repos")) {
        if (!bus::valid_repo_name(name) || name.find('/') != std::string::npos)
            r.fail("repos", "'" + name + "' is not a usable repo name");
        repo_config rc;
        if (auto it = c.repos.find(name); it != c.repos.end()) rc = it->second;
        rc.name = name;
        rc.repo = s.str("repo", rc.repo);
        rc.sitedir = s.str("sitedir", rc.sitedir);
        rc.controldir = s.str("controldir", rc.controldir);
        rc.sitetype = s.str("sitetype", rc.sitetype);
        rc.user = s.str("user", rc.user.empty() ? c.default_user : rc.user);
        rc.keep = static_cast<int>(s.integer("keep", rc.keep, 2, 1000));
        rc.allow_branches = s.flag("allow-branches", rc.allow_branches);
        absolute(s, "repo", rc.repo);
        absolute(s, "sitedir", rc.sitedir);
        absolute(s, "controldir", rc.controldir);
        while (rc.sitedir.size() > 1 && rc.sitedir.back() == '/') rc.sitedir.pop_back();
        if (rc.sitedir == "/") s.fail("sitedir", "must not be /");
        if (!valid_user_name(rc.user)) s.fail("user", "'" + rc.user + "' is not a user name");
        c.repos[name] = std::move(rc);
    }
    if (r.kind_of("repos") != bus::runtime::section::kind::absent &&
        r.kind_of("repos") != bus::runtime::section::kind::map && r.kind_of("repos") != bus::runtime::section::kind::null)
        r.fail("repos", "a map of repo name to {repo, sitedir, controldir, user, keep}");
    // Two repos may not share a site: their releases and symlink would collide.
    std::map<std::string, std::string> sites;
    for (const auto& [name, rc] : c.repos)
        if (auto [it, fresh] = sites.emplace(rc.sitedir, name); !fresh)
            r.fail("repos", "repos '" + it->second + "' and '" + name + "' share sitedir " + rc.sitedir);

    // commands: name -> argv list, or {argv, user, dir, env, timeout}.
    if (auto cs = r.sub("commands")) {
        cs->any_keys();
        for (const auto& name : cs->keys()) {
            if (!deploy::valid_id(name)) cs->fail(name, "'" + name + "' is not a usable command name");
            command_config cc;
            cc.name = name;
            cc.user = c.default_user;
            auto kind = cs->kind_of(name);
            if (kind == bus::runtime::section::kind::list) {
                cc.argv = cs->list(name);
            } else if (kind == bus::runtime::section::kind::map) {
                auto s = *cs->sub(name);
                cc.argv = s.list("argv");
                cc.user = s.str("user", cc.user);
                cc.dir = s.str("dir", cc.dir);
                cc.env = s.list("env");
                cc.timeout = s.duration("timeout", cc.timeout, 1s, 24h);
                for (const auto& e : cc.env)
                    if (!valid_env_entry(e)) s.fail("env", "'" + e + "' is not NAME=value");
                absolute(s, "dir", cc.dir);
                if (!valid_user_name(cc.user)) s.fail("user", "'" + cc.user + "' is not a user name");
            } else {
                cs->fail(name, "an argv list, or a map with argv, user, dir, env, timeout");
            }
            if (cc.argv.empty() || cc.argv[0].empty() || cc.argv[0][0] != '/')
                cs->fail(name, "argv must start with an absolute program path");
            c.commands[name] = std::move(cc);
        }
    }

    // policy: ordered {caller, action, repo, effect}.
    for (auto& s : r.sections("policy")) {
        deploy::policy_rule p;
        p.caller = s.str("caller", "*");
        p.action = s.str("action", "*");
        p.repo = s.str("repo", s.str("command", "*"));
        auto effect = s.required("effect");
        if (effect != "allow" && effect != "deny") s.fail("effect", "must be allow or deny");
        p.allow = effect == "allow";
        if (p.action != "*" && !deploy::known_action(p.action)) s.fail("action", "unknown action '" + p.action + "'");
        c.policy.push_back(std::move(p));
    }

    c.request_topic = r.str("request-topic", c.request_topic);
    destination(r, "request-topic", c.request_topic);
    c.request_queue_prefix = r.str("request-queue-prefix", c.request_queue_prefix);
    destination(r, "request-queue-prefix", c.request_queue_prefix, true);
    c.reply_prefix = r.str("reply-prefix", c.reply_prefix);
    destination(r, "reply-prefix", c.reply_prefix, true);
    c.agent_topic = r.str("agent-topic", c.agent_topic);
    destination(r, "agent-topic", c.agent_topic);
    c.audit_topic = r.str("audit-topic", c.audit_topic);
    destination(r, "audit-topic", c.audit_topic);
    c.result_topic = r.str("result-topic", c.result_topic);
    destination(r, "result-topic", c.result_topic);
    c.event_topic = r.str("event-topic", c.event_topic);
    if (c.event_topic.empty() || c.event_topic.find_first_of(" \t\r\n") != std::string::npos)
        r.fail("event-topic", "a bare topic name (future.events.deploys)");
    c.hook_timeout = r.duration("hook-timeout", c.hook_timeout, 1s, 24h);
    c.checkout_timeout = r.duration("checkout-timeout", c.checkout_timeout, 1s, 24h);
    c.max_output = static_cast<std::size_t>(r.integer("max-output", 64 * 1024, 1024, 16 * 1024 * 1024));
    c.state_dir = r.str("state-dir", c.state_dir);
    absolute(r, "state-dir", c.state_dir);
    c.replay_cache = r.str("replay-cache", c.state_dir + "/replay-cache");
    // One heartbeat, on agent-topic and heartbeat-topic: every 30 s unless configured.
    bool interval_set = r.has("heartbeat-interval");
    c.heartbeat = bus::runtime::read_heartbeat_options(r);
    if (!interval_set) c.heartbeat.interval = 30s;
    c.agent_interval = c.heartbeat.interval;
    c.admin_listen = bus::runtime::read_admin_listen(r);
    if (c.bus.require_signatures && c.bus.verify_keys.empty())
        r.fail("require-signatures", "needs verify-key-file");
    f.finish();
    c.file = std::move(f);
    return c;
}

} // namespace deploy_agent
