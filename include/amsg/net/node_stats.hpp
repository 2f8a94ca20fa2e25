#pragma once
/// @file
/// amsg::net::NodeStats: a node's transport counters and its manager's stats.
/// Readable at any time from any thread without stopping anything.

#include <cstdint>

#include "amsg/net/peer.hpp"
#include "amsg/stats.hpp"

namespace amsg::net {

/// A node's transport counters and its manager's stats.
struct NodeStats {
  std::uint64_t messages_sent = 0;     ///< MSGs written (alone or in a BATCH)
  std::uint64_t replies_received = 0;  ///< REPLYs matched to a waiting call
  std::uint64_t late_replies = 0;      ///< REPLYs for calls that had already ended (discarded)
  std::uint64_t timeouts =
      0;  ///< calls ended by their deadline (this node's timer, or the peer saying it passed there)
  std::uint64_t calls_failed_peer = 0;      ///< calls ended by peer lost / unreachable / incompatible
  std::uint64_t peers_lost = 0;             ///< connections declared lost
  std::uint64_t messages_received = 0;      ///< MSGs read
  std::uint64_t replies_sent = 0;           ///< REPLYs written
  std::uint64_t replies_dropped = 0;        ///< replies whose peer was gone
  std::uint64_t refused_shutting_down = 0;  ///< MSGs answered err(remote shutting down)
  std::uint64_t refused_too_large = 0;      ///< messages refused for their size (here, or before sending)
  std::uint64_t refused_overloaded = 0;     ///< MSGs refused: their client was over its budget here
  std::uint64_t replies_replayed = 0;       ///< idempotent retries answered with the first one's outcome, not run
  std::uint64_t malformed_frames = 0;       ///< frames that failed to decode (any side)
  std::uint64_t clients_cut_off = 0;        ///< clients cut off: not reading, or sending on after refusals
  std::uint64_t frames_ignored = 0;         ///< frames from cut-off clients, ignored
  std::uint64_t handshakes_failed =
      0;  ///< clients refused during the handshake (CURVE: no keys, wrong key, not allowed)
  std::uint64_t dial_handshakes_failed =
      0;  ///< handshakes of this node's own connections that failed (CURVE: its key refused, a wrong server key)
  std::uint64_t unsent_unreachable = 0;   ///< fire-and-forget messages never sent: their peer was unreachable
  std::uint64_t unsent_disconnected = 0;  ///< fire-and-forget messages never sent: Node::disconnect() came first
  std::uint64_t cancels_sent = 0;         ///< CANCELs written for this node's cancelled calls
  std::uint64_t cancels_received = 0;     ///< CANCELs read (also those naming a call that had ended, or idempotent)
  std::uint64_t cancelled_waiting =
      0;  ///< messages a CANCEL ended while they waited here for a turn: never run, in no manager statistic
  std::uint64_t outstanding_calls = 0;  ///< calls waiting for an outcome now
  Stats manager;                        ///< the node's manager
};

/// One peer this node connected to: its state and the calls sent to it (calls
/// and notified sends that reached the call table).
struct PeerStats {
  PeerId peer;                          ///< as returned by Node::connect()
  PeerInfo info;                        ///< address, state, identity, ...
  std::uint64_t calls_sent = 0;         ///< calls written to the peer (or queued for its link)
  std::uint64_t calls_ok = 0;           ///< ended ok
  std::uint64_t calls_failed = 0;       ///< ended with an error (the peer's, or timeout / peer lost ...)
  std::uint64_t timeouts = 0;           ///< of calls_failed: ended by their deadline
  std::uint64_t lost_events = 0;        ///< times the peer was declared lost
  std::uint64_t calls_outstanding = 0;  ///< sent, no outcome yet
  std::uint64_t queued = 0;             ///< messages waiting in the peer's queue
  DurationHistogram round_trip;         ///< send -> the peer's REPLY, for outcomes the peer sent
};

}  // namespace amsg::net
