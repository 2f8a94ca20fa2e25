#pragma once
/// @file
/// The spdlog logger amsg writes to. The library never touches spdlog's default logger.

#include <memory>
#include <string>

#include <spdlog/logger.h>

#include "amsg/export.hpp"

namespace amsg {

/// Returns the logger registered under `name`, creating a stderr logger if spdlog
/// has none by that name. Configure it (level, sinks) like any spdlog logger, or
/// register your own under the same name before creating a Manager.
AMSG_EXPORT std::shared_ptr<spdlog::logger> logger(const std::string& name = "amsg");

}  // namespace amsg
