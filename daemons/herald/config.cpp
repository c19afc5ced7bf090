#include "config.hpp"

#include "bus/password.hpp"
#include "bus/runtime/config_yaml.hpp"

#include <cstdlib>

namespace herald {

using bus::runtime::section;

const std::vector<std::string>& default_topics()
{
    static const std::vector<std::string> t{
        // deploykit's own
        "deploykit.heartbeats", "deploykit.alerts", "deploykit.deploy.agents", "deploykit.deploy.jobs",
        "deploykit.deploy.audit",
        // the original future-deploykit's (commits, eventbot one-liners, Jenkins, packages, deploys)
        "future.git.commits", "future.events.stomp-git", "future.events.gitolite", "future.events.svnserver",
        "future.events.jenkins", "future.events.stomp-repo", "future.events.deploys", "future.jenkins",
        "future.jenkins.builds", "future.jenkins.success", "future.jenkins.cake", "future.package.updates",
        "future.package.results"};
    return t;
}

std::string_view to_string(role r) noexcept { return r == role::deployer ? "deployer" : "viewer"; }

namespace {

std::optional<role> parse_role(std::string_view s)
{
    if (s == "viewer") return role::viewer;
    if (s == "deployer") return role::deployer;
    return std::nullopt;
}

std::vector<bus::http::cidr> nets(const section& s, std::string_view key)
{
    std::vector<bus::http::cidr> out;
    for (const auto& v : s.list(key)) {
        auto c = bus::http::parse_cidr(v);
        if (!c) s.fail(key, "expected an address or CIDR (10.0.0.0/8), not '" + v + "'");
        out.push_back(*c);
    }
    return out;
}

bool valid_topic(std::string_view t)
{
    if (t.empty() || t.size() > 200) return false;
    for (char c : t)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_')) return false;
    return true;
}

} // namespace

config load_config(const std::filesystem::path& path, bus::runtime::notice_fn notice)
{
    auto f = bus::runtime::config_file::load(path, std::move(notice));
    auto r = f.root();
    config c;
    r.known(bus::runtime::bus_config_keys());
    for (const char* key : {"passcode-file", "signing-key-file", "verify-key-file"})
        if (auto p = r.str(key, ""); !p.empty()) bus::runtime::read_secret_file(p, r.where(key));
    c.bus = bus::read_bus_config(r.node(), f.file());

    c.topics = r.kind_of("topics") == section::kind::absent ? default_topics() : r.list("topics");
    if (c.topics.empty()) r.fail("topics", "at least one topic");
    for (const auto& t : c.topics)
        if (!valid_topic(t)) r.fail("topics", "'" + t + "' is not a topic name (letters, digits, . - _; no /topic/ prefix, no wildcards)");
    c.durable_name = bus::runtime::read_durable_name(r, "herald");
    if (!c.durable_name.empty() && c.bus.client.client_id.empty()) c.bus.client.client_id = c.durable_name;
    c.replay_cache = r.str("replay-cache", "");
    c.prefetch = static_cast<unsigned>(r.integer("prefetch", 1000, 1, 65535));

    c.store.path = r.str("database", "/var/lib/herald/herald.db");
    auto sync = r.str("sqlite-synchronous", "full");
    if (sync != "full" && sync != "normal") r.fail("sqlite-synchronous", "expected full or normal");
    c.store.synchronous_full = sync == "full";
    c.store.max_pages = r.integer("sqlite-max-pages", 0, 0, std::int64_t{1} << 40);
    c.store.batch_max = static_cast<std::size_t>(r.integer("batch-max", 10000, 1, 100000));
    c.store.search_budget = std::chrono::milliseconds(r.integer("search-budget-ms", 2000, 50, 600000));
    c.store.queue_max = static_cast<std::size_t>(r.integer("queue-max", 50000, 100, 10000000));
    c.store.retention.max_age = std::chrono::hours(24 * r.integer("retention-days", 90, 0, 36500));
    c.store.retention.max_bytes = static_cast<std::uint64_t>(r.integer("max-db-bytes", 0, 0, std::int64_t{1} << 50));
    if (c.store.retention.max_bytes && c.store.retention.max_bytes < 1024 * 1024)
        r.fail("max-db-bytes", "at least 1048576 (1 MiB), or 0 for no limit");

    auto listen = r.str("listen", "127.0.0.1:8470");
    auto where = bus::http::parse_listen(listen);
    if (!where) r.fail("listen", "expected ADDRESS:PORT (127.0.0.1:8470), not '" + listen + "'");
    c.listen_address = where->address;
    c.listen_port = where->port;
    c.tls_cert_file = r.str("tls-cert-file", "");
    c.tls_key_file = r.str("tls-key-file", "");
    if (c.tls_cert_file.empty() != c.tls_key_file.empty())
        r.fail(c.tls_cert_file.empty() ? "tls-key-file" : "tls-cert-file", "tls-cert-file and tls-key-file go together");
    if (!c.tls_key_file.empty()) bus::runtime::read_secret_file(c.tls_key_file, r.where("tls-key-file"));
    c.trusted_proxies = nets(r, "trusted-proxies");
    c.proxy_user_header = r.str("proxy-user-header", "");
    for (auto& ch : c.proxy_user_header) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (!c.proxy_user_header.empty() && c.trusted_proxies.empty())
        r.fail("proxy-user-header", "needs trusted-proxies: the header is believed only from those addresses");
    for (const auto& [u, rl] : r.string_map("proxy-roles")) {
        auto pr = parse_role(rl);
        if (!pr) r.fail("proxy-roles", "role of '" + u + "': expected viewer or deployer, not '" + rl + "'");
        c.proxy_roles[u] = *pr;
    }
    auto dr = r.str("proxy-default-role", "viewer");
    if (dr == "none") c.proxy_default_role.reset();
    else if (auto pr = parse_role(dr)) c.proxy_default_role = *pr;
    else r.fail("proxy-default-role", "expected viewer, deployer or none");
    c.users_file = r.str("users-file", "");
    if (!c.users_file.empty()) {
        try {
            load_users(c.users_file);
        } catch (const std::exception& e) {
            r.fail("users-file", e.what());
        }
    }
    if (c.users_file.empty() && c.proxy_user_header.empty())
        r.fail("users-file", "set users-file, or proxy-user-header with trusted-proxies: the pages need logins");
    c.session_ttl = std::chrono::seconds(r.integer("session-hours", 12, 1, 24 * 30) * 3600);
    c.cookie_secure = r.flag("cookie-secure", true);
    c.sse_wait = std::chrono::seconds(r.integer("live-wait-seconds", 25, 1, 300));

    for (const auto& [name, s] : r.named("ingest-tokens")) {
        ingest_token t;
        t.name = name;
        auto tf = s.required("token-file");
        t.secret = bus::runtime::read_secret_file(tf, s.where("token-file"));
        while (!t.secret.empty() && (t.secret.back() == '\n' || t.secret.back() == '\r')) t.secret.pop_back();
        if (t.secret.size() < 16) s.fail("token-file", "a token of at least 16 characters");
        t.system = s.str("system", "");
        c.ingest_tokens.push_back(std::move(t));
    }
    c.ingest_max_body = static_cast<std::size_t>(r.integer("ingest-max-body-bytes", 256 * 1024, 1024, 64L * 1024 * 1024));
    c.ingest_max_records = static_cast<std::size_t>(r.integer("ingest-max-records", 500, 1, 100000));
    c.ingest_rate = r.number("ingest-rate", 500, 0.1, 1e7);
    c.ingest_burst = r.number("ingest-burst", 2000, 1, 1e8);

    c.admin_listen = bus::runtime::read_admin_listen(r);
    c.heartbeat = bus::runtime::read_heartbeat_options(r);
    if (auto a = r.sub("alerts")) c.alerts = alerts::read_settings(*a);
    else r.has("alerts");
    c.deploy.base.discovery_timeout = 2;
    if (auto d = r.sub("deploy")) {
        deploy::cli::read_deploy_keys(*d, c.deploy.base);
        if (auto uk = d->str("user-keys-file", ""); !uk.empty()) {
            bus::runtime::read_secret_file(uk, d->where("user-keys-file"));
            try {
                c.deploy.user_keys = bus::keyring::load_file(uk);
            } catch (const std::exception& e) {
                d->fail("user-keys-file", e.what());
            }
            c.deploy.per_user_keys = true;
        }
        c.deploy.max_rollouts = static_cast<std::size_t>(d->integer("max-rollouts", 4, 1, 64));
    } else {
        r.has("deploy");
    }
    f.finish();
    c.file = std::move(f);
    return c;
}

user_table load_users(const std::filesystem::path& path)
{
    auto f = bus::runtime::config_file::load(path);
    auto r = f.root();
    user_table t;
    for (const auto& [name, s] : r.named("users")) {
        user_entry u;
        u.password_hash = s.required("password");
        if (!u.password_hash.starts_with("pbkdf2-sha256$"))
            s.fail("password", "not a pbkdf2-sha256 hash (make one with `herald --hash-password` or `stomp-broker --hash-password`)");
        auto rl = s.str("role", "viewer");
        auto pr = parse_role(rl);
        if (!pr) s.fail("role", "expected viewer or deployer, not '" + rl + "'");
        u.r = *pr;
        t[name] = std::move(u);
    }
    f.finish();
    return t;
}

} // namespace herald
