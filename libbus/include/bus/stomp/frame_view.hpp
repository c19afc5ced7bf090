#pragma once

#include "bus/stomp/frame.hpp"

#include <optional>
#include <span>
#include <string_view>

namespace bus::stomp {

/// One header of a frame_view: name and decoded value.
struct header_view {
    std::string_view name;
    std::string_view value;
};

/// A parsed frame that owns nothing: the command and the body point into the parser's input
/// (the caller's read buffer), the headers into the parser's reused storage (a value that had
/// to be unescaped, into the parser's reused scratch buffer). Valid until the next `put`,
/// `put_view` or `reset` of the parser, and only while the input bytes are unchanged; take
/// `to_frame()` for a frame that must outlive them. Same order and repeats as `frame`.
struct frame_view {
    std::string_view command;
    std::span<const header_view> headers;
    std::string_view body;

    /// First value of header `name`, if any (the one that counts, per the spec).
    std::optional<std::string_view> find(std::string_view name) const noexcept
    {
        for (const auto& h : headers)
            if (h.name == name) return h.value;
        return std::nullopt;
    }
    std::string_view get(std::string_view name, std::string_view fallback = {}) const noexcept
    {
        auto v = find(name);
        return v ? *v : fallback;
    }
    /// The owning copy.
    frame to_frame() const
    {
        frame f{std::string(command)};
        f.headers.reserve(headers.size());
        for (const auto& h : headers) f.headers.emplace_back(h.name, h.value);
        f.body.assign(body);
        return f;
    }
};

} // namespace bus::stomp
