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
// Three rows over a real socket, what a connection does: a thread writes the file again and again
// into a loopback TCP connection, the reader gets it with read(2) — the kernel's copy is the one
// copy into the read buffer — through `bus::stomp_stream` itself: `stream` is
// `stomp_stream::read_view` (frames as views of the read buffer: the client's reader), and
// `stream-owning` is `stomp_stream::read` (an owning frame per message: the broker's reader);
// `read+memchr` is read(2) of 64 KiB into one buffer and a memchr NUL count (the limit for any
// parser fed by a socket).
//
//   codec_bench FILE [--chunk N] [--only ROW]   feed N-byte reads (default 65536, what the client
//                                               asks for per read); --only: time just that row
//                                               (for perf record)
#include "bus/stomp/parser.hpp"
#include "bus/stomp_stream.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <exception>
#include <thread>

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

// A loopback TCP connection whose far end a thread fills with `data`, over and over, until the
// feed goes away. `fd` is the reading end.
struct socket_feed {
    int fd = -1;
    int wfd = -1;
    std::atomic<bool> stop{false};
    std::thread writer;

    explicit socket_feed(const std::string& data)
    {
        int l = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (l < 0 || ::bind(l, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(l, 1) != 0 ||
            ::getsockname(l, reinterpret_cast<sockaddr*>(&a), &len) != 0)
            fail("listen");
        wfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (wfd < 0 || ::connect(wfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) fail("connect");
        fd = ::accept4(l, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) fail("accept");
        ::close(l);
        writer = std::thread([this, &data] {
            while (!stop.load(std::memory_order_relaxed)) {
                std::size_t off = 0;
                while (off < data.size()) {
                    ssize_t n = ::send(wfd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
                    if (n <= 0) return;
                    off += static_cast<std::size_t>(n);
                }
            }
        });
    }
    ~socket_feed()
    {
        stop = true;
        // The writer may be blocked in send: closing the reading end with bytes unread resets
        // the connection, and shutting down the writing end wakes the send; either ends it.
        if (fd >= 0) ::close(fd);
        ::shutdown(wfd, SHUT_RDWR);
        writer.join();
        ::close(wfd);
    }
    [[noreturn]] static void fail(const char* what)
    {
        std::perror(what);
        std::exit(1);
    }
};

// The reader's fd handed to a stomp_stream (which then owns it).
struct stream_reader {
    boost::asio::io_context io;
    std::unique_ptr<bus::stomp_stream> st;

    explicit stream_reader(socket_feed& feed)
    {
        boost::asio::ip::tcp::socket s(io);
        s.assign(boost::asio::ip::tcp::v4(), feed.fd);
        feed.fd = -1;
        st = std::make_unique<bus::stomp_stream>(std::move(s), bus::stomp::limits{}, 1 << 20);
        st->set_read_size(65536);  // what the client asks for per read
    }
    ~stream_reader() { st->close(); }

    // Reads `frames` frames; returns how many had a command (all of them).
    template <bool Owning>
    std::size_t pass(std::size_t frames)
    {
        std::size_t seen = 0;
        std::exception_ptr error;
        boost::asio::co_spawn(
            io,
            [&]() -> boost::asio::awaitable<void> {
                for (std::size_t i = 0; i < frames;) {
                    if constexpr (Owning) {
                        bus::stomp_stream::item it = co_await st->read();
                        if (it.heartbeat) continue;
                        seen += !it.frame.command.empty();
                    } else {
                        bus::stomp_stream::view_item it = co_await st->read_view();
                        if (it.heartbeat) continue;
                        seen += !it.frame.command.empty();
                    }
                    ++i;
                }
            },
            [&](std::exception_ptr e) { error = e; });
        io.restart();
        io.run();
        if (error) std::rethrow_exception(error);
        return seen;
    }
};

// read(2) of 64 KiB reads into one buffer and a memchr count of the NULs: `frames` of them.
std::size_t read_pass(int fd, std::string& buf, std::size_t frames)
{
    std::size_t seen = 0;
    while (seen < frames) {
        ssize_t n = ::read(fd, buf.data(), buf.size());
        if (n <= 0) socket_feed::fail("read");
        const char* p = buf.data();
        const char* end = p + n;
        while (const void* nul = std::memchr(p, '\0', static_cast<std::size_t>(end - p))) {
            ++seen;
            p = static_cast<const char*>(nul) + 1;
        }
    }
    return seen;
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
    // The socket rows: the frames in one copy of the file, read again and again.
    const std::size_t per_pass = memchr_pass(data);
    std::size_t streamed = 0, streamed_owning = 0, socket_nuls = 0;
    double ss = 0, sos = 0, rs = 0, sa = 0, soa = 0;
    auto socket_allocs = [&](auto pass) {
        std::size_t before = g_allocs;
        std::size_t n = pass();
        return n ? static_cast<double>(g_allocs - before) / static_cast<double>(n) : 0.0;
    };
    if (wanted("stream")) {
        socket_feed feed(data);
        stream_reader r(feed);
        ss = best_seconds([&] { return r.pass<false>(per_pass); }, streamed);
        sa = socket_allocs([&] { return r.pass<false>(per_pass); });
    }
    if (wanted("stream-owning")) {
        socket_feed feed(data);
        stream_reader r(feed);
        sos = best_seconds([&] { return r.pass<true>(per_pass); }, streamed_owning);
        soa = socket_allocs([&] { return r.pass<true>(per_pass); });
    }
    if (wanted("read+memchr")) {
        socket_feed feed(data);
        std::string rbuf(65536, '\0');
        // A read may end inside a frame: count NULs, so a pass is `per_pass` NULs, not aligned.
        rs = best_seconds([&] { return read_pass(feed.fd, rbuf, per_pass); }, socket_nuls);
    }
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
    line("stream", streamed, ss, sa);
    line("stream-owning", streamed_owning, sos, soa);
    line("read+memchr", socket_nuls, rs, 0.0);
    return 0;
}
