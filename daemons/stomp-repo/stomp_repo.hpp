#pragma once

// stomp-repo's decisions, pure: which package events concern this host (watch patterns), whether
// the announced version is newer than apt's candidate (Debian ordering: libapt-pkg's, answered by
// the helper stomp-repo-vercmp as ranks, read here by version_order), the
// validation of names, versions and codenames before any of them reaches a command line, the
// coalescing of a burst into one apt update, the retry schedule, the apt command lines and the
// reading of apt's answers. No I/O: daemon.cpp runs the commands (bus::runtime::spawn).

#include "bus/event.hpp"
#include "version_helper.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace stomp_repo {

// ---- Debian policy ----

/// A binary package name (Policy 5.6.1): lowercase letters, digits, `+` `-` `.`; at least two
/// characters, starting with a letter or digit; at most 255 here.
bool valid_package_name(std::string_view s) noexcept;
/// A version (Policy 5.6.12): `[epoch:]upstream[-revision]`; the epoch digits, the upstream part
/// starting with a digit and made of alphanumerics and `. + ~ -` (`:` only with an epoch), the
/// revision of alphanumerics and `. + ~`; at most 255 characters.
bool valid_version(std::string_view s) noexcept;
/// A codename or suite (`bookworm`, `stable-updates`): letters, digits, `. _ + -`, starting with a
/// letter or digit, at most 100 characters; no `/`.
bool valid_codename(std::string_view s) noexcept;
/// A component (`main`, `non-free-firmware`, `updates/main`): codename segments joined by `/`.
bool valid_component(std::string_view s) noexcept;
/// An architecture (`amd64`, `all`, `source`): lowercase letters, digits and `-`, at most 32.
bool valid_architecture(std::string_view s) noexcept;

// ---- Debian version order ----

/// The Debian order of a set of versions, as libapt-pkg's debVS gave it through the helper
/// stomp-repo-vercmp (daemons/common/version_helper.hpp, shared with repo-poller). The daemon runs
/// it once per event that needs an order (daemon.cpp).
using deploykit::version_order;
using deploykit::vercmp_input;

/// The distinct versions that comparing these pairs needs (pairs of equal strings need none), in
/// first-seen order: the helper's input. Empty: no helper run needed.
std::vector<std::string> versions_to_rank(const std::vector<std::pair<std::string, std::string>>& pairs);

// ---- watching ----

/// One `watch:` entry. Each field is an fnmatch(3) pattern; empty = any.
struct watch {
    std::string package;
    std::string codename;
    std::string component;
    std::string architecture;
};

/// True when the pattern is usable: not empty, at most 255 characters, no control character.
bool valid_pattern(std::string_view p) noexcept;

/// The first watch entry the event matches, or nullptr.
const watch* match(const std::vector<watch>& watches, const bus::package_event& p);

enum class verdict {
    update,     ///< watched and newer than the candidate (or apt does not know it yet)
    invalid,    ///< a field fails Debian policy: refused, never near a command line
    removal,    ///< reprepro's `remove` (no new version): nothing to fetch
    unwatched,  ///< no watch entry matches
    not_newer,  ///< the candidate is already this version or newer
};
std::string_view to_string(verdict v) noexcept;

struct decision {
    verdict v = verdict::invalid;
    std::string why;  ///< for invalid: the field and the reason
};

/// Checks every field of a package event against Debian policy (legacy events carry only name,
/// version and file).
std::string validate(const bus::package_event& p);

/// The decision for one event, given apt's current candidate for the package (nullopt: apt does
/// not know it, or it is not known yet) and the order of the event's version and the candidate
/// (needed only with a candidate that differs from the announced version).
decision decide(const std::vector<watch>& watches, const bus::package_event& p,
                const std::optional<std::string>& candidate, const version_order& order = {});

// ---- coalescing ----

/// Collects the events of a burst into one apt update. The first event opens a window of `quiet`;
/// every event within it joins; the window never stays open longer than `max_wait`. One batch
/// runs at a time: events arriving meanwhile open the next window. Tokens are the daemon's
/// (ledger tokens), returned with the batch.
class coalescer {
public:
    using clock = std::chrono::steady_clock;
    struct item {
        std::string event_id;
        std::uint64_t token = 0;
        bus::package_event pkg;
    };
    struct batch {
        std::vector<item> items;
        /// Package name -> the highest version announced for it in this batch: filled by
        /// highest_versions() once the daemon has the versions' order.
        std::map<std::string, std::string> wanted;
        unsigned attempt = 0;  ///< 0 for a fresh batch; raised by the daemon on retries
    };

    coalescer(std::chrono::milliseconds quiet, std::chrono::milliseconds max_wait) : quiet_(quiet), max_wait_(max_wait) {}

    void add(item it, clock::time_point now);
    /// When the open window closes (nullopt: nothing waiting).
    std::optional<clock::time_point> due() const;
    /// The waiting batch if its window closed at `now`.
    std::optional<batch> take(clock::time_point now);
    std::size_t waiting() const noexcept { return items_.size(); }

private:
    std::chrono::milliseconds quiet_, max_wait_;
    std::vector<item> items_;
    clock::time_point first_{}, last_{};
};

/// The pairs whose order highest_versions() needs: each package's announced versions against the
/// first one announced for it (several versions of one package in one batch).
std::vector<std::pair<std::string, std::string>> batch_pairs(const std::vector<coalescer::item>& items);
/// Package name -> the highest version announced for it among `items`, by `order`.
std::map<std::string, std::string> highest_versions(const std::vector<coalescer::item>& items,
                                                    const version_order& order);

// ---- retries ----

struct retry_policy {
    unsigned retries = 5;                        ///< further attempts after the first
    std::chrono::milliseconds initial{2000};
    std::chrono::milliseconds max{60000};
};

/// The wait before attempt `attempt` + 1 (attempt >= 1): initial * 2^(attempt-1), capped at max,
/// jittered to [50 %, 100 %] by `jitter01` in [0, 1]. nullopt once the retries are used up.
std::optional<std::chrono::milliseconds> retry_delay(const retry_policy& p, unsigned attempt, double jitter01);

// ---- apt ----

struct apt_settings {
    std::string apt_get = "/usr/bin/apt-get";
    std::string apt_cache = "/usr/bin/apt-cache";
    std::string sources_list;              ///< empty: the machine's own sources
    std::vector<std::string> options;      ///< `KEY=VALUE`, each given as `-o KEY=VALUE`
    std::string apt_config;                ///< APT_CONFIG for the children; empty: apt's default
    std::chrono::milliseconds lock_timeout{60000};
    std::chrono::milliseconds update_timeout{300000};
};

/// `KEY=VALUE` with a key of letters, digits and `:_-.` and a value without control characters.
bool valid_apt_option(std::string_view o) noexcept;

/// argv of `apt-get update` scoped to the configured sources.
std::vector<std::string> update_argv(const apt_settings& s);
/// argv of `apt-cache policy NAMES...` (names must be valid package names).
std::vector<std::string> policy_argv(const apt_settings& s, const std::vector<std::string>& names);
/// The children's whole environment: PATH, LC_ALL=C (apt's messages are parsed), APT_CONFIG.
std::vector<std::string> apt_env(const apt_settings& s);

enum class update_outcome { ok, lock_busy, failed };
/// Reads apt-get update's exit status and messages: a lock held by another process (apt 2.6's
/// `apt-get update` does not wait for lists/lock whatever DPkg::Lock::Timeout says) is
/// lock_busy; errors and failed fetches ("W: Failed to fetch", "E: ...") are failed.
update_outcome classify_update(int exit_code, std::string_view out, std::string_view err);
/// The first error line of apt's output, for the result event (at most 400 bytes).
std::string first_error(std::string_view out, std::string_view err);

struct policy_entry {
    std::string installed;  ///< empty: (none)
    std::string candidate;  ///< empty: (none)
};
/// Parses `apt-cache policy` output (LC_ALL=C): package name -> installed and candidate versions.
/// Names with an architecture qualifier (`foo:i386`) are kept as printed.
std::map<std::string, policy_entry> parse_policy(std::string_view out);

} // namespace stomp_repo
