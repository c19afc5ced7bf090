#include "config.hpp"

#include "bus/event.hpp"

#include <yaml-cpp/yaml.h>

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

} // namespace

config load_config(const std::filesystem::path& path)
{
    const std::string file = path.string();
    auto root = bus::load_yaml(path);
    config c;
    c.bus = bus::read_bus_config(root, file);
    if (auto t = str(root, file, "listen-topic"); !t.empty()) c.listen_topic = t;
    if (auto t = str(root, file, "report-topic"); !t.empty()) c.report_topic = t;
    auto num = [&](std::string_view key, long dflt) -> long {
        auto v = root[std::string(key)];
        if (!v) return dflt;
        try {
            long n = v.as<long>();
            if (n < 0) throw YAML::Exception(v.Mark(), "negative");
            return n;
        } catch (const YAML::Exception&) {
            throw bus::config_error(bus::config_where(file, v, key) + ": '" + v.Scalar() + "' is not a non-negative number");
        }
    };
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
        for (const auto& a : pf) c.post_fetch.push_back(a.as<std::string>());
    }
    auto list = root["repo-list"];
    if (!list || list.IsNull()) return c;  // an empty list is valid (the original crashed on it)
    if (!list.IsMap()) throw bus::config_error(bus::config_where(file, list, "repo-list") + ": must be a map of repositories");
    for (const auto& kv : list) {
        repo_entry e;
        e.name = kv.first.as<std::string>();
        std::string where = bus::config_where(file, kv.first, "repo-list." + e.name);
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
            if (auto k = kv.second["keep"]) e.keep = std::max(1U, k.as<unsigned>());
        } else {
            throw bus::config_error(where + ": must be a path or {user, repo, target, mode}");
        }
        if (e.path.empty() || !e.path.is_absolute()) throw bus::config_error(where + ".repo: must be an absolute path");
        if (e.how != mode::normal && e.how != mode::dangerous && (e.target.empty() || !e.target.is_absolute()))
            throw bus::config_error(where + ".target: mode " + std::string(to_string(e.how)) + " needs an absolute target");
        if (!bus::valid_ref_name("refs/heads/" + e.branch)) throw bus::config_error(where + ".branch: not a valid branch name");
        c.repos.emplace(e.name, std::move(e));
    }
    return c;
}

} // namespace stomp_git
