// bus/crypto.hpp (Nettle) against the published known-answer vectors, and against what the
// OpenSSL code it replaced produced: password hashes and signed events written before the switch
// still verify. (Hashed known_hosts entries made by ssh-keygen: stomp_git_transport_test.cpp.)
#include "bus/crypto.hpp"
#include "bus/detail/hex.hpp"
#include "bus/password.hpp"
#include "bus/signing.hpp"
#include "bus/stomp/frame.hpp"

#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>

using namespace bus::crypto;

namespace {
template <class D>
std::string hex_of(const D& d)
{
    return bus::detail::to_hex(reinterpret_cast<const unsigned char*>(d.data()), d.size());
}
const std::string abc448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
} // namespace

TEST_CASE("crypto: SHA-256 matches the FIPS 180 examples")
{
    CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    CHECK(sha256_hex(abc448) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    CHECK(sha256_hex(std::string(1000000, 'a')) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    CHECK(hex_of(sha256("abc")) == sha256_hex("abc"));
}

TEST_CASE("crypto: SHA-1 matches the FIPS 180 examples")
{
    CHECK(sha1_hex("abc") == "a9993e364706816aba3e25717850c26c9cd0d89d");
    CHECK(sha1_hex("") == "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    CHECK(sha1_hex(abc448) == "84983e441c3bd26ebaae4aa1f95129e5e54670f1");
    CHECK(sha1_hex(std::string(1000000, 'a')) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f");
    CHECK(hex_of(sha1("abc")) == sha1_hex("abc"));
}

TEST_CASE("crypto: HMAC-SHA256 matches RFC 4231 test cases 1 to 4 and 6 and 7")
{
    CHECK(hmac_sha256_hex(std::string(20, '\x0b'), "Hi There") ==
          "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    CHECK(hmac_sha256_hex("Jefe", "what do ya want for nothing?") ==
          "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    CHECK(hmac_sha256_hex(std::string(20, '\xaa'), std::string(50, '\xdd')) ==
          "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
    std::string k4;
    for (char c = 1; c <= 25; ++c) k4 += c;
    CHECK(hmac_sha256_hex(k4, std::string(50, '\xcd')) ==
          "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
    // Keys longer than the 64-byte block are hashed first.
    CHECK(hmac_sha256_hex(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First") ==
          "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    CHECK(hmac_sha256_hex(std::string(131, '\xaa'),
                          "This is a test using a larger than block-size key and a larger than block-size data. "
                          "The key needs to be hashed before being used by the HMAC algorithm.") ==
          "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
    CHECK(hex_of(hmac_sha256("Jefe", "what do ya want for nothing?")) ==
          hmac_sha256_hex("Jefe", "what do ya want for nothing?"));
    // GitHub's published webhook example.
    CHECK(hmac_sha256_hex("It's a Secret to Everybody", "Hello, World!") ==
          "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
}

TEST_CASE("crypto: HMAC-SHA1 matches RFC 2202 test cases 1 to 7")
{
    CHECK(hmac_sha1_hex(std::string(20, '\x0b'), "Hi There") == "b617318655057264e28bc0b6fb378c8ef146be00");
    CHECK(hmac_sha1_hex("Jefe", "what do ya want for nothing?") == "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    CHECK(hmac_sha1_hex(std::string(20, '\xaa'), std::string(50, '\xdd')) == "125d7342b9ac11cd91a39af48aa17b4f63f175d3");
    std::string k4;
    for (char c = 1; c <= 25; ++c) k4 += c;
    CHECK(hmac_sha1_hex(k4, std::string(50, '\xcd')) == "4c9007f4026250c6bc8414f9bf50c86c2d7235da");
    CHECK(hmac_sha1_hex(std::string(20, '\x0c'), "Test With Truncation") == "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04");
    CHECK(hmac_sha1_hex(std::string(80, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First") ==
          "aa4ae5e15272d00e95705637ce8a3b55ed402112");
    CHECK(hmac_sha1_hex(std::string(80, '\xaa'),
                        "Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data") ==
          "e8e99d0f45237d786d6bbaa7965c7808bbff1a91");
    CHECK(hex_of(hmac_sha1("Jefe", "what do ya want for nothing?")) == hmac_sha1_hex("Jefe", "what do ya want for nothing?"));
}

TEST_CASE("crypto: PBKDF2-HMAC-SHA256 matches RFC 7914 section 11")
{
    CHECK(hex_of(pbkdf2_sha256("passwd", "salt", 1, 64)) ==
          "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"
          "49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783");
    CHECK(hex_of(pbkdf2_sha256("Password", "NaCl", 80000, 64)) ==
          "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56"
          "a1d425a1225833549adb841b51c9b3176a272bdebba1d078478f62b397f33c8d");
    CHECK(pbkdf2_sha256("passwd", "salt", 1, 16) == pbkdf2_sha256("passwd", "salt", 1, 64).substr(0, 16));
    CHECK_THROWS_AS(pbkdf2_sha256("passwd", "salt", 0, 32), std::invalid_argument);
}

TEST_CASE("crypto: base64 matches RFC 4648 section 10 both ways")
{
    const std::pair<std::string, std::string> v[] = {{"", ""},          {"f", "Zg=="},         {"fo", "Zm8="},
                                                     {"foo", "Zm9v"},   {"foob", "Zm9vYg=="},  {"fooba", "Zm9vYmE="},
                                                     {"foobar", "Zm9vYmFy"}};
    for (const auto& [plain, enc] : v) {
        CAPTURE(plain);
        CHECK(base64_encode(plain) == enc);
        CHECK(base64_decode(enc) == std::optional<std::string>(plain));
        std::string bare = enc;
        while (bare.ends_with('=')) bare.pop_back();
        CHECK(base64_encode(plain, false) == bare);
        CHECK(base64_decode(bare) == std::optional<std::string>(plain));  // padding is optional
    }
    CHECK(base64_encode(std::string("\xfb\xff\xbf", 3)) == "+/+/");  // the standard alphabet
    CHECK(base64_decode("+/+/") == std::optional<std::string>(std::string("\xfb\xff\xbf", 3)));
}

TEST_CASE("crypto: strict base64 decode refuses bad characters and bad padding")
{
    using namespace std::string_view_literals;
    const std::string_view bad_inputs[] = {
        "Zm9v YmFy", " Zm9v", "Zm9v\n", "Zm9vYmFy\r\n", "Zm9v\tYg==",                         // blanks
        "-_-_", "Zm9v*mFy", "Zm9v.mFy", "Zm\0v"sv,                                              // alphabet
        "Z", "Zm9vY", "Z===", "Zg=", "Zg===", "Zm8==", "=Zm9", "Zm=9v", "Zg==Zg==",                // padding
        "Zh==", "Zm9=", "Zm9vYh==",                                                              // trailing bits
    };
    for (auto bad : bad_inputs) {
        CAPTURE(bad);
        CHECK_FALSE(base64_decode(bad));
    }
}

TEST_CASE("crypto: equal_constant_time compares bytes and lengths")
{
    CHECK(equal_constant_time("", ""));
    CHECK(equal_constant_time("secret", "secret"));
    CHECK_FALSE(equal_constant_time("secret", "secreT"));
    CHECK_FALSE(equal_constant_time("Secret", "secret"));
    CHECK_FALSE(equal_constant_time("secret", "secret2"));
    CHECK_FALSE(equal_constant_time(std::string_view("a\0b", 3), std::string_view("a\0c", 3)));
}

TEST_CASE("crypto: random_bytes gives the requested length and differs between calls")
{
    CHECK(random_bytes(0).empty());
    std::set<std::string> seen;
    for (int i = 0; i < 16; ++i) {
        auto r = random_bytes(32);
        CHECK(r.size() == 32);
        seen.insert(r);
    }
    CHECK(seen.size() == 16);
    unsigned char big[70000];  // more than one getrandom call may return at once
    random_bytes(big, sizeof big);
}

TEST_CASE("crypto: a password hash made by the OpenSSL code still verifies")
{
    // `printf 'correct horse\n' | stomp-broker --hash-password`, built from main f5ad7c8
    // (OpenSSL's PKCS5_PBKDF2_HMAC and RAND_bytes).
    const std::string old = "pbkdf2-sha256$100000$7452c4625b51f3243978e1aa40ff9092$"
                            "81f2a3edbc6a7fbed51ce6e88e75905f9280a13ffec068b154ff3ec18633a723";
    CHECK(bus::check_password("correct horse", old));
    CHECK_FALSE(bus::check_password("correct horsf", old));
    CHECK_FALSE(bus::check_password("", old));
    // And a new one, in the same format.
    auto h = bus::hash_password("correct horse", 1000);
    CHECK(h.starts_with("pbkdf2-sha256$1000$"));
    CHECK(h.size() == std::string("pbkdf2-sha256$1000$").size() + 32 + 1 + 64);
    CHECK(bus::check_password("correct horse", h));
    CHECK_FALSE(bus::check_password("correct horse ", h));
    CHECK(bus::hash_password("correct horse", 1000) != h);  // a fresh salt each time
}

TEST_CASE("crypto: an event signed by the OpenSSL code still verifies")
{
    // bus::sign from main f5ad7c8 (OpenSSL's HMAC), printed frame.
    bus::stomp::frame f;
    f.command = "SEND";
    f.set("destination", "/topic/deploykit.commits");
    f.set("content-type", "application/json");
    f.set("dk-event-id", "0b6f0c7e-4a55-4c1e-9a7b-8d1c2f3e4a5b");
    f.set("dk-event-type", "commit");
    f.set("dk-sig-key", "ci-2026");
    f.set("dk-sig-ts", "1796450000");
    f.set("dk-sig", "v2:583ec0c7d534b04fd660954dfa5c9e89484287f69794511a0e16c2f2842b204d");
    f.body = R"({"repo":"site","ref":"refs/heads/main","after":"a94a8fe5ccb19ba61c4c0873d391e987982fbbd3"})";
    bus::keyring keys;
    keys.add({"ci-2026", "0123456789abcdef-old-openssl-key"});
    CHECK(bus::verify(f, keys, 1796450000, std::chrono::seconds(300)) == bus::signature_verdict::ok);
    auto forged = f;
    forged.body.back() = ']';
    CHECK(bus::verify(forged, keys, 1796450000, std::chrono::seconds(300)) == bus::signature_verdict::bad_signature);
    // Signing it again now gives the same signature.
    auto again = f;
    bus::sign(again, {"ci-2026", "0123456789abcdef-old-openssl-key"}, 1796450000);
    CHECK(again.get("dk-sig") == f.get("dk-sig"));
}
