#pragma once

// For code that needs yaml-cpp's node of a section (e.g. to hand the top level to
// bus::read_bus_config). Most code needs only config_reader.hpp.

#include "bus/runtime/config_reader.hpp"

#include <yaml-cpp/yaml.h>
