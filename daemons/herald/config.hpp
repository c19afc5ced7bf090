#pragma once

// herald's configuration: the bus connection (the runtime's keys), the topics it records, the
// database and its retention, the web listener, ingest tokens, users and the reverse proxy,
// and the `alerts:` section (read by the alert module through alert_seam.hpp).

#include "alert_seam.hpp"
#include "store.hpp"

#include "options.hpp"  // deploy::cli::config (daemons/deploy)

#include "bus/config.hpp"
#include "bus/http/address.hpp"
#include "bus/runtime/config_reader.hpp"
#include "bus/runtime/settings.hpp"

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace herald {

/// Every deploykit topic and the original future-deploykit ones (docs/events.md,
/// docs/deploy-protocol.md), recorded when `topics:` is not set.
const std::vector<std::string>& default_topics();

struct ingest_token {
    std::string name;    ///< Basic auth user name; names the source in records
    std::string secret;  ///< from token-file (the secret-file policy)
    std::string system;  ///< default `system` of its records
};

enum class role { viewer = 1, deployer = 2 };

/// The deploy page (`deploy:`): the deploy CLI's keys (destinations, discovery-timeout,
/// `defaults:`) and herald's own.
struct deploy_settings {
    deploy::cli::config base;  ///< its bus part unused: rollouts connect with herald's bus settings
    bus::keyring user_keys;    ///< user-keys-file: each user's signing key, id = user name
    bool per_user_keys = false;
    std::size_t max_rollouts = 4;  ///< at once (and one per repo)
    std::size_t keep_finished = 50;  ///< finished rollouts whose progress stays in memory
};

struct config {
    bus::bus_config bus;
    std::vector<std::string> topics;
    std::string durable_name;       ///< "" = plain subscriptions (warned)
    std::filesystem::path replay_cache;
    unsigned prefetch = 1000;        ///< unacknowledged messages per subscription
    store_options store;
    // web
    std::string listen_address = "127.0.0.1";
    unsigned short listen_port = 8470;
    std::string tls_cert_file, tls_key_file;
    std::vector<bus::http::cidr> trusted_proxies;  ///< X-Forwarded-For and the auth header believed from these
    std::string proxy_user_header;                 ///< e.g. X-Remote-User; "" = off
    std::map<std::string, role, std::less<>> proxy_roles;  ///< user → role; others: proxy_default_role
    std::optional<role> proxy_default_role = role::viewer;
    std::filesystem::path users_file;              ///< users: {name: {password: pbkdf2-sha256$..., role: viewer|deployer}}
    std::chrono::seconds session_ttl{12 * 3600};
    std::size_t max_sessions = 10000;
    bool cookie_secure = true;                     ///< the Secure attribute (never off outside tests)
    std::size_t max_page = 500;
    std::chrono::seconds sse_wait{25};             ///< a live-feed request waits this long for news
    // ingest
    std::vector<ingest_token> ingest_tokens;
    std::size_t ingest_max_body = 256 * 1024;
    std::size_t ingest_max_records = 500;
    double ingest_rate = 500;   ///< records per second per token (token bucket)
    double ingest_burst = 2000;
    std::optional<bus::http::listen_address> admin_listen;
    bus::runtime::heartbeat_options heartbeat;
    std::shared_ptr<const alerts::settings> alerts;  ///< null: no `alerts:` section
    deploy_settings deploy;
    std::optional<bus::runtime::config_file> file;
};

struct user_entry {
    std::string password_hash;
    role r = role::viewer;
};
using user_table = std::map<std::string, user_entry, std::less<>>;

/// Loads a config file (errors name file, line and key).
config load_config(const std::filesystem::path& path, bus::runtime::notice_fn notice = {});
/// Reads a users file: `users: {alice: {password: pbkdf2-sha256$..., role: deployer}}`.
user_table load_users(const std::filesystem::path& path);

std::string_view to_string(role r) noexcept;

} // namespace herald
