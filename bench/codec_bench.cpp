// Parse throughput of the libbus STOMP codec on a file of concatenated frames (the same file the
// stomp.py and ruby-stomp parser benches read), beside a plain memchr scan for the NULs of the
// same bytes — the practical upper bound. Prints JSON lines; MB = 10^6 bytes.
// Two libbus rows: `libbus` parses into views of the read buffer (parser::put_view, what the hot
// paths use), `libbus-owning` builds the owning frame per message (parser::put + release).
// `allocs_per_frame`: heap allocations (global operator new) per frame in steady state, i.e. a
// pass over the file with the parser and read buffer of an earlier pass.
// Two rows that say where the time of the `libbus` row goes: `libbus-inplace` parses the file's
// bytes where they lie (the parser alone: no read-buffer copy), `copy+memchr` is the read-buffer
// feeding of the `libbus` row (the same appends and chunking) with a memchr NUL count instead of
// the parser (the limit for any parser fed through a read buffer).
//
//   codec_bench FILE [--chunk N] [--only ROW]   feed N-byte reads (default 65536, what the client
//                                               reads); --only: time just that row (for perf record)
#include "bus/stomp/parser.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <new>
#include <string>

// Counts every heap allocation of the process (the parser's and the read buffer's).
static std::size_t g_allocs = 0;
void* operator new(std::size_t n)
{
    ++g_allocs;
    if (void* p = std::malloc(n ? n : 1)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

using clock_type = std::chrono::steady_clock;

// Feeds `data` in `chunk`-byte reads exactly like the client's read loop; returns frames seen.
// Parser and buffer persist across passes (as on a connection), so later passes show the
// steady state.
struct harness {
    bus::stomp::parser p;
    std::string buf;
};

[[noreturn]] void parse_failed(const std::error_code& ec)
{
    std::fprintf(stderr, "codec_bench: parse error: %s\n", ec.message().c_str());
    std::exit(1);
}

template <bool Owning>
std::size_t parse_pass(harness& h, const std::string& data, std::size_t chunk)
{
    auto& p = h.p;
    auto& buf = h.buf;
    std::size_t start = 0, frames = 0, pos = 0;
    buf.clear();
    while (pos < data.size()) {
        std::size_t n = std::min(chunk, data.size() - pos);
        buf.append(data, pos, n);
        pos += n;
        for (;;) {
            std::error_code ec;
            std::string_view in = std::string_view(buf).substr(start);
            std::size_t used = Owning ? p.put(in, ec) : p.put_view(in, ec);
            if (ec == bus::stomp::error::need_more) break;
            if (ec) parse_failed(ec);
            start += used;
            if (p.got() == bus::stomp::parser::item::frame) {
                if constexpr (Owning) {
                    auto f = p.release();
                    frames += !f.command.empty();
                } else {
                    auto v = p.view();
                    frames += !v.command.empty() && v.body.size() < data.size();
                }
            }
        }
        if (start == buf.size()) {
            buf.clear();
            start = 0;
        } else if (start > 65536) {
            buf.erase(0, start);
            start = 0;
        }
    }
    return frames;
}

// The parser alone over bytes that are already in one buffer.
std::size_t inplace_pass(bus::stomp::parser& p, const std::string& data)
{
    std::string_view all(data);
    std::size_t start = 0, frames = 0;
    while (start < all.size()) {
        std::error_code ec;
        std::size_t used = p.put_view(all.substr(start), ec);
        if (ec == bus::stomp::error::need_more) break;
        if (ec) parse_failed(ec);
        start += used;
        if (p.got() == bus::stomp::parser::item::frame) {
            auto v = p.view();
            frames += !v.command.empty() && v.body.size() < data.size();
        }
    }
    return frames;
}

// parse_pass's read-buffer feeding with a memchr count of the NULs in place of the parser.
std::size_t copy_pass(std::string& buf, const std::string& data, std::size_t chunk)
{
    std::size_t frames = 0, pos = 0;
    buf.clear();
    while (pos < data.size()) {
        std::size_t n = std::min(chunk, data.size() - pos);
        buf.append(data, pos, n);
        pos += n;
        const char* p = buf.data();
        const char* end = p + buf.size();
        while (const void* nul = std::memchr(p, '\0', static_cast<std::size_t>(end - p))) {
            ++frames;
            p = static_cast<const char*>(nul) + 1;
        }
        buf.clear();
    }
    return frames;
}

std::size_t memchr_pass(const std::string& data)
{
    std::size_t count = 0;
    const char* p = data.data();
    const char* end = p + data.size();
    while (p < end) {
        const void* nul = std::memchr(p, '\0', static_cast<std::size_t>(end - p));
        if (!nul) break;
        ++count;
        p = static_cast<const char*>(nul) + 1;
    }
    return count;
}

template <class F>
double best_seconds(F f, std::size_t& result)
{
    double best = 1e9;
    // Repeat for at least ~0.5 s in total, keep the best pass (least disturbed by neighbours).
    auto deadline = clock_type::now() + std::chrono::milliseconds(500);
    int runs = 0;
    while (runs < 3 || clock_type::now() < deadline) {
        auto t0 = clock_type::now();
        result = f();
        double s = std::chrono::duration<double>(clock_type::now() - t0).count();
        best = std::min(best, s);
        if (++runs > 1000) break;
    }
    return best;
}

} // namespace

int main(int argc, char** argv)
{
    if (argc < 2) {
        std::fprintf(stderr, "usage: codec_bench FILE [--chunk N]\n");
        return 2;
    }
    std::size_t chunk = 65536;
    std::string only;
    for (int i = 2; i + 1 < argc; i += 2) {
        if (std::strcmp(argv[i], "--chunk") == 0) chunk = std::stoul(argv[i + 1]);
        else if (std::strcmp(argv[i], "--only") == 0) only = argv[i + 1];
    }
    std::ifstream in(argv[1], std::ios::binary);
    std::string data((std::istreambuf_iterator<char>(in)), {});
    if (data.empty()) {
        std::fprintf(stderr, "codec_bench: cannot read %s\n", argv[1]);
        return 2;
    }
    std::size_t frames = 0, owned = 0, nuls = 0, inplace = 0, copied = 0;
    harness hv, ho;
    hv.buf.reserve(2 * chunk + 65536);
    ho.buf.reserve(2 * chunk + 65536);
    bus::stomp::parser pi;
    std::string cbuf;
    cbuf.reserve(2 * chunk + 65536);
    auto wanted = [&](const char* row) { return only.empty() || only == row; };
    double ps = 0, os = 0, ms = 0, is = 0, cs = 0;
    if (wanted("libbus")) ps = best_seconds([&] { return parse_pass<false>(hv, data, chunk); }, frames);
    if (wanted("libbus-owning")) os = best_seconds([&] { return parse_pass<true>(ho, data, chunk); }, owned);
    if (wanted("memchr")) ms = best_seconds([&] { return memchr_pass(data); }, nuls);
    if (wanted("libbus-inplace")) is = best_seconds([&] { return inplace_pass(pi, data); }, inplace);
    if (wanted("copy+memchr")) cs = best_seconds([&] { return copy_pass(cbuf, data, chunk); }, copied);
    auto allocs = [&](auto pass) {
        std::size_t before = g_allocs;
        std::size_t n = pass();
        return n ? static_cast<double>(g_allocs - before) / static_cast<double>(n) : 0.0;
    };
    auto line = [&](const char* name, std::size_t n, double s, double a) {
        if (!wanted(name)) return;
        std::printf("{\"parser\":\"%s\",\"bytes\":%zu,\"frames\":%zu,\"seconds\":%.6f,\"mb_per_s\":%.2f,"
                    "\"frames_per_s\":%.1f,\"allocs_per_frame\":%.3f}\n",
                    name, data.size(), n, s, data.size() / s / 1e6, n / s, a);
    };
    line("libbus", frames, ps, wanted("libbus") ? allocs([&] { return parse_pass<false>(hv, data, chunk); }) : 0);
    line("libbus-owning", owned, os, wanted("libbus-owning") ? allocs([&] { return parse_pass<true>(ho, data, chunk); }) : 0);
    line("memchr", nuls, ms, 0.0);
    line("libbus-inplace", inplace, is, wanted("libbus-inplace") ? allocs([&] { return inplace_pass(pi, data); }) : 0);
    line("copy+memchr", copied, cs, 0.0);
    return 0;
}
