#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bus::stomp {

/// Protocol version of a connection; decides header escaping.
enum class version { v1_0, v1_1, v1_2 };

/// "1.0", "1.1" or "1.2".
std::string_view to_string(version v) noexcept;
/// Parses "1.0", "1.1" or "1.2".
std::optional<version> parse_version(std::string_view s) noexcept;

/// One STOMP frame with decoded header values.
///
/// Headers keep wire order and repeats. Per the spec the first occurrence of a repeated header
/// is the one that counts; `find` returns it.
struct frame {
    std::string command;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;

    frame() = default;
    explicit frame(std::string cmd) : command(std::move(cmd)) {}

    /// First value of header `name`, if any.
    std::optional<std::string_view> find(std::string_view name) const noexcept;
    /// First value of `name`, or `fallback`.
    std::string_view get(std::string_view name, std::string_view fallback = {}) const noexcept;
    /// Replaces the first value of `name` (removing repeats) or appends it.
    frame& set(std::string_view name, std::string_view value);
    /// Appends a header, keeping any earlier one with the same name.
    frame& add(std::string_view name, std::string_view value);
    /// Removes every header called `name`.
    void erase(std::string_view name);
};

/// True for a SEND/MESSAGE whose body is exactly one newline: the original's firewall
/// keepalive, which every consumer ignores.
bool is_legacy_keepalive(const frame& f) noexcept;

} // namespace bus::stomp
