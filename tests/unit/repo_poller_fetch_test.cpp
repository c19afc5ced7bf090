// repo-poller's fetch child protocol (fetch_child.hpp): the request on stdin, the framed replies
// on descriptor 3 and their bounds, the child's argv and environment, and child_fetch against a
// stand-in child (a shell script) that answers well, badly or too much. No network.
#include "fetch_child.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <sys/resource.h>
#include <unistd.h>

using namespace repo_poller;
using namespace std::chrono_literals;

namespace {

// A read_fn over a string, in runs of at most `chunk` bytes (a file read back in pieces).
read_fn over(const std::string& data, std::size_t chunk = 7)
{
    return [&data, chunk](std::size_t off, char* buf, std::size_t n) -> std::size_t {
        if (off >= data.size()) return 0;
        const auto k = std::min({n, chunk, data.size() - off});
        data.copy(buf, k, off);
        return k;
    };
}

std::string reply(const fetch_result& r) { return encode_reply_header(r) + r.body; }

struct temp_dir {
    std::filesystem::path p;
    temp_dir()
    {
        std::string t = (std::filesystem::temp_directory_path() / "rp-fetch.XXXXXX").string();
        REQUIRE(::mkdtemp(t.data()) != nullptr);
        p = t;
    }
    ~temp_dir() { std::filesystem::remove_all(p); }
};

std::string slurp(const std::filesystem::path& p)
{
    std::ifstream in(p, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// A stand-in for `repo-poller --fetch-worker`: keeps its argv (/proc/self/cmdline), its
// environment and its stdin in `dir`, then runs `answer` (shell, writing to >&3).
std::string fake_child(const std::filesystem::path& dir, const std::string& answer)
{
    const auto path = dir / "child.sh";
    std::ofstream(path) << "#!/bin/sh\n"
                        << "tr '\\000' ' ' </proc/$$/cmdline >'" << (dir / "cmdline").string() << "'\n"
                        << "env >'" << (dir / "env").string() << "'\n"
                        << "cat >'" << (dir / "stdin").string() << "'\n"
                        << answer << "\n";
    std::filesystem::permissions(path, std::filesystem::perms::owner_all);
    return path.string();
}

} // namespace

TEST_CASE("repo_poller fetch child: the request round-trips and a malformed one is refused")
{
    fetch_batch b;
    b.limits.connect_timeout = 1500ms;
    b.limits.request_timeout = 9000ms;
    b.limits.ca_file = "/etc/ssl/site-ca.pem";
    b.requests.push_back({"https://u:p@repo.example/dists/x/InRelease", 1000, "\"e1\"", "Fri, 04 Dec 2026 13:00:00 GMT"});
    b.requests.push_back({"https://u:p@repo.example/dists/x/main/binary-amd64/Packages.xz", 5000, {}, {}});
    auto d = decode_batch(encode_batch(b));
    CHECK(d.limits.connect_timeout == 1500ms);
    CHECK(d.limits.request_timeout == 9000ms);
    CHECK(d.limits.ca_file == "/etc/ssl/site-ca.pem");
    REQUIRE(d.requests.size() == 2);
    CHECK(d.requests[0].url == b.requests[0].url);
    CHECK(d.requests[0].etag == "\"e1\"");
    CHECK(d.requests[0].last_modified == b.requests[0].last_modified);
    CHECK(d.requests[1].max_bytes == 5000);
    CHECK_THROWS_AS(decode_batch("not json"), protocol_error);
    CHECK_THROWS_AS(decode_batch("[]"), protocol_error);
    CHECK_THROWS_AS(decode_batch(R"({"connect_timeout_ms":1,"request_timeout_ms":1,"requests":[]})"), protocol_error);
    CHECK_THROWS_AS(decode_batch(R"({"connect_timeout_ms":-1,"request_timeout_ms":1,"requests":[{"url":"x","max_bytes":1}]})"),
                    protocol_error);
    CHECK_THROWS_AS(decode_batch(R"({"connect_timeout_ms":1,"request_timeout_ms":1,"requests":[{"max_bytes":1}]})"), protocol_error);
    CHECK_THROWS_AS(decode_batch(std::string(max_request_bytes + 1, ' ')), protocol_error);
}

TEST_CASE("repo_poller fetch child: replies are read one at a time with their validators")
{
    fetch_result a;
    a.status = 200;
    a.etag = "\"abc\"";
    a.last_modified = "Fri, 04 Dec 2026 13:00:00 GMT";
    a.date = "Fri, 04 Dec 2026 13:00:05 GMT";
    a.body = std::string("binary\n\0body{\"status\":1}\n", 26);
    fetch_result b;
    b.status = 304;
    fetch_result c;
    c.error = "Couldn't connect to server";
    const std::string data = reply(a) + reply(b) + reply(c);
    std::size_t pos = 0, used = 0;
    auto from = [&](std::size_t at) {
        return read_fn([&data, at](std::size_t off, char* buf, std::size_t n) { return over(data)(at + off, buf, n); });
    };
    auto r1 = read_reply(from(pos), 1000, &used);
    pos += used;
    CHECK(r1.status == 200);
    CHECK(r1.body == a.body);
    CHECK(r1.etag == a.etag);
    CHECK(r1.last_modified == a.last_modified);
    CHECK(r1.date == a.date);
    auto r2 = read_reply(from(pos), 1000, &used);
    pos += used;
    CHECK(r2.status == 304);
    CHECK(r2.body.empty());
    auto r3 = read_reply(from(pos), 1000, &used);
    pos += used;
    CHECK(r3.status == 0);
    CHECK(r3.error == c.error);
    CHECK(pos == data.size());
    // Validators of the largest size kept, all escaped in JSON (control bytes), and a long error
    // (cut): still one valid header within the bound.
    fetch_result odd;
    odd.status = 200;
    odd.etag = std::string(1024, '\x01');
    odd.last_modified = std::string(1024, '"');
    odd.date = std::string(1024, '\\');
    odd.error = std::string(5000, 'e');
    const auto line = encode_reply_header(odd);
    CHECK(line.size() <= max_reply_header);
    auto back = read_reply(over(line), 10);
    CHECK(back.etag == odd.etag);
    CHECK(back.last_modified == odd.last_modified);
    CHECK(back.date == odd.date);
    CHECK(back.error == std::string(1024, 'e'));
}

TEST_CASE("repo_poller fetch child: a malformed or oversized reply is refused")
{
    fetch_result ok;
    ok.status = 200;
    ok.body = "0123456789";
    const auto good = reply(ok);
    CHECK(read_reply(over(good), 10).body == "0123456789");
    // A body above the request's max_bytes, announced: refused before reading it.
    CHECK_THROWS_WITH_AS(read_reply(over(good), 9), doctest::Contains("more than the 9 allowed"), protocol_error);
    // Cut short: header or body.
    CHECK_THROWS_WITH_AS(read_reply(over(good.substr(0, good.size() - 1)), 10), doctest::Contains("cut short"), protocol_error);
    CHECK_THROWS_WITH_AS(read_reply(over(good.substr(0, 10)), 10), doctest::Contains("cut short"), protocol_error);
    CHECK_THROWS_WITH_AS(read_reply(over(""), 10), doctest::Contains("no reply"), protocol_error);
    // A header line without its end within the bound: not read further.
    std::string endless(100'000, 'x');
    std::size_t read_up_to = 0;
    read_fn counting = [&](std::size_t off, char* buf, std::size_t n) -> std::size_t {
        read_up_to = std::max(read_up_to, off + n);
        return over(endless, 4096)(off, buf, n);
    };
    CHECK_THROWS_WITH_AS(read_reply(counting, 10), doctest::Contains("longer than"), protocol_error);
    CHECK(read_up_to <= max_reply_header);
    // Not the protocol.
    CHECK_THROWS_AS(read_reply(over("HTTP/1.1 200 OK\n"), 10), protocol_error);
    CHECK_THROWS_AS(read_reply(over("[1,2]\n"), 10), protocol_error);
    CHECK_THROWS_AS(read_reply(over(R"({"status":"200","length":0})" "\n"), 10), protocol_error);
    CHECK_THROWS_AS(read_reply(over(R"({"status":200,"length":-5})" "\n"), 10), protocol_error);
    CHECK_THROWS_AS(read_reply(over(R"({"status":200})" "\n"), 10), protocol_error);
    CHECK_THROWS_AS(read_reply(over(R"({"status":1000,"length":0})" "\n"), 10), protocol_error);
    CHECK_THROWS_AS(read_reply(over(R"({"status":200,"length":0,"etag":7})" "\n"), 10), protocol_error);
    CHECK_THROWS_AS(read_reply(over(R"({"status":200,"length":0,"etag":")" + std::string(2000, 'e') + "\"}\n"), 10), protocol_error);
    // A body with an error status, a failure without a reason.
    CHECK_THROWS_WITH_AS(read_reply(over(R"({"status":404,"length":3})" "\nnot"), 10), doctest::Contains("a body for HTTP status 404"),
                         protocol_error);
    CHECK_THROWS_AS(read_reply(over(R"({"status":0,"length":0})" "\n"), 10), protocol_error);
}

TEST_CASE("repo_poller fetch child: argv holds no URL and the environment only proxy and CA settings")
{
    fetch_batch b;
    b.limits.request_timeout = 20s;
    b.requests.push_back({"https://deploy:s3cret@repo.example/dists/x/InRelease", 100, "\"tag\"", {}});
    b.requests.push_back({"https://deploy:s3cret@repo.example/dists/x/main/binary-amd64/Packages.xz", 1000, {}, {}});
    std::atomic<bool> stop{false};
    auto so = fetch_spawn_options("/usr/sbin/repo-poller", b,
                                  {"HOME=/root", "REPO_TOKEN=s3cret", "https_proxy=http://proxy:3128", "NO_PROXY=localhost",
                                   "SSL_CERT_FILE=/etc/ssl/x.pem", "LD_PRELOAD=/tmp/evil.so"},
                                  17, &stop);
    CHECK(so.argv == std::vector<std::string>{"/usr/sbin/repo-poller", "--fetch-worker"});
    REQUIRE(so.input);
    CHECK(so.input->find("deploy:s3cret@repo.example") != std::string::npos);  // on stdin only
    CHECK(decode_batch(*so.input).requests.size() == 2);
    CHECK(so.env == std::vector<std::string>{"https_proxy=http://proxy:3128", "NO_PROXY=localhost", "SSL_CERT_FILE=/etc/ssl/x.pem",
                                             "LC_ALL=C", "PATH=/usr/bin:/bin"});
    REQUIRE(so.pass.size() == 1);
    CHECK(so.pass[0].fd == 17);
    CHECK(so.pass[0].as == reply_fd);
    CHECK(so.timeout == 50s);  // 2 x request-timeout + 10 s
    CHECK(so.die_with_parent);
    CHECK(so.cancel == &stop);
    REQUIRE(so.limits.size() == 1);
    CHECK(so.limits[0].resource == RLIMIT_FSIZE);
    CHECK(so.limits[0].value == 1100 + 2 * max_reply_header);
}

TEST_CASE("repo_poller fetch child: credentials reach the child on stdin and never in its cmdline")
{
    temp_dir t;
    fetch_batch b;
    b.requests.push_back({"http://deploy:s3cret@127.0.0.1:1/dists/x/InRelease", 100, {}, {}});
    const auto child = fake_child(t.p, R"(printf '{"status":200,"length":5}\nhello' >&3)");
    child_fetch f(child, t.p, b, nullptr);
    auto r = f.next();
    CHECK(r.status == 200);
    CHECK(r.body == "hello");
    const auto cmdline = slurp(t.p / "cmdline");
    CHECK(cmdline.find("--fetch-worker") != std::string::npos);
    CHECK(cmdline.find("s3cret") == std::string::npos);
    CHECK(slurp(t.p / "env").find("s3cret") == std::string::npos);
    CHECK(slurp(t.p / "stdin").find("deploy:s3cret@127.0.0.1") != std::string::npos);
    // The reply file is unlinked: nothing is left in the state directory but our own files.
    for (const auto& e : std::filesystem::directory_iterator(t.p))
        CHECK(std::set<std::string>{"child.sh", "cmdline", "env", "stdin"}.count(e.path().filename().string()) == 1);
}

TEST_CASE("repo_poller fetch child: a child that answers badly fails the request with a clear error")
{
    temp_dir t;
    fetch_batch b;
    b.requests.push_back({"http://127.0.0.1:1/a", 5, {}, {}});
    b.requests.push_back({"http://127.0.0.1:1/b", 5, {}, {}});
    SUBCASE("garbage")
    {
        child_fetch f(fake_child(t.p, "echo 'HTTP/1.1 200 OK' >&3"), t.p, b, nullptr);
        auto r = f.next();
        CHECK(r.status == 0);
        CHECK(r.error.find("malformed reply") != std::string::npos);
        CHECK(f.next().status == 0);  // and nothing after it
    }
    SUBCASE("a body above max_bytes")
    {
        child_fetch f(fake_child(t.p, R"(printf '{"status":200,"length":6}\nhello!' >&3)"), t.p, b, nullptr);
        auto r = f.next();
        CHECK(r.status == 0);
        CHECK(r.error.find("more than the 5 allowed") != std::string::npos);
    }
    SUBCASE("fewer replies than requests")
    {
        child_fetch f(fake_child(t.p, R"(printf '{"status":200,"length":2}\nok' >&3)"), t.p, b, nullptr);
        CHECK(f.next().body == "ok");
        auto r = f.next();
        CHECK(r.status == 0);
        CHECK(r.error.find("no reply") != std::string::npos);
    }
    SUBCASE("the child fails")
    {
        child_fetch f(fake_child(t.p, "echo 'cannot load libcurl.so.4' >&2; exit 2"), t.p, b, nullptr);
        auto r = f.next();
        CHECK(r.status == 0);
        CHECK(r.error.find("exited 2") != std::string::npos);
        CHECK(r.error.find("cannot load libcurl.so.4") != std::string::npos);
    }
    SUBCASE("writing more than the bound ends the child")
    {
        child_fetch f(fake_child(t.p, "head -c 100000 /dev/zero >&3"), t.p, b, nullptr);
        auto r = f.next();
        CHECK(r.status == 0);
        CHECK(r.error.find("fetch child") != std::string::npos);
    }
    SUBCASE("stopping ends the child")
    {
        std::atomic<bool> stop{true};
        child_fetch f(fake_child(t.p, "exec sleep 30"), t.p, b, &stop);
        auto r = f.next();
        CHECK(r.status == 0);
        CHECK(r.error == "aborted (stopping)");
    }
}
