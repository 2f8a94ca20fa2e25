#pragma once
// amsg::net::Node: a Manager on a ZeroMQ endpoint. Active messages between
// processes and hosts, with each notification routed back to the sender.
//
//   Node a{{.listen = {"ipc:///tmp/a.ipc"}}};        Node b{};
//   a.manager().register_handler("echo", ...);       auto peer = b.connect("ipc:///tmp/a.ipc");
//   a.start();                                        b.start();
//                                                     auto reply = co_await b.call(peer, "echo", bytes);
//
// Three ways to send, all on the seed's notification model:
//  - fire-and-forget:  send(peer, type, payload)
//  - notified:         send(peer, type, payload, id): the outcome "{id}:ok" / "{id}:err(...)"
//                      arrives on manager()'s notification channel (receive() & co);
//  - call:             co_await call(...) / call_future(...): the outcome, with the bytes the
//                      remote handler put in Message::response, comes back to the caller
//                      instead (request/response).
// Each notified send or call ends in exactly one outcome: ok, the remote's error,
// "cancelled", "timeout" (its deadline passed; a later answer is discarded and
// counted), "peer lost" (the peer went silent for heartbeat_timeout), "peer
// unreachable" (no answer to a connection attempt within heartbeat_timeout),
// "remote shutting down", "node shutting down" (this node's shutdown), or
// "incompatible protocol version ...".
//
// Threads: the node's sockets and tables live on one strand of its manager's
// pool (on a one-thread pool, the pool's executor itself), beside the handlers;
// no thread of its own. Every member is thread-safe.
// Coroutines running on executor() (that strand) call without any thread hop;
// they must not use the blocking send() forms. Do not call shutdown() from the
// pool itself.

#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "amsg/manager.hpp"
#include "amsg/net/node_options.hpp"
#include "amsg/net/node_stats.hpp"
#include "amsg/net/peer.hpp"
#include "amsg/notification.hpp"
#include "amsg/payload.hpp"
#include "amsg/send_status.hpp"
#include "amsg/stats.hpp"

namespace amsg::net {

class Session;

struct CallOptions {
  // The notification's id. Empty: "call-<n>".
  std::string notify_id{};
  // 0: no deadline. Otherwise the call ends with err(timeout) when it passes.
  std::chrono::milliseconds timeout{0};
};

class Node {
 public:
  explicit Node(NodeOptions options = {});
  ~Node();  // shutdown(0) when still running
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Register handlers here (before or after start()).
  Manager& manager() noexcept;

  // Binds the listen addresses (throws NetworkError naming the address), starts
  // the manager and the node's I/O. Throws LifecycleError when called twice.
  void start();
  // Stops taking messages (senders get closed, remote senders err(remote shutting
  // down)), waits up to `drain` for this node's own calls and the manager's
  // running handlers, ends what remains ("node shutting down" / cancelled), sends
  // the last replies and closes the sockets. Idempotent.
  ShutdownReport shutdown(std::chrono::milliseconds drain = std::chrono::seconds{5});

  [[nodiscard]] const std::string& identity() const noexcept;
  // The bound addresses, with tcp ports resolved (valid after start()).
  [[nodiscard]] std::vector<std::string> endpoints() const;

  // A connection to `address`; returns at once (the hello exchange runs in the
  // background; messages sent meanwhile wait in ZeroMQ). The same address gives
  // the same PeerId. A peer whose identity turns out to be this node's becomes local.
  PeerId connect(const std::string& address);
  // This node itself: messages skip the socket.
  [[nodiscard]] PeerId self() const noexcept;
  // Waits until the hello exchange with `peer` has completed (or it is local).
  bool wait_ready(PeerId peer, std::chrono::milliseconds timeout);
  [[nodiscard]] std::optional<PeerInfo> peer_info(PeerId peer) const;
  // Asks the peer for its current handler list (a fresh hello exchange).
  std::future<std::vector<std::string>> query_handlers(PeerId peer);

  // Fire-and-forget. Waits while the peer's queue is full. ok or closed.
  SendStatus send(PeerId peer, std::string type, Payload payload);
  // Notified: the outcome goes to manager()'s notification channel.
  SendStatus send(PeerId peer, std::string type, Payload payload, std::string notify_id,
                  std::chrono::milliseconds timeout = std::chrono::milliseconds{0});
  // As send(), but never waits: full when the peer queue or the outstanding limit is reached.
  SendStatus try_send(PeerId peer, std::string type, Payload payload);
  SendStatus try_send(PeerId peer, std::string type, Payload payload, std::string notify_id,
                      std::chrono::milliseconds timeout = std::chrono::milliseconds{0});

  // As send(), for coroutines: suspends while the peer's queue or the outstanding
  // limit is full. ok or closed.
  [[nodiscard]] asio::awaitable<SendStatus> async_send(PeerId peer, std::string type, Payload payload);
  [[nodiscard]] asio::awaitable<SendStatus> async_send(PeerId peer, std::string type, Payload payload,
                                                       std::string notify_id,
                                                       std::chrono::milliseconds timeout = std::chrono::milliseconds{
                                                           0});

  // Request/response: the outcome (with the handler's response bytes in
  // Notification::payload) comes back to the caller. Suspends while the peer
  // queue is full. Never throws for remote failures: check outcome.
  // (call() is not itself a coroutine: everything is copied before it returns.)
  [[nodiscard]] asio::awaitable<Notification> call(PeerId peer, std::string type, Payload payload,
                                                   const CallOptions& options = {});
  std::future<Notification> call_future(PeerId peer, std::string type, Payload payload,
                                        const CallOptions& options = {});
  // The same with the notification id and deadline as arguments. Prefer this form
  // inside coroutines when built with GCC 12: it miscompiles aggregate temporaries
  // (such as CallOptions{...}) that live across a co_await.
  [[nodiscard]] asio::awaitable<Notification> call(PeerId peer, std::string type, Payload payload,
                                                   std::string notify_id,
                                                   std::chrono::milliseconds timeout = std::chrono::milliseconds{0});

  [[nodiscard]] NodeStats stats() const;
  // The node's strand (on the manager's pool; with one pool thread, the pool's executor).
  [[nodiscard]] asio::any_io_executor executor() const;

 private:
  std::shared_ptr<Session> impl_;
};

}  // namespace amsg::net
