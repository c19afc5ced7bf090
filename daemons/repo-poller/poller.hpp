#pragma once

// One poll of one (repository, suite), blocking: conditional GET of dists/<suite>/InRelease,
// signature check with gpgv (bus::runtime::spawn, argv only), the Packages indices that changed
// (hash-checked against the InRelease), and the change decision (poll_logic.hpp). Runs on the
// worker pool. The transfers run in fetch children (fetch_child.hpp), never in the daemon: one
// for the InRelease, and when it changed one more for all the indices to read. It returns the next state without writing it: the daemon persists it only once
// the events it implies are published or spooled, so a crash or a lost broker never skips one.

#include "config.hpp"
#include "poll_logic.hpp"

#include <atomic>
#include <stdexcept>
#include <filesystem>
#include <string>
#include <vector>

namespace repo_poller {

/// The version helper failed for an index (it did not run, timed out or answered nonsense): the
/// poll fails and nothing of it is committed; the next poll (with backoff) reads the index again.
class version_order_error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

struct poll_outcome {
    enum class kind {
        not_modified,   ///< 304: nothing read beyond the InRelease request
        unchanged,      ///< read, no version of interest became newer
        changed,        ///< `changes` holds the newer versions
        baseline,       ///< first poll: state recorded, nothing published
        failed,         ///< transfer, HTTP, format or hash error: retried with backoff
        bad_signature,  ///< refused by gpgv: nothing published, retried with backoff
    } what = kind::failed;
    std::string why;             ///< for failed/bad_signature, free of credentials
    std::vector<change> changes;
    std::string codename;        ///< the InRelease's Codename (else the suite)
    suite_state next;            ///< to persist once the changes are kept (not for failures)
    bool save = false;           ///< `next` differs from the previous state
    bool same_release = false;   ///< unchanged: a 200 with the very bytes acted on last time
    bool version_order_failed = false;  ///< failed because the version helper did
    std::size_t indices_read = 0;
    std::size_t invalid_stanzas = 0;
};

struct poll_context {
    const config* cfg;
    const repository* repo;
    std::string suite;
    std::filesystem::path gnupg_home;  ///< gpgv's --homedir (empty directory of ours)
    std::string self;                  ///< this binary, started as the fetch child
    const std::atomic<bool>* stop;
};

poll_outcome poll_once(const poll_context& ctx, const suite_state& prev);

/// Verifies a clearsigned InRelease with gpgv against `keyring`; the signed text on success.
struct verify_result {
    bool ok = false;
    std::string text;  ///< the signed text (what gpgv vouches for)
    std::string why;   ///< why refused
};
verify_result verify_inrelease(const config& cfg, const std::string& keyring, const std::filesystem::path& home,
                               const std::string& inrelease);

/// The state file at `path`; a fresh (no baseline) state when it does not exist. A parse_error
/// when it cannot be read.
suite_state load_state(const std::filesystem::path& path);
/// Writes durably: a temporary file, fsync, rename over `path`, fsync of the directory.
void save_state(const std::filesystem::path& path, const suite_state& s);

} // namespace repo_poller
