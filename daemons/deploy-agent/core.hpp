#pragma once

// deploy-agent's decisions, pure (no I/O, no Asio): the reservation table of the two-phase
// protocol, release directory names, the state record and its JSON.

#include "deploy/protocol.hpp"

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace deploy_agent {

using sys_clock = std::chrono::system_clock;

/// One repo (or `run:<command>`) held for a job between its vote and its commit.
struct reservation {
    std::string job_id;
    std::string action;
    deploy::request_args args;
    sys_clock::time_point until;
    bool running = false;  ///< the commit is being carried out
};

/// What a vote or commit may do with a key.
class reservations {
public:
    enum class vote_result { ready, busy };
    /// Reserves `key` for `job` until `until` unless another live job holds it. Voting again for
    /// the same job renews it.
    vote_result vote(const std::string& key, const std::string& job, const std::string& action,
                     const deploy::request_args& args, sys_clock::time_point until, sys_clock::time_point now);
    /// For a commit: nullopt when `job` holds `key` (and marks it running); otherwise why not.
    std::optional<std::string> begin(const std::string& key, const std::string& job, const std::string& action,
                                     const deploy::request_args& args, sys_clock::time_point now);
    /// The commit ended: the key is free again.
    void end(const std::string& key, const std::string& job);
    /// `release` phase: drops `job`'s reservations that are not running.
    void release(const std::string& job);
    bool busy(const std::string& key, sys_clock::time_point now) const;
    std::size_t size() const noexcept { return held_.size(); }

private:
    void expire(sys_clock::time_point now);
    std::map<std::string, reservation> held_;
};

/// The reservation key of a request: the repo, or `run:<command>`.
std::string reservation_key(const deploy::request& r);

/// A release directory name: `<UTC stamp>-<tag>` with `%` and `/` percent-encoded, so that
/// distinct tags never share a name and nothing nests (`20261204T100001Z-release%2F1`).
std::string release_name(sys_clock::time_point t, std::string_view tag);

/// One deployed release.
struct release_record {
    std::string tag;
    std::string commit;
    std::string release;  ///< absolute path
    std::string time;
    std::string by;
    std::string request_id;
    bool operator==(const release_record&) const = default;
};

/// A repo's state file: releases, oldest first; the last is live.
struct repo_record {
    std::string repo;
    std::vector<release_record> releases;
    const release_record* live() const { return releases.empty() ? nullptr : &releases.back(); }
    const release_record* previous() const
    {
        return releases.size() < 2 ? nullptr : &releases[releases.size() - 2];
    }
    bool operator==(const repo_record&) const = default;
};

nlohmann::json to_json(const repo_record& r);
/// Tolerant of a damaged file: nullopt with `error`.
std::optional<repo_record> repo_record_from_json(std::string_view text, std::string& error);
/// The `state` action's reply data.
nlohmann::json state_data(const repo_record& r);

/// Records a new live release and returns the paths of releases beyond `keep` (oldest first) to
/// remove; the live and previous releases are never among them.
std::vector<std::string> push_release(repo_record& r, release_record rel, int keep);

/// For commands: a configured `env` entry is `NAME=value` with a portable name.
bool valid_env_entry(std::string_view e) noexcept;

} // namespace deploy_agent
