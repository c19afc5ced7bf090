#pragma once

// jenkins-helper's configuration: the original's file (only `rserver`) loads unchanged; the
// connection keys of bus/config.hpp and the topics (begin-topic, success-topic, failure-topic,
// report-topic, build-topic) are optional. Unknown keys are errors naming the nearest known one.

#include "jenkins_helper.hpp"

#include "bus/config.hpp"

#include <string>

namespace jenkins_helper {

struct config {
    bus::bus_config bus;
    topics t;
};

/// Throws bus::config_error naming file, line and key.
config load_config(const std::string& path);

/// Where messages are spooled without spool-dir: /var/spool/deploykit/jenkins-helper when
/// writable, else under $XDG_STATE_HOME or $HOME, else /tmp/deploykit-jenkins-helper-UID.
std::string default_spool();

} // namespace jenkins_helper
