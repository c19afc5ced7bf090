// libFuzzer target for the STOMP parser (and serializer round trip). Built with
// -DBUS_BUILD_FUZZERS=ON and clang; scripts/test.sh runs it for a bounded time on the seeds in
// tests/fuzz/corpus.
#include "bus/stomp/parser.hpp"
#include "bus/stomp/serializer.hpp"

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

using namespace bus::stomp;

namespace {

// Parses `in` fed in pieces of `chunk` bytes; returns the frames and the final error.
limits fuzz_limits()
{
    limits lim;
    lim.max_frame = 64 * 1024;
    lim.max_body = 32 * 1024;
    lim.max_headers = 32;
    lim.max_line = 1024;
    return lim;
}

// With `views`: the zero-copy way (put_view, the frame copied from view() before its bytes go).
std::vector<frame> parse_all(std::string_view in, std::size_t chunk, version v, std::error_code& final,
                             limits lim = fuzz_limits(), bool views = false)
{
    parser p(lim);
    p.set_version(v);
    std::vector<frame> out;
    std::string buf;
    std::size_t pos = 0;
    final = {};
    for (;;) {
        if (pos < in.size()) {
            std::size_t n = std::min(chunk, in.size() - pos);
            buf.append(in.substr(pos, n));
            pos += n;
        }
        for (;;) {
            std::error_code ec;
            std::size_t used = views ? p.put_view(buf, ec) : p.put(buf, ec);
            if (ec == error::need_more) break;
            if (ec) {
                final = ec;
                return out;
            }
            if (used == 0 || used > buf.size()) std::abort();
            if (p.got() == parser::item::frame) out.push_back(views ? p.view().to_frame() : p.release());
            buf.erase(0, used);
        }
        if (buf.size() > lim.max_frame + lim.max_line + 2) std::abort();  // the limits must hold
        if (pos >= in.size()) return out;
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    if (size == 0) return 0;
    const version v = static_cast<version>(data[0] % 3);
    std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
    std::error_code e1, e2;
    auto whole = parse_all(in, in.size() + 1, v, e1);
    auto bytewise = parse_all(in, 1 + data[0] % 7, v, e2);
    // Any split of the input yields the same frames and the same error, views or not.
    if (whole.size() != bytewise.size() || e1 != e2) std::abort();
    std::error_code e3;
    auto viewed = parse_all(in, 1 + data[0] % 5, v, e3, fuzz_limits(), true);
    if (viewed.size() != whole.size() || e3 != e1) std::abort();
    for (std::size_t i = 0; i < whole.size(); ++i) {
        if (viewed[i].command != whole[i].command || viewed[i].headers != whole[i].headers ||
            viewed[i].body != whole[i].body)
            std::abort();
    }
    for (std::size_t i = 0; i < whole.size(); ++i) {
        const auto& f = whole[i];
        if (f.command != bytewise[i].command || f.headers != bytewise[i].headers || f.body != bytewise[i].body)
            std::abort();
        // What we can serialise parses back to the same frame.
        std::string wire;
        std::error_code se;
        serialize(wire, f, v, se);
        if (se) continue;
        std::error_code re;
        // Default limits: serialising may add a content-length header.
        auto again = parse_all(wire, wire.size(), v, re, limits{});
        if (re || again.size() != 1 || again[0].command != f.command || again[0].body != f.body) std::abort();
    }
    return 0;
}
