// Connector::peer_stats(): each peer's state and call counters, read from any
// thread while the executor writes them.

#include "session/connector.hpp"

namespace amsg::net {

std::vector<PeerStats> Connector::peer_stats() const {
  std::vector<PeerStats> out;
  const std::uint32_t n = count_.load(std::memory_order_acquire);
  for (std::uint32_t i = 1; i < n; ++i) {  // 0 is this node itself
    const Peer& p = *peers_[i];
    PeerStats s;
    {
      std::lock_guard lock{p.info_mutex};  // the id changes with the info (connect())
      s.peer = PeerId{p.id.load(std::memory_order_relaxed)};
      s.info = p.info;
    }
    const PeerCallCounters& c = p.call_counters;
    s.calls_sent = c.sent.get();
    s.calls_ok = c.ok.get();
    s.calls_failed = c.failed.get();
    s.timeouts = c.timeouts.get();
    s.lost_events = c.lost_events.get();
    const std::uint64_t ended = s.calls_ok + s.calls_failed;
    s.calls_outstanding = s.calls_sent > ended ? s.calls_sent - ended : 0;
    s.queued = p.queued();
    DurationHistogram& h = s.round_trip;
    h.upper_bounds_s.assign(kDurationBucketsSeconds.begin(), kDurationBucketsSeconds.end());
    h.counts.resize(c.round_trip_buckets.size());
    std::uint64_t running = 0;
    for (std::size_t b = 0; b < c.round_trip_buckets.size(); ++b)
      h.counts[b] = running += c.round_trip_buckets[b].get();
    h.count = running;
    h.sum_s = static_cast<double>(c.round_trip_ns.get()) / 1e9;
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace amsg::net
