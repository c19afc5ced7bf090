#include "config.hpp"

#include "bus/runtime/config_yaml.hpp"

#include <algorithm>
#include <cstdlib>
#include <set>

namespace webhook {

namespace {

using bus::runtime::section;

// The settings of one hook: in a `hooks:` entry, or at the top level for the original's POST /.
const std::vector<std::string> hook_keys{"provider", "secret-file", "secret-env", "allow-unsigned", "allow-sha1",
                                         "repos",    "refs",        "topic",      "report-topic",   "repo-name",
                                         "other-events"};
const std::vector<std::string> top_keys{
    "trigger-topic", "report-topic", "listen", "admin-listen", "heartbeat-topic", "heartbeat-interval",
    "tls-cert-file", "tls-key-file", "max-body-bytes", "max-header-bytes", "read-timeout-seconds",
    "first-byte-timeout-seconds", "idle-timeout-seconds", "max-connections", "max-connections-per-source",
    "max-inflight-body-bytes", "accept-timeout-ms", "trusted-proxies", "allow-from", "health-allow-from",
    "dedupe-entries", "dedupe-ttl-seconds", "access-log", "hooks"};

// github-webhook's keys have one spelling, with hyphens (the original github-stomp's). The
// runtime's reader takes `allow_from` as an alias of `allow-from`; here it is a typo, refused
// with the spelling meant, so no allow-list or limit is ever half-applied from a misspelt file.
void hyphens_only(const section& s, const std::vector<std::string>& a, const std::vector<std::string>& b = {},
                  const std::vector<std::string>& c = {})
{
    for (const auto& k : s.keys()) {
        if (k.find('_') == std::string::npos) continue;
        std::string h = k;
        std::replace(h.begin(), h.end(), '_', '-');
        for (const auto* keys : {&a, &b, &c})
            if (std::find(keys->begin(), keys->end(), h) != keys->end())
                s.fail(k, "unknown setting; did you mean `" + h + "`? (keys are spelled with hyphens)");
    }
}

std::vector<cidr> nets(const section& s, std::string_view key)
{
    std::vector<cidr> out;
    for (const auto& v : s.list(key)) {
        auto c = parse_cidr(v);
        if (!c) s.fail(key, "expected an address or CIDR (10.0.0.0/8), not '" + v + "'");
        out.push_back(*c);
    }
    return out;
}

template <class T>
T count(const section& s, std::string_view key, std::int64_t dflt, std::int64_t min, std::int64_t max)
{
    return static_cast<T>(s.integer(key, dflt, min, max));
}

// One hook, from its map (or the top level, for the original's single `POST /` hook).
hook_config read_hook(const section& m, const std::string& path, const std::string& default_topic,
                      const std::string& default_report, bool legacy)
{
    hook_config h;
    h.path = path;
    auto prov = m.str("provider", "github");
    auto p = parse_provider(prov);
    if (!p) m.fail("provider", "expected github, gitlab, gitea, bitbucket-cloud or bitbucket-server, not '" + prov + "'");
    h.kind = *p;
    if (m.has("secret"))
        m.fail("secret", "secrets do not go into the config file; use secret-file (mode 0600) or secret-env");
    auto sf = m.str("secret-file", "");
    auto se = m.str("secret-env", "");
    if (!sf.empty()) {
        h.secret = bus::runtime::read_secret_file(sf, m.where("secret-file"));  // the one policy
    } else if (!se.empty()) {
        const char* v = std::getenv(se.c_str());
        if (!v || !*v) m.fail("secret-env", "$" + se + " is not set");
        h.secret = v;
    }
    // The original github-stomp checked nothing, and its config has no secret: that file loads
    // (the daemon warns at every start); a `hooks:` entry must say allow-unsigned.
    h.allow_unsigned = m.flag("allow-unsigned", legacy && h.secret.empty());
    if (h.secret.empty() && !h.allow_unsigned)
        m.fail(legacy ? "secret-file" : "provider",
               "hook " + path + " has no secret-file or secret-env (set allow-unsigned: true to accept unsigned "
               "deliveries, as the original github-stomp did)");
    h.allow_sha1 = m.flag("allow-sha1", false);
    h.repos = m.list("repos");
    h.refs_text = m.list("refs");
    for (const auto& r : h.refs_text) {
        try {
            h.refs.emplace_back(r, std::regex::ECMAScript);
        } catch (const std::regex_error& e) {
            m.fail("refs", "'" + r + "' is not a regex: " + e.what());
        }
    }
    h.topic = m.str("topic", default_topic);
    h.report_topic = m.str("report-topic", default_report);
    auto naming = m.str("repo-name", "name");
    if (naming == "name") h.naming = repo_naming::name;
    else if (naming == "full_name" || naming == "full-name") h.naming = repo_naming::full_name;
    else m.fail("repo-name", "expected name or full_name, not '" + naming + "'");
    auto others = m.str("other-events", "ignore");
    if (others == "ignore") h.others = other_events::ignore;
    else if (others == "reject") h.others = other_events::reject;
    else m.fail("other-events", "expected ignore or reject, not '" + others + "'");
    return h;
}

} // namespace

config load_config(const std::filesystem::path& path, bus::runtime::notice_fn notice)
{
    auto f = bus::runtime::config_file::load(path, std::move(notice));
    const std::string& file = f.file();
    auto r = f.root();
    config c;
    hyphens_only(r, top_keys, hook_keys, bus::runtime::bus_config_keys());
    r.known(bus::runtime::bus_config_keys());
    // The broker's passcode and the signing keys under the same policy as the hook secrets:
    // checked here first, so a refusal names the reason as the runtime words it.
    for (const char* key : {"passcode-file", "signing-key-file", "verify-key-file"})
        if (auto p = r.str(key, ""); !p.empty()) bus::runtime::read_secret_file(p, r.where(key));
    c.bus = bus::read_bus_config(r.node(), file);
    std::string trigger = r.str("trigger-topic", "future.git.commits");
    std::string report = r.str("report-topic", "future.events.stomp-git");

    auto listen = r.str("listen", "127.0.0.1:4567");
    auto where = bus::http::parse_listen(listen);
    if (!where) r.fail("listen", "expected ADDRESS:PORT (0.0.0.0:4567), not '" + listen + "'");
    c.listen_address = where->address;
    c.listen_port = where->port;
    c.admin_listen = bus::runtime::read_admin_listen(r);
    c.heartbeat = bus::runtime::read_heartbeat_options(r);
    c.tls_cert_file = r.str("tls-cert-file", "");
    c.tls_key_file = r.str("tls-key-file", "");
    if (c.tls_cert_file.empty() != c.tls_key_file.empty())
        r.fail(c.tls_cert_file.empty() ? "tls-key-file" : "tls-cert-file", "tls-cert-file and tls-key-file go together");
    // The private key under the one secret-file policy (the server loads it itself).
    if (!c.tls_key_file.empty()) bus::runtime::read_secret_file(c.tls_key_file, r.where("tls-key-file"));
    c.max_body_bytes = count<std::size_t>(r, "max-body-bytes", 25L * 1024 * 1024, 1024, 1L << 30);
    c.max_header_bytes = count<std::size_t>(r, "max-header-bytes", 16 * 1024, 1024, 1 << 20);
    c.read_timeout = std::chrono::seconds(r.integer("read-timeout-seconds", 10, 1, 3600));
    c.first_byte_timeout = std::min(c.read_timeout, std::chrono::seconds(r.integer("first-byte-timeout-seconds", 5, 1, 3600)));
    c.idle_timeout = std::chrono::seconds(r.integer("idle-timeout-seconds", 30, 1, 3600));
    c.max_connections = count<std::size_t>(r, "max-connections", 512, 1, 100000);
    c.max_connections_per_source = count<std::size_t>(r, "max-connections-per-source", 64, 0, 100000);
    c.max_inflight_body_bytes = count<std::size_t>(r, "max-inflight-body-bytes", 256L * 1024 * 1024, 1024, 1L << 40);
    c.accept_timeout = std::chrono::milliseconds(r.integer("accept-timeout-ms", 2000, 0, 9000));
    c.trusted_proxies = nets(r, "trusted-proxies");
    c.allow_from = nets(r, "allow-from");
    c.health_allow_from = nets(r, "health-allow-from");
    c.dedupe_entries = count<std::size_t>(r, "dedupe-entries", 100000, 1, 10000000);
    c.dedupe_ttl = std::chrono::seconds(r.integer("dedupe-ttl-seconds", 7 * 24 * 3600, 1, 365L * 24 * 3600));
    c.access_log = r.flag("access-log", true);
    if (!c.bus.spool) c.bus.spool = bus::outbox_options{.dir = "/var/spool/deploykit/github-webhook"};

    if (r.kind_of("hooks") == section::kind::absent || r.kind_of("hooks") == section::kind::null) {
        // The original github-stomp: one hook, POST /, keys at the top level.
        c.hooks.push_back(read_hook(r, "/", trigger, report, true));
        c.legacy_unsigned = c.hooks.back().secret.empty() && !r.has("allow-unsigned");
    } else {
        auto hs = r.sub("hooks");
        if (!hs) r.fail("hooks", "expected a map of path: settings");
        std::set<std::string, std::less<>> paths;
        for (const auto& name : hs->keys()) {
            if (hs->kind_of(name) != section::kind::map)
                hs->fail(name, "expected a map of settings (provider, secret-file, ...)");
            if (name.empty() || name.front() != '/' || name.find_first_of("?# ") != std::string::npos)
                hs->fail(name, "a hook path starts with / and has no query");
            if (name == "/livez" || name == "/readyz" || name == "/metrics")
                hs->fail(name, "reserved for health and metrics");
            if (!paths.insert(name).second) hs->fail(name, "duplicate hook path");
        }
        for (const auto& [p, s] : r.named("hooks")) {
            hyphens_only(s, hook_keys);
            c.hooks.push_back(read_hook(s, p, trigger, report, false));
        }
    }
    f.finish();
    c.file = std::move(f);
    return c;
}

std::vector<std::string> needs_restart(const config& running, const config& fresh)
{
    // What reload() applies; every other changed key is named as needing a restart.
    static const std::vector<std::string> applied{
        "hooks", "trusted-proxies", "allow-from", "health-allow-from", "access-log", "max-inflight-body-bytes",
        "max-connections-per-source", "allow-unsigned",
        // the legacy top-level hook's settings (its secret is re-read)
        "provider", "secret-file", "secret-env", "allow-sha1", "repos", "refs", "topic", "repo-name", "other-events",
        "trigger-topic", "report-topic"};
    std::vector<std::string> out;
    if (!running.file || !fresh.file) return out;
    for (auto& k : running.file->changed_keys(*fresh.file))
        if (std::find(applied.begin(), applied.end(), k) == applied.end()) out.push_back(k);
    return out;
}

const hook_config* find_hook(const config& c, std::string_view path)
{
    for (const auto& h : c.hooks)
        if (h.path == path) return &h;
    return nullptr;
}

} // namespace webhook
