#pragma once
/// @file
/// The seam between the runtime and a transport (the seed's "communication layer").
///
/// A transport receives bytes and an optional notification id from somewhere,
/// turns them into Messages and feeds them in through the Ingress the manager
/// gives it in on_attach(). For each such message that carries a notify_id, the
/// manager calls deliver() with the notification and the peer token the transport
/// attached, on a worker thread, so the transport can route it back to where the
/// message came from. Notifications of routed messages do not appear on the
/// manager's own notification channel.
///
/// Lifetime: the manager holds a shared_ptr to each attached layer, and every
/// routed message holds one too, so a layer outlives every message it fed in.
/// On shutdown the manager calls on_drained() after its last deliver(), while its
/// pool still runs, then on_detach() once the pool has stopped.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <asio/awaitable.hpp>

#include "amsg/export.hpp"
#include "amsg/message.hpp"
#include "amsg/notification.hpp"
#include "amsg/send_status.hpp"

namespace amsg {

class Ingress;
namespace detail {
class Core;
}

/// A transport feeding a Manager: it submits messages through an Ingress and gets each one's notification back to route
/// to its sender.
class AMSG_EXPORT CommunicationLayer : public std::enable_shared_from_this<CommunicationLayer> {
 public:
  virtual ~CommunicationLayer() = default;

  /// Called once by Manager::attach(). Keep the ingress; it stays valid until on_detach().
  virtual void on_attach(Ingress ingress) = 0;
  /// Route one notification back to `peer`. Called on a worker thread, possibly
  /// concurrently: it must be thread-safe, must not throw (exceptions are logged and
  /// swallowed) and should not block for long (it holds a worker).
  virtual void deliver(std::uint64_t peer, Notification&& notification) = 0;
  /// A message from `peer` that asked for no notification has ended (ran,
  /// failed or was cancelled). Called once per such message, on a worker thread
  /// and with deliver()'s rules, so that a layer can account for everything it
  /// fed in (the node budgets each peer's messages until they end).
  virtual void released(std::uint64_t /*peer*/) noexcept {}
  /// Shutdown: every message has ended and every delivery has been made; the
  /// manager is about to let its pool stop. Stop what the layer keeps waiting on
  /// the pool (socket waits, timers), so the pool stops at once instead of after
  /// its grace period. Called on the thread that called shutdown(), before
  /// on_detach(); must not throw (exceptions are logged and swallowed).
  virtual void on_drained() {}
  /// The manager has shut down: every delivery has been made, submit() now returns closed.
  virtual void on_detach() {}
};

/// True while the manager calls deliver() from a worker that gives its thread
/// back to the pool right afterwards (nothing else is queued): the layer may then
/// hand its follow-up work to that thread (asio::defer) instead of waking
/// another one, so a round trip stays on one thread.
[[nodiscard]] AMSG_EXPORT bool deliver_may_defer() noexcept;

/// A transport's handle for feeding messages in. Cheap to copy.
/// Thread-safety: any member from any thread.
///
/// try_submit(), async_submit(), try_publish() and async_publish() called on a
/// thread of the manager's pool wake the worker (or reader) they make work for as
/// a continuation of the caller (asio::defer): it runs on that thread as soon as
/// the caller returns to the pool, and no other thread is woken (another one
/// takes it if more work is queued). Call them from code that returns to the
/// pool promptly (an I/O loop); submit() and force_publish() always wake another
/// thread.
class AMSG_EXPORT Ingress {
 public:
  Ingress() = default;

  /// The same semantics as Manager::send / try_send / async_send, with the
  /// notification (if notify_id is set) routed back to `peer` through the layer.
  SendStatus submit(Message&& message, std::uint64_t peer) const;
  /// Queues a message from `peer` (the layer's token) without waiting; full leaves it with the caller.
  SendStatus try_submit(Message&& message, std::uint64_t peer) const;
  /// Queues a message from `peer`, suspending while the inbox is full.
  [[nodiscard]] asio::awaitable<SendStatus> async_submit(Message message, std::uint64_t peer) const;

  /// Puts a notification that the layer produced itself (the outcome of a message
  /// this process sent to a remote peer) on the manager's notification channel, or
  /// hands it to the on_notification callback. try_ returns full while the channel
  /// is full; async_ waits for room; force_ goes past the capacity (for bounded
  /// amounts, such as failing every outstanding call at once). All return closed
  /// once the manager's shutdown has closed the channel; the notification is then
  /// left in place.
  SendStatus try_publish(Notification&& notification) const;
  /// Puts a notification on the manager's channel, suspending while it is full.
  [[nodiscard]] asio::awaitable<SendStatus> async_publish(Notification notification) const;
  /// Puts a notification on the channel even when it is full (for outcomes that must not wait, such as those of
  /// shutdown).
  SendStatus force_publish(Notification&& notification) const;

  /// Cancels the messages submitted with the token `peer` that have not ended
  /// (a layer that cancels gives each message a token of its own): one still
  /// queued never runs, a running handler gets asio's terminal cancellation (as
  /// when its deadline passes). Either ends Outcome::cancelled (errc::cancelled),
  /// routed as usual; a handler that finishes anyway ends as it did. The
  /// manager remembers the token until forget_cancel(): call it once the
  /// message has ended (its notification or released() came), before the token
  /// is used again.
  void cancel(std::uint64_t peer) const;
  /// Ends what cancel() remembers of `peer`.
  void forget_cancel(std::uint64_t peer) const;
  /// Whether this ingress is attached to a manager.
  [[nodiscard]] bool valid() const noexcept { return core_ != nullptr; }

 private:
  friend class detail::Core;
  Ingress(std::shared_ptr<detail::Core> core, std::weak_ptr<CommunicationLayer> layer)
      : core_{std::move(core)}, layer_{std::move(layer)} {}
  [[nodiscard]] bool route(Message& message, std::uint64_t peer) const;

  std::shared_ptr<detail::Core> core_;  ///< keeps the inbox alive; closed after shutdown
  std::weak_ptr<CommunicationLayer> layer_;
};

}  // namespace amsg
