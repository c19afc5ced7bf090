#include "config.hpp"

#include "bus/runtime/config_yaml.hpp"

#include <cstdlib>
#include <unistd.h>

namespace jenkins_helper {

config load_config(const std::string& path)
{
    auto f = bus::runtime::config_file::load(path);
    auto r = f.root();
    config c;
    r.known(bus::runtime::bus_config_keys());
    c.bus = bus::read_bus_config(r.node(), f.file());
    c.t.begin = r.str("begin-topic", c.t.begin);
    c.t.success = r.str("success-topic", c.t.success);
    c.t.failure = r.str("failure-topic", c.t.failure);
    c.t.events = r.str("report-topic", c.t.events);
    c.t.builds = r.str("build-topic", c.t.builds);
    f.finish();
    return c;
}

std::string default_spool()
{
    const char* root = "/var/spool/deploykit/jenkins-helper";
    if (::access("/var/spool/deploykit", W_OK) == 0) return root;
    if (const char* state = std::getenv("XDG_STATE_HOME"); state && *state)
        return std::string(state) + "/deploykit/jenkins-helper";
    if (const char* home = std::getenv("HOME"); home && *home)
        return std::string(home) + "/.local/state/deploykit/jenkins-helper";
    return "/tmp/deploykit-jenkins-helper-" + std::to_string(::getuid());
}

} // namespace jenkins_helper
