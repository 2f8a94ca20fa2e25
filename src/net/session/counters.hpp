#pragma once
// The session's counters: written on the session's executor only (one writer at
// a time), read by Node::stats() from any thread.

#include "concurrency/single_writer_counter.hpp"

namespace amsg::net {

struct SessionCounters {
  amsg::detail::SingleWriterCounter messages_sent, replies_received, late_replies, timeouts, calls_failed_peer,
      peers_lost, messages_received, replies_sent, replies_dropped, refused_shutting_down, refused_too_large,
      malformed_frames;
};

}  // namespace amsg::net
