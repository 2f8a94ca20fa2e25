#pragma once
/// @file
/// Typed errors for misuse. Expected outcomes (full, closed, timeout) are values
/// (SendStatus, std::optional), never exceptions.

#include <stdexcept>
#include <string>

#include "amsg/export.hpp"

namespace amsg {

class AMSG_EXPORT Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// register_handler() for a type that already has one (use replace_handler()).
class AMSG_EXPORT HandlerExistsError : public Error {
 public:
  /// A handler for `type` is already registered.
  explicit HandlerExistsError(const std::string& type)
      : Error("a handler is already registered for message type '" + type + "'") {}
};

/// A ManagerOptions value that cannot work (zero concurrency, zero capacity...).
class AMSG_EXPORT InvalidOptionsError : public Error {
 public:
  using Error::Error;
};

/// An operation that needs a running or a not-yet-started manager got the other.
class AMSG_EXPORT LifecycleError : public Error {
 public:
  using Error::Error;
};

/// A transport could not bind or connect (the message names the address and why).
class AMSG_EXPORT NetworkError : public Error {
 public:
  using Error::Error;
};

}  // namespace amsg
