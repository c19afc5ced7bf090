#pragma once

#include "server.hpp"

#include <filesystem>

namespace broker {

struct broker_config {
    server_options server;
    std::filesystem::path users_file;  ///< empty: anonymous with full access
};

/// Loads `stomp-broker.yaml`. Errors name the file, line and key (bus::config_error).
broker_config load_config(const std::filesystem::path& path);

} // namespace broker
