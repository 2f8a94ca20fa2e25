#pragma once
/// @file
/// amsg::ManagerOptions: how a Manager is sized and behaves. Every field has a
/// working default; the constructor validates them (InvalidOptionsError).

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>

#include "amsg/notification.hpp"

namespace amsg {

/// How a Manager is sized and behaves.
struct ManagerOptions {
  /// At most this many handlers run at once (a hard limit: the manager runs exactly
  /// this many worker lanes, each running one message at a time). Must be >= 1.
  std::size_t concurrency = 4;

  /// Threads of the pool the handlers (and a Node's I/O) run on.
  /// 1, the default, is the fast configuration for handlers that co_await: a
  /// message, its handler and its notification (or a node's round trip) stay on
  /// one thread, with no hand-off and no wake-up between threads (measured in
  /// docs/performance.md). More threads run handlers in parallel, for handlers
  /// that use much CPU or block their thread; work then still stays on the
  /// thread that made it where it can (see docs/design.md, "Threads").
  /// 0 = std::thread::hardware_concurrency().
  std::size_t threads = 1;

  /// Inbox capacity (messages). send() waits and try_send() returns SendStatus::full
  /// when it is reached. Rounded up to a power of two; >= 2.
  std::size_t inbox_capacity = 4096;

  /// Notification channel capacity. When it is full (nobody reads), workers wait
  /// for room before taking their next message, so the backpressure reaches the
  /// senders through the inbox; nothing is dropped and memory stays bounded.
  /// Rounded up to a power of two; >= 2.
  std::size_t notification_capacity = 4096;

  /// Messages whose payload is larger are rejected with an err notification
  /// ("payload of X bytes exceeds the limit of Y bytes") and never reach a handler.
  std::size_t max_payload_bytes = 16u << 20;

  /// How long an idle thread (a worker with nothing to do, a blocking send() or
  /// receive()) keeps polling before it sleeps in the kernel. 0 (the default) sleeps
  /// at once: lowest CPU use, but each wake-up costs a thread wake-up (~20 us on
  /// the reference VM). A spin of ~50 us cuts latency at moderate rates to well
  /// under a microsecond at the cost of up to one more busy core while traffic flows.
  std::chrono::microseconds idle_spin{0};

  /// Never sleep: the pool's threads run queued work back to back, without the
  /// reactor's system call that an io_context makes between handlers, and let
  /// timers and sockets run every 50 us (or whenever nothing is queued). For the
  /// lowest latency where polling is the point (a node sets it with
  /// UcxOptions::busy_poll). Every pool thread stays at 100 % CPU while the
  /// manager runs; timers fire up to 50 us late while work keeps coming.
  bool busy_poll = false;

  /// When set, notifications are handed to this callback on the worker thread that
  /// produced them, instead of the notification channel: every receive form then
  /// returns nullopt / 0 at once. It must be thread-safe and should be quick;
  /// exceptions are logged.
  std::function<void(Notification&&)> on_notification{};

  /// Name of the spdlog logger the manager logs to (created if absent; spdlog's
  /// default logger is never touched).
  std::string logger_name = "amsg";
};

}  // namespace amsg
