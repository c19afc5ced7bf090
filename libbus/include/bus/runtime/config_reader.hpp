#pragma once

// One YAML config reader for every daemon and hook (no Asio, no yaml-cpp in this header).
//
//   auto file = bus::runtime::config_file::load(path, [&](std::string_view n) { log.info("{}", n); });
//   auto root = file.root();
//   auto url  = root.str("jenkins-url");                  // std::optional<std::string>
//   auto n    = root.integer("retries", 8, 0, 1000);
//   for (auto& e : root.sections("repo-list")) e.str("mode");   // key path: repo-list[2].mode
//   root.ignored({"daemonize"}, "the original's setting; use --daemonize");
//   file.finish();   // unknown keys: "file:LINE: repo-lst: unknown setting; did you mean `repo-list`?"
//
// Every error is a config_error (exit status 2) whose message names the file, the line, the key
// path (nested keys included) and what was expected. Keys may be spelled with '-' or '_' (the
// daemon asks for one; the other is an accepted alias, so the broker's underscore keys stay valid
// and the original's `ignore_refs` may be written either way).

#include "bus/url.hpp"  // bus::config_error

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace YAML {
class Node;
}

namespace bus::runtime {

/// A configuration that cannot be used. exit_status() is what the process exits with (2, as
/// for a usage error). Derives from bus::config_error so existing handlers catch it.
class config_error : public bus::config_error {
public:
    using bus::config_error::config_error;
    static constexpr int exit_status = 2;
};

/// Receives notices (settings accepted but ignored, aliases used); typically logs them.
using notice_fn = std::function<void(std::string_view)>;

struct reader_state;  // shared by every section of one file (the known-key bookkeeping)

/// One map of a config file, with its key path ("" for the top level, "repo-list[2]" ...).
/// Each getter marks its key as known; finish() on the file reports every key no getter asked
/// for. Missing or null values give the default.
class section {
public:
    /// The key path of this map ("" at the top level).
    const std::string& path() const noexcept { return path_; }
    /// `path.key` (or `key` at the top level): how messages name a key.
    std::string key_path(std::string_view key) const;
    /// `file:LINE: path.key` for a key (its value's line, or this map's line when absent).
    std::string where(std::string_view key) const;
    /// Throws config_error("file:LINE: path.key: " + what).
    [[noreturn]] void fail(std::string_view key, std::string_view what) const;

    bool has(std::string_view key) const;   ///< present (also when null); marks it known
    std::optional<std::string> str(std::string_view key) const;  ///< a scalar
    std::string str(std::string_view key, std::string dflt) const;
    /// A scalar that must be there. Missing: "file: key: missing", naming a misspelt key of this
    /// map that is nearest to it ("; `jenkins-ulr` on line 3 looks like a typo of it").
    std::string required(std::string_view key) const;
    /// A whole number within [min, max].
    std::int64_t integer(std::string_view key, std::int64_t dflt, std::int64_t min, std::int64_t max) const;
    /// A number (fractions allowed) within [min, max].
    double number(std::string_view key, double dflt, double min, double max) const;
    bool flag(std::string_view key, bool dflt) const;  ///< true/false/yes/no/on/off
    /// A duration: a bare number counts in `unit`; or with a suffix ms, s, m, h ("30s", "500ms").
    /// Within [min, max].
    std::chrono::milliseconds duration(std::string_view key, std::chrono::milliseconds dflt, std::chrono::milliseconds min,
                                       std::chrono::milliseconds max,
                                       std::chrono::milliseconds unit = std::chrono::seconds(1)) const;
    /// A list of scalars (a single scalar counts as a one-entry list).
    std::vector<std::string> list(std::string_view key) const;
    /// A map of scalar → scalar, in file order.
    std::vector<std::pair<std::string, std::string>> string_map(std::string_view key) const;
    /// A nested map (its keys are checked by finish() too). nullopt when absent or null.
    std::optional<section> sub(std::string_view key) const;
    /// A list of maps; entry i has path `key[i]`.
    std::vector<section> sections(std::string_view key) const;
    /// A map whose keys are names chosen by the user (repositories, hooks): every key is
    /// accepted; each value that is a map comes back as a section with path `key.name`.
    /// Values that are not maps: `kind(name)` tells.
    std::vector<std::pair<std::string, section>> named(std::string_view key) const;

    /// What kind of value a key has: absent, null, scalar, list, map.
    enum class kind { absent, null, scalar, list, map };
    kind kind_of(std::string_view key) const;
    /// Keys of this map, in file order (marks nothing).
    std::vector<std::string> keys() const;

    /// Marks keys as known without reading them here (read by other code, e.g.
    /// read_bus_config, which takes the raw node).
    void known(std::initializer_list<std::string_view> keys) const;
    void known(const std::vector<std::string>& keys) const;
    /// Keys the original used that we do not need: accepted, with a notice naming `why`.
    void ignored(std::initializer_list<std::string_view> keys, std::string_view why) const;
    /// Accept every key of this map (maps of names); finish() does not check it.
    void any_keys() const;

    /// The raw yaml-cpp node (bus/runtime/config_yaml.hpp has the definition).
    const YAML::Node& node() const;

    section(std::shared_ptr<reader_state> st, std::shared_ptr<const YAML::Node> node, std::string path);

private:
    // The node of `key` (or its alias spelling), marking it known; null handle when absent.
    std::shared_ptr<const YAML::Node> find(std::string_view key) const;
    std::shared_ptr<reader_state> st_;
    std::shared_ptr<const YAML::Node> node_;
    std::string path_;
    std::size_t id_ = 0;
};

/// A loaded file.
class config_file {
public:
    /// Loads and parses `path`: a missing file, a syntax error or a top level that is not a map
    /// is a config_error naming the file (and line). `notice` receives notices (may be empty).
    static config_file load(const std::filesystem::path& path, notice_fn notice = {});
    /// From text (tests, stdin); `name` is used in messages.
    static config_file parse(std::string_view text, std::string name, notice_fn notice = {});

    section root() const;
    const std::string& file() const noexcept;
    /// Reports the first key no getter asked for (in file order) as a config_error:
    /// "file:LINE: key.path: unknown setting; did you mean `nearest`?".
    void finish() const;
    /// Every unknown key's message, in file order (empty when none): for tools that list all.
    std::vector<std::string> unknown_keys() const;
    /// Top-level keys whose value differs between this file and `newer` (added, removed or
    /// changed; aliases count as the same key), in `newer`'s order then removed ones. For SIGHUP:
    /// the daemon logs those it cannot apply without a restart. Names only, never values.
    std::vector<std::string> changed_keys(const config_file& newer) const;

private:
    explicit config_file(std::shared_ptr<reader_state> st);
    std::shared_ptr<reader_state> st_;
};

/// The known key nearest to `key` by edit distance (Damerau–Levenshtein, '-' and '_' equal),
/// when close enough to be a plausible typo; empty otherwise.
std::string nearest_key(std::string_view key, const std::vector<std::string>& known);

/// The top-level keys bus::read_bus_config reads (rserver, stomp-options, passcode-file, ...):
/// mark them known in a daemon that calls it.
const std::vector<std::string>& bus_config_keys();

/// Reads a secret (password, token, key) with OpenSSH's policy for private keys: the path (after
/// symlinks) must be a regular file, not readable or writable by group or others, owned by the
/// effective user or root. Trailing newlines are dropped. Errors name `what` (e.g. the config
/// key's where()) and the path, and carry the errno text ("cannot read /x: Permission denied").
std::string read_secret_file(const std::string& path, std::string_view what = {});

/// For SIGHUP: the top-level keys that changed between the running file and the fresh one and
/// that a reload does not apply (`applied(key)` false), to be logged as needing a restart.
std::vector<std::string> restart_needed(const std::optional<config_file>& running,
                                        const std::optional<config_file>& fresh,
                                        const std::function<bool(const std::string&)>& applied);

} // namespace bus::runtime
