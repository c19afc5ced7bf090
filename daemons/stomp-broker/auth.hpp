#pragma once

// Users and permissions for the embedded broker: a YAML users file with PBKDF2-SHA256 password
// hashes and per-user read/write destination patterns (the original gave each daemon its own
// login). Reloaded on SIGHUP.

#include "broker.hpp"

#include "bus/password.hpp"

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace broker {

struct user {
    std::string password_hash;        ///< pbkdf2-sha256$<iterations>$<salt hex>$<hash hex>
    std::vector<std::string> read;    ///< destination patterns (`*` matches anything)
    std::vector<std::string> write;
};

struct access_policy {
    bool anonymous = true;  ///< anyone may connect, with `anonymous_read`/`anonymous_write`
    std::vector<std::string> anonymous_read{"*"};
    std::vector<std::string> anonymous_write{"*"};
    std::map<std::string, user, std::less<>> users;

    /// Loads a users file; throws bus::config_error with the file, line and key.
    static access_policy load_file(const std::filesystem::path& path);
    /// The authorizer the core calls.
    authorizer make_authorizer() const;
};

// PBKDF2-SHA256 password hashes: libbus's one copy (bus/password.hpp), shared with herald.
using bus::check_password;
using bus::hash_password;
using bus::password_checks;
/// `*` matches any run of characters.
bool glob_match(std::string_view pattern, std::string_view s);

} // namespace broker
