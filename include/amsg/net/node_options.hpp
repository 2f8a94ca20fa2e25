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
#include "amsg/net/ucx_options.hpp"

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
  /// Payload bytes waiting per peer, the same way: a queue holding this many
  /// is full (one message larger than this alone is taken when the queue is
  /// empty). Together with the dialing sockets' bound (socket_buffer_bytes) it
  /// bounds what one peer that does not keep up can make this node hold.
  std::size_t peer_queue_bytes = std::size_t{64} << 20;
  /// Calls (messages that asked for a notification) waiting for their outcome,
  /// for the whole node. Reaching it has the same effect as a full peer queue.
  std::size_t max_outstanding_calls = 65536;
  /// Messages received from the wire that have not ended yet (waiting, running,
  /// or their reply not yet handed to the link), from every client together.
  /// Reaching it pauses reading from the wire.
  std::size_t max_inflight = 8192;
  /// What one client may have here at once: messages read from it and not yet
  /// ended (waiting their turn or running, fire-and-forget ones included), in
  /// count and in payload bytes. A client that reaches either while other
  /// clients are connected gets its further messages refused with
  /// err(overloaded) (REPLY code 9; never run), counted in
  /// NodeStats::refused_overloaded and logged; a client alone is slowed
  /// instead (reading pauses until its messages end). A client refused for
  /// longer than heartbeat_timeout without backing off (to 3/4 of its
  /// budget), then more than this many times within one heartbeat_timeout, is
  /// cut off: ignored until its next HELLO (docs/wire-protocol.md, "Budgets
  /// and turns").
  std::size_t max_inflight_per_client = 1024;
  std::size_t max_inflight_bytes_per_client = std::size_t{64} << 20;  ///< see max_inflight_per_client
  /// Payload bytes of every client's messages read and not yet ended, together.
  /// Reaching it pauses reading from the wire.
  std::size_t max_inflight_bytes = std::size_t{256} << 20;
  /// While two or more clients have work here, each may have at most this many
  /// messages in the manager at once; the rest wait their turn in the node, and
  /// the clients take turns (round robin). So a client's message waits behind
  /// at most this many of each other client's. 0: the manager's concurrency.
  std::size_t fair_share = 0;
  /// How long a listening node remembers the outcome of an idempotent call
  /// (SendOptions::idempotent), and how many and how many bytes of them at
  /// most (the oldest go first): a retry within these gets the first outcome.
  std::chrono::milliseconds idempotency_window{std::chrono::minutes{5}};
  std::size_t idempotency_max_entries = 65536;                ///< see idempotency_window
  std::size_t idempotency_max_bytes = std::size_t{64} << 20;  ///< see idempotency_window
  /// Bytes of frames (replies, errors, handshakes) waiting for one client to
  /// read them, beyond what the link buffers. A client that lets more pile up
  /// is cut off: what waits for it is dropped (counted in
  /// NodeStats::replies_dropped, logged) and its frames are ignored until it says
  /// HELLO again, so a client that stops reading cannot hold this node's memory
  /// or its inflight slots, and the other clients are unaffected. One frame
  /// alone may exceed it (a large reply to a client that does read).
  std::size_t max_unread_bytes_per_client = std::size_t{64} << 20;
  /// The most frames a link may hold per connection and direction (ZeroMQ's
  /// high-water marks; UCX sends not yet complete); socket_buffer_bytes
  /// lowers it for large frames. 0: only socket_buffer_bytes bounds it.
  int socket_hwm = 10000;
  /// Bytes of frames that a link may hold per connection in each direction:
  /// for one client of this listening node (received and not yet read, or
  /// replies not yet sent; beyond the kernel's socket buffers), so that no
  /// client can make this node hold more for it, and for each peer this node
  /// dialed (sent and not yet written). ZeroMQ counts messages, not bytes: the
  /// high-water marks are this divided by the largest frame the node
  /// accepts (from manager.max_payload_bytes), at least 8, but never more
  /// than socket_hwm (when that is not 0: no limit). With the defaults (16 MiB payloads) that is 8 frames, so up to
  /// 136 MiB if every frame is the largest allowed; lower max_payload_bytes for
  /// a tighter bound (1 MiB: 31 frames of a little over 2 MiB). A frame holds up to
  /// 256 messages.
  std::size_t socket_buffer_bytes = std::size_t{64} << 20;
  /// At shutdown, how long replies still queued in ZeroMQ may take to leave.
  std::chrono::milliseconds linger{1000};
  /// The UCX link (ucx://HOST:PORT): transports, devices, polling, and whether
  /// it may listen beyond loopback (amsg/net/ucx_options.hpp).
  UcxOptions ucx{};
  /// Links besides ZeroMQ's (tcp://, ipc://) and UCX's (ucx://), each serving the addresses of its
  /// own schemes; one instance per node. The library's in-memory link for tests
  /// (mem://, src/net/link/memory_link.hpp) is one.
  std::vector<std::shared_ptr<Link>> links{};
  /// Authentication and encryption of the ZeroMQ link (amsg/net/curve.hpp). By
  /// default a node listens in the clear on loopback and ipc:// only.
  CurveOptions curve{};
};

}  // namespace amsg::net
