#pragma once

// The `deploy` CLI's I/O shell: its config, its command line, and the bus session that runs one
// command (discovery, votes, commits, health gate, job events). The decisions are core.hpp's.
// deploy_lib: the CLI and herald's deploy page both run their commands through run_session().

#include "options.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace spdlog {
class logger;
}

namespace deploy::cli {

/// Runs one command on the bus; returns the exit status (core.hpp's exit_*).
int run_command(const config& cfg, const command& cmd);

/// Where a session's output goes. Every callback runs on the session's executor.
struct session_sinks {
    std::ostream* out = nullptr;     ///< progress lines (null: dropped)
    std::ostream* err = nullptr;     ///< errors
    std::ostream* result = nullptr;  ///< the command's answer as the CLI prints it (table or JSON)
    /// After each job transition (before the deploy.job event is published): the job as
    /// `--json` prints it (job event, action, nodes_detail with each node's stages).
    std::function<void(const nlohmann::json&)> on_job;
    /// The command's answer as JSON: a rollout's final job, or tags/state per node with
    /// "discovered" (what each selected node's ping said: facts, classes, repos).
    std::function<void(const nlohmann::json&)> on_result;
};

/// One command to run; owned by the caller through a shared_ptr for the session's whole life.
struct session_request {
    config cfg;  ///< cfg.bus.signing signs every request; cfg.caller names the requester
    command cmd;
    session_sinks sinks;
    /// Set while the session runs: stop after the current batch (the CLI's first Ctrl-C).
    std::function<void()> interrupt;
};

/// Runs `req` on `ex` with its own bus connection (a private reply topic, the agent topic),
/// and returns the exit status. Blocking work (the health gate) runs on a worker thread of its
/// own; nothing blocks `ex`.
boost::asio::awaitable<int> run_session(boost::asio::any_io_executor ex, std::shared_ptr<session_request> req,
                                        spdlog::logger& log);

} // namespace deploy::cli
