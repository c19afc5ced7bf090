// stompctl publish: send a message (or --count of them, --window in flight) and wait for the
// broker's receipts; with --spool, a producer that never loses it.
#include "stompctl.hpp"

#include "bus/config.hpp"
#include "bus/delivery.hpp"
#include "bus/signing.hpp"

#include <CLI/CLI.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>
#include <iterator>

namespace stompctl {

using std::chrono::milliseconds;

namespace {

struct publish_state {
    explicit publish_state(net::any_io_executor ex) : wake(std::move(ex)) {}
    net::steady_timer wake;
    int done = 0, receipted = 0, unknown = 0;
    std::error_code first_error;
};

// A free coroutine with shared state: it may outlive an interrupted publish.
net::awaitable<void> publish_one(bus::client* c, bus::stomp::frame f, milliseconds timeout,
                                 std::shared_ptr<publish_state> st)
{
    auto r = co_await c->send(std::move(f), timeout);
    if (r) ++st->receipted;
    else {
        if (r.status == bus::publish_status::unknown) ++st->unknown;
        if (!st->first_error) st->first_error = r.error;
    }
    ++st->done;
    st->wake.cancel();
}

// Producer mode: never lose it. Receipted now, or spooled for `stompctl drain` — at most
// --window in flight, and a copy whose first attempt was written without a receipt is spooled
// marked possibly sent.
net::awaitable<void> publish_spooled(bus::client& c, const common_args& a, const publish_command& p,
                                     bus::stomp::frame f)
{
    bus::outbox box({.dir = p.spool});
    net::thread_pool pool(1);
    auto deadline = std::chrono::steady_clock::now() + a.timeout_ms();
    std::vector<bus::stomp::frame> frames(static_cast<std::size_t>(p.count), f);
    auto rep = co_await bus::publish_or_spool(c, box, std::move(frames), pool.get_executor(), deadline,
                                              static_cast<std::size_t>(p.window));
    pool.join();
    if (rep.spooled > 0)
        std::cerr << "stompctl: " << rep.spooled << " message(s) spooled in " << p.spool
                  << " for later delivery (" << rep.possibly_sent
                  << " of them possibly sent already: written without a receipt, marked "
                  << bus::possibly_sent_header << ")\n";
    if (interrupted)
        std::cerr << "stompctl: interrupted: " << rep.published << " of " << p.count << " receipted, "
                  << rep.spooled << " spooled\n";
    c.stop();
}

net::awaitable<void> do_publish(bus::client& c, const common_args& a, const publish_command& p,
                                std::string body, int& rc)
{
    bus::stomp::frame f("SEND");
    f.add("destination", p.destination);
    for (auto& h : p.headers) {
        auto [k, v] = split_header(h);
        f.add(k, v);
    }
    f.body = std::move(body);
    if (!p.key_file.empty()) {
        auto keys = bus::keyring::load_file(p.key_file);
        const bus::signing_key* k = keys.find(p.key_id);
        if (!k) throw bus::config_error("key id '" + p.key_id + "' is not in " + p.key_file);
        bus::sign(f, *k, std::chrono::duration_cast<std::chrono::seconds>(
                             std::chrono::system_clock::now().time_since_epoch()).count());
    }
    if (!p.spool.empty()) {
        co_await publish_spooled(c, a, p, std::move(f));
        co_return;
    }
    auto start = std::chrono::steady_clock::now();
    // Keep up to `window` publishes in flight; each completes on its own receipt (or deadline).
    auto st = std::make_shared<publish_state>(co_await net::this_coro::executor);
    int next = 0;
    for (;;) {
        while (!interrupted && next < p.count && next - st->done < p.window) {
            ++next;
            net::co_spawn(st->wake.get_executor(), publish_one(&c, f, a.timeout_ms(), st), net::detached);
        }
        // A publish may complete inside co_spawn (a stopped client answers at once): wait only
        // while one is in flight, so no wake-up is lost.
        if (next == st->done) {
            if (interrupted || next >= p.count) break;
            continue;
        }
        st->wake.expires_at(std::chrono::steady_clock::time_point::max());
        co_await st->wake.async_wait(net::as_tuple(net::use_awaitable));
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    int failed = p.count - st->receipted;
    if (interrupted) {
        std::cerr << "stompctl: interrupted: " << failed << " of " << p.count << " message(s) not receipted ("
                  << st->unknown << " written without a receipt, " << failed - st->unknown << " not sent)\n";
    } else if (failed) {
        std::cerr << "stompctl: " << failed << " of " << p.count << " not accepted: " << st->first_error.message()
                  << (c.last_error().empty() ? "" : " (" + c.last_error() + ")") << "\n";
        rc = st->first_error == bus::errc::broker_error ? 3 : 1;
    }
    if (p.stats)
        std::cout << nlohmann::json{{"client", "stompctl"}, {"count", p.count},   {"size", f.body.size()},
                                    {"seconds", secs},      {"msgs_per_s", p.count / secs}, {"failed", failed}}
                         .dump()
                  << std::endl;
    c.stop();
}

} // namespace

void publish_command::add(CLI::App& app)
{
    sub = app.add_subcommand("publish", "send a message and wait for the broker's receipt");
    sub->add_option("-t,--destination", destination, "e.g. /topic/future.git.commits")->required();
    sub->add_option("-H,--header", headers, "extra header name:value (repeatable)");
    sub->add_option("-m,--message", message, "body (default: read stdin)");
    sub->add_option("-f,--file", file, "read the body from this file");
    sub->add_option("--count", count, "send the message this many times (pipelined)")->check(CLI::Range(1, 100000000));
    sub->add_option("--window", window, "publishes in flight at once")->check(CLI::Range(1, 100000));
    sub->add_flag("--stats", stats, "print a JSON line with the publish rate");
    sub->add_option("--spool", spool,
                    "outbox directory: what gets no receipt within --timeout is spooled there (exit 0) "
                    "and sent, in order, by the next run or 'stompctl drain'");
    auto* keys = sub->add_option("--key-file", key_file, "sign with a key from this file (lines '<id> <secret>', mode 0600)");
    sub->add_option("--key-id", key_id, "id of the signing key")->needs(keys);
}

task publish_command::make(const common_args& a)
{
    std::string body;
    if (!file.empty()) {
        std::ifstream in(file, std::ios::binary);
        if (!in) throw bus::config_error("cannot read " + file);
        body.assign(std::istreambuf_iterator<char>(in), {});
    } else if (sub->count("--message") > 0) {
        body = message;
    } else {
        body.assign(std::istreambuf_iterator<char>(std::cin), {});
    }
    return [this, &a, body = std::move(body)](bus::client& c, int& rc, latch&) {
        return do_publish(c, a, *this, body, rc);
    };
}

} // namespace stompctl
