#include "bus/config.hpp"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <iterator>

namespace bus {

std::string config_where(const std::string& file, const YAML::Node& n, std::string_view key)
{
    return file + ":" + std::to_string(n.Mark().line + 1) + ": " + std::string(key);
}

YAML::Node load_yaml(const std::filesystem::path& path)
{
    try {
        return YAML::LoadFile(path.string());
    } catch (const YAML::BadFile&) {
        throw config_error(path.string() + ": cannot read");
    } catch (const YAML::Exception& e) {
        throw config_error(path.string() + ":" + std::to_string(e.mark.line + 1) + ": " + e.msg);
    }
}

namespace {

std::string scalar(const YAML::Node& root, const std::string& file, std::string_view key, bool required = false)
{
    auto n = root[std::string(key)];
    if (!n || n.IsNull()) {
        if (required) throw config_error(file + ": " + std::string(key) + ": missing");
        return {};
    }
    if (!n.IsScalar()) throw config_error(config_where(file, n, key) + ": must be a single value");
    return n.Scalar();
}

long number(const YAML::Node& root, const std::string& file, std::string_view key, long dflt)
{
    auto n = root[std::string(key)];
    if (!n) return dflt;
    try {
        return n.as<long>();
    } catch (const YAML::Exception&) {
        throw config_error(config_where(file, n, key) + ": '" + n.Scalar() + "' is not a number");
    }
}

} // namespace

std::string read_secret_file(const std::string& path, const std::string& what)
{
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) throw config_error(what + ": cannot read " + path);
    if (st.st_mode & 077) throw config_error(what + ": " + path + " must not be accessible by group or others (chmod 600)");
    std::ifstream in(path);
    std::string s((std::istreambuf_iterator<char>(in)), {});
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
}

bus_config read_bus_config(const YAML::Node& root, const std::string& file)
{
    if (!root.IsMap()) throw config_error(file + ": expected a map of settings");
    bus_config c;
    std::string rserver = scalar(root, file, "rserver", true);
    try {
        c.client.url = parse_broker_url(rserver, scalar(root, file, "stomp-options"));
    } catch (const config_error& e) {
        auto n = root["stomp-options"] ? root["stomp-options"] : root["rserver"];
        throw config_error(config_where(file, n, "rserver/stomp-options") + ": " + e.what());
    }
    if (auto pf = scalar(root, file, "passcode-file"); !pf.empty()) {
        auto pw = read_secret_file(pf, config_where(file, root["passcode-file"], "passcode-file"));
        for (auto& ep : c.client.url.endpoints) ep.passcode = pw;
    }
    c.client.vhost = scalar(root, file, "vhost");
    c.client.client_id = scalar(root, file, "client-id");
    if (root["heartbeat-ms"]) {
        auto hb = std::chrono::milliseconds(number(root, file, "heartbeat-ms", 10000));
        c.client.heartbeat_send = c.client.heartbeat_receive = hb;
    }
    if (root["keepalive-ms"])
        c.client.synthetic_keepalive = std::chrono::milliseconds(number(root, file, "keepalive-ms", 10000));
    c.client.tls.ca_file = scalar(root, file, "tls-ca-file");
    if (auto dir = scalar(root, file, "spool-dir"); !dir.empty()) c.spool = outbox_options{.dir = dir};
    if (auto f = scalar(root, file, "wire-format"); !f.empty()) {
        auto w = parse_wire_format(f);
        if (!w) throw config_error(config_where(file, root["wire-format"], "wire-format") + ": must be legacy, native or both");
        c.format = *w;
    }
    if (auto kf = scalar(root, file, "signing-key-file"); !kf.empty()) {
        auto keys = keyring::load_file(kf);
        auto id = scalar(root, file, "signing-key-id");
        const signing_key* k = keys.find(id);
        if (!k) throw config_error(config_where(file, root["signing-key-id"] ? root["signing-key-id"] : root["signing-key-file"],
                                                "signing-key-id") + ": key '" + id + "' is not in " + kf);
        c.signing = *k;
    }
    if (auto vf = scalar(root, file, "verify-key-file"); !vf.empty()) c.verify_keys = keyring::load_file(vf);
    if (auto n = root["require-signatures"]) {
        try {
            c.require_signatures = n.as<bool>();
        } catch (const YAML::Exception&) {
            throw config_error(config_where(file, n, "require-signatures") + ": must be true or false");
        }
        if (c.require_signatures && c.verify_keys.empty())
            throw config_error(config_where(file, n, "require-signatures") + ": needs verify-key-file");
    }
    return c;
}

} // namespace bus
