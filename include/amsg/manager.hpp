#pragma once
/// @file
/// amsg::Manager: the in-process active message manager.
///
/// @verbatim
///   senders --send()--> [bounded inbox] --> N worker lanes on a thread pool
///        handler coroutine per message --> [bounded notification channel] --> receive()
///                                     \--> CommunicationLayer::deliver() for routed messages
/// @endverbatim
///
/// Lifecycle: construct, register handlers, start(), send..., shutdown(). Messages
/// sent before start() wait in the inbox. shutdown() (1) closes intake: later sends
/// return SendStatus::closed; (2) lets queued and running messages finish until the
/// drain deadline; (3) cancels what remains: queued messages end as cancelled
/// without running, running handlers get asio cancellation. Every message that asked
/// for a notification gets exactly one. The destructor calls shutdown(0ms) if needed.
///
/// Thread-safety: every member may be called from any thread, except that a
/// handler must not call the blocking send() of its own manager (it could wait
/// for a slot only it would free): use co_await async_send() there.

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "amsg/communication_layer.hpp"
#include "amsg/export.hpp"
#include "amsg/handler.hpp"
#include "amsg/handler_registry.hpp"
#include "amsg/manager_options.hpp"
#include "amsg/message.hpp"
#include "amsg/notification.hpp"
#include "amsg/send_status.hpp"
#include "amsg/stats.hpp"

namespace amsg {

namespace detail {
class Core;
}

/// What shutdown() did.
struct ShutdownReport {
  bool drained = false;              ///< everything finished before the drain deadline
  std::uint64_t cancelled = 0;       ///< messages ended cancelled: by this shutdown, or earlier by their senders
  std::chrono::nanoseconds took{0};  ///< how long shutdown took
};

/// The runtime in one process: an inbox, `concurrency` worker lanes running handlers, and a notification channel.
class AMSG_EXPORT Manager {
 public:
  /// A manager that is not started yet; throws InvalidOptionsError for bad options.
  explicit Manager(ManagerOptions options = {});
  ~Manager();
  Manager(const Manager&) = delete;
  Manager& operator=(const Manager&) = delete;

  // --- handlers (safe at any time, also while messages flow) ---
  /// The handler table (the functions below are shortcuts to it).
  HandlerRegistry& handlers() noexcept;
  /// Adds the handler of `type`; throws HandlerExistsError when it has one.
  void register_handler(std::string type, std::shared_ptr<Handler> handler);
  /// Adds several handlers: all or none.
  void register_handlers(HandlerMap handlers);
  /// Adds or replaces the handler of `type`; true when it replaced one.
  bool replace_handler(std::string type, std::shared_ptr<Handler> handler);
  /// Removes the handler of `type` (running ones finish); false when there was none.
  bool remove_handler(std::string_view type);

  // --- lifecycle ---
  void start();  ///< throws LifecycleError if already started or shut down
  /// Idempotent; later calls return the first call's report.
  ShutdownReport shutdown(std::chrono::milliseconds drain_deadline = std::chrono::seconds{5});
  /// Whether start() ran and shutdown() has not begun.
  [[nodiscard]] bool running() const noexcept;

  // --- sending (the message is moved from only when the status is ok) ---
  /// Waits while the inbox is full. Returns ok or closed. (Each send form moves
  /// from `message` only when it returns ok.)
  SendStatus send(Message&& message);
  /// Never waits. Returns ok, full or closed.
  SendStatus try_send(Message&& message);
  /// Suspends the coroutine while the inbox is full. Returns ok or closed.
  [[nodiscard]] asio::awaitable<SendStatus> async_send(Message message);

  // --- notifications (when no on_notification callback is set) ---
  /// nullopt when nothing is waiting.
  std::optional<Notification> try_receive();
  /// Waits for one; nullopt once the manager has shut down and the channel is empty.
  std::optional<Notification> receive();
  /// As receive(), but also nullopt when `timeout` passes first.
  std::optional<Notification> receive_for(std::chrono::nanoseconds timeout);
  /// The next notification, suspending until one comes; nullopt once shut down and drained.
  /// The manager's threads resume the coroutine by posting to its executor, so that
  /// executor's execution context must outlive the manager (or its shutdown()), as
  /// with any Asio operation completed from another thread.
  [[nodiscard]] asio::awaitable<std::optional<Notification>> async_receive();

  /// Batch forms, for consumers that drain bursts: each appends up to `max` waiting
  /// notifications to `out` and returns how many it appended. try_ never waits (0
  /// when none wait); the others wait for at least one and return 0 only once the
  /// manager has shut down and the channel is empty. `out` must outlive the call
  /// (for the coroutine form: until the co_await completes).
  std::size_t try_receive_batch(std::vector<Notification>& out, std::size_t max);
  /// Appends up to `max` notifications to `out`, blocking until at least one comes; 0 once shut down and drained.
  std::size_t receive_batch(std::vector<Notification>& out, std::size_t max);
  /// As receive_batch(), suspending instead of blocking.
  [[nodiscard]] asio::awaitable<std::size_t> async_receive_batch(std::vector<Notification>& out, std::size_t max);

  // --- communication layers (transports) ---
  /// Hands the layer an Ingress; the manager keeps the layer until shutdown.
  void attach(const std::shared_ptr<CommunicationLayer>& layer);

  /// The counters now (from any thread, without stopping anything).
  [[nodiscard]] Stats stats() const;
  /// The options, as validated.
  [[nodiscard]] const ManagerOptions& options() const noexcept;
  /// The pool's executor: for timers and work that handlers start.
  [[nodiscard]] asio::any_io_executor executor() const;

 private:
  std::shared_ptr<detail::Core> core_;
};

}  // namespace amsg
