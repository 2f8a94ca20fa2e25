#pragma once
// Session: the transport-independent heart of a Node. It owns the node's
// manager, its links (by address scheme), the connecting half (Connector), the
// listening half (Listener), the node's calls to itself (LocalPath), the call
// table (Calls) and the heartbeat, and runs them all on one executor
// (SessionExecutor) of the manager's pool. It knows nothing of ZeroMQ.
//
// Lifecycle: created -> running (start) -> closing (shutdown: intake closed,
// draining) -> stopped.

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/logger.h>
#include <asio/awaitable.hpp>
#include <asio/steady_timer.hpp>

#include "amsg/manager.hpp"
#include "amsg/net/node_options.hpp"
#include "amsg/net/node_stats.hpp"
#include "amsg/net/peer.hpp"
#include "session/call.hpp"
#include "session/calls.hpp"
#include "session/connector.hpp"
#include "session/counters.hpp"
#include "session/links.hpp"
#include "session/listener.hpp"
#include "session/local_path.hpp"
#include "session/rate_limited_log.hpp"

namespace amsg::net {

class Session : public std::enable_shared_from_this<Session> {
 public:
  explicit Session(NodeOptions options);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start();
  ShutdownReport shutdown(std::chrono::milliseconds drain);

  PeerId connect(const std::string& address) { return connector_.connect(address); }
  void disconnect(PeerId peer) { connector_.disconnect(peer); }
  bool wait_ready(PeerId peer, std::chrono::milliseconds timeout) { return connector_.wait_ready(peer, timeout); }
  [[nodiscard]] std::optional<PeerInfo> peer_info(PeerId peer) const { return connector_.peer_info(peer); }
  std::future<std::vector<std::string>> query_handlers(PeerId peer);

  // Queues a message (a call when item.completion is set, notified when
  // item.notified). wait: block while the peer's queue or the outstanding limit
  // is full. On anything but ok the item is not moved from.
  SendStatus enqueue(PeerId peer, OutItem& item, bool wait);
  // As enqueue, without blocking: while full, waits for room off the caller's
  // thread, then queues; `done` gets ok or closed.
  void async_enqueue(PeerId peer, OutItem&& item, std::unique_ptr<detail::Completion<SendStatus>> done);
  // Starts a call (item.completion set): its outcome always arrives through the
  // completion (node shutting down when closed; after waiting while full).
  void call(PeerId peer, OutItem&& item);
  // On the executor: the caller of the call `c` cancelled it (CallCancel::request);
  // `unsent_only`: only if it has not been sent (asio's total cancellation).
  void cancel_call(CallCancel& c, bool unsent_only);
  [[nodiscard]] bool on_executor_thread() const noexcept { return executor_.running_in_this_thread(); }
  [[nodiscard]] std::string next_call_name();
  // Throws std::invalid_argument for a type or id over the wire's limits.
  void validate(const OutItem& item) const { check_limits(item.type, item.notify_id); }
  // The same, and for an unknown peer.
  void check(PeerId peer, std::string_view type, std::string_view notify_id) const;

  [[nodiscard]] NodeStats stats() const;
  [[nodiscard]] std::vector<PeerStats> peer_stats() const { return connector_.peer_stats(); }
  [[nodiscard]] const SessionExecutor& executor() const noexcept { return executor_; }

  NodeOptions options;
  Manager manager;
  std::string identity;
  std::vector<std::string> endpoints;

 private:
  Connector::Peer& peer_or_throw(PeerId peer) const;
  void retry_enqueue(PeerId peer, OutItem&& item, std::unique_ptr<detail::Completion<SendStatus>> done);
  void end_disconnected(OutItem&& item);
  static void check_limits(std::string_view type, std::string_view notify_id);
  asio::awaitable<void> heartbeat_loop();
  void stop_waiting();
  template <typename F>
  void run_on_executor_and_wait(F&& f);

  std::shared_ptr<spdlog::logger> log_;
  SessionExecutor executor_;
  Links links_;
  SessionCounters counters_;
  std::atomic<Lifecycle> state_{Lifecycle::created};
  Calls calls_;
  LocalPath local_;
  Connector connector_;
  Listener listener_;
  asio::steady_timer heartbeat_timer_;
  bool heartbeat_stopped_ = false;  // on the executor
  RateLimitedLog handshake_log_;    // on the executor
  RateLimitedLog dial_log_;         // on the executor
  std::atomic<std::uint64_t> call_names_{0};
  std::mutex lifecycle_mutex_;
  std::optional<ShutdownReport> report_;
};

}  // namespace amsg::net
