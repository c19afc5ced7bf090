#pragma once

#include <system_error>

namespace bus {

/// Outcomes of client operations (category "bus").
enum class errc {
    /// No RECEIPT arrived before the publish deadline. The broker may still have the message:
    /// delivery is at-least-once, and consumers dedupe by event id.
    receipt_timeout = 1,
    /// The broker answered with an ERROR frame naming this operation's receipt.
    broker_error,
    /// The client was stopped before the operation finished.
    stopped,
    /// Too many publishes are waiting for receipts (`client_options::max_pending`).
    too_many_pending,
    /// A header cannot be carried on this connection's protocol version.
    unencodable,
    /// The reconnect policy's `maxReconnectAttempts` was reached.
    attempts_exhausted,
    /// Could not connect before the deadline.
    not_connected,
};

const std::error_category& bus_category() noexcept;

inline std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), bus_category()}; }

} // namespace bus

template <>
struct std::is_error_code_enum<bus::errc> : std::true_type {};
