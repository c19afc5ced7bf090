#pragma once

// The one message model every deploykit daemon speaks: typed events with JSON conversion and
// validation. Pure: no I/O, no Asio.

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace bus {

/// Where a commit came from.
enum class commit_source { git, svn, github, gitlab, gitea, bitbucket };

struct commit_event {
    commit_source source = commit_source::git;
    std::string repo;      ///< repository name as configured (bare-repo basename, forge name)
    std::string ref;       ///< full ref name (refs/heads/x, refs/tags/v1); empty for SVN
    std::string old_rev;   ///< all zeroes for a created ref
    std::string new_rev;   ///< all zeroes for a deleted ref; the revision number for SVN
    std::string author;
    std::string date;
    std::string message;
    std::string svn_project;                 ///< SVN: path part before /trunk
    std::vector<std::string> changed_dirs;   ///< SVN: `svnlook dirs-changed`
    std::string url;                         ///< forge: compare/commit URL, if known
    bool operator==(const commit_event&) const = default;
};

enum class build_phase { queued, started, completed };

/// One step of a stomp-ci run (docs/stomp-ci.md).
struct build_step {
    std::string name;
    std::string status;  ///< SUCCESS, FAILURE, TIMEOUT, ABORTED, SKIPPED
    int exit_code = -1;
    double duration_s = 0;
    bool operator==(const build_step&) const = default;
};

/// A Jenkins build, with the Jenkins Notification plugin's phases.
struct build_event {
    std::string job;
    std::int64_t number = 0;
    std::string url;
    build_phase phase = build_phase::started;
    std::string status;  ///< SUCCESS, FAILURE, UNSTABLE, ABORTED, TIMEOUT (completed builds)
    std::string commit;
    std::string branch;
    std::string repo;
    // stomp-ci's runs (sent only when run_id is set; Jenkins' builds leave them empty):
    std::string run_id;     ///< one per job and revision: every attempt of it reports this id
    std::string worker;     ///< the host that ran it
    std::string ref;
    double duration_s = 0;
    bool slow = false;      ///< slower than its history allows (see warnings)
    std::vector<std::string> warnings;
    std::vector<build_step> steps;
    std::vector<std::string> artifacts;  ///< URLs of the files the run kept (sent when non-empty)
    bool operator==(const build_event&) const = default;
};

/// stomp-git's result for one repository on one host.
struct fetch_event {
    std::string repo;
    std::string ref;
    std::string old_rev;
    std::string new_rev;
    std::string host;
    std::string mode;
    double duration_s = 0;
    bool ok = true;
    std::string error;
    bool operator==(const fetch_event&) const = default;
};

/// A package version published by the repository.
struct package_event {
    std::string name;
    std::string old_version;
    std::string new_version;
    std::string codename;
    std::string component;
    std::string architecture;
    std::string file;  ///< name_version_arch.deb, as auto-reprepro announced it
    bool operator==(const package_event&) const = default;
};

struct deploy_request {
    std::string repo;
    std::string tag;
    std::string request_id;
    std::vector<std::string> hosts;  ///< empty = every host that has the repo
    std::string requested_by;
    bool operator==(const deploy_request&) const = default;
};

struct deploy_result {
    std::string repo;
    std::string tag;
    std::string request_id;
    std::string host;
    bool ok = true;
    std::string stage;  ///< pre-deploy, checkout, post-deploy, done
    std::string error;
    std::string previous_tag;
    bool operator==(const deploy_result&) const = default;
};

/// A daemon's own health, published periodically.
struct heartbeat_event {
    std::string host;
    std::string daemon;
    std::string version;
    double uptime_s = 0;
    std::map<std::string, std::uint64_t> counters;
    /// Further data keys a daemon adds (deploy-agent: identity, facts, classes, repos,
    /// interval_s; docs/deploy-protocol.md), as the text of one JSON object merged into `data`.
    /// Empty = none. Decoding keeps every key not listed above here.
    std::string extra;
    bool operator==(const heartbeat_event&) const = default;
};

/// A one-line human-readable notice (the original's "Talking to eventbot" messages).
struct notice_event {
    std::string text;
    bool operator==(const notice_event&) const = default;
};

/// One watched package as a host sees it after refreshing its apt lists.
struct package_candidate {
    std::string name;
    std::string version;    ///< the version the package event announced
    std::string candidate;  ///< apt's candidate now; empty: apt does not know the package
    std::string installed;  ///< the installed version; empty: not installed
    bool operator==(const package_candidate&) const = default;
};

/// stomp-repo's answer to package events: one apt lists update on one host.
struct package_result {
    std::string host;
    bool ok = true;
    std::string outcome;  ///< updated, stale (updated, candidate still older), failed, lock-timeout
    std::string error;
    double duration_s = 0;
    std::int64_t attempt = 1;
    bool upgrade_pending = false;  ///< an installed watched package has a newer candidate now
    std::vector<package_candidate> packages;
    std::vector<std::string> events;  ///< ids of the package events this update answers
    bool operator==(const package_result&) const = default;
};

/// herald's alert decision (docs/herald.md#alerts): a heartbeat lost or a pattern matched
/// (`firing`), and the all-clear (`recovered`). Published so the alert is in the event log, as
/// neelix wrote its alerts back into the log.
struct alert_event {
    std::string rule;         ///< the rule's name in herald's config
    std::string kind;         ///< heartbeat, pattern
    std::string state;        ///< firing, recovered
    std::string daemon;       ///< heartbeat: the daemon that went quiet
    std::string source_host;  ///< heartbeat: its host
    std::string text;         ///< one line for people
    std::string event_id;     ///< pattern: the event that matched
    std::string last_seen;    ///< heartbeat: RFC 3339 time of its last heartbeat
    std::int64_t suppressed = 0;  ///< matches not notified during the cool-down before this one
    bool operator==(const alert_event&) const = default;
};

/// An event whose data a library outside libbus models (the deploy protocol's agent.request,
/// agent.reply, deploy.job and deploy.audit: daemons/deploy-common). libbus checks that the type
/// is one of `extension_types` and that `data` is a JSON object; the owning library decodes and
/// validates the fields. Signing, dedupe and `intake` treat it like any other event.
struct extension_event {
    std::string type;
    std::string data;  ///< the data object as compact JSON text
    bool operator==(const extension_event&) const = default;
};

/// The event types carried as `extension_event`.
inline constexpr std::string_view extension_types[] = {"agent.request", "agent.reply", "deploy.job",
                                                       "deploy.audit"};
bool is_extension_type(std::string_view type) noexcept;

using payload = std::variant<commit_event, build_event, fetch_event, package_event, deploy_request,
                             deploy_result, heartbeat_event, notice_event, package_result, alert_event,
                             extension_event>;

/// An event with its envelope.
struct event {
    std::string id;    ///< unique per event; consumers dedupe redeliveries by it
    std::string host;  ///< source host
    std::string time;  ///< RFC 3339 UTC, e.g. 2026-11-22T10:00:00Z
    payload data;

    /// "commit", "build", "fetch", "package", "deploy.request", "deploy.result", "heartbeat",
    /// "notice", "package.result", "alert", or an extension_event's own type.
    std::string_view type() const noexcept;
    bool operator==(const event&) const = default;
};

/// Native wire form version (the "v" field).
inline constexpr int native_version = 1;

std::string_view to_string(commit_source s) noexcept;
std::optional<commit_source> parse_commit_source(std::string_view s) noexcept;
std::string_view to_string(build_phase p) noexcept;

/// A fresh event with a random id, this host's name and the current time; its free text is
/// cleaned with `sanitize`.
event make_event(payload data, std::string host = {});

/// A random RFC 4122 version-4 UUID (getrandom(2), bus/crypto.hpp).
std::string new_event_id();
/// The current time as RFC 3339 UTC with seconds.
std::string now_rfc3339();

/// Native form: `{"v":1,"id":…,"type":…,"host":…,"time":…,"data":{…}}`.
std::string to_native(const event& e);
nlohmann::json to_json(const event& e);

/// Result of decoding untrusted input: a value, or a reason naming the field.
template <class T>
struct decoded {
    std::optional<T> value;
    std::string error;
    explicit operator bool() const noexcept { return value.has_value(); }
};

/// Parses and validates the native form. Unknown fields are ignored (forward compatible);
/// unknown types, a newer major version, missing or malformed fields are errors.
decoded<event> from_native(std::string_view body);

/// Validates an event's fields (names, refs, revisions, sizes). Routing and identity fields
/// (repo, ref, revisions, host, job, tag, package names, ids) holding a control character are
/// refused. Empty string = valid.
std::string validate(const event& e);

/// Removes ANSI escape sequences and control characters from an event's free text (author,
/// date, status, URLs, notices: one line; commit messages and errors keep `\n` and `\t`), so
/// nothing read from the bus can drive a terminal or forge lines where it is shown or re-sent.
/// Done by `make_event` and by `decode` for both wire forms.
void sanitize(event& e);

// ---- validation helpers, shared with the daemons ----

/// A repository name: letters, digits, `._+-`, optionally `/`-separated segments (forge
/// namespaces); no `..`, no leading `-` or `.`, at most 200 characters.
bool valid_repo_name(std::string_view s) noexcept;
/// A ref name by `git check-ref-format` rules (no `..`, control characters, space, `~^:?*[\`,
/// `@{`, `//`; no component starting with `.` or ending with `.lock`; not ending in `/` or `.`),
/// and, stricter than git, no shell metacharacters (`$` `` ` `` `;` `&` `|` `<` `>` `(` `)` quotes `!` braces).
bool valid_ref_name(std::string_view s) noexcept;
/// A git object id (40 or 64 hex digits; all-zero allowed) or an SVN revision number.
bool valid_revision(std::string_view s) noexcept;
/// True for an all-zero object id (ref created or deleted).
bool is_zero_revision(std::string_view s) noexcept;

} // namespace bus
