#include "auth.hpp"

#include "bus/detail/hex.hpp"
#include "bus/url.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <memory>

namespace broker {

namespace {

std::vector<std::string> patterns(const YAML::Node& n, const std::string& where)
{
    std::vector<std::string> out;
    if (!n) return {"*"};
    if (!n.IsSequence())
        throw bus::config_error(where + " (line " + std::to_string(n.Mark().line + 1) + "): must be a list of patterns");
    for (const auto& p : n) out.push_back(p.as<std::string>());
    return out;
}

} // namespace

bool glob_match(std::string_view p, std::string_view s)
{
    std::size_t pi = 0, si = 0, star = std::string_view::npos, mark = 0;
    while (si < s.size()) {
        if (pi < p.size() && p[pi] == '*') {
            star = pi++;
            mark = si;
        } else if (pi < p.size() && p[pi] == s[si]) {
            ++pi;
            ++si;
        } else if (star != std::string_view::npos) {
            pi = star + 1;
            si = ++mark;
        } else {
            return false;
        }
    }
    while (pi < p.size() && p[pi] == '*') ++pi;
    return pi == p.size();
}

access_policy access_policy::load_file(const std::filesystem::path& path)
{
    YAML::Node root;
    try {
        root = YAML::LoadFile(path.string());
    } catch (const YAML::Exception& e) {
        throw bus::config_error(path.string() + ": line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
    }
    access_policy p;
    p.anonymous = false;
    std::string f = path.string();
    try {
        if (auto a = root["anonymous"]) p.anonymous = a.as<bool>();
        p.anonymous_read = patterns(root["anonymous_read"], f + ": anonymous_read");
        p.anonymous_write = patterns(root["anonymous_write"], f + ": anonymous_write");
        if (auto users = root["users"]) {
            if (!users.IsMap())
                throw bus::config_error(f + ": line " + std::to_string(users.Mark().line + 1) + ": users must be a map");
            for (const auto& u : users) {
                std::string name = u.first.as<std::string>();
                std::string where = f + ": users." + name;
                user usr;
                auto pw = u.second["password"];
                if (!pw)
                    throw bus::config_error(where + " (line " + std::to_string(u.second.Mark().line + 1) +
                                            "): missing password (a hash from 'stomp-broker --hash-password')");
                usr.password_hash = pw.as<std::string>();
                if (!usr.password_hash.starts_with("pbkdf2-sha256$"))
                    throw bus::config_error(where + ".password (line " + std::to_string(pw.Mark().line + 1) +
                                            "): not a pbkdf2-sha256 hash; plain passwords are not accepted");
                usr.read = patterns(u.second["read"], where + ".read");
                usr.write = patterns(u.second["write"], where + ".write");
                p.users.emplace(name, std::move(usr));
            }
        }
    } catch (const YAML::Exception& e) {
        throw bus::config_error(f + ": line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
    }
    return p;
}

authorizer access_policy::make_authorizer() const
{
    auto self = std::make_shared<access_policy>(*this);
    // An unknown login costs what a known one does: its passcode is checked against a dummy
    // hash with the most iterations any user has, so timing does not tell which logins exist.
    unsigned iterations = 100000;
    for (auto& [_, u] : users) {
        auto first = u.password_hash.find('$');
        auto second = u.password_hash.find('$', first + 1);
        unsigned n = 0;
        if (first != std::string::npos && second != std::string::npos)
            std::from_chars(u.password_hash.data() + first + 1, u.password_hash.data() + second, n);
        if (n <= 10'000'000) iterations = std::max(iterations, n);
    }
    auto dummy = std::make_shared<const std::string>(users.empty() ? std::string{} : hash_password("", iterations));
    authorizer a;
    a.authenticate = [self, dummy](std::string_view login, std::string_view passcode) -> std::string {
        auto it = self->users.find(login);
        if (it != self->users.end())
            return check_password(passcode, it->second.password_hash) ? "" : "bad login or passcode";
        if (self->anonymous) return {};
        if (!dummy->empty()) check_password(passcode, *dummy);
        return "bad login or passcode";
    };
    a.permit = [self](std::string_view login, std::string_view dest, bool write) {
        const std::vector<std::string>* list = nullptr;
        if (auto it = self->users.find(login); it != self->users.end())
            list = write ? &it->second.write : &it->second.read;
        else
            list = write ? &self->anonymous_write : &self->anonymous_read;
        for (auto& p : *list)
            if (glob_match(p, dest)) return true;
        return false;
    };
    return a;
}

} // namespace broker
