#pragma once
// The session's counters: written on the session's executor only (one writer at
// a time), read by Node::stats() from any thread.

#include <array>
#include <chrono>

#include "amsg/stats.hpp"
#include "concurrency/single_writer_counter.hpp"

namespace amsg::net {

struct SessionCounters {
  amsg::detail::SingleWriterCounter messages_sent, replies_received, late_replies, timeouts, calls_failed_peer,
      peers_lost, messages_received, replies_sent, replies_dropped, refused_shutting_down, refused_too_large,
      refused_overloaded, malformed_frames, clients_cut_off, frames_ignored, unsent_unreachable, handshakes_failed,
      dial_handshakes_failed, replies_replayed, unsent_disconnected, cancels_sent, cancels_received, cancelled_waiting;
};

// One peer's calls (those that reached the call table), for Node::peer_stats().
struct PeerCallCounters {
  amsg::detail::SingleWriterCounter sent, ok, failed, timeouts, lost_events, round_trip_ns;
  std::array<amsg::detail::SingleWriterCounter, kDurationBucketsSeconds.size() + 1> round_trip_buckets;

  void record_round_trip(std::chrono::nanoseconds took) noexcept {
    const double secs = std::chrono::duration<double>(took).count();
    std::size_t b = 0;
    while (b < kDurationBucketsSeconds.size() && secs > kDurationBucketsSeconds[b]) ++b;
    round_trip_buckets[b].add();
    round_trip_ns.add(static_cast<std::uint64_t>(took.count()));
  }
};

}  // namespace amsg::net
