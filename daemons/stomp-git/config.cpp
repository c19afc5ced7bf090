#include "config.hpp"

#include "bus/event.hpp"

#include <yaml-cpp/yaml.h>

#include <pwd.h>
#include <unistd.h>

#include <cctype>
#include <set>

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

std::string str(const YAML::Node& n, const std::string& file, std::string_view key)
{
    auto v = n[std::string(key)];
    if (!v || v.IsNull()) return {};
    if (!v.IsScalar()) throw bus::config_error(bus::config_where(file, v, key) + ": must be a single value");
    return v.Scalar();
}

// Settings of stomp-git and of the bus connection: every other top-level key whose value is an
// absolute path is a repository in the original v1 form (`name: /path`, as the original and its
// Puppet define wrote it, without `repo-list`).
const std::set<std::string, std::less<>> known_keys{
    "rserver", "stomp-options", "listen-topic", "report-topic", "repo-list", "workers", "fetch-timeout",
    "safety-fetch-interval", "ssh-key", "known-hosts", "credentials-file", "https-ca-file", "post-fetch-command",
    "post-fetch-timeout", "state-dir", "durable-name", "client-id", "heartbeat-ms", "keepalive-ms", "passcode-file",
    "require-signatures", "signing-key-file", "signing-key-id", "spool-dir", "tls-ca-file", "verify-key-file",
    "verify-keys", "wire-format", "stompserver", "stompserver1", "stompserver2", "stompport", "stompuser",
    "stomppass", "user", "password"};

std::string hostname_for_names()
{
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    std::string h = host;
    for (auto& ch : h)
        if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '-' || ch == '_' || ch == '.')) ch = '_';
    return h.empty() ? std::string("localhost") : h;
}

} // namespace

config load_config(const std::filesystem::path& path)
{
    const std::string file = path.string();
    auto root = bus::load_yaml(path);
    config c;
    c.bus = bus::read_bus_config(root, file);
    if (auto t = str(root, file, "listen-topic"); !t.empty()) c.listen_topic = t;
    if (auto t = str(root, file, "report-topic"); !t.empty()) c.report_topic = t;
    // Numbers: a clear error naming file, line, key and the type expected (not yaml-cpp's
    // "bad conversion").
    auto number_in = [&](const YAML::Node& map, std::string_view key, const std::string& shown_key, long dflt) -> long {
        auto v = map[std::string(key)];
        if (!v || v.IsNull()) return dflt;
        std::string shown = v.IsScalar() ? "'" + v.Scalar() + "'" : std::string("a list or map");
        try {
            if (!v.IsScalar()) throw YAML::Exception(v.Mark(), "not a scalar");
            long n = v.as<long>();
            if (n < 0) throw YAML::Exception(v.Mark(), "negative");
            return n;
        } catch (const YAML::Exception&) {
            throw bus::config_error(bus::config_where(file, v, shown_key) + ": " + shown +
                                    " is not a non-negative whole number");
        }
    };
    auto num = [&](std::string_view key, long dflt) { return number_in(root, key, std::string(key), dflt); };
    c.workers = static_cast<unsigned>(std::max(1L, num("workers", 4)));
    c.fetch_timeout = std::chrono::seconds(std::max(1L, num("fetch-timeout", 300)));
    c.safety_fetch = std::chrono::seconds(num("safety-fetch-interval", 3600));
    c.ssh_key = str(root, file, "ssh-key");
    c.known_hosts = str(root, file, "known-hosts");
    c.credentials_file = str(root, file, "credentials-file");
    c.https_ca_file = str(root, file, "https-ca-file");
    for (auto key : {"ssh-key", "known-hosts", "credentials-file", "https-ca-file"})
        if (auto v = str(root, file, key); !v.empty() && !std::filesystem::path(v).is_absolute())
            throw bus::config_error(bus::config_where(file, root[key], key) + ": must be an absolute path");
    if (auto pf = root["post-fetch-command"]) {
        if (!pf.IsSequence() || pf.size() == 0)
            throw bus::config_error(bus::config_where(file, pf, "post-fetch-command") +
                                    ": must be a list (argv), e.g. [/usr/local/bin/reload, --graceful]");
        for (const auto& a : pf) {
            if (!a.IsScalar())
                throw bus::config_error(bus::config_where(file, a, "post-fetch-command") +
                                        ": every argument must be a single string");
            c.post_fetch.push_back(a.Scalar());
        }
        if (!std::filesystem::path(c.post_fetch[0]).is_absolute())
            throw bus::config_error(bus::config_where(file, pf, "post-fetch-command") +
                                    ": the program must be an absolute path (it runs without a shell or PATH search)");
    }
    c.post_fetch_timeout = std::chrono::seconds(std::max(1L, num("post-fetch-timeout", 120)));
    // Root (the normal case): /var/lib/stomp-git. A stomp-git run as a plain user fetches as that
    // user only, so its own ~/.local/state/stomp-git will do.
    if (::geteuid() != 0)
        if (const passwd* pw = ::getpwuid(::geteuid()); pw && pw->pw_dir && *pw->pw_dir)
            c.state_dir = std::filesystem::path(pw->pw_dir) / ".local" / "state" / "stomp-git";
    if (auto sd = str(root, file, "state-dir"); !sd.empty()) {
        if (!std::filesystem::path(sd).is_absolute())
            throw bus::config_error(bus::config_where(file, root["state-dir"], "state-dir") + ": must be an absolute path");
        c.state_dir = sd;
    }
    // Durable by default, as stomp-jenkins: commits published while stomp-git is stopped or
    // reconnecting are kept by the broker and delivered afterwards. `durable-name: ""` turns it off.
    if (auto dn = root["durable-name"]; dn && !dn.IsNull())
        c.durable_name = str(root, file, "durable-name");
    else
        c.durable_name = "stomp-git-" + hostname_for_names();
    if (!c.durable_name.empty() && c.bus.client.client_id.empty()) c.bus.client.client_id = c.durable_name;

    // The v1 form: top-level `name: /path` entries.
    std::vector<std::pair<YAML::Node, YAML::Node>> entries;
    std::vector<std::string> prefixes;
    for (const auto& kv : root) {
        if (!kv.first.IsScalar() || known_keys.count(kv.first.Scalar())) continue;
        if (kv.second.IsScalar() && kv.second.Scalar().starts_with('/')) {
            entries.emplace_back(kv.first, kv.second);
            prefixes.emplace_back();
        }
    }
    auto list = root["repo-list"];
    if (list && !list.IsNull() && !list.IsMap())
        throw bus::config_error(bus::config_where(file, list, "repo-list") + ": must be a map of repositories");
    if (list && list.IsMap())
        for (const auto& kv : list) {
            entries.emplace_back(kv.first, kv.second);
            prefixes.emplace_back("repo-list.");
        }
    // (An empty list is valid: the original crashed on it.)
    for (std::size_t i = 0; i < entries.size(); ++i) {
        const auto& kv = entries[i];
        repo_entry e;
        e.name = kv.first.Scalar();
        std::string where = bus::config_where(file, kv.first, prefixes[i] + e.name);
        if (!bus::valid_repo_name(e.name)) throw bus::config_error(where + ": not a valid repository name");
        if (kv.second.IsScalar()) {
            // v1: `name: path`
            e.path = kv.second.Scalar();
        } else if (kv.second.IsMap()) {
            e.user = str(kv.second, file, "user");
            e.path = str(kv.second, file, "repo");
            e.target = str(kv.second, file, "target");
            if (auto b = str(kv.second, file, "branch"); !b.empty()) e.branch = b;
            if (auto m = str(kv.second, file, "mode"); !m.empty()) {
                auto pm = parse_mode(m);
                if (!pm)
                    throw bus::config_error(where + ".mode: '" + m + "' is not normal, trusting, dangerous, puppetmaster or atomic");
                e.how = *pm;
            }
            e.keep = static_cast<unsigned>(
                std::clamp(number_in(kv.second, "keep", prefixes[i] + e.name + ".keep", 5), 1L, 1000L));
        } else {
            throw bus::config_error(where + ": must be a path or {user, repo, target, mode}");
        }
        if (e.path.empty() || !e.path.is_absolute()) throw bus::config_error(where + ".repo: must be an absolute path");
        if (e.how != mode::normal && e.how != mode::dangerous && (e.target.empty() || !e.target.is_absolute()))
            throw bus::config_error(where + ".target: mode " + std::string(to_string(e.how)) + " needs an absolute target");
        if (!bus::valid_ref_name("refs/heads/" + e.branch)) throw bus::config_error(where + ".branch: not a valid branch name");
        if (c.repos.count(e.name)) throw bus::config_error(where + ": repository configured twice");
        c.repos.emplace(e.name, std::move(e));
    }
    return c;
}

} // namespace stomp_git
