#include "config.hpp"

#include "bus/event.hpp"

#include "bus/runtime/config_yaml.hpp"
#include "bus/runtime/consumer.hpp"
#include "bus/runtime/settings.hpp"

#include <pwd.h>
#include <unistd.h>

#include <algorithm>

namespace stomp_git {

std::string_view to_string(mode m) noexcept
{
    switch (m) {
    case mode::normal: return "normal";
    case mode::trusting: return "trusting";
    case mode::dangerous: return "dangerous";
    case mode::puppetmaster: return "puppetmaster";
    case mode::atomic: return "atomic";
    }
    return "normal";
}

namespace {

std::optional<mode> parse_mode(std::string_view s)
{
    for (auto m : {mode::normal, mode::trusting, mode::dangerous, mode::puppetmaster, mode::atomic})
        if (to_string(m) == s) return m;
    return std::nullopt;
}

// stomp-git's own settings. With the bus keys (bus_config_keys) and the original's ignored ones,
// every other top-level key whose value is an absolute path is a repository in the original v1
// form (`name: /path`, as the original and its Puppet define wrote it, without `repo-list`); any
// other unknown key is a typo (finish() names the nearest known key).
const std::vector<std::string> own_keys{
    "listen-topic", "report-topic", "repo-list", "workers", "fetch-timeout", "safety-fetch-interval", "ssh-key",
    "known-hosts", "credentials-file", "https-ca-file", "post-fetch-command", "post-fetch-timeout", "state-dir",
    "durable-name", "replay-cache", "heartbeat-topic", "heartbeat-interval", "admin-listen"};
// The original's connection keys (before rserver) and a few it accepted: kept valid, ignored.
const std::initializer_list<std::string_view> original_keys{
    "stompserver", "stompserver1", "stompserver2", "stompport", "stompport1", "stompport2", "stompuser", "stomppass",
    "user", "password", "verify-keys"};

// Settings whose value is a path, as a v1 repository's is.
const std::vector<std::string> path_keys{"ssh-key", "known-hosts", "credentials-file", "https-ca-file", "state-dir",
                                         "replay-cache", "spool-dir", "passcode-file", "tls-ca-file",
                                         "signing-key-file", "verify-key-file"};

// Keys re-read on SIGHUP, or read from the file by every worker: not "needs a restart".
const std::vector<std::string> reloadable{"repo-list", "fetch-timeout", "safety-fetch-interval", "ssh-key",
                                          "known-hosts", "credentials-file", "https-ca-file", "post-fetch-command",
                                          "post-fetch-timeout", "state-dir"};

std::string spelled(std::string k)
{
    for (auto& ch : k)
        if (ch == '_') ch = '-';
    return k;
}

bool listed(const std::vector<std::string>& keys, const std::string& k)
{
    return std::find(keys.begin(), keys.end(), spelled(k)) != keys.end();
}

bool is_known_setting(const std::string& k)
{
    if (listed(own_keys, k) || listed(bus::runtime::bus_config_keys(), k)) return true;
    for (auto o : original_keys)
        if (spelled(k) == o) return true;
    return false;
}

std::filesystem::path absolute_path(const bus::runtime::section& s, std::string_view key)
{
    auto v = s.str(key, "");
    if (!v.empty() && !std::filesystem::path(v).is_absolute()) s.fail(key, "expected an absolute path, not '" + v + "'");
    return v;
}

repo_entry read_repo(const bus::runtime::section& list, const std::string& name)
{
    repo_entry e;
    e.name = name;
    if (!bus::valid_repo_name(name)) list.fail(name, "not a valid repository name");
    if (list.kind_of(name) == bus::runtime::section::kind::scalar) {
        // v1 inside repo-list: `name: path`
        e.path = *list.str(name);
        if (!e.path.is_absolute()) list.fail(name, "expected an absolute path, not '" + e.path.string() + "'");
        return e;
    }
    if (list.kind_of(name) != bus::runtime::section::kind::map)
        list.fail(name, "expected a path or {user, repo, target, mode}");
    auto s = *list.sub(name);
    e.user = s.str("user", "");
    e.path = absolute_path(s, "repo");
    if (e.path.empty()) s.fail("repo", "missing: the clone's absolute path");
    e.target = absolute_path(s, "target");
    e.branch = s.str("branch", e.branch);
    if (auto m = s.str("mode", ""); !m.empty()) {
        auto pm = parse_mode(m);
        if (!pm) s.fail("mode", "expected normal, trusting, dangerous, puppetmaster or atomic, not '" + m + "'");
        e.how = *pm;
    }
    // (0 kept one release before; it still does.)
    e.keep = static_cast<unsigned>(std::max<std::int64_t>(1, s.integer("keep", 5, 0, 1000)));
    if (e.how != mode::normal && e.how != mode::dangerous && e.target.empty())
        s.fail("target", "mode " + std::string(to_string(e.how)) + " needs an absolute target");
    if (!bus::valid_ref_name("refs/heads/" + e.branch)) s.fail("branch", "not a valid branch name");
    return e;
}

} // namespace

config load_config(const std::filesystem::path& path, bus::runtime::notice_fn notice)
{
    using std::chrono::seconds;
    auto f = bus::runtime::config_file::load(path, std::move(notice));
    auto r = f.root();
    config c;
    r.known(bus::runtime::bus_config_keys());
    c.bus = bus::read_bus_config(r.node(), f.file());
    r.ignored(original_keys, "the original's setting; deploykit connects with rserver and stomp-options");
    c.listen_topic = r.str("listen-topic", c.listen_topic);
    c.report_topic = r.str("report-topic", c.report_topic);
    for (auto [key, topic] : {std::pair{"listen-topic", &c.listen_topic}, std::pair{"report-topic", &c.report_topic}})
        if (topic->empty() || topic->find_first_of("/ \t\r\n") != std::string::npos)
            r.fail(key, "expected a bare topic name (future.git.commits), no '/' or spaces");
    constexpr std::int64_t day = 86400;
    c.workers = static_cast<unsigned>(std::max<std::int64_t>(1, r.integer("workers", 4, 0, 256)));
    c.fetch_timeout = seconds(std::max<std::int64_t>(1, r.integer("fetch-timeout", 300, 0, day)));
    c.safety_fetch = seconds(r.integer("safety-fetch-interval", 3600, 0, 30 * day));
    c.ssh_key = absolute_path(r, "ssh-key");
    c.known_hosts = absolute_path(r, "known-hosts");
    c.credentials_file = absolute_path(r, "credentials-file");
    c.https_ca_file = absolute_path(r, "https-ca-file");
    if (r.kind_of("post-fetch-command") != bus::runtime::section::kind::absent) {
        if (r.kind_of("post-fetch-command") != bus::runtime::section::kind::list)
            r.fail("post-fetch-command", "expected a list (argv), e.g. [/usr/local/bin/reload, --graceful]");
        c.post_fetch = r.list("post-fetch-command");
        if (c.post_fetch.empty()) r.fail("post-fetch-command", "expected a list (argv) with at least the program");
        if (!std::filesystem::path(c.post_fetch[0]).is_absolute())
            r.fail("post-fetch-command", "the program must be an absolute path (it runs without a shell or PATH search)");
    }
    c.post_fetch_timeout = seconds(std::max<std::int64_t>(1, r.integer("post-fetch-timeout", 120, 0, day)));
    // Root (the normal case): /var/lib/stomp-git. A stomp-git run as a plain user fetches as that
    // user only, so its own ~/.local/state/stomp-git will do.
    if (::geteuid() != 0)
        if (const passwd* pw = ::getpwuid(::geteuid()); pw && pw->pw_dir && *pw->pw_dir)
            c.state_dir = std::filesystem::path(pw->pw_dir) / ".local" / "state" / "stomp-git";
    if (auto sd = absolute_path(r, "state-dir"); !sd.empty()) c.state_dir = sd;
    c.replay_cache = absolute_path(r, "replay-cache");
    // Durable by default, as stomp-jenkins: commits published while stomp-git is stopped or
    // reconnecting are kept by the broker and delivered afterwards. `durable-name: ""` turns it off.
    c.durable_name = bus::runtime::read_durable_name(r, "stomp-git");
    if (!c.durable_name.empty() && c.bus.client.client_id.empty()) c.bus.client.client_id = c.durable_name;
    auto settings = bus::runtime::read_daemon_settings(r);
    c.heartbeat = settings.heartbeat;
    c.admin_listen = settings.admin_listen;

    // The v1 form: top-level `name: /path` entries (keys nothing else reads).
    for (const auto& key : r.keys()) {
        if (is_known_setting(key)) continue;
        const auto& v = r.node()[key];
        if (v.IsScalar() && v.Scalar().starts_with('/')) {
            // A misspelt path setting (`replay-cahce: /var/...`) would silently become a
            // repository: a v1 name that close to one of them is taken for the typo it likely is.
            if (auto near = bus::runtime::nearest_key(key, path_keys); !near.empty())
                r.fail(key, "unknown setting; did you mean `" + near +
                                "`? (a repository of the v1 form `name: /path` cannot be named like a setting; "
                                "use repo-list)");
            auto e = read_repo(r, key);
            if (!c.repos.emplace(e.name, std::move(e)).second) r.fail(key, "repository configured twice");
        }
    }
    // (An empty list is valid: the original crashed on it.)
    if (auto list = r.kind_of("repo-list"); list != bus::runtime::section::kind::absent && list != bus::runtime::section::kind::null) {
        if (list != bus::runtime::section::kind::map) r.fail("repo-list", "expected a map of repositories");
        auto s = *r.sub("repo-list");
        for (const auto& name : s.keys()) {
            auto e = read_repo(s, name);
            if (!c.repos.emplace(e.name, std::move(e)).second) s.fail(name, "repository configured twice");
        }
    }
    c.file = std::move(f);
    c.file->finish();  // unknown keys: an error naming the nearest known one
    return c;
}

std::vector<std::string> needs_restart(const config& running, const config& fresh)
{
    // (v1 repositories, unknown keys here, are reloaded.)
    return bus::runtime::restart_needed(running.file, fresh.file,
                                        [](const std::string& k) { return listed(reloadable, k) || !is_known_setting(k); });
}

} // namespace stomp_git
