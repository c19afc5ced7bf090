#pragma once

// repo-poller's pure logic (no sockets, no Asio, no child processes): reading a Debian
// repository's InRelease (the clearsigned wrapper included) and Packages indices, checking an
// index against the SHA256 the InRelease names, deciding which versions are real changes against
// the persisted state, and the poll schedule. The daemon (daemon.cpp) does the I/O around it.
//
// Formats: Debian's repository format (https://wiki.debian.org/DebianRepository/Format), deb822
// paragraphs; version order is libapt-pkg's (debVS.CmpVersion), as apt itself orders them, given
// as a deploykit::version_order: the ranks stomp-repo-vercmp answered for one index's versions
// (version_helper.hpp; one helper run per changed index, poller.cpp), so this process never maps
// libapt-pkg.

#include "version_helper.hpp"

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace repo_poller {

using deploykit::version_order;

/// Input that is not what the format says (a broken InRelease, a truncated index, a hash that
/// does not match): the poll fails, nothing changes, it is retried with backoff.
class parse_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// One file an InRelease lists in its SHA256 field.
struct index_file {
    std::string path;  ///< relative to dists/<suite>/: "main/binary-amd64/Packages.xz"
    std::string sha256;
    std::uint64_t size = 0;
};

/// What repo-poller reads of an InRelease.
struct release_info {
    std::string origin, label, suite, codename, date;
    std::vector<std::string> components;
    std::vector<std::string> architectures;
    std::map<std::string, index_file, std::less<>> sha256;  ///< by path
};

/// True when `in` begins with the OpenPGP clearsigned-message header.
bool is_clearsigned(std::string_view in) noexcept;

/// The signed text of a clearsigned message (RFC 4880 §7: header lines skipped, dash-escapes
/// removed, the line ending before the signature not part of the text), each line ending in
/// '\n'. Input that is not clearsigned comes back unchanged. A malformed wrapper (no blank line
/// after the headers, no signature block, text after the signature) is a parse_error.
std::string strip_clearsign(std::string_view in);

/// Parses the Release paragraph (the output of strip_clearsign, or a plain Release file).
/// Requires a SHA256 field (repositories signed with MD5/SHA1 only are refused).
release_info parse_release(std::string_view text);

/// One binary package stanza of a Packages index (only what repo-poller needs).
struct binary_package {
    std::string name, version, architecture, filename;
};

struct packages_parse {
    std::vector<binary_package> packages;
    std::size_t invalid = 0;  ///< stanzas skipped: no Package/Version, or names a command line must not see
};

/// Parses a Packages index: paragraphs separated by blank lines, continuation lines skipped. At
/// most `max_packages` stanzas are kept (more is a parse_error: the index is bounded).
packages_parse parse_packages(std::string_view text, std::size_t max_packages = 2'000'000);

/// Lower-case hex SHA-256 of `data`.
std::string sha256_hex(std::string_view data);

enum class compression { none, gzip, xz };

/// The index to download for `component`/`arch`, preferring Packages.xz, then .gz, then the
/// uncompressed file, as listed in the InRelease's SHA256 field; nullopt when it lists none.
struct chosen_index {
    index_file file;
    compression comp = compression::none;
};
std::optional<chosen_index> choose_index(const release_info& r, std::string_view component, std::string_view arch);

/// Decompresses `data`; output above `max_out` bytes, or corrupt/truncated input, is a
/// parse_error (a decompression bomb never takes more than `max_out`).
std::string decompress(std::string_view data, compression c, std::size_t max_out);

/// Names Debian allows for packages (policy 5.6.1): [a-z0-9][a-z0-9+.-]+, at most 200 bytes.
bool valid_package_name(std::string_view s) noexcept;
/// Version strings Debian allows (policy 5.6.12 characters): [A-Za-z0-9.+~:-], starting with a
/// digit, at most 200 bytes.
bool valid_version(std::string_view s) noexcept;
/// Suite, component and architecture names that may form a URL path: [A-Za-z0-9._+-] segments
/// separated by '/', no empty, "." or ".." segment, at most 100 bytes.
bool valid_dist_name(std::string_view s) noexcept;

/// Whether `name` is of interest: `patterns` empty = every package; else any fnmatch(3) glob
/// (`*`, `?`, `[...]`) or exact name matches.
bool name_matches(const std::vector<std::string>& patterns, std::string_view name);

/// What one (repository, suite) remembers between polls; persisted as JSON in state-dir.
struct suite_state {
    std::string etag;           ///< of the last InRelease acted on
    std::string last_modified;  ///< of the last InRelease acted on
    std::string release_sha256; ///< of the last InRelease acted on (a 200 with the same bytes is not a change)
    std::map<std::string, std::string> index_hashes;  ///< "component/arch" -> sha256 of the index read
    std::map<std::string, std::string> versions;      ///< "component/arch/name" -> newest version seen
    bool baseline = false;      ///< a first poll has been recorded
    std::string interest;       ///< the `packages` patterns the versions were recorded for
};

std::string serialize_state(const suite_state& s);
/// A parse_error when it is not a state file this version wrote.
suite_state parse_state(std::string_view text);

/// The state file's name for a (repository URL, suite): 32 hex digits of their SHA-256 (the
/// mapping is injective in practice and never reaches outside state-dir), plus ".json".
std::string state_file_name(std::string_view url, std::string_view suite);

/// A version that became newer than the one remembered (or a package that appeared).
struct change {
    std::string component, architecture, name, old_version, new_version, filename;
    bool operator==(const change&) const = default;
};

/// The distinct versions that deciding one index needs ordered, in first-seen order (the
/// helper's input): those of the packages of interest in `pkgs`, and those `versions` remembers
/// for `component`/`arch`. One helper run per changed index orders them all.
std::vector<std::string> versions_to_order(const std::vector<binary_package>& pkgs, const std::vector<std::string>& patterns,
                                           const std::map<std::string, std::string>& versions, std::string_view component,
                                           std::string_view arch);

/// The newest version of every package of interest in one index; `order` ranks every version of
/// interest (versions_to_order).
std::map<std::string, binary_package> newest_of_interest(const std::vector<binary_package>& pkgs,
                                                         const std::vector<std::string>& patterns,
                                                         const version_order& order);

/// Replaces what `versions` holds for `component`/`arch` with `current` and returns the real
/// changes: a version newer than the remembered one, or a package not remembered before. When
/// `baseline` is false (the first poll), nothing is a change: the state is only recorded.
/// Removals and downgrades update the state quietly. `order` ranks the current and remembered
/// versions (versions_to_order); without `baseline` nothing is compared. A remembered string the
/// order does not know (not a valid version, never sent to the helper) counts as older.
std::vector<change> apply_index(std::map<std::string, std::string>& versions, std::string_view component,
                                std::string_view arch, const std::map<std::string, binary_package>& current,
                                bool baseline, const version_order& order);

/// When to poll next: after a success, `interval` plus up to `jitter` (r in [0,1)); after
/// `failures` consecutive failures, exponential backoff from `retry_initial` doubling up to
/// `retry_max`, of which the second half is jittered by r.
struct schedule {
    std::chrono::milliseconds interval{300'000};
    std::chrono::milliseconds jitter{30'000};
    std::chrono::milliseconds retry_initial{5'000};
    std::chrono::milliseconds retry_max{900'000};
};
std::chrono::milliseconds next_delay(const schedule& s, unsigned failures, double r);

/// The Last-Modified to send as If-Modified-Since next time: none when the server sent no ETag and
/// the file was modified in the very second it was served (`last_modified` == `date`, both HTTP
/// dates with one-second resolution) — a second change within that second would otherwise be
/// answered 304 until the next one. The next poll then fetches it whole and compares its SHA-256.
std::string validator_to_keep(const std::string& etag, const std::string& last_modified, const std::string& date);

/// `url` without credentials (`https://user:pw@host/x` -> `https://host/x`): what logs show.
std::string redact_url(std::string_view url);

} // namespace repo_poller
