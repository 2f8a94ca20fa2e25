#include "amsg/errc.hpp"

#include <string>

namespace amsg {
namespace {

class Category final : public std::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "amsg"; }
  [[nodiscard]] std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
      case errc::handler_error:
        return "handler error";
      case errc::unknown_type:
        return "unknown message type";
      case errc::payload_too_large:
        return "payload too large";
      case errc::cancelled:
        return "cancelled";
      case errc::timeout:
        return "timeout";
      case errc::peer_lost:
        return "peer lost";
      case errc::peer_unreachable:
        return "peer unreachable";
      case errc::remote_shutting_down:
        return "remote shutting down";
      case errc::node_shutting_down:
        return "node shutting down";
      case errc::version_mismatch:
        return "incompatible protocol version";
      case errc::malformed:
        return "malformed frame";
      case errc::bad_address:
        return "bad address";
      case errc::overloaded:
        return "overloaded";
      case errc::abandoned:
        return "abandoned";
      case errc::disconnected:
        return "disconnected";
    }
    return "unknown amsg error " + std::to_string(value);
  }
};

}  // namespace

const std::error_category& error_category() noexcept {
  static const Category kCategory;
  return kCategory;
}

std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), error_category()}; }

}  // namespace amsg
