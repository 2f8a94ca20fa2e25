#pragma once
// amsg::net::NodeStats: a node's transport counters and its manager's stats.
// Readable at any time from any thread without stopping anything.

#include <cstdint>

#include "amsg/stats.hpp"

namespace amsg::net {

struct NodeStats {
  std::uint64_t messages_sent = 0;          // MSGs written (alone or in a BATCH)
  std::uint64_t replies_received = 0;       // REPLYs matched to a waiting call
  std::uint64_t late_replies = 0;           // REPLYs for calls that had already ended (discarded)
  std::uint64_t timeouts = 0;               // calls ended by their deadline at this node
  std::uint64_t calls_failed_peer = 0;      // calls ended by peer lost / unreachable / incompatible
  std::uint64_t peers_lost = 0;             // connections declared lost
  std::uint64_t messages_received = 0;      // MSGs read
  std::uint64_t replies_sent = 0;           // REPLYs written
  std::uint64_t replies_dropped = 0;        // replies whose peer was gone
  std::uint64_t refused_shutting_down = 0;  // MSGs answered err(remote shutting down)
  std::uint64_t refused_too_large = 0;      // messages refused for their size (here, or before sending)
  std::uint64_t malformed_frames = 0;       // frames that failed to decode (any side)
  std::uint64_t outstanding_calls = 0;      // calls waiting for an outcome now
  Stats manager;                            // the node's manager
};

}  // namespace amsg::net
