#pragma once
// The wire's REPLY/ERROR codes and amsg::errc, both ways.

#include "amsg/errc.hpp"
#include "wire/codec.hpp"

namespace amsg::net {

[[nodiscard]] constexpr errc to_errc(wire::ErrorCode code) noexcept {
  switch (code) {
    case wire::ErrorCode::unknown_type:
      return errc::unknown_type;
    case wire::ErrorCode::payload_too_large:
      return errc::payload_too_large;
    case wire::ErrorCode::shutting_down:
      return errc::remote_shutting_down;
    case wire::ErrorCode::version_mismatch:
      return errc::version_mismatch;
    case wire::ErrorCode::malformed:
      return errc::malformed;
    case wire::ErrorCode::cancelled:
      return errc::cancelled;
    case wire::ErrorCode::timeout:
      return errc::timeout;
    case wire::ErrorCode::overloaded:
      return errc::overloaded;
    default:
      return errc::handler_error;  // remote_error, and codes this version does not know
  }
}

[[nodiscard]] inline wire::ErrorCode to_wire(const std::error_code& code) noexcept {
  if (code.category() != error_category()) return wire::ErrorCode::remote_error;
  switch (static_cast<errc>(code.value())) {
    case errc::unknown_type:
      return wire::ErrorCode::unknown_type;
    case errc::payload_too_large:
      return wire::ErrorCode::payload_too_large;
    case errc::cancelled:
      return wire::ErrorCode::cancelled;
    case errc::timeout:
      return wire::ErrorCode::timeout;
    case errc::remote_shutting_down:
    case errc::node_shutting_down:
      return wire::ErrorCode::shutting_down;
    case errc::malformed:
      return wire::ErrorCode::malformed;
    case errc::version_mismatch:
      return wire::ErrorCode::version_mismatch;
    case errc::overloaded:
      return wire::ErrorCode::overloaded;
    default:
      return wire::ErrorCode::remote_error;
  }
}

}  // namespace amsg::net
