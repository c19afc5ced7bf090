#include "bus/signing.hpp"

#include "bus/crypto.hpp"
#include "bus/url.hpp"

#include <sys/stat.h>

#include <array>
#include <charconv>
#include <fstream>
#include <optional>

namespace bus {

namespace {

// The signed text, scheme v2: every field length-prefixed, so no byte can move from one field
// into another (v1 joined them with newlines, and a STOMP 1.1/1.2 header value may carry escaped
// newlines, so body text could move into a signed header and still verify). Each field is
// 0x00 when absent, else 0x01, its length as 8 bytes big-endian, and its bytes.
void put_field(std::string& c, std::optional<std::string_view> v)
{
    if (!v) {
        c.push_back('\0');
        return;
    }
    c.push_back('\1');
    std::uint64_t n = v->size();
    for (int shift = 56; shift >= 0; shift -= 8) c.push_back(static_cast<char>((n >> shift) & 0xff));
    c.append(*v);
}

std::string canonical(const stomp::frame& f, std::string_view kid, std::string_view ts)
{
    std::string c;
    c.reserve(f.body.size() + 512);
    put_field(c, "dk-sig-v2");
    put_field(c, kid);
    put_field(c, ts);
    put_field(c, f.find("destination"));
    for (auto h : signed_headers) put_field(c, f.find(h));
    put_field(c, f.body);
    return c;
}

using crypto::hmac_sha256_hex;

} // namespace

void keyring::add(signing_key k)
{
    std::string id = k.id;
    keys_[id] = std::move(k);
}

const signing_key* keyring::find(std::string_view id) const
{
    auto it = keys_.find(id);
    return it == keys_.end() ? nullptr : &it->second;
}

keyring keyring::load_file(const std::filesystem::path& path)
{
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw config_error(path.string() + ": cannot read signing key file");
    if (!S_ISREG(st.st_mode)) throw config_error(path.string() + ": signing key file is not a regular file");
    if (st.st_mode & 077)
        throw config_error(path.string() + ": signing key file must not be accessible by group or others (chmod 600)");
    std::ifstream in(path);
    if (!in) throw config_error(path.string() + ": cannot read signing key file");
    keyring r;
    std::string line;
    int n = 0;
    while (std::getline(in, line)) {
        ++n;
        while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
        if (line.empty() || line.front() == '#') continue;
        auto sp = line.find_first_of(" \t");
        if (sp == std::string::npos)
            throw config_error(path.string() + ":" + std::to_string(n) + ": expected '<key-id> <secret>'");
        std::string id = line.substr(0, sp);
        std::string secret = line.substr(line.find_first_not_of(" \t", sp));
        if (secret.size() < 16)
            throw config_error(path.string() + ":" + std::to_string(n) + ": secret of key '" + id +
                               "' is shorter than 16 characters");
        r.add({id, secret});
    }
    if (r.empty()) throw config_error(path.string() + ": no keys");
    return r;
}

void sign(stomp::frame& f, const signing_key& k, std::int64_t unix_now)
{
    std::string ts = std::to_string(unix_now);
    f.set(header::sig_key, k.id);
    f.set(header::sig_time, ts);
    f.set(header::signature, std::string(signature_scheme) + hmac_sha256_hex(k.secret, canonical(f, k.id, ts)));
}

std::string_view to_string(signature_verdict v) noexcept
{
    switch (v) {
    case signature_verdict::ok: return "ok";
    case signature_verdict::unsigned_message: return "unsigned";
    case signature_verdict::unknown_key: return "unknown key";
    case signature_verdict::bad_signature: return "bad signature";
    case signature_verdict::stale: return "stale";
    case signature_verdict::unsupported_scheme: return "unsupported signature scheme (not v2)";
    }
    return "?";
}

signature_verdict verify(const stomp::frame& f, const keyring& keys, std::int64_t unix_now, std::chrono::seconds window)
{
    auto kid = f.find(header::sig_key);
    auto ts = f.find(header::sig_time);
    auto sig = f.find(header::signature);
    if (!kid || !ts || !sig) return signature_verdict::unsigned_message;
    // v1 (bare hex) is ambiguous and never verified, whatever key it names.
    if (!sig->starts_with(signature_scheme)) return signature_verdict::unsupported_scheme;
    sig->remove_prefix(signature_scheme.size());
    const signing_key* k = keys.find(*kid);
    if (!k) return signature_verdict::unknown_key;
    std::string expected = hmac_sha256_hex(k->secret, canonical(f, *kid, *ts));
    if (sig->size() != expected.size() || !crypto::equal_constant_time(*sig, expected))
        return signature_verdict::bad_signature;
    std::int64_t t = 0;
    auto r = std::from_chars(ts->data(), ts->data() + ts->size(), t);
    if (r.ec != std::errc{} || r.ptr != ts->data() + ts->size()) return signature_verdict::bad_signature;
    std::int64_t age = unix_now - t;
    if (age > window.count() || -age > window.count()) return signature_verdict::stale;
    return signature_verdict::ok;
}

} // namespace bus
