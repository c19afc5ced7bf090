#include "repo_config.hpp"

#include "bus/runtime/config_yaml.hpp"
#include "bus/runtime/program.hpp"

#include <yaml-cpp/yaml.h>

#include <cctype>
#include <unistd.h>

namespace stomp_repo {

namespace {

using std::chrono::milliseconds;
using namespace std::chrono_literals;

void check_program(const bus::runtime::section& r, const char* key, const std::string& path)
{
    if (path.empty() || path[0] != '/') r.fail(key, "'" + path + "' must be an absolute path");
}

} // namespace

config load_config(const std::filesystem::path& path, bus::runtime::notice_fn notice)
{
    auto f = bus::runtime::config_file::load(path, std::move(notice));
    auto r = f.root();
    config c;
    r.known(bus::runtime::bus_config_keys());
    c.bus = bus::read_bus_config(r.node(), f.file());
    c.listen_topic = r.str("listen-topic", c.listen_topic);
    c.report_topic = r.str("report-topic", c.report_topic);
    c.result_topic = r.str("result-topic", c.result_topic);
    for (auto [key, topic] : {std::pair{"listen-topic", &c.listen_topic}, std::pair{"report-topic", &c.report_topic},
                              std::pair{"result-topic", &c.result_topic}})
        if (topic->empty() || topic->find_first_of("/ \t\r\n") != std::string::npos)
            r.fail(key, "topic '" + *topic + "' must be a bare name (future.package.updates), no '/' or spaces");
    // Durable by default, as stomp-jenkins: `stomp-repo-<hostname>`; `durable-name: ""` turns it off.
    c.durable_name = bus::runtime::read_durable_name(r, "stomp-repo");
    if (!c.durable_name.empty() && c.bus.client.client_id.empty()) c.bus.client.client_id = c.durable_name;

    // watch: a list of {package, codename, component, architecture} (globs), or of bare patterns.
    if (r.kind_of("watch") != bus::runtime::section::kind::list) r.fail("watch", "a list of packages to watch is required");
    bool scalars = true;
    for (const auto& n : r.node()["watch"])
        if (!n.IsScalar()) scalars = false;
    if (scalars) {
        for (auto& p : r.list("watch")) c.watches.push_back(watch{p, {}, {}, {}});
        for (auto& w : c.watches)
            if (!valid_pattern(w.package)) r.fail("watch", "'" + w.package + "' is not a usable pattern");
    } else {
        for (auto& s : r.sections("watch")) {
            watch w;
            w.package = s.required("package");
            w.codename = s.str("codename", "");
            w.component = s.str("component", "");
            w.architecture = s.str("architecture", "");
            for (auto [key, v] : {std::pair{"package", &w.package}, std::pair{"codename", &w.codename},
                                  std::pair{"component", &w.component}, std::pair{"architecture", &w.architecture}})
                if ((std::string_view(key) == "package" || !v->empty()) && !valid_pattern(*v))
                    s.fail(key, "'" + *v + "' is not a usable pattern");
            c.watches.push_back(std::move(w));
        }
    }
    if (c.watches.empty()) r.fail("watch", "a list of packages to watch is required");

    auto& a = c.apt;
    a.sources_list = r.str("sources-list", "");
    if (!a.sources_list.empty() && a.sources_list[0] != '/') r.fail("sources-list", "'" + a.sources_list + "' must be an absolute path");
    a.options = r.list("apt-options");
    for (const auto& o : a.options)
        if (!valid_apt_option(o)) r.fail("apt-options", "'" + o + "' is not KEY=VALUE (letters, digits, :_-. in the key)");
    a.apt_config = r.str("apt-config", "");
    if (!a.apt_config.empty() && a.apt_config[0] != '/') r.fail("apt-config", "'" + a.apt_config + "' must be an absolute path");
    a.apt_get = r.str("apt-get", a.apt_get);
    check_program(r, "apt-get", a.apt_get);
    a.apt_cache = r.str("apt-cache", a.apt_cache);
    check_program(r, "apt-cache", a.apt_cache);
    c.version_helper = r.str("version-helper", c.version_helper);
    check_program(r, "version-helper", c.version_helper);
    a.lock_timeout = r.duration("lock-timeout", 60s, 0ms, 1h);
    a.update_timeout = r.duration("update-timeout", 300s, 1s, 1h);

    c.retry.retries = static_cast<unsigned>(r.integer("retries", 5, 0, 100));
    c.retry.initial = r.duration("retry-initial", 2s, 10ms, 1h);
    c.retry.max = r.duration("retry-max", 60s, 10ms, 24h);
    if (c.retry.max < c.retry.initial) c.retry.max = c.retry.initial;
    c.coalesce = r.duration("coalesce", 500ms, 0ms, 60s);
    c.coalesce_max = r.duration("coalesce-max", 5s, 0ms, 10min);
    if (c.coalesce_max < c.coalesce) c.coalesce_max = c.coalesce;

    c.post_update_command = r.list("post-update-command");
    if (!c.post_update_command.empty()) check_program(r, "post-update-command", c.post_update_command[0]);
    c.post_update_timeout = r.duration("post-update-timeout", 60s, 1s, 1h);
    c.max_pending = static_cast<std::size_t>(r.integer("max-pending", 1000, 1, 100000));
    c.replay_cache = r.str("replay-cache", "");
    c.heartbeat = bus::runtime::read_heartbeat_options(r);
    c.admin_listen = bus::runtime::read_admin_listen(r);
    r.ignored({"logfile"}, "deploykit logs to stderr/syslog");
    f.finish();
    c.file = std::move(f);
    return c;
}

std::vector<std::string> needs_restart(const config& running, const config& fresh)
{
    std::vector<std::string> out;
    if (!running.file || !fresh.file) return out;
    for (auto& k : running.file->changed_keys(*fresh.file))
        if (k != "watch") out.push_back(k);
    return out;
}

} // namespace stomp_repo
