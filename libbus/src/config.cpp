#include "bus/config.hpp"

#include "bus/detail/files.hpp"
#include "bus/runtime/config_reader.hpp"

#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <fstream>
#include <iterator>

namespace bus {

using milliseconds_t = std::chrono::milliseconds;

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

// A setting by its hyphenated name, or by its underscore alias (`passcode_file`), which the
// runtime's reader accepts as the same key (one spelling per key: it refuses both at once).
YAML::Node at(const YAML::Node& root, std::string_view key)
{
    if (auto n = root[std::string(key)]) return n;
    std::string alias(key);
    std::replace(alias.begin(), alias.end(), '-', '_');
    return root[alias];
}

std::string scalar(const YAML::Node& root, const std::string& file, std::string_view key, bool required = false)
{
    auto n = at(root, key);
    if (!n || n.IsNull()) {
        if (required) throw config_error(file + ": " + std::string(key) + ": missing");
        return {};
    }
    if (!n.IsScalar()) throw config_error(config_where(file, n, key) + ": must be a single value");
    return n.Scalar();
}

long number(const YAML::Node& root, const std::string& file, std::string_view key, long dflt)
{
    auto n = at(root, key);
    if (!n) return dflt;
    try {
        return n.as<long>();
    } catch (const YAML::Exception&) {
        throw config_error(config_where(file, n, key) + ": '" + n.Scalar() + "' is not a number");
    }
}

milliseconds_t duration_ms(const YAML::Node& root, const std::string& file, std::string_view key,
                          milliseconds_t dflt)
{
    long v = number(root, file, key, dflt.count());
    if (v < 0 || v > 24L * 3600 * 1000)
        throw config_error(config_where(file, at(root, key), key) + ": must be 0..86400000 milliseconds");
    return milliseconds_t(v);
}

// A map of extra STOMP headers: names without ':', values without CR/LF.
header_list header_map(const YAML::Node& root, const std::string& file, std::string_view key)
{
    header_list out;
    auto n = at(root, key);
    if (!n || n.IsNull()) return out;
    if (!n.IsMap()) throw config_error(config_where(file, n, key) + ": must be a map of header: value");
    for (auto it = n.begin(); it != n.end(); ++it) {
        std::string name = it->first.Scalar();
        if (!it->second.IsScalar())
            throw config_error(config_where(file, it->second, key) + "." + name + ": must be a single value");
        std::string value = it->second.Scalar();
        if (name.empty() || name.find_first_of(":\r\n") != std::string::npos ||
            value.find_first_of("\r\n") != std::string::npos)
            throw config_error(config_where(file, it->first, key) + ": '" + name +
                               "': header names cannot be empty or hold ':', CR or LF; values no CR or LF");
        out.emplace_back(std::move(name), std::move(value));
    }
    return out;
}

// `legacy-keepalive: {topics: ..., interval: SECONDS}`; `topics` as a list of names or, as in
// the original stomp-keepalive.yaml, a map of name -> {type: topic|queue, user, pass} (the
// credentials are the daemon's own here, so user/pass are accepted and not used).
std::vector<legacy_keepalive> legacy_keepalives(const YAML::Node& root, const std::string& file)
{
    std::vector<legacy_keepalive> out;
    auto n = at(root, "legacy-keepalive");
    if (!n || n.IsNull()) return out;
    if (!n.IsMap()) throw config_error(config_where(file, n, "legacy-keepalive") + ": must be a map with topics and interval");
    long secs = number(n, file, "interval", 60);
    if (secs < 1 || secs > 86400)
        throw config_error(config_where(file, n["interval"], "legacy-keepalive.interval") + ": must be 1..86400 seconds");
    auto dest = [](const std::string& name, const std::string& type) {
        return name.starts_with("/") ? name : "/" + type + "/" + name;
    };
    auto topics = n["topics"];
    if (!topics || !(topics.IsSequence() || topics.IsMap()) || topics.size() == 0)
        throw config_error(config_where(file, topics ? topics : n, "legacy-keepalive.topics") +
                           ": must list at least one topic");
    for (auto it = topics.begin(); it != topics.end(); ++it) {
        std::string name, type = "topic";
        if (topics.IsSequence()) {
            if (!it->IsScalar()) throw config_error(config_where(file, *it, "legacy-keepalive.topics") + ": must be names");
            name = it->Scalar();
        } else {
            name = it->first.Scalar();
            if (it->second.IsMap() && it->second["type"]) type = it->second["type"].Scalar();
        }
        if (type != "topic" && type != "queue")
            throw config_error(config_where(file, it->second, "legacy-keepalive.topics." + name + ".type") +
                               ": must be topic or queue");
        if (name.empty()) throw config_error(config_where(file, topics, "legacy-keepalive.topics") + ": empty name");
        out.push_back({dest(name, type), std::chrono::seconds(secs)});
    }
    return out;
}

} // namespace

std::string read_secret_file(const std::string& path, const std::string& what)
{
    // One policy for every key, password, token and credentials file (bus/runtime/config_reader.hpp):
    // a regular file owned by this user or root, nothing for group and others, the errno when unreadable.
    return runtime::read_secret_file(path, what);
}

bus_config read_bus_config(const YAML::Node& root, const std::string& file)
{
    if (!root.IsMap()) throw config_error(file + ": expected a map of settings");
    bus_config c;
    std::string rserver = scalar(root, file, "rserver", true);
    try {
        c.client.url = parse_broker_url(rserver, scalar(root, file, "stomp-options"));
    } catch (const config_error& e) {
        auto n = at(root, "stomp-options") ? at(root, "stomp-options") : at(root, "rserver");
        throw config_error(config_where(file, n, "rserver/stomp-options") + ": " + e.what());
    }
    if (auto pf = scalar(root, file, "passcode-file"); !pf.empty()) {
        auto pw = read_secret_file(pf, config_where(file, at(root, "passcode-file"), "passcode-file"));
        for (auto& ep : c.client.url.endpoints) ep.passcode = pw;
    }
    c.client.vhost = scalar(root, file, "vhost");
    c.client.client_id = scalar(root, file, "client-id");
    auto& o = c.client;
    o.heartbeat_send = o.heartbeat_receive = duration_ms(root, file, "heartbeat-ms", o.heartbeat_send);
    o.heartbeat_send = duration_ms(root, file, "heartbeat-send-ms", o.heartbeat_send);
    o.heartbeat_receive = duration_ms(root, file, "heartbeat-receive-ms", o.heartbeat_receive);
    o.synthetic_keepalive = duration_ms(root, file, "keepalive-ms", o.synthetic_keepalive);
    o.liveness_probe = duration_ms(root, file, "probe-ms", o.liveness_probe);
    o.probe_timeout = duration_ms(root, file, "probe-timeout-ms", o.probe_timeout);
    if (auto n = at(root, "dead-link-grace")) {
        try {
            o.dead_link_grace = n.as<double>();
        } catch (const YAML::Exception&) {
            o.dead_link_grace = 0;
        }
        if (!(o.dead_link_grace >= 1.0 && o.dead_link_grace <= 100.0))
            throw config_error(config_where(file, n, "dead-link-grace") + ": must be a number from 1 to 100 (heart-beat intervals)");
    }
    o.legacy_keepalives = legacy_keepalives(root, file);
    o.subscribe_headers = header_map(root, file, "subscribe-headers");
    o.publish_headers = header_map(root, file, "publish-headers");
    c.client.tls.ca_file = scalar(root, file, "tls-ca-file");
    if (auto dir = scalar(root, file, "spool-dir"); !dir.empty()) c.spool = outbox_options{.dir = dir};
    if (auto f = scalar(root, file, "wire-format"); !f.empty()) {
        auto w = parse_wire_format(f);
        if (!w) throw config_error(config_where(file, at(root, "wire-format"), "wire-format") + ": must be legacy, native or both");
        c.format = *w;
    }
    if (auto kf = scalar(root, file, "signing-key-file"); !kf.empty()) {
        auto keys = keyring::load_file(kf);
        auto id = scalar(root, file, "signing-key-id");
        const signing_key* k = keys.find(id);
        if (!k) throw config_error(config_where(file, at(root, "signing-key-id") ? at(root, "signing-key-id") : at(root, "signing-key-file"),
                                                "signing-key-id") + ": key '" + id + "' is not in " + kf);
        c.signing = *k;
    }
    if (auto vf = scalar(root, file, "verify-key-file"); !vf.empty()) c.verify_keys = keyring::load_file(vf);
    if (auto n = at(root, "require-signatures")) {
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
