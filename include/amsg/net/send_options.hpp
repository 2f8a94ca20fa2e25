#pragma once
/// @file
/// How a message is sent: Node::send / try_send / async_send (SendOptions) and
/// Node::call (CallOptions).
///
/// @code
///   node.send(peer, "flush", payload);                         // fire-and-forget
///   node.send(peer, "flush", payload, {"req-7", 500ms});       // notified, with a deadline
///   co_await node.call(peer, "echo", payload, {"q1", 500ms});
/// @endcode
///
/// (They are classes with constructors, not aggregates: GCC 12 miscompiles
/// aggregate temporaries that live across a co_await, as an options argument
/// inside a co_await expression does.)

#include <chrono>
#include <optional>
#include <string>

#include "amsg/export.hpp"

namespace amsg::net {

/// Options of Node::send(), try_send() and async_send().
class AMSG_EXPORT SendOptions {
 public:
  /// Fire-and-forget: nothing comes back.
  SendOptions() = default;
  /// Notified: exactly one outcome, "{id}:ok" or "{id}:err(...)", arrives on the
  /// node's notification channel (manager().receive() & co). With a timeout, the
  /// outcome is err(timeout) once it has passed, and the receiver skips or
  /// cancels the message then (the deadline travels in the MSG). 0: no deadline.
  SendOptions(std::string notify_id, std::chrono::milliseconds timeout = std::chrono::milliseconds{0})  // NOLINT
      : notify_id{std::move(notify_id)}, timeout{timeout} {}
  /// Notified, with a deadline `timeout` from now (0: none).
  SendOptions(const char* notify_id, std::chrono::milliseconds timeout = std::chrono::milliseconds{0})  // NOLINT
      : notify_id{std::string{notify_id}}, timeout{timeout} {}

  std::optional<std::string>
      notify_id{};  ///< set: the outcome arrives on the manager's notification channel with this id
  std::chrono::milliseconds timeout{0};  ///< the deadline, from when the send is made (0: none)
  /// The notify_id is an idempotency key (notified sends only): the receiving
  /// node runs the first message with this key and type, and answers a retry
  /// that comes while it runs, or within the node's idempotency window after,
  /// with the first one's outcome instead of running it again. Keys are
  /// node-wide at the receiver: make them unique among its clients (a UUID).
  /// See docs/wire-protocol.md, "Idempotent calls".
  bool idempotent = false;
};

/// Options of Node::call().
class AMSG_EXPORT CallOptions {
 public:
  CallOptions() = default;
  /// The outcome's id (empty: "call-<n>") and deadline: the call ends with
  /// err(timeout) once it has passed, and the receiver skips or cancels it then.
  /// 0: no deadline.
  CallOptions(std::string notify_id, std::chrono::milliseconds timeout = std::chrono::milliseconds{0})  // NOLINT
      : notify_id{std::move(notify_id)}, timeout{timeout} {}
  /// With the id the outcome carries, and a deadline `timeout` from now (0: none).
  CallOptions(const char* notify_id, std::chrono::milliseconds timeout = std::chrono::milliseconds{0})  // NOLINT
      : notify_id{notify_id}, timeout{timeout} {}
  /// With a deadline `timeout` from now.
  explicit CallOptions(std::chrono::milliseconds timeout) : timeout{timeout} {}

  std::string notify_id{};               ///< the id the outcome carries (Notification::id)
  std::chrono::milliseconds timeout{0};  ///< the deadline, from when the send is made (0: none)
  /// The notify_id (which must then be set) is an idempotency key: see SendOptions::idempotent.
  bool idempotent = false;
};

}  // namespace amsg::net
