#include "bus/stomp/parser.hpp"
#include "bus/stomp/serializer.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace bus::stomp;
using namespace std::string_literals;

namespace {

struct parsed {
    std::vector<frame> frames;
    int heartbeats = 0;
    std::error_code error;
};

// Feeds `input` in pieces of at most `chunk` bytes, the caller-owned-buffer way: unconsumed
// bytes stay in `buf` and are presented again with the next piece.
// With `views`, frames are taken the zero-copy way (put_view, then view().to_frame() before the
// bytes leave the buffer), which must give exactly what put/release gives.
parsed feed(std::string_view input, std::size_t chunk, version v = version::v1_2, limits lim = {}, bool views = false)
{
    parser p(lim);
    p.set_version(v);
    parsed out;
    std::string buf;
    std::size_t pos = 0;
    while (pos < input.size() || !buf.empty()) {
        if (pos < input.size()) {
            std::size_t n = std::min(chunk, input.size() - pos);
            buf.append(input.substr(pos, n));
            pos += n;
        }
        for (;;) {
            std::error_code ec;
            std::size_t used = views ? p.put_view(buf, ec) : p.put(buf, ec);
            if (ec == error::need_more) {
                REQUIRE(used == 0);
                break;
            }
            if (ec) {
                out.error = ec;
                return out;
            }
            REQUIRE(used > 0);
            if (p.got() == parser::item::heartbeat) ++out.heartbeats;
            else out.frames.push_back(views ? p.view().to_frame() : p.release());
            buf.erase(0, used);
        }
        if (pos >= input.size()) break;
    }
    if (!buf.empty()) out.error = error::need_more;
    return out;
}

// Feeds split at a single point: [0,k) then the rest.
parsed feed_split(std::string_view input, std::size_t k, version v, bool views = false)
{
    parser p;
    p.set_version(v);
    parsed out;
    std::string buf(input.substr(0, k));
    auto drain = [&] {
        for (;;) {
            std::error_code ec;
            std::size_t used = views ? p.put_view(buf, ec) : p.put(buf, ec);
            if (ec == error::need_more) return true;
            if (ec) {
                out.error = ec;
                return false;
            }
            if (p.got() == parser::item::heartbeat) ++out.heartbeats;
            else out.frames.push_back(views ? p.view().to_frame() : p.release());
            buf.erase(0, used);
        }
    };
    if (!drain()) return out;
    buf.append(input.substr(k));
    drain();
    if (!buf.empty() && !out.error) out.error = error::need_more;
    return out;
}

void same(const parsed& a, const parsed& b)
{
    REQUIRE(a.error == b.error);
    REQUIRE(a.heartbeats == b.heartbeats);
    REQUIRE(a.frames.size() == b.frames.size());
    for (std::size_t i = 0; i < a.frames.size(); ++i) {
        CHECK(a.frames[i].command == b.frames[i].command);
        CHECK(a.frames[i].headers == b.frames[i].headers);
        CHECK(a.frames[i].body == b.frames[i].body);
    }
}

struct golden {
    const char* name;
    version v;
    std::string bytes;
    std::size_t frames;
    int heartbeats;
};

const std::vector<golden>& goldens()
{
    static const std::vector<golden> g{
        {"content-length body", version::v1_2,
         "MESSAGE\ndestination:/topic/a\nmessage-id:1\nsubscription:0\ncontent-length:5\n\nhello\0"s, 1, 0},
        {"NUL-terminated body", version::v1_0, "MESSAGE\ndestination:/topic/a\n\nhello\0"s, 1, 0},
        {"EOLs after the NUL", version::v1_1, "RECEIPT\nreceipt-id:7\n\n\0\n\n\r\nRECEIPT\nreceipt-id:8\n\n\0\n"s, 2, 4},
        {"CRLF", version::v1_2, "MESSAGE\r\ndestination:/queue/x\r\ncontent-length:2\r\n\r\nhi\0"s, 1, 0},
        {"empty body", version::v1_2, "RECEIPT\nreceipt-id:x\n\n\0"s, 1, 0},
        {"colon inside value", version::v1_0, "SEND\ndestination:/topic/a\nurl:http://h:8080/x\n\nb\0"s, 1, 0},
        {"newline keepalive", version::v1_0,
         "SEND\ndestination:/topic/future.git.commits\ncontent-length:1\ncontent-type:text/plain; charset=UTF-8\n\n\n\0"s, 1, 0},
        {"binary body with NULs", version::v1_2, "MESSAGE\ncontent-length:5\n\na\0b\0c\0"s, 1, 0},
        {"escaped headers 1.2", version::v1_2, "MESSAGE\nk\\cey:a\\nb\\\\c\\rd\n\n\0"s, 1, 0},
        {"heart-beat only", version::v1_2, "\n\n\r\n"s, 0, 3},
        {"repeated headers", version::v1_2, "MESSAGE\nfoo:1\nfoo:2\n\n\0"s, 1, 0},
        {"connect not escaped", version::v1_2, "CONNECT\npasscode:a\\b\naccept-version:1.2\n\n\0"s, 1, 0},
    };
    return g;
}

} // namespace

TEST_CASE("golden frames parse identically at every split point and byte by byte")
{
    for (auto& g : goldens()) {
        std::string name = g.name;
        CAPTURE(name);
        auto whole = feed(g.bytes, g.bytes.size(), g.v);
        REQUIRE(!whole.error);
        CHECK(whole.frames.size() == g.frames);
        CHECK(whole.heartbeats == g.heartbeats);
        same(whole, feed(g.bytes, 1, g.v));
        same(whole, feed(g.bytes, 3, g.v));
        for (std::size_t k = 0; k <= g.bytes.size(); ++k) {
            CAPTURE(k);
            same(whole, feed_split(g.bytes, k, g.v));
        }
    }
}

TEST_CASE("the view parser gives the owning frames at every split point and byte by byte")
{
    // put_view: headers and body are views of the caller's buffer, which grows and moves
    // between the calls that complete one frame.
    for (auto& g : goldens()) {
        std::string name = g.name;
        CAPTURE(name);
        auto whole = feed(g.bytes, g.bytes.size(), g.v);
        same(whole, feed(g.bytes, g.bytes.size(), g.v, {}, true));
        same(whole, feed(g.bytes, 1, g.v, {}, true));
        same(whole, feed(g.bytes, 3, g.v, {}, true));
        for (std::size_t k = 0; k <= g.bytes.size(); ++k) {
            CAPTURE(k);
            same(whole, feed_split(g.bytes, k, g.v, true));
        }
    }
}

TEST_CASE("frame views find the first header and point into the input")
{
    parser p;
    p.set_version(version::v1_2);
    std::string in = "MESSAGE\nfoo:1\nk\\cey:a\\nb\nfoo:2\ncontent-length:3\n\nabc\0"s;
    std::error_code ec;
    CHECK(p.put_view(in, ec) == in.size());
    REQUIRE(!ec);
    REQUIRE(p.got() == parser::item::frame);
    auto v = p.view();
    CHECK(v.command == "MESSAGE");
    CHECK(v.headers.size() == 4);
    CHECK(v.get("foo") == "1");
    CHECK(v.get("k:ey") == "a\nb");
    CHECK(!v.find("bar"));
    CHECK(v.body == "abc");
    CHECK(v.body.data() == in.data() + in.size() - 4);  // no copy
    CHECK(v.headers[0].value.data() == in.data() + 12);
    auto f = p.release();  // after put_view: copied from the view
    CHECK(f.get("k:ey") == "a\nb");
    CHECK(f.body == "abc");
}

TEST_CASE("golden frame contents")
{
    auto r = feed(goldens()[0].bytes, 1000);
    REQUIRE(r.frames.size() == 1);
    CHECK(r.frames[0].command == "MESSAGE");
    CHECK(r.frames[0].get("destination") == "/topic/a");
    CHECK(r.frames[0].body == "hello");

    auto crlf = feed(goldens()[3].bytes, 1000);
    CHECK(crlf.frames[0].get("destination") == "/queue/x");
    CHECK(crlf.frames[0].body == "hi");

    auto colon = feed(goldens()[5].bytes, 1000, version::v1_0);
    CHECK(colon.frames[0].get("url") == "http://h:8080/x");

    auto ka = feed(goldens()[6].bytes, 1000, version::v1_0);
    CHECK(is_legacy_keepalive(ka.frames[0]));
    CHECK(!is_legacy_keepalive(colon.frames[0]));

    auto bin = feed(goldens()[7].bytes, 1000);
    CHECK(bin.frames[0].body == "a\0b\0c"s);

    auto esc = feed(goldens()[8].bytes, 1000);
    REQUIRE(esc.frames[0].headers.size() == 1);
    CHECK(esc.frames[0].headers[0].first == "k:ey");
    CHECK(esc.frames[0].headers[0].second == "a\nb\\c\rd");

    auto rep = feed(goldens()[10].bytes, 1000);
    CHECK(rep.frames[0].get("foo") == "1");  // first wins
    CHECK(rep.frames[0].headers.size() == 2);

    auto conn = feed(goldens()[11].bytes, 1000);
    CHECK(conn.frames[0].get("passcode") == "a\\b");
}

TEST_CASE("first content-length wins")
{
    auto r = feed("MESSAGE\ncontent-length:2\ncontent-length:9\n\nab\0"s, 1);
    REQUIRE(!r.error);
    CHECK(r.frames[0].body == "ab");
}

TEST_CASE("1.0 decodes known escapes leniently and keeps unknown ones")
{
    auto r = feed("MESSAGE\npath:C:\\dir\\cx\n\n\0"s, 100, version::v1_0);
    REQUIRE(!r.error);
    CHECK(r.frames[0].get("path") == "C:\\dir:x");
}

TEST_CASE("round trips per version")
{
    for (auto v : {version::v1_0, version::v1_1, version::v1_2}) {
        CAPTURE(to_string(v));
        frame f("SEND");
        f.add("destination", "/topic/future.git.commits");
        f.add("subject", "[repo] refs/heads/master abc");
        f.add("x-colon", "a:b");
        if (v != version::v1_0) f.add("x-nl", "line1\nline2\\end");
        if (v == version::v1_2) f.add("x-cr", "a\rb");
        f.body = "repo: x\n\0tail"s;
        std::string wire = serialize(f, v);
        auto r = feed(wire, 1, v);
        REQUIRE(!r.error);
        REQUIRE(r.frames.size() == 1);
        CHECK(r.frames[0].command == "SEND");
        CHECK(r.frames[0].body == f.body);
        for (auto& [k, val] : f.headers) CHECK(r.frames[0].get(k) == val);
        CHECK(r.frames[0].get("content-length") == std::to_string(f.body.size()));
        // Parsing and serialising again yields the same bytes.
        CHECK(serialize(r.frames[0], v) == wire);
    }
}

TEST_CASE("serializer output is byte-exact for the original's keepalive")
{
    frame f("SEND");
    f.add("destination", "/topic/future.git.commits");
    f.add("content-length", "0");
    f.add("content-type", "text/plain; charset=UTF-8");
    f.body = "\n";
    CHECK(serialize(f, version::v1_0) ==
          "SEND\ndestination:/topic/future.git.commits\ncontent-length:1\ncontent-type:text/plain; "
          "charset=UTF-8\n\n\n\0"s);
}

TEST_CASE("serializer refuses what a version cannot carry")
{
    std::string out = "keep";
    std::error_code ec;
    frame f("SEND");
    f.add("destination", "/topic/a");
    f.add("bad", "a\nb");
    serialize(out, f, version::v1_0, ec);
    CHECK(ec == error::unencodable_header);
    CHECK(out == "keep");

    frame g("SEND");
    g.add("path", "C:\\x");
    serialize(out, g, version::v1_0, ec);
    CHECK(ec == error::unencodable_header);
    serialize(out, g, version::v1_1, ec);
    CHECK(!ec);

    frame h("SEND");
    h.add("x", "a\rb");
    serialize(out, h, version::v1_1, ec);
    CHECK(ec == error::unencodable_header);
    serialize(out, h, version::v1_2, ec);
    CHECK(!ec);

    frame c("CONNECT");
    c.add("passcode", "p\nq");
    serialize(out, c, version::v1_2, ec);
    CHECK(ec == error::unencodable_header);
}

TEST_CASE("every error code is reached by a named vector")
{
    limits small;
    small.max_frame = 64;
    small.max_body = 16;
    small.max_headers = 2;
    small.max_line = 20;
    struct vec {
        const char* name;
        std::string bytes;
        version v;
        limits lim;
        error expected;
    };
    std::vector<vec> vectors{
        {"unknown command", "FOO\n\n\0"s, version::v1_2, {}, error::bad_command},
        {"lowercase command", "send\n\n\0"s, version::v1_2, {}, error::bad_command},
        {"line too long", "SEND\n" + std::string(30, 'a') + ":b\n\n\0", version::v1_2, small, error::line_too_long},
        {"line too long, no EOL yet", "SEND\n" + std::string(30, 'a'), version::v1_2, small, error::line_too_long},
        {"too many headers", "SEND\na:1\nb:2\nc:3\n\n\0"s, version::v1_2, small, error::too_many_headers},
        {"header without colon", "SEND\nnocolon\n\n\0"s, version::v1_2, {}, error::bad_header},
        {"empty header name", "SEND\n:v\n\n\0"s, version::v1_2, {}, error::bad_header},
        {"undefined escape 1.2", "SEND\na:b\\tc\n\n\0"s, version::v1_2, {}, error::bad_escape},
        {"\\r escape in 1.1", "SEND\na:b\\rc\n\n\0"s, version::v1_1, {}, error::bad_escape},
        {"trailing backslash", "SEND\na:b\\\n\n\0"s, version::v1_2, {}, error::bad_escape},
        {"content-length not a number", "SEND\ncontent-length:abc\n\n\0"s, version::v1_2, {}, error::bad_content_length},
        {"content-length negative", "SEND\ncontent-length:-1\n\n\0"s, version::v1_2, {}, error::bad_content_length},
        {"content-length overflow", "SEND\ncontent-length:99999999999999999999999\n\n\0"s, version::v1_2, {}, error::bad_content_length},
        {"declared body too large", "SEND\ncontent-length:17\n\n"s, version::v1_2, small, error::body_too_large},
        {"NUL-terminated body too large", "SEND\n\n" + std::string(17, 'x'), version::v1_2, small, error::body_too_large},
        {"frame too large", "SEND\na:123456789012345678\nb:123456789012345678\n\n" + std::string(16, 'x') + "\0"s, version::v1_2, small, error::frame_too_large},
        {"no NUL after content-length body", "SEND\ncontent-length:2\n\nabX"s, version::v1_2, {}, error::missing_nul},
        {"bare CR between frames", "\rX"s, version::v1_2, {}, error::bad_eol},
    };
    for (auto& t : vectors) {
        std::string name = t.name;
        CAPTURE(name);
        auto whole = feed(t.bytes, t.bytes.size(), t.v, t.lim);
        CHECK(whole.error == t.expected);
        auto bytewise = feed(t.bytes, 1, t.v, t.lim);
        CHECK(bytewise.error == t.expected);
    }
    CHECK(make_error_code(error::bad_command).category().name() == std::string("bus.stomp"));
    CHECK(!make_error_code(error::missing_nul).message().empty());
}

TEST_CASE("need_more leaves the parser resumable and consumes nothing")
{
    parser p;
    std::error_code ec;
    std::string buf = "MESSAGE\ndestination:/topic/a\ncontent-length:3\n\nab";
    CHECK(p.put(buf, ec) == 0);
    CHECK(ec == error::need_more);
    buf.append("c");
    CHECK(p.put(buf, ec) == 0);
    CHECK(ec == error::need_more);
    buf.push_back('\0');
    CHECK(p.put(buf, ec) == buf.size());
    CHECK(!ec);
    CHECK(p.release().body == "abc");
}

TEST_CASE("frame helpers")
{
    frame f("SEND");
    f.add("a", "1").add("a", "2").add("b", "3");
    f.set("a", "x");
    CHECK(f.headers.size() == 2);
    CHECK(f.get("a") == "x");
    f.erase("b");
    CHECK(!f.find("b"));
    CHECK(f.get("missing", "dflt") == "dflt");
    CHECK(parse_version("1.1") == version::v1_1);
    CHECK(!parse_version("2.0"));
}

TEST_CASE("escaped headers decode alike before and after the parser has scratch room")
{
    // The first frame's escaped lines do not fit the parser's initial scratch room (its block is
    // parsed again with room reserved); the second frame's fit (decoded in the single pass).
    // Long lines (over 16 and 64 bytes) and CRLF take the other branches of the line scan.
    const std::string value(70, 'v');
    const std::string one = "MESSAGE\r\nlong\\cname\\\\with\\nescapes:" + value + "\\c" + value +
                            "\r\nplain:x:y\r\ncontent-length:2\r\n\r\nab";
    const std::string input = one + '\0' + one + '\0';
    for (std::size_t chunk : {input.size(), std::size_t{1}, std::size_t{7}, std::size_t{64}}) {
        CAPTURE(chunk);
        auto views = feed(input, chunk, version::v1_2, {}, true);
        auto owned = feed(input, chunk, version::v1_2, {}, false);
        same(views, owned);
        REQUIRE(views.frames.size() == 2);
        for (const auto& f : views.frames) {
            REQUIRE(f.headers.size() == 3);
            CHECK(f.headers[0].first == "long:name\\with\nescapes");
            CHECK(f.headers[0].second == value + ":" + value);
            CHECK(f.headers[1].first == "plain");
            CHECK(f.headers[1].second == "x:y");
            CHECK(f.body == "ab");
        }
    }
}
