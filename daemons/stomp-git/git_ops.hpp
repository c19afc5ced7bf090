#pragma once

// What a stomp-git worker does to one repository, with libgit2 (no git CLI, no shell): fetch
// (all branches, tags, prune) and publish per mode. Runs in the worker process, after it dropped
// to the repository owner's user.

#include "config.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stomp_git {

struct outcome {
    bool ok = false;
    std::string error;
    std::string ref;      ///< the published/checked branch ref (refs/remotes/origin/<branch>)
    std::string old_rev;
    std::string new_rev;
    std::string detail;   ///< what was published where
    bool changed = false; ///< the fetch moved, created or deleted a branch or tag
};

/// One credentials-file entry: `user:token` (any host, `host` empty) or
/// `https://user:token@host[:port]` (that host; port 0 = any port).
struct https_credential {
    std::string host;
    unsigned port = 0;
    std::string user;
    std::string token;
};

/// What a worker needs to reach remotes. Secrets are read by load_credentials() while the worker
/// still runs as the daemon's user, before it drops to the repository owner's.
struct credentials {
    std::string ssh_key;                   ///< path of the private key (named in messages)
    std::string ssh_key_data;              ///< its contents (empty: not read, libssh2 reads the path)
    std::string known_hosts;               ///< configured known_hosts; empty: the fetching user's ~/.ssh/known_hosts
    std::optional<std::string> known_hosts_text;  ///< its contents, read before dropping privileges
    std::string known_hosts_error;         ///< why the configured file could not be read
    std::string credentials_file;          ///< named in messages
    std::vector<https_credential> https;   ///< from credentials-file
    std::string https_ca_file;             ///< CA bundle for https remotes (replaces the system's)
};

/// Reads and checks the configured secrets: the credentials file must be a regular file, not
/// accessible to group or others (0600/0400) and owned by root or the user running this process;
/// the ssh key must not be accessible to group or others. Throws std::runtime_error with a clear
/// message that never contains a secret.
credentials load_credentials(const config& cfg);

/// Fetches `e.path`'s origin and publishes per `e.how`. Never throws.
outcome fetch_and_publish(const repo_entry& e, const credentials& creds);

// ---- pure helpers (unit-tested) -------------------------------------------------------------

/// Where a remote URL points: `scheme://[user[:password]@]host[:port]/path` or scp-like
/// `[user@]host:path` (scheme "ssh", port 22). Local paths and file:// give std::nullopt.
struct remote_url {
    std::string scheme;  ///< lower case: ssh, https, http, git
    std::string user;
    std::string host;    ///< without brackets for IPv6 literals
    unsigned port = 0;   ///< the scheme's default when not given
};
std::optional<remote_url> parse_remote_url(std::string_view url);

/// `text` with userinfo removed from every URL in it (ssh URLs keep a bare user name, which is no
/// secret) and every occurrence of each non-empty `secrets` entry replaced by `***`.
std::string redact(std::string text, const std::vector<std::string>& secrets = {});

/// Parses a credentials file: `#` comments and blank lines ignored; `user:token` applies to every
/// host (at most one such line); `https://user:token@host[:port]` lines (git credential-store's
/// format, percent-encoded) apply to that host. Tokens are only ever sent over https. Errors name
/// the file and line, never the token.
std::vector<https_credential> parse_credentials(std::string_view text, std::string_view file);

/// The entry for host:port: a host entry (exact port, or any port) before the any-host one.
const https_credential* find_credential(const std::vector<https_credential>& all, std::string_view host,
                                        unsigned port);

/// Why a secret file with this mode/owner must not be used ("" = fine). `self` is the uid of the
/// process reading it; `owner_rule`: also require root or `self` as the owner.
std::string secret_file_problem(std::string_view file, unsigned mode, unsigned owner, unsigned self, bool owner_rule);

/// Strict base64 (padding optional); std::nullopt on anything else.
std::optional<std::string> base64_decode(std::string_view in);

/// The key type named inside an ssh public key blob (`ssh-ed25519`, `ecdsa-sha2-nistp256`, ...),
/// or "" when the blob is malformed.
std::string ssh_key_type(std::string_view blob);

/// OpenSSH's fingerprint of a public key blob: `SHA256:` + unpadded base64 of its SHA-256.
std::string sha256_fingerprint(std::string_view blob);

/// How known_hosts names a host: `host` on port 22, `[host]:port` otherwise.
std::string known_hosts_name(std::string_view host, unsigned port);

/// Whether a known_hosts host field matches `name` (as known_hosts_name gives it): comma lists
/// of patterns with `*`/`?` and `!` negation (case-insensitive), or one hashed `|1|salt|hash`
/// (HMAC-SHA1 of the name keyed with the salt).
bool known_hosts_field_matches(std::string_view field, std::string_view name);

enum class host_key_status {
    match,                ///< a line for the host has exactly this key
    mismatch,             ///< the host is known with a different key of the same type
    other_type,           ///< the host is known, but only with keys of other types
    revoked,              ///< the key is marked @revoked for this host
    cert_authority_only,  ///< only @cert-authority lines name the host (certificates unsupported)
    unknown,              ///< no line names the host: refused, never trusted on first use
};

struct host_key_verdict {
    host_key_status status = host_key_status::unknown;
    std::string message;  ///< why the connection is refused (empty on match)
};

/// Checks the key a server offered (`key`: its raw public key blob) for `host`:`port` against the
/// text of an OpenSSH known_hosts file; `file` names it in messages.
host_key_verdict check_known_hosts(std::string_view text, std::string_view file, std::string_view host,
                                   unsigned port, std::string_view key);

/// The plain (unhashed, unmarked) lines of a known_hosts text that name host:port, rewritten as
/// `name type key`: what libssh2 is given to choose the host key type to ask for.
std::string known_hosts_for(std::string_view text, std::string_view host, unsigned port);

/// The directory name a puppetmaster branch is published to, by r10k's rule: the branch name with
/// its case kept and every character but [A-Za-z0-9_] mapped to `_` (`feature/x-1` -> `feature_x_1`,
/// `Production` stays `Production`).
std::string environment_name(std::string_view branch);

/// Which branches publish to which environment: injective. Branches whose names map to one
/// environment are all refused (reported, never merged: no branch can write another's
/// environment), as are names longer than `max_name`.
struct environment_plan {
    struct refusal {
        std::string branch, environment, reason;
    };
    std::vector<std::pair<std::string, std::string>> publish;  ///< (branch, environment)
    std::vector<refusal> refused;
};
environment_plan plan_environments(const std::vector<std::string>& branches, std::size_t max_name = 255);

} // namespace stomp_git
