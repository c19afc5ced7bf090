// The deploy CLI's config file (deploy.yaml) and the rollout options' checks, shared with
// herald's deploy page (its `deploy:` section has the same keys, without the bus ones).
#include "core.hpp"
#include "shell.hpp"

#include "bus/client.hpp"
#include "bus/runtime/config_reader.hpp"

#include <filesystem>
#include <pwd.h>
#include <unistd.h>

namespace deploy::cli {

namespace {

void read_defaults(const bus::runtime::section& s, rollout_options& r)
{
    auto secs = [&](std::string_view k, double d, double max) { return s.number(k, d, 0, max); };
    r.canary = s.integer("canary", r.canary, 0, 100000);
    r.batch = s.str("batch", r.batch);
    r.batch_sleep = secs("batch-sleep", r.batch_sleep, 86400);
    r.tries = static_cast<int>(s.integer("tries", r.tries, 1, 100));
    r.try_sleep = secs("try-sleep", r.try_sleep, 3600);
    r.max_failures = s.str("max-failures", r.max_failures);
    r.quorum = s.str("quorum", r.quorum);
    r.health_url = s.str("health-url", r.health_url);
    r.health_cmd = s.str("health-cmd", r.health_cmd);
    r.health_timeout = secs("health-timeout", r.health_timeout, 3600);
    r.timeout = secs("timeout", r.timeout, 86400);
    r.vote_timeout = secs("vote-timeout", r.vote_timeout, 3600);
    // Checked here, so a bad default names its line.
    try {
        amount::parse(r.batch, "batch");
        amount::parse(r.max_failures, "max-failures");
        amount::parse(r.quorum, "quorum");
    } catch (const usage_error& e) {
        s.fail("defaults", e.what());
    }
}

std::string login_name()
{
    if (auto* pw = getpwuid(geteuid())) return pw->pw_name;
    return "uid" + std::to_string(geteuid());
}

} // namespace

void read_deploy_keys(const bus::runtime::section& root, config& c)
{
    auto& d = c.dest;
    d.request_topic = root.str("request-topic", d.request_topic);
    d.request_queue_prefix = root.str("request-queue-prefix", d.request_queue_prefix);
    d.reply_prefix = root.str("reply-prefix", d.reply_prefix);
    d.agent_topic = root.str("agent-topic", d.agent_topic);
    d.job_topic = root.str("job-topic", d.job_topic);
    c.discovery_timeout = root.number("discovery-timeout", c.discovery_timeout, 0, 600);
    c.caller = root.str("caller", c.caller);
    if (auto s = root.sub("defaults")) read_defaults(*s, c.defaults);
}

config load_config(const std::string& path, bool explicit_path)
{
    config c;
    c.caller = login_name();
    if (!explicit_path && !std::filesystem::exists(path)) {
        c.bus.client = bus::options_from_url("stomp://127.0.0.1:61613");
        return c;
    }
    auto file = bus::runtime::config_file::load(path);
    auto root = file.root();
    root.known(bus::runtime::bus_config_keys());
    c.bus = bus::read_bus_config(root.node(), file.file());
    read_deploy_keys(root, c);
    file.finish();
    return c;
}

void check_rollout_options(const rollout_options& r)
{
    if (r.canary < 0 || r.tries < 1 || r.tries > 100 || r.batch_sleep < 0 || r.try_sleep < 0 || r.timeout <= 0 ||
        r.vote_timeout <= 0 || r.health_timeout <= 0)
        throw usage_error("--canary, --batch-sleep and --try-sleep must not be negative; --tries is 1-100; "
                          "timeouts must be positive");
    amount::parse(r.batch, "--batch");
    amount::parse(r.max_failures, "--max-failures");
    amount::parse(r.quorum, "--quorum");
    if (!r.health_cmd.empty()) parse_argv(r.health_cmd);
}

} // namespace deploy::cli
