#include "config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdlib>

namespace webhook {

namespace {

struct reader {
    const std::string& file;

    std::string where(const YAML::Node& n, std::string_view key) const { return bus::config_where(file, n, key); }

    std::string str(const YAML::Node& m, std::string_view key, std::string dflt = {}) const
    {
        auto v = m[std::string(key)];
        if (!v || v.IsNull()) return dflt;
        if (!v.IsScalar()) throw bus::config_error(where(v, key) + ": must be a single value");
        return v.Scalar();
    }

    long num(const YAML::Node& m, std::string_view key, long dflt, long min, long max) const
    {
        auto v = m[std::string(key)];
        if (!v || v.IsNull()) return dflt;
        long n = 0;
        try {
            n = v.as<long>();
        } catch (const YAML::Exception&) {
            throw bus::config_error(where(v, key) + ": '" + v.Scalar() + "' is not a number");
        }
        if (n < min || n > max)
            throw bus::config_error(where(v, key) + ": " + std::to_string(n) + " is outside " + std::to_string(min) +
                                    ".." + std::to_string(max));
        return n;
    }

    bool flag(const YAML::Node& m, std::string_view key, bool dflt) const
    {
        auto v = m[std::string(key)];
        if (!v || v.IsNull()) return dflt;
        try {
            return v.as<bool>();
        } catch (const YAML::Exception&) {
            throw bus::config_error(where(v, key) + ": '" + v.Scalar() + "' is not true or false");
        }
    }

    std::vector<std::string> list(const YAML::Node& m, std::string_view key) const
    {
        std::vector<std::string> out;
        auto v = m[std::string(key)];
        if (!v || v.IsNull()) return out;
        if (v.IsScalar()) return {v.Scalar()};
        if (!v.IsSequence()) throw bus::config_error(where(v, key) + ": must be a list");
        for (const auto& e : v) {
            if (!e.IsScalar()) throw bus::config_error(where(e, key) + ": list entries must be single values");
            out.push_back(e.Scalar());
        }
        return out;
    }

    std::vector<cidr> nets(const YAML::Node& m, std::string_view key) const
    {
        std::vector<cidr> out;
        for (const auto& s : list(m, key)) {
            auto c = parse_cidr(s);
            if (!c) throw bus::config_error(where(m[std::string(key)], key) + ": '" + s + "' is not an address or CIDR");
            out.push_back(*c);
        }
        return out;
    }

    // One hook, from its map (or the top level, for the original's single `POST /` hook).
    hook_config hook(const YAML::Node& m, const std::string& path, const std::string& key,
                     const std::string& default_topic, const std::string& default_report,
                     bool legacy = false) const
    {
        hook_config h;
        h.path = path;
        if (path.empty() || path.front() != '/' || path.find_first_of("?# ") != std::string::npos)
            throw bus::config_error(where(m, key) + ": a hook path starts with / and has no query");
        if (path == "/livez" || path == "/readyz" || path == "/metrics")
            throw bus::config_error(where(m, key) + ": " + path + " is reserved for health and metrics");
        auto prov = str(m, "provider", "github");
        auto p = parse_provider(prov);
        if (!p)
            throw bus::config_error(where(m["provider"], key + ".provider") + ": '" + prov +
                                    "' is not one of github, gitlab, gitea, bitbucket-cloud, bitbucket-server");
        h.kind = *p;
        if (m["secret"])
            throw bus::config_error(where(m["secret"], key + ".secret") +
                                    ": secrets do not go into the config file; use secret-file (mode 0600) or secret-env");
        auto sf = str(m, "secret-file");
        auto se = str(m, "secret-env");
        if (!sf.empty()) {
            h.secret = bus::read_secret_file(sf, where(m["secret-file"], key + ".secret-file"));
        } else if (!se.empty()) {
            const char* v = std::getenv(se.c_str());
            if (!v || !*v) throw bus::config_error(where(m["secret-env"], key + ".secret-env") + ": $" + se + " is not set");
            h.secret = v;
        }
        // The original github-stomp checked nothing, and its config has no secret: that file
        // loads (the caller warns at every start); a `hooks:` entry must say allow-unsigned.
        h.allow_unsigned = flag(m, "allow-unsigned", legacy && h.secret.empty());
        if (h.secret.empty() && !h.allow_unsigned)
            throw bus::config_error(where(m, key) + ": hook " + path +
                                    " has no secret-file or secret-env (set allow-unsigned: true to accept unsigned "
                                    "deliveries, as the original github-stomp did)");
        h.allow_sha1 = flag(m, "allow-sha1", false);
        h.repos = list(m, "repos");
        h.refs_text = list(m, "refs");
        for (const auto& r : h.refs_text) {
            try {
                h.refs.emplace_back(r, std::regex::ECMAScript);
            } catch (const std::regex_error& e) {
                throw bus::config_error(where(m["refs"], key + ".refs") + ": '" + r + "' is not a regex: " + e.what());
            }
        }
        h.topic = str(m, "topic", default_topic);
        h.report_topic = str(m, "report-topic", default_report);
        auto naming = str(m, "repo-name", "name");
        if (naming == "name") h.naming = repo_naming::name;
        else if (naming == "full_name" || naming == "full-name") h.naming = repo_naming::full_name;
        else throw bus::config_error(where(m["repo-name"], key + ".repo-name") + ": '" + naming + "' is not name or full_name");
        auto others = str(m, "other-events", "ignore");
        if (others == "ignore") h.others = other_events::ignore;
        else if (others == "reject") h.others = other_events::reject;
        else throw bus::config_error(where(m["other-events"], key + ".other-events") + ": '" + others + "' is not ignore or reject");
        return h;
    }
};

} // namespace

config load_config(const std::filesystem::path& path)
{
    const std::string file = path.string();
    auto root = bus::load_yaml(path);
    config c;
    c.bus = bus::read_bus_config(root, file);
    reader r{file};
    std::string trigger = r.str(root, "trigger-topic", "future.git.commits");
    std::string report = r.str(root, "report-topic", "future.events.stomp-git");

    auto listen = r.str(root, "listen", "127.0.0.1:4567");
    auto where = bus::http::parse_listen(listen);
    if (!where)
        throw bus::config_error(r.where(root["listen"], "listen") + ": '" + listen +
                                "' is not ADDRESS:PORT, e.g. 0.0.0.0:4567");
    c.listen_address = where->address;
    c.listen_port = where->port;
    if (auto admin = r.str(root, "admin-listen"); !admin.empty()) {
        c.admin_listen = bus::http::parse_listen(admin);
        if (!c.admin_listen)
            throw bus::config_error(r.where(root["admin-listen"], "admin-listen") + ": '" + admin +
                                    "' is not ADDRESS:PORT, e.g. 127.0.0.1:9101");
    }
    c.tls_cert_file = r.str(root, "tls-cert-file");
    c.tls_key_file = r.str(root, "tls-key-file");
    if (c.tls_cert_file.empty() != c.tls_key_file.empty())
        throw bus::config_error(file + ": tls-cert-file and tls-key-file go together");
    c.max_body_bytes = static_cast<std::size_t>(r.num(root, "max-body-bytes", 25L * 1024 * 1024, 1024, 1L << 30));
    c.max_header_bytes = static_cast<std::size_t>(r.num(root, "max-header-bytes", 16 * 1024, 1024, 1 << 20));
    c.read_timeout = std::chrono::seconds(r.num(root, "read-timeout-seconds", 10, 1, 3600));
    c.first_byte_timeout = std::min(c.read_timeout, std::chrono::seconds(r.num(root, "first-byte-timeout-seconds", 5, 1, 3600)));
    c.idle_timeout = std::chrono::seconds(r.num(root, "idle-timeout-seconds", 30, 1, 3600));
    c.max_connections = static_cast<std::size_t>(r.num(root, "max-connections", 512, 1, 100000));
    c.max_connections_per_source =
        static_cast<std::size_t>(r.num(root, "max-connections-per-source", 64, 0, 100000));
    c.max_inflight_body_bytes =
        static_cast<std::size_t>(r.num(root, "max-inflight-body-bytes", 256L * 1024 * 1024, 1024, 1L << 40));
    c.accept_timeout = std::chrono::milliseconds(r.num(root, "accept-timeout-ms", 2000, 0, 9000));
    c.trusted_proxies = r.nets(root, "trusted-proxies");
    c.allow_from = r.nets(root, "allow-from");
    c.health_allow_from = r.nets(root, "health-allow-from");
    c.dedupe_entries = static_cast<std::size_t>(r.num(root, "dedupe-entries", 100000, 1, 10000000));
    c.dedupe_ttl = std::chrono::seconds(r.num(root, "dedupe-ttl-seconds", 7 * 24 * 3600, 1, 365L * 24 * 3600));
    c.access_log = r.flag(root, "access-log", true);
    if (!c.bus.spool)
        c.bus.spool = bus::outbox_options{.dir = "/var/spool/deploykit/github-webhook"};

    auto hooks = root["hooks"];
    if (!hooks || hooks.IsNull()) {
        // The original github-stomp: one hook, POST /, keys at the top level.
        c.hooks.push_back(r.hook(root, "/", "(top level)", trigger, report, true));
        c.legacy_unsigned = c.hooks.back().secret.empty() && !root["allow-unsigned"];
    } else {
        if (!hooks.IsMap()) throw bus::config_error(r.where(hooks, "hooks") + ": must be a map of path: settings");
        for (const auto& kv : hooks) {
            std::string p = kv.first.as<std::string>();
            if (!kv.second.IsMap()) throw bus::config_error(r.where(kv.second, "hooks." + p) + ": must be a map");
            for (const auto& h : c.hooks)
                if (h.path == p) throw bus::config_error(r.where(kv.first, "hooks." + p) + ": duplicate hook path");
            c.hooks.push_back(r.hook(kv.second, p, "hooks." + p, trigger, report));
        }
    }
    return c;
}

const hook_config* find_hook(const config& c, std::string_view path)
{
    for (const auto& h : c.hooks)
        if (h.path == path) return &h;
    return nullptr;
}

} // namespace webhook
