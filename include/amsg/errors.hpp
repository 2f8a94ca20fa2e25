#pragma once
// Typed errors for misuse. Expected outcomes (full, closed, timeout) are values
// (SendStatus, std::optional), never exceptions.

#include <stdexcept>
#include <string>

namespace amsg {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// register_handler() for a type that already has one (use replace_handler()).
class HandlerExistsError : public Error {
 public:
  explicit HandlerExistsError(const std::string& type)
      : Error("a handler is already registered for message type '" + type + "'") {}
};

// A ManagerOptions value that cannot work (zero concurrency, zero capacity...).
class InvalidOptionsError : public Error {
 public:
  using Error::Error;
};

// An operation that needs a running or a not-yet-started manager got the other.
class LifecycleError : public Error {
 public:
  using Error::Error;
};

// A transport could not bind or connect (the message names the address and why).
class NetworkError : public Error {
 public:
  using Error::Error;
};

}  // namespace amsg
