#pragma once

// jenkins-helper's logic: from Jenkins' environment and the -b/-p/-c choice to the events and
// frames to publish. Pure: the environment comes in as a lookup function.

#include "bus/event.hpp"
#include "bus/stomp/frame.hpp"
#include "bus/wire.hpp"

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace jenkins_helper {

enum class stage { begin, success, failure };

struct topics {
    std::string begin = "future.jenkins";  ///< the original's pre-8579898 topic; its -b went to "/topic/"
    std::string success = "future.jenkins.success";
    std::string failure = "future.jenkins.cake";
    std::string events = "future.events.jenkins";
    std::string builds = "future.jenkins.builds";  ///< native build events; empty = none
};

struct plan {
    std::vector<bus::stomp::frame> frames;
    std::vector<std::string> warnings;  ///< e.g. GIT_BRANCH unset
};

using env_lookup = std::function<std::optional<std::string>(const std::string&)>;

/// The frames to publish, or a message naming what is missing (JOB_NAME, BUILD_NUMBER).
struct result {
    std::optional<plan> value;
    std::string error;
};

result make_plan(stage s, const env_lookup& env, const topics& t, bus::wire_format fmt, const std::string& host);

} // namespace jenkins_helper
