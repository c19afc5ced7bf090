// The low-level SHA functions are marked deprecated in OpenSSL 3 in favour of EVP; they are the
// same implementation without the provider layer (digest.hpp says why that matters here).
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include "digest.hpp"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <sys/random.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace webhook {

namespace {

struct sha256_fns {
    using ctx = SHA256_CTX;
    static constexpr std::size_t block = SHA256_CBLOCK, size = SHA256_DIGEST_LENGTH;
    static void init(ctx* c) { SHA256_Init(c); }
    static void update(ctx* c, const void* p, std::size_t n) { SHA256_Update(c, p, n); }
    static void final(unsigned char* out, ctx* c) { SHA256_Final(out, c); }
};

struct sha1_fns {
    using ctx = SHA_CTX;
    static constexpr std::size_t block = SHA_CBLOCK, size = SHA_DIGEST_LENGTH;
    static void init(ctx* c) { SHA1_Init(c); }
    static void update(ctx* c, const void* p, std::size_t n) { SHA1_Update(c, p, n); }
    static void final(unsigned char* out, ctx* c) { SHA1_Final(out, c); }
};

// RFC 2104: H((K' ^ opad) || H((K' ^ ipad) || text)), K' = K (or H(K) when longer than a block)
// zero-padded to the block size.
template <class H>
std::array<unsigned char, H::size> hmac(std::string_view key, std::string_view data) noexcept
{
    unsigned char k[H::block] = {};
    typename H::ctx c;
    if (key.size() > H::block) {
        H::init(&c);
        H::update(&c, key.data(), key.size());
        H::final(k, &c);
    } else {
        std::memcpy(k, key.data(), key.size());
    }
    unsigned char pad[H::block];
    for (std::size_t i = 0; i < H::block; ++i) pad[i] = static_cast<unsigned char>(k[i] ^ 0x36);
    unsigned char inner[H::size];
    H::init(&c);
    H::update(&c, pad, sizeof pad);
    H::update(&c, data.data(), data.size());
    H::final(inner, &c);
    for (std::size_t i = 0; i < H::block; ++i) pad[i] = static_cast<unsigned char>(k[i] ^ 0x5c);
    std::array<unsigned char, H::size> out{};
    H::init(&c);
    H::update(&c, pad, sizeof pad);
    H::update(&c, inner, sizeof inner);
    H::final(out.data(), &c);
    OPENSSL_cleanse(k, sizeof k);
    OPENSSL_cleanse(pad, sizeof pad);
    OPENSSL_cleanse(&c, sizeof c);
    return out;
}

} // namespace

sha256_digest sha256(std::string_view data) noexcept
{
    sha256_digest out{};
    SHA256_CTX c;
    SHA256_Init(&c);
    SHA256_Update(&c, data.data(), data.size());
    SHA256_Final(out.data(), &c);
    return out;
}

sha256_digest hmac_sha256(std::string_view key, std::string_view data) noexcept
{
    return hmac<sha256_fns>(key, data);
}

sha1_digest hmac_sha1(std::string_view key, std::string_view data) noexcept
{
    return hmac<sha1_fns>(key, data);
}

void random_bytes(unsigned char* out, std::size_t n)
{
    while (n > 0) {
        ssize_t got = ::getrandom(out, n, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            throw std::system_error(errno, std::generic_category(), "getrandom");
        }
        out += got;
        n -= static_cast<std::size_t>(got);
    }
}

} // namespace webhook
