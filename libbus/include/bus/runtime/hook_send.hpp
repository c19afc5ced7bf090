#pragma once

// hook_send(): the producer shell every hook shares (stomp-post-receive's, svn-stomp's,
// reprepro-stomp's): sign the frames when a signing key is configured, publish them with
// receipts within a small budget, spool whatever the broker did not take in the outbox (delivered
// by the next call or `stompctl drain`), and never throw: the hook's caller has already done its
// work and must not be failed by the bus.

#include "bus/config.hpp"
#include "bus/stomp/frame.hpp"

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <string>
#include <vector>

namespace bus::runtime {

struct hook_send_result {
    std::size_t published = 0;  ///< receipted
    std::size_t spooled = 0;    ///< in the outbox, delivered later
    std::filesystem::path spool_dir;
    std::string error;          ///< non-empty: the frames were neither taken nor spooled
    bool kept() const noexcept { return error.empty(); }
};

/// `default_spool`: the outbox when `spool-dir` is not configured. `debug`: the client's log on
/// stderr (else nothing is logged; the caller reports the result).
hook_send_result hook_send(const bus_config& cfg, const std::filesystem::path& default_spool,
                           std::vector<stomp::frame> frames, std::chrono::milliseconds budget, bool debug);

} // namespace bus::runtime
