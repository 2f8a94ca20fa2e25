#include "amsg/notification.hpp"

namespace amsg {

std::string_view to_string(Outcome outcome) noexcept {
  switch (outcome) {
    case Outcome::ok:
      return "ok";
    case Outcome::error:
      return "error";
    case Outcome::cancelled:
      return "cancelled";
  }
  return "?";
}

std::string Notification::text() const {
  std::string out;
  if (outcome == Outcome::ok) {
    out.reserve(id.size() + 3);
    out.append(id).append(":ok");
    return out;
  }
  const std::string_view message = outcome == Outcome::cancelled ? std::string_view{"cancelled"} : error;
  out.reserve(id.size() + message.size() + 6);
  out.append(id).append(":err(").append(message).append(")");
  return out;
}

std::optional<Notification> parse_notification(std::string_view text) {
  constexpr std::string_view kOkSuffix = ":ok";
  constexpr std::string_view kErrMarker = ":err(";
  Notification n;
  if (text.ends_with(kOkSuffix)) {
    n.id = std::string{text.substr(0, text.size() - kOkSuffix.size())};
    n.outcome = Outcome::ok;
    return n;
  }
  if (!text.ends_with(')')) return std::nullopt;
  const auto at = text.find(kErrMarker);
  if (at == std::string_view::npos) return std::nullopt;
  n.id = std::string{text.substr(0, at)};
  const auto body_start = at + kErrMarker.size();
  n.error = std::string{text.substr(body_start, text.size() - 1 - body_start)};
  n.outcome = n.error == "cancelled" ? Outcome::cancelled : Outcome::error;
  n.code = n.outcome == Outcome::cancelled ? errc::cancelled : errc::handler_error;
  return n;
}

}  // namespace amsg
