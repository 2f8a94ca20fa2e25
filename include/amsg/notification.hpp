#pragma once
/// @file
/// amsg::Notification: the outcome of one message that asked for one.
///
/// Text form, exactly as in the seed:  "{id}:ok"  or  "{id}:err({message})".
/// Cancellation is its own outcome; its text form is "{id}:err(cancelled)".
/// A Notification is move-only: it may carry response bytes (a Payload).

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "amsg/errc.hpp"
#include "amsg/export.hpp"
#include "amsg/payload.hpp"

namespace amsg {

/// How a message ended: its handler finished, failed (or never ran: see Notification::code), or shutdown cancelled it.
enum class Outcome : std::uint8_t { ok, error, cancelled };

/// "ok", "error" or "cancelled".
[[nodiscard]] AMSG_EXPORT std::string_view to_string(Outcome outcome) noexcept;

/// The one outcome of a message that asked for it (or of a call).
struct AMSG_EXPORT Notification {
  std::string id;                 ///< the message's notify_id
  Outcome outcome = Outcome::ok;  ///< ok, error or cancelled
  std::string error;              ///< empty when outcome == ok; "cancelled" when cancelled
  std::string message_type;       ///< the type of the message this answers
  Payload payload{};              ///< the handler's Message::response (request/response); empty otherwise
  std::error_code code{};         ///< why, when not ok: an amsg::errc (compare: code == amsg::errc::timeout)

  /// Whether the outcome is ok.
  [[nodiscard]] bool is_success() const noexcept { return outcome == Outcome::ok; }
  /// "{id}:ok" / "{id}:err({error})" / "{id}:err(cancelled)". Built on demand, so the
  /// hot path never formats text nobody reads.
  [[nodiscard]] std::string text() const;
};

/// Parses the text form. The id ends at the last ":ok" suffix, or at the first
/// ":err(" for errors, so ids may contain ':' (but not the sequence ":err(") and
/// error messages may contain anything, parentheses included. "err(cancelled)"
/// parses as Outcome::cancelled. The message type is not part of the text form and
/// stays empty; `code` is errc::cancelled for "cancelled", errc::handler_error for
/// other errors (the text alone does not say more). Returns nullopt for text that is neither form.
[[nodiscard]] AMSG_EXPORT std::optional<Notification> parse_notification(std::string_view text);

}  // namespace amsg
