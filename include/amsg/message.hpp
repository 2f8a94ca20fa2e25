#pragma once
/// @file
/// amsg::Message: one active message: a type, a payload and an optional
/// notification id (the seed's "response notification prefix").
///
/// When `notify_id` is set, exactly one Notification with that id is produced
/// when the message's handler ends (ok, error or cancelled), or when the runtime
/// refuses the message (unknown type, payload over the limit, shutdown).

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "amsg/export.hpp"
#include "amsg/payload.hpp"

namespace amsg {

class CommunicationLayer;
namespace detail {
struct MessageAccess;
}

/// Where a notification goes back to: the layer that fed the message in and an
/// opaque peer token that the layer chose (a connection, a routing id...).
struct ReplyRoute {
  std::shared_ptr<CommunicationLayer> layer;  ///< the layer to hand the notification to; null: the notification channel
  std::uint64_t peer = 0;                     ///< the layer's own token for the sender
};

/// One command: a type naming its handler, a payload, an optional notification id and deadline.
class AMSG_EXPORT Message {
 public:
  /// An empty message (no type: it would end as unknown_type).
  Message() = default;
  /// A message for the handler of `type`; with `notify_id`, one notification reports its outcome.
  Message(std::string type, Payload payload, std::optional<std::string> notify_id = std::nullopt)
      : type{std::move(type)}, payload{std::move(payload)}, notify_id{std::move(notify_id)} {}

  /// Moves the message (the payload's buffer moves with it).
  Message(Message&&) noexcept = default;
  /// Moves the message.
  Message& operator=(Message&&) noexcept = default;
  Message(const Message&) = delete;
  Message& operator=(const Message&) = delete;
  ~Message() = default;

  std::string type;                      ///< which handler runs it
  Payload payload;                       ///< the handler's input
  std::optional<std::string> notify_id;  ///< set: exactly one notification with this id reports the outcome
  /// Request/response: the bytes a handler answers with. They travel back in the
  /// ok notification's `payload` (and are dropped when the handler fails).
  Payload response;
  /// When it must be done by. A message still queued when it passes ends with
  /// errc::timeout without running; a running handler is cancelled then (its
  /// co_await throws operation_aborted) and the message ends with errc::timeout.
  /// max(): no deadline.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();

  /// Set by a communication layer through Ingress; empty for local messages.
  [[nodiscard]] const ReplyRoute& reply_route() const noexcept { return route_; }

 private:
  friend struct detail::MessageAccess;
  ReplyRoute route_;
  std::int64_t enqueued_ticks_ = 0;  ///< detail::ticks() when the inbox accepted it (latency stats)
};

}  // namespace amsg
