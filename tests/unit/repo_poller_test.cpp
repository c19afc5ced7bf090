// repo-poller's pure logic: the clearsigned InRelease wrapper, Release and Packages parsing,
// hashes, index choice, decompression bounds, libapt-pkg version order (the built helper
// stomp-repo-vercmp, run as the daemon runs it), change detection against the saved state, the
// poll schedule, and the config's errors. No sockets; the helper is the only child process.
#include "config.hpp"
#include "poll_logic.hpp"

#include <doctest/doctest.h>
#include <lzma.h>
#include <zlib.h>

#include <string>

using namespace repo_poller;
using namespace std::chrono_literals;

namespace {

const std::string sig_block = "-----BEGIN PGP SIGNATURE-----\n\n"
                              "iHUEARYIAB0WIQR2nUNhLKX8J6InrjNjgSnUs/xpgwUCaxK+KAAKCRBjgSnUs/xp\n"
                              "=D6Ta\n"
                              "-----END PGP SIGNATURE-----\n";

std::string signed_msg(const std::string& body) { return "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n" + body + sig_block; }

const std::string release_text = "Origin: deploykit-test\n"
                                 "Label: deploykit-test\n"
                                 "Suite: stable\n"
                                 "Codename: bookworm\n"
                                 "Date: Fri, 04 Dec 2026 13:00:00 UTC\n"
                                 "Architectures: amd64 arm64 source\n"
                                 "Components: main contrib\n"
                                 "MD5Sum:\n"
                                 " 0123456789abcdef0123456789abcdef 100 main/binary-amd64/Packages\n"
                                 "SHA256:\n"
                                 " " + std::string(64, 'a') + " 100 main/binary-amd64/Packages\n"
                                 " " + std::string(64, 'B') + " 40 main/binary-amd64/Packages.gz\n"
                                 " " + std::string(64, 'c') + " 30 main/binary-amd64/Packages.xz\n"
                                 " " + std::string(64, 'd') + " 50 contrib/binary-amd64/Packages.gz\n";

std::string gzip(const std::string& in)
{
    z_stream z{};
    REQUIRE(deflateInit2(&z, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    std::string out(compressBound(static_cast<uLong>(in.size())) + 64, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
    out.resize(z.total_out);
    deflateEnd(&z);
    return out;
}

std::string xz(const std::string& in)
{
    std::string out(lzma_stream_buffer_bound(in.size()), '\0');
    std::size_t pos = 0;
    REQUIRE(lzma_easy_buffer_encode(6, LZMA_CHECK_CRC64, nullptr, reinterpret_cast<const uint8_t*>(in.data()), in.size(),
                                    reinterpret_cast<uint8_t*>(out.data()), &pos, out.size()) == LZMA_OK);
    out.resize(pos);
    return out;
}

std::map<std::string, binary_package> pkgs(std::initializer_list<std::pair<const char*, const char*>> l)
{
    std::map<std::string, binary_package> m;
    for (auto [n, v] : l) m[n] = binary_package{n, v, "amd64", std::string("pool/main/") + n + "_" + v + "_amd64.deb"};
    return m;
}

// libapt-pkg's order of `v` from the built helper, one run, as poller.cpp asks it.
version_order order_of(const std::vector<std::string>& v)
{
    auto r = deploykit::rank_versions(STOMP_REPO_VERCMP, v);
    if (!r.order) FAIL("the version helper failed: " << r.error);
    return *r.order;
}

// The order apply_index needs for `current` against what `v` remembers for main/amd64.
version_order order_for(const std::map<std::string, std::string>& v, const std::map<std::string, binary_package>& current)
{
    std::vector<binary_package> l;
    for (const auto& [n, p] : current) l.push_back(p);
    return order_of(versions_to_order(l, {}, v, "main", "amd64"));
}

} // namespace

TEST_CASE("repo_poller: the clearsigned wrapper is removed and dash-escapes undone")
{
    CHECK(is_clearsigned(signed_msg("Origin: x\n")));
    CHECK_FALSE(is_clearsigned("Origin: x\n"));
    CHECK(strip_clearsign(signed_msg("Origin: x\nSuite: s\n")) == "Origin: x\nSuite: s\n");
    CHECK(strip_clearsign(signed_msg("- -dashed\nA: b\n")) == "-dashed\nA: b\n");
    // CRLF line endings (a Windows-hosted mirror) read the same.
    std::string crlf = signed_msg("Origin: x\n");
    for (std::size_t p = 0; (p = crlf.find('\n', p)) != std::string::npos; p += 2) crlf.insert(p, "\r");
    CHECK(strip_clearsign(crlf) == "Origin: x\n");
    // Not clearsigned: unchanged (a plain Release).
    CHECK(strip_clearsign("Origin: x\n") == "Origin: x\n");
}

TEST_CASE("repo_poller: a malformed clearsigned wrapper is refused")
{
    const std::string head = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\n";
    CHECK_THROWS_AS(strip_clearsign(head + "Origin: x\n"), parse_error);                          // no signature
    CHECK_THROWS_AS(strip_clearsign(head + "Origin: x\n-----BEGIN PGP SIGNATURE-----\nabc\n"), parse_error);  // unterminated
    CHECK_THROWS_AS(strip_clearsign(signed_msg("Origin: x\n") + "Suite: injected\n"), parse_error);  // text after it
    CHECK_THROWS_AS(strip_clearsign(head + "-Origin: x\n" + sig_block), parse_error);             // unescaped dash
    CHECK_THROWS_AS(strip_clearsign("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\nOrigin: x\n" + sig_block),
                    parse_error);  // no blank line after the armor headers
}

TEST_CASE("repo_poller: Release fields and the SHA256 list are read")
{
    auto r = parse_release(strip_clearsign(signed_msg(release_text)));
    CHECK(r.origin == "deploykit-test");
    CHECK(r.suite == "stable");
    CHECK(r.codename == "bookworm");
    CHECK(r.components == std::vector<std::string>{"main", "contrib"});
    CHECK(r.architectures == std::vector<std::string>{"amd64", "arm64", "source"});
    REQUIRE(r.sha256.size() == 4);
    CHECK(r.sha256.at("main/binary-amd64/Packages.gz").sha256 == std::string(64, 'b'));  // lower-cased
    CHECK(r.sha256.at("main/binary-amd64/Packages.gz").size == 40);
    // Only the first paragraph counts.
    CHECK(parse_release(release_text + "\nCodename: other\n").codename == "bookworm");
}

TEST_CASE("repo_poller: a Release without SHA256 or with a malformed hash line is refused")
{
    CHECK_THROWS_AS(parse_release("Origin: x\nMD5Sum:\n 0123456789abcdef0123456789abcdef 1 main/binary-amd64/Packages\n"),
                    parse_error);
    CHECK_THROWS_AS(parse_release("SHA256:\n abc 1 main/binary-amd64/Packages\n"), parse_error);
    CHECK_THROWS_AS(parse_release("SHA256:\n " + std::string(64, 'a') + " x12 main/binary-amd64/Packages\n"), parse_error);
    CHECK_THROWS_AS(parse_release(""), parse_error);
    CHECK_THROWS_AS(parse_release("no colon here\n"), parse_error);
}

TEST_CASE("repo_poller: Packages stanzas are read and unusable names are skipped and counted")
{
    const std::string idx = "Package: foo\nVersion: 1.0-1\nArchitecture: amd64\nFilename: pool/main/f/foo/foo_1.0-1_amd64.deb\n"
                            "Description: a\n multi-line\n .\n description\n\n"
                            "Package: bar\r\nVersion: 1:2.0~rc1-1\r\nArchitecture: all\r\n\r\n"
                            "Package: evil;rm -rf\nVersion: 1.0\n\n"
                            "Package: baz\nVersion: $(reboot)\n\n"
                            "Package: " + std::string(10000, 'a') + "\nVersion: 1\n\n"
                            "Package: noversion\n\n\n\n";
    auto p = parse_packages(idx);
    REQUIRE(p.packages.size() == 2);
    CHECK(p.packages[0].name == "foo");
    CHECK(p.packages[0].version == "1.0-1");
    CHECK(p.packages[0].filename == "pool/main/f/foo/foo_1.0-1_amd64.deb");
    CHECK(p.packages[1].name == "bar");
    CHECK(p.packages[1].version == "1:2.0~rc1-1");
    CHECK(p.invalid == 4);
    // Bounded.
    CHECK_THROWS_AS(parse_packages(idx, 1), parse_error);
}

TEST_CASE("repo_poller: SHA-256 and the index choice (xz then gz then plain)")
{
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    auto r = parse_release(release_text);
    auto a = choose_index(r, "main", "amd64");
    REQUIRE(a);
    CHECK(a->file.path == "main/binary-amd64/Packages.xz");
    CHECK(a->comp == compression::xz);
    auto c = choose_index(r, "contrib", "amd64");
    REQUIRE(c);
    CHECK(c->comp == compression::gzip);
    CHECK_FALSE(choose_index(r, "main", "arm64"));
}

TEST_CASE("repo_poller: gzip and xz indices decompress within the bound and bombs or corruption are refused")
{
    std::string text;
    for (int i = 0; i < 2000; ++i) text += "Package: p" + std::to_string(i) + "\nVersion: 1.0\n\n";
    CHECK(decompress(gzip(text), compression::gzip, 1 << 20) == text);
    CHECK(decompress(xz(text), compression::xz, 1 << 20) == text);
    CHECK(decompress(gzip(text) + gzip("Package: z\n"), compression::gzip, 1 << 20) == text + "Package: z\n");
    CHECK(decompress(text, compression::none, 1 << 20) == text);
    // A bomb: 64 MiB of zeros compress to a few kB; the bound stops it.
    std::string zeros(64u << 20, '\0');
    CHECK_THROWS_AS(decompress(gzip(zeros), compression::gzip, 1 << 20), parse_error);
    CHECK_THROWS_AS(decompress(xz(zeros), compression::xz, 1 << 20), parse_error);
    CHECK_THROWS_AS(decompress(text, compression::none, 100), parse_error);
    // Truncated and corrupt.
    auto g = gzip(text), x = xz(text);
    CHECK_THROWS_AS(decompress(g.substr(0, g.size() / 2), compression::gzip, 1 << 20), parse_error);
    CHECK_THROWS_AS(decompress(x.substr(0, x.size() / 2), compression::xz, 1 << 20), parse_error);
    g[g.size() / 2] ^= 0x55;
    x[x.size() / 2] ^= 0x55;
    CHECK_THROWS_AS(decompress(g, compression::gzip, 1 << 20), parse_error);
    CHECK_THROWS_AS(decompress(x, compression::xz, 1 << 20), parse_error);
    CHECK_THROWS_AS(decompress("not gzip at all", compression::gzip, 1 << 20), parse_error);
}

TEST_CASE("repo_poller: versions are ordered as libapt-pkg (and dpkg) order them")
{
    // Vectors from Debian policy 5.6.12 (and dpkg --compare-versions), all in one helper run.
    auto o = order_of({"1.0-1", "1.1-1", "1:0.9-1", "1.0~rc1-1", "1.0~~", "1.0~", "1.0", "1.10", "1.9", "1.0+b1",
                       "0:1.0", "2.0a", "2.0"});
    CHECK(o.compare("1.0-1", "1.0-1") == 0);
    CHECK(o.compare("1.1-1", "1.0-1") > 0);
    CHECK(o.compare("1:0.9-1", "1.1-1") > 0);       // epoch wins
    CHECK(o.compare("1.0~rc1-1", "1.0-1") < 0);     // tilde sorts before anything
    CHECK(o.compare("1.0~~", "1.0~") < 0);
    CHECK(o.compare("1.0-1", "1.0") > 0);           // revision
    CHECK(o.compare("1.10", "1.9") > 0);            // numeric, not lexical
    CHECK(o.compare("1.0+b1", "1.0") > 0);
    CHECK(o.compare("0:1.0", "1.0") == 0);
    CHECK(o.compare("2.0a", "2.0") > 0);
}

TEST_CASE("repo_poller: one helper run per index orders its versions of interest and the remembered ones")
{
    std::vector<binary_package> l{{"foo", "1.0-1", "amd64", ""}, {"foo", "1.0~rc1", "amd64", ""}, {"bar", "9", "amd64", ""},
                                  {"baz", "1.0-1", "amd64", ""}};
    std::map<std::string, std::string> v{{"main/amd64/foo", "0.9"}, {"main/amd64/gone", "3"}, {"main/arm64/foo", "7"},
                                         {"contrib/amd64/foo", "8"}};
    // Distinct, first seen first; only packages of interest; only this component/architecture's state.
    CHECK(versions_to_order(l, {"foo", "baz"}, v, "main", "amd64") ==
          std::vector<std::string>{"1.0-1", "1.0~rc1", "0.9", "3"});
    CHECK(versions_to_order(l, {}, {}, "main", "amd64") == std::vector<std::string>{"1.0-1", "1.0~rc1", "9"});
    CHECK(versions_to_order({}, {}, {}, "main", "amd64").empty());
    // A remembered string that is not a version is not sent (the helper would refuse the run):
    // the package counts as changed.
    std::map<std::string, std::string> junk{{"main/amd64/foo", "not a version"}};
    auto cur = pkgs({{"foo", "1.0-1"}});
    CHECK(versions_to_order({cur.at("foo")}, {}, junk, "main", "amd64") == std::vector<std::string>{"1.0-1"});
    auto ch = apply_index(junk, "main", "amd64", cur, true, order_for(junk, cur));
    REQUIRE(ch.size() == 1);
    CHECK(ch[0].old_version == "not a version");
    // A helper that cannot run, or that answers nonsense, gives no order and says why.
    auto missing = deploykit::rank_versions("/nonexistent/stomp-repo-vercmp", {"1.0", "2.0"});
    CHECK_FALSE(missing.order);
    CHECK(missing.error.find("/nonexistent/stomp-repo-vercmp") != std::string::npos);
    auto wrong = deploykit::rank_versions("/bin/echo", {"1.0", "2.0"});
    CHECK_FALSE(wrong.order);
    CHECK(wrong.error.find("unreadable answer") != std::string::npos);
    CHECK(deploykit::check_version_helper(STOMP_REPO_VERCMP).empty());
    CHECK_FALSE(deploykit::check_version_helper("/bin/true").empty());
    // More than one run can rank is refused before any run.
    std::vector<std::string> many(deploykit::max_versions_per_run + 1);
    for (std::size_t i = 0; i < many.size(); ++i) many[i] = std::to_string(i);
    auto big = deploykit::rank_versions(STOMP_REPO_VERCMP, many);
    CHECK_FALSE(big.order);
    CHECK(big.error.find("more than the 100000") != std::string::npos);
}

TEST_CASE("repo_poller: names that may reach a URL or the bus are checked")
{
    CHECK(valid_package_name("libfoo1.2+b-dev"));
    CHECK_FALSE(valid_package_name("Foo"));
    CHECK_FALSE(valid_package_name("a"));
    CHECK_FALSE(valid_package_name("foo bar"));
    CHECK_FALSE(valid_package_name("../etc"));
    CHECK(valid_version("1:2.0~rc1-1+b2"));
    CHECK_FALSE(valid_version("a1.0"));
    CHECK_FALSE(valid_version("1.0;id"));
    CHECK_FALSE(valid_version(std::string(201, '1')));
    CHECK(valid_dist_name("bookworm"));
    CHECK(valid_dist_name("bookworm/updates"));
    CHECK_FALSE(valid_dist_name("../../etc"));
    CHECK_FALSE(valid_dist_name("a//b"));
    CHECK_FALSE(valid_dist_name("a b"));
    CHECK_FALSE(valid_dist_name(""));
    CHECK(name_matches({}, "anything"));
    CHECK(name_matches({"foo", "baz-*"}, "baz-tools"));
    CHECK(name_matches({"lib?oo"}, "libfoo"));
    CHECK_FALSE(name_matches({"foo", "baz-*"}, "bar"));
}

TEST_CASE("repo_poller: the first poll records a baseline and publishes nothing")
{
    std::map<std::string, std::string> v;
    auto ch = apply_index(v, "main", "amd64", pkgs({{"foo", "1.0-1"}, {"bar", "2.0"}}), false, version_order{});
    CHECK(ch.empty());
    CHECK(v.at("main/amd64/foo") == "1.0-1");
    CHECK(v.at("main/amd64/bar") == "2.0");
}

TEST_CASE("repo_poller: only newer versions and new packages are changes")
{
    std::map<std::string, std::string> v{{"main/amd64/foo", "1.0-1"}, {"main/amd64/bar", "2.0"}, {"main/amd64/gone", "1"},
                                         {"main/arm64/foo", "0.1"}};
    auto cur = pkgs({{"foo", "1:0.5-1"}, {"bar", "1.9"}, {"new-pkg", "0.1"}});
    auto ch = apply_index(v, "main", "amd64", cur, true, order_for(v, cur));
    REQUIRE(ch.size() == 2);
    CHECK(ch[0] == change{"main", "amd64", "foo", "1.0-1", "1:0.5-1", "foo_1:0.5-1_amd64.deb"});
    CHECK(ch[1].name == "new-pkg");
    CHECK(ch[1].old_version.empty());
    // The downgrade is recorded quietly, the removal forgotten, the other architecture untouched.
    CHECK(v.at("main/amd64/bar") == "1.9");
    CHECK(v.count("main/amd64/gone") == 0);
    CHECK(v.at("main/arm64/foo") == "0.1");
    // The same index again: nothing.
    CHECK(apply_index(v, "main", "amd64", cur, true, order_for(v, cur)).empty());
}

TEST_CASE("repo_poller: the newest version of each package of interest is taken")
{
    std::vector<binary_package> l{{"foo", "1.0-1", "amd64", ""}, {"foo", "1.0~rc1", "amd64", ""}, {"foo", "1:0.1", "amd64", ""},
                                  {"bar", "9", "amd64", ""}};
    auto o = order_of(versions_to_order(l, {}, {}, "main", "amd64"));
    auto m = newest_of_interest(l, {"foo"}, o);
    REQUIRE(m.size() == 1);
    CHECK(m.at("foo").version == "1:0.1");
    CHECK(newest_of_interest(l, {}, o).size() == 2);
}

TEST_CASE("repo_poller: the state round-trips and a foreign file is refused")
{
    suite_state s;
    s.etag = "\"abc\"";
    s.last_modified = "Fri, 04 Dec 2026 13:00:00 GMT";
    s.release_sha256 = std::string(64, 'e');
    s.index_hashes["main/amd64"] = std::string(64, 'f');
    s.versions["main/amd64/foo"] = "1:1.0-1";
    s.baseline = true;
    s.interest = "foo\n";
    auto t = parse_state(serialize_state(s));
    CHECK(t.etag == s.etag);
    CHECK(t.last_modified == s.last_modified);
    CHECK(t.release_sha256 == s.release_sha256);
    CHECK(t.index_hashes == s.index_hashes);
    CHECK(t.versions == s.versions);
    CHECK(t.baseline);
    CHECK(t.interest == "foo\n");
    CHECK_THROWS_AS(parse_state("{}"), parse_error);
    CHECK_THROWS_AS(parse_state("not json"), parse_error);
    CHECK_THROWS_AS(parse_state(R"({"format":"repo-poller-state-1"})"), parse_error);
    // File names: fixed length, hex, distinct per (url, suite).
    auto a = state_file_name("http://r/x", "bookworm"), b = state_file_name("http://r/x", "trixie");
    CHECK(a.size() == 37);
    CHECK(a != b);
    CHECK(a.find('/') == std::string::npos);
}

TEST_CASE("repo_poller: interval plus jitter after a success and bounded exponential backoff after failures")
{
    schedule s{.interval = 60s, .jitter = 10s, .retry_initial = 1s, .retry_max = 30s};
    CHECK(next_delay(s, 0, 0.0) == 60s);
    CHECK(next_delay(s, 0, 1.0) == 70s);
    CHECK(next_delay(s, 1, 0.0) == 500ms);
    CHECK(next_delay(s, 1, 1.0) == 1s);
    CHECK(next_delay(s, 3, 1.0) == 4s);
    CHECK(next_delay(s, 3, 0.0) == 2s);
    CHECK(next_delay(s, 30, 1.0) == 30s);   // capped
    CHECK(next_delay(s, 1000, 0.5) <= 30s);
}

TEST_CASE("repo_poller: credentials never reach a log line")
{
    CHECK(redact_url("https://user:secret@repo.example/debian") == "https://repo.example/debian");
    CHECK(redact_url("http://repo.example/a@b") == "http://repo.example/a@b");
    CHECK(redact_url("http://repo.example") == "http://repo.example");
}

TEST_CASE("repo_poller: the config names file line and key and suggests the nearest key")
{
    const std::string head = "rserver: stomp://127.0.0.1:61613\nstate-dir: /tmp/rp-state\n";
    auto c = parse_config(head + "repositories:\n  - url: http://repo.example/debian/\n    suites: [bookworm, trixie]\n"
                                 "    interval: 5m\n",
                          "rp.yaml");
    CHECK(c.topic == "future.package.updates");
    REQUIRE(c.repositories.size() == 1);
    CHECK(c.repositories[0].url == "http://repo.example/debian");
    CHECK(c.repositories[0].suites.size() == 2);
    CHECK(c.repositories[0].when.interval == 300s);
    CHECK(c.repositories[0].when.jitter == 30s);
    CHECK(c.bus.spool);
    CHECK(c.bus.spool->dir == "/tmp/rp-state/outbox");

    auto err = [&](const std::string& text) {
        try {
            parse_config(text, "rp.yaml");
        } catch (const std::exception& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    auto typo = err(head + "repositories:\n  - url: http://r/\n    suites: [a]\n    intervall: 5m\n");
    CHECK(typo.find("rp.yaml:6") != std::string::npos);
    CHECK(typo.find("repositories[0].intervall") != std::string::npos);
    CHECK(typo.find("did you mean `interval`") != std::string::npos);
    CHECK(err(head + "repositories:\n  - url: ftp://r/\n    suites: [a]\n").find("repositories[0].url") != std::string::npos);
    CHECK(err(head + "repositories:\n  - url: http://r/\n").find("repositories[0].suites") != std::string::npos);
    CHECK(err(head + "repositories:\n  - url: http://r/\n    suites: ['../../x']\n").find("not a usable name") !=
          std::string::npos);
    CHECK(err(head + "repositories:\n  - url: http://r/\n    suites: [a]\n    keyring: relative.gpg\n").find("absolute") !=
          std::string::npos);
    CHECK(err(head).find("repositories") != std::string::npos);
    CHECK(err(head + "topic: /topic/x\nrepositories:\n  - url: http://r/\n    suites: [a]\n").find("topic") != std::string::npos);
}

TEST_CASE("repo_poller: a Last-Modified in the second it was served is not used for the next conditional GET")
{
    const std::string t1 = "Fri, 04 Dec 2026 13:00:00 GMT", t2 = "Fri, 04 Dec 2026 13:00:01 GMT";
    CHECK(validator_to_keep("", t1, t1).empty());        // could change again within this second
    CHECK(validator_to_keep("", t1, t2) == t1);          // older than the response: safe
    CHECK(validator_to_keep("\"e1\"", t1, t1) == t1);    // an ETag decides anyway
    CHECK(validator_to_keep("", "", t1).empty());
}
