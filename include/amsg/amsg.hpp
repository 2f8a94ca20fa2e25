#pragma once
/// @file
/// The whole public API of the amsg core runtime.

#include "amsg/communication_layer.hpp"  // IWYU pragma: export
#include "amsg/errors.hpp"               // IWYU pragma: export
#include "amsg/handler.hpp"              // IWYU pragma: export
#include "amsg/handler_registry.hpp"     // IWYU pragma: export
#include "amsg/log.hpp"                  // IWYU pragma: export
#include "amsg/manager.hpp"              // IWYU pragma: export
#include "amsg/manager_options.hpp"      // IWYU pragma: export
#include "amsg/message.hpp"              // IWYU pragma: export
#include "amsg/notification.hpp"         // IWYU pragma: export
#include "amsg/payload.hpp"              // IWYU pragma: export
#include "amsg/send_status.hpp"          // IWYU pragma: export
#include "amsg/stats.hpp"                // IWYU pragma: export
