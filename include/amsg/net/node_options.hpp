#pragma once
/// @file
/// amsg::net::NodeOptions: how a Node listens, connects and watches its peers.
/// Every field has a working default.

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "amsg/manager_options.hpp"
#include "amsg/net/curve.hpp"

namespace amsg::net {

class Link;

/// How a Node listens, connects and watches its peers.
struct NodeOptions {
  /// The node's own manager: handlers run under its concurrency limit, and its
  /// max_payload_bytes is also the largest body this node accepts from the wire.
  ManagerOptions manager{};
  /// Addresses to bind: "tcp://host:port" (port 0 or "*": any free port) or
  /// "ipc:///path". Empty: the node only connects out.
  std::vector<std::string> listen{};
  /// Unique name of this node. Empty: "<hostname>-<pid>-<random hex>".
  std::string identity{};
  /// Each side sends a PING this often on every connection...
  std::chrono::milliseconds heartbeat_interval{200};
  /// ...and a peer that has sent nothing for this long counts as lost: its
  /// outstanding calls end with err(peer lost) and the connection starts over.
  /// With the defaults a dead peer is noticed within about 1.2 s. PINGs are sent
  /// from the manager's pool: handlers that block every pool thread for longer
  /// than this make the node look dead to its peers (give the pool more threads
  /// than such handlers, or let them co_await instead of blocking).
  std::chrono::milliseconds heartbeat_timeout{1000};
  /// Messages waiting per peer to be written to its socket. A full queue makes send()
  /// wait, try_send() return full and call() suspend (see docs/wire-protocol.md,
  /// "Backpressure").
  std::size_t peer_queue_capacity = 4096;
  /// Calls (messages that asked for a notification) waiting for their outcome,
  /// for the whole node. Reaching it has the same effect as a full peer queue.
  std::size_t max_outstanding_calls = 65536;
  /// Messages received from the wire that asked for a notification and whose
  /// handler has not answered yet. Reaching it pauses reading from the wire.
  std::size_t max_inflight = 8192;
  /// Bytes of frames (replies, errors, handshakes) waiting for one client to
  /// read them, beyond what the link buffers. A client that lets more pile up
  /// is cut off: what waits for it is dropped (counted in
  /// NodeStats::replies_dropped, logged) and its frames are ignored until it says
  /// HELLO again, so a client that stops reading cannot hold this node's memory
  /// or its inflight slots, and the other clients are unaffected. One frame
  /// alone may exceed it (a large reply to a client that does read).
  std::size_t max_unread_bytes_per_client = std::size_t{64} << 20;
  /// ZeroMQ send and receive high-water marks of every socket, in messages.
  int socket_hwm = 10000;
  /// At shutdown, how long replies still queued in ZeroMQ may take to leave.
  std::chrono::milliseconds linger{1000};
  /// Links besides ZeroMQ's (tcp://, ipc://), each serving the addresses of its
  /// own schemes; one instance per node. The library's in-memory link for tests
  /// (mem://, src/net/link/memory_link.hpp) is one.
  std::vector<std::shared_ptr<Link>> links{};
  /// Authentication and encryption of the ZeroMQ link (amsg/net/curve.hpp). By
  /// default a node listens in the clear on loopback and ipc:// only.
  CurveOptions curve{};
};

}  // namespace amsg::net
