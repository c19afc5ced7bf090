#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <nettle/hmac.h>
#include <nettle/pbkdf2.h>
#include <openssl/hmac.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
int main(int argc, char** argv) {
    std::ifstream in(argv[1]); std::stringstream ss; ss << in.rdbuf(); std::string body = ss.str();
    std::string key = "It's a Secret to Everybody";
    const int N = 100000;
    unsigned char out[32]; unsigned sink = 0;
    for (int round = 0; round < 3; ++round) {
        auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < N; ++i) {
            hmac_sha256_ctx c; hmac_sha256_set_key(&c, key.size(), (const uint8_t*)key.data());
            hmac_sha256_update(&c, body.size(), (const uint8_t*)body.data()); hmac_sha256_digest(&c, 32, out); sink += out[0];
        }
        auto t1 = std::chrono::steady_clock::now();
        for (int i = 0; i < N; ++i) {
            // the old digest.cpp: low-level SHA256 with ipad/opad
            unsigned char k[64] = {}; memcpy(k, key.data(), key.size()); unsigned char pad[64];
            SHA256_CTX c; for (int j = 0; j < 64; ++j) pad[j] = k[j] ^ 0x36;
            SHA256_Init(&c); SHA256_Update(&c, pad, 64); SHA256_Update(&c, body.data(), body.size()); unsigned char inner[32]; SHA256_Final(inner, &c);
            for (int j = 0; j < 64; ++j) pad[j] = k[j] ^ 0x5c;
            SHA256_Init(&c); SHA256_Update(&c, pad, 64); SHA256_Update(&c, inner, 32); SHA256_Final(out, &c); sink += out[0];
        }
        auto t2 = std::chrono::steady_clock::now();
        auto us = [](auto a, auto b) { return std::chrono::duration<double, std::micro>(b - a).count() / N; };
        std::printf("HMAC-SHA256 of %zu bytes: nettle %.2f us, openssl low-level %.2f us\n", body.size(), us(t0, t1), us(t1, t2));
    }
    auto t3 = std::chrono::steady_clock::now();
    uint8_t dk[32]; pbkdf2_hmac_sha256(13, (const uint8_t*)"correct horse", 100000, 16, (const uint8_t*)"0123456789abcdef", 32, dk);
    auto t4 = std::chrono::steady_clock::now();
    PKCS5_PBKDF2_HMAC("correct horse", 13, (const unsigned char*)"0123456789abcdef", 16, 100000, EVP_sha256(), 32, dk);
    auto t5 = std::chrono::steady_clock::now();
    std::printf("PBKDF2-HMAC-SHA256 100000 iterations: nettle %.1f ms, openssl %.1f ms\n",
        std::chrono::duration<double, std::milli>(t4 - t3).count(), std::chrono::duration<double, std::milli>(t5 - t4).count());
    return sink == 12345;
}
