#pragma once
/// @file
/// The result of handing a message to a manager.

#include <cstdint>
#include <string_view>

namespace amsg {

/// What a send did with a message: queued it (ok), refused it for now (full: it stays the caller's), or refused it for
/// good (closed: shutdown began).
enum class SendStatus : std::uint8_t {
  ok,      ///< accepted into the inbox; a notification follows if one was asked for
  full,    ///< try_send only: the inbox is at capacity; the message is still the caller's
  closed,  ///< the manager is shutting down or shut down; the message is still the caller's
};

/// "ok", "full" or "closed".
[[nodiscard]] constexpr std::string_view to_string(SendStatus s) noexcept {
  switch (s) {
    case SendStatus::ok:
      return "ok";
    case SendStatus::full:
      return "full";
    case SendStatus::closed:
      return "closed";
  }
  return "?";
}

}  // namespace amsg
