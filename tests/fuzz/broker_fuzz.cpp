// libFuzzer target for the broker side: parsed frames from the input drive a broker_core with
// three sessions (the first byte of each frame picks the session), so every command in any
// order, ack ids and transactions included, must leave the core consistent (no crash, bounded).
#include "broker.hpp"

#include "bus/stomp/parser.hpp"

#include <cstdint>
#include <string>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size)
{
    bus::stomp::limits lim;
    lim.max_frame = 16 * 1024;
    lim.max_headers = 16;
    lim.max_line = 512;
    broker::core_options o;
    o.max_queue_depth = 64;
    o.transient_topic_depth = 16;
    o.max_unacked = 8;
    o.max_queue_bytes = 8 * 1024;  // byte limits, the memory mark and transaction bytes in play
    o.max_memory = 32 * 1024;
    o.max_transaction_bytes = 4 * 1024;
    o.max_destinations_per_user = 16;
    broker::broker_core core(o);
    broker::actions out;
    broker::session_id s[3];
    for (auto& id : s) {
        id = core.open();
        bus::stomp::frame c("CONNECT");
        c.add("accept-version", "1.0,1.1,1.2");
        core.on_frame(id, c, out);
    }
    bus::stomp::parser p(lim);
    p.set_version(bus::stomp::version::v1_2);
    std::string_view in(reinterpret_cast<const char*>(data), size);
    std::size_t n = 0;
    while (!in.empty() && n < 256) {
        std::uint8_t pick = static_cast<std::uint8_t>(in.front()) % 4;
        in.remove_prefix(1);
        std::error_code ec;
        std::size_t used = p.put(in, ec);
        if (ec) break;
        in.remove_prefix(used);
        if (p.got() != bus::stomp::parser::item::frame) continue;
        ++n;
        out.clear();
        if (pick == 3) {
            core.close(s[n % 3], out);
            s[n % 3] = core.open();
            continue;
        }
        core.on_frame(s[pick], p.release(), out);
        if (out.frames.size() > 100000) __builtin_trap();
        for (auto id : out.close) {
            broker::actions ignored;
            core.close(id, ignored);
        }
    }
    for (auto& q : core.queues())
        if (q.depth > 64 + 8 * 3) __builtin_trap();  // limits hold
    core.snapshot();
    return 0;
}
