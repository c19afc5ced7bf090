#include "config.hpp"

#include "bus/runtime/config_yaml.hpp"

#include <yaml-cpp/yaml.h>

namespace repo_poller {

namespace {

using std::chrono::milliseconds;

config read(bus::runtime::config_file f)
{
    auto r = f.root();
    config c;
    r.known(bus::runtime::bus_config_keys());
    c.bus = bus::read_bus_config(r.node(), f.file());
    c.topic = r.str("topic", c.topic);
    if (c.topic.empty() || c.topic.find_first_of("/ \t\r\n") != std::string::npos)
        r.fail("topic", "topic '" + c.topic + "' must be a bare name (future.package.updates), no '/' or spaces");
    c.state_dir = r.str("state-dir", c.state_dir.string());
    if (!c.state_dir.is_absolute()) r.fail("state-dir", "must be an absolute path");
    if (!c.bus.spool) c.bus.spool = bus::outbox_options{.dir = c.state_dir / "outbox"};
    c.gpgv = r.str("gpgv", c.gpgv);
    if (!c.gpgv.starts_with("/")) r.fail("gpgv", "must be an absolute path");
    c.gpgv_timeout = r.duration("gpgv-timeout", c.gpgv_timeout, milliseconds(1000), milliseconds(600'000));
    c.version_helper = r.str("version-helper", c.version_helper);
    if (!c.version_helper.starts_with("/")) r.fail("version-helper", "must be an absolute path");
    c.workers = static_cast<unsigned>(r.integer("workers", c.workers, 1, 32));
    c.http.connect_timeout = r.duration("connect-timeout", c.http.connect_timeout, milliseconds(100), milliseconds(600'000));
    c.http.request_timeout = r.duration("request-timeout", c.http.request_timeout, milliseconds(100), milliseconds(3'600'000));
    c.http.max_release_bytes = static_cast<std::size_t>(r.integer("max-release-bytes", static_cast<std::int64_t>(c.http.max_release_bytes), 1024, 1ll << 30));
    c.http.max_index_bytes = static_cast<std::size_t>(r.integer("max-index-bytes", static_cast<std::int64_t>(c.http.max_index_bytes), 1024, 4ll << 30));
    c.http.max_unpacked_bytes = static_cast<std::size_t>(r.integer("max-unpacked-bytes", static_cast<std::int64_t>(c.http.max_unpacked_bytes), 1024, 16ll << 30));
    c.http.ca_file = r.str("ca-file", "");
    c.heartbeat = bus::runtime::read_heartbeat_options(r);
    c.admin_listen = bus::runtime::read_admin_listen(r);

    auto repos = r.sections("repositories");
    if (repos.empty()) r.fail("repositories", "missing: a list of {url, suites, ...} to poll");
    for (auto& e : repos) {
        repository repo;
        repo.where = e.where("url");
        repo.url = e.required("url");
        while (repo.url.ends_with("/")) repo.url.pop_back();
        if (!(repo.url.starts_with("http://") || repo.url.starts_with("https://")) ||
            repo.url.find_first_of(" \t\r\n?#") != std::string::npos)
            e.fail("url", "must be an http:// or https:// URL of the repository root (the directory holding dists/)");
        repo.suites = e.list("suites");
        if (repo.suites.empty()) e.fail("suites", "missing: which dists/<suite> to poll");
        repo.components = e.list("components");
        repo.architectures = e.list("architectures");
        for (auto [key, l] : {std::pair{"suites", &repo.suites}, std::pair{"components", &repo.components},
                              std::pair{"architectures", &repo.architectures}})
            for (const auto& s : *l)
                if (!valid_dist_name(s))
                    e.fail(key, "'" + s + "' is not a usable name ([A-Za-z0-9._+-] and '/', no '..')");
        repo.packages = e.list("packages");
        for (const auto& p : repo.packages)
            if (p.empty() || p.size() > 200) e.fail("packages", "empty or overlong pattern");
        repo.keyring = e.str("keyring", "");
        if (!repo.keyring.empty() && !repo.keyring.starts_with("/")) e.fail("keyring", "must be an absolute path");
        if (!repo.keyring.empty() && !std::filesystem::is_regular_file(repo.keyring))
            e.fail("keyring", "'" + repo.keyring + "' is not a readable file");
        auto& w = repo.when;
        w.interval = e.duration("interval", w.interval, milliseconds(1000), milliseconds(86'400'000));
        w.jitter = e.duration("jitter", std::min(w.jitter, w.interval / 10), milliseconds(0), milliseconds(86'400'000));
        w.retry_initial = e.duration("retry-initial", w.retry_initial, milliseconds(100), milliseconds(86'400'000));
        w.retry_max = e.duration("retry-max", std::max(w.retry_max, w.interval), w.retry_initial, milliseconds(86'400'000));
        c.repositories.push_back(std::move(repo));
    }
    f.finish();
    return c;
}

} // namespace

config load_config(const std::filesystem::path& path, bus::runtime::notice_fn notice)
{
    return read(bus::runtime::config_file::load(path, std::move(notice)));
}

config parse_config(std::string_view text, const std::string& name)
{
    return read(bus::runtime::config_file::parse(text, name));
}

} // namespace repo_poller
