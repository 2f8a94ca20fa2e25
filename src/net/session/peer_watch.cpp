// The connector's watch over time: heartbeats, peers lost or unreachable, and
// the deadlines of messages held while a peer is connecting.

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "amsg/errors.hpp"
#include "session/codes.hpp"
#include "session/connector.hpp"
#include "session/local_path.hpp"
#include "wire/codec.hpp"

namespace amsg::net {

// Best effort: the call has ended for its caller already. Behind a frame the
// link refused (which may hold the MSG) it waits its turn; on a connection
// that has gone it is dropped, as the MSG was.
void Connector::send_cancel(std::uint32_t peer, std::uint64_t call_id) {
  Peer* p = peer_in_slot(peer);
  if (p == nullptr) return;
  if (p->index == kSelf || p->loopback) {
    local_.cancel(call_id);
    return;
  }
  if (!p->channel) return;
  // A lone MSG still in the backlog is dropped there now that its call has ended.
  if (std::any_of(p->backlog.begin(), p->backlog.end(), [call_id](const Encoded& e) { return e.call_id == call_id; })) {
    return;
  }
  Frame frame{Payload::copy_of(wire::encode_cancel(call_id))};
  counters_.cancels_sent.add();
  if (!p->backlog.empty() || p->channel->send(frame) == LinkSend::again) {
    p->backlog.push_back(Encoded{std::move(frame), 0, 0});
  }
}

void Connector::cancel_unsent(std::uint32_t peer, const CallCancel& c) {
  Peer* p = peer_in_slot(peer);
  if (p == nullptr) return;
  const std::size_t n = std::erase_if(p->held, [&](OutItem& item) {
    if (item.cancel.get() != &c) return false;
    p->queued_bytes.fetch_sub(item.payload.size(), std::memory_order_relaxed);
    calls_.end_unsent(item, failure(errc::cancelled, kCancelled));
    return true;
  });
  if (n != 0) {
    p->held_count.store(p->held.size(), std::memory_order_relaxed);
    calls_.space().notify_waiting();
    return;
  }
  schedule_flush(*p);  // still queued: ended as the flusher takes (or holds) it
}

void Connector::declare_lost(Peer& p) {
  counters_.peers_lost.add();
  p.call_counters.lost_events.add();
  log_->warn("peer {} ({}) lost: nothing heard for {} ms", p.address, p.info.identity,
             options_.heartbeat_timeout.count());
  calls_.fail_peer(p.index, errc::peer_lost, kPeerLost, Clock::time_point::max());
  for (auto& [promise, at] : p.handler_queries) {
    promise.set_exception(std::make_exception_ptr(NetworkError(kPeerLost)));
  }
  p.handler_queries.clear();
  p.backlog.clear();
  p.channel.reset();  // drops what the link still holds for the dead peer
  open(p);            // and starts over: a restarted peer is picked up by the hello
}

void Connector::tick(Clock::time_point now) {
  const std::string ping = wire::encode_ping(++ping_nonce_);
  for (std::uint32_t i = 1; i < count_.load(std::memory_order_acquire); ++i) {
    Peer& p = *peers_[i];
    if (!p.channel || p.loopback) continue;
    // A HELLO again while no answer came (it is idempotent: a lossy link may
    // have eaten the first), else a PING. Refused at the high-water mark: the
    // next one will do.
    if (p.hello_unsent) {
      Frame hello{make_hello()};
      p.hello_unsent = p.channel->send(hello) != LinkSend::sent;
    }
    Frame frame{p.state == PeerState::connecting ? make_hello() : Payload::copy_of(ping)};
    (void)p.channel->send(frame);
    const bool silent = now - p.last_rx > options_.heartbeat_timeout;
    if (p.draining) {  // disconnected: closes once its calls ended, or at once when the peer is lost
      if (silent) {
        counters_.peers_lost.add();
        p.call_counters.lost_events.add();
        log_->warn("peer {} ({}) lost while disconnecting: nothing heard for {} ms", p.address, p.info.identity,
                   options_.heartbeat_timeout.count());
        calls_.fail_peer(p.index, errc::peer_lost, kPeerLost, Clock::time_point::max());
      }
      if (silent || (calls_in_flight(p) == 0 && p.backlog.empty())) finish_close(p);
      continue;
    }
    if ((p.state == PeerState::ready || p.state == PeerState::closing) && silent) {
      declare_lost(p);
    } else if (p.state == PeerState::connecting && now - p.connecting_since > options_.heartbeat_timeout) {
      fail_unreachable(p);
      // And a fresh connection: one whose packets were dropped may wait in the
      // kernel's SYN backoff for half a minute after the network has healed.
      p.channel.reset();
      open(p);
    }
    // A handler query whose HELLO got no answer (refused at the high-water mark,
    // or never answered) ends after the same time, in every state.
    auto& q = p.handler_queries;
    for (auto it = q.begin(); it != q.end();) {
      if (now - it->second > options_.heartbeat_timeout) {
        it->first.set_exception(std::make_exception_ptr(NetworkError(kPeerUnreachable)));
        it = q.erase(it);
      } else {
        ++it;
      }
    }
  }
}

// Connecting: what senders queue waits here, where its deadlines are watched.
void Connector::hold(Peer& p) {
  OutItem item;
  auto earliest = Clock::time_point::max();
  bool ended = false;
  // Counted as held before it leaves the queue, so senders never see room that is not there.
  for (;;) {
    p.held_count.fetch_add(1, std::memory_order_relaxed);
    if (!p.queue.try_pop(item)) {
      p.held_count.fetch_sub(1, std::memory_order_relaxed);
      break;
    }
    const bool stale = p.stale(item);
    if (stale || (item.cancel && item.cancel->requested)) {
      p.held_count.fetch_sub(1, std::memory_order_relaxed);
      p.queued_bytes.fetch_sub(item.payload.size(), std::memory_order_relaxed);
      if (stale) {
        end_disconnected(item);
      } else {
        calls_.end_unsent(item, failure(errc::cancelled, kCancelled));
      }
      ended = true;
      continue;
    }
    if (item.notified) earliest = std::min(earliest, item.deadline);
    p.held.push_back(std::move(item));
  }
  if (ended) calls_.space().notify_waiting();  // their room in the queue is free
  arm_held_timer(earliest);
}

void Connector::arm_held_timer(Clock::time_point deadline) {
  if (deadline >= held_timer_at_ || stopped_) return;
  held_timer_at_ = deadline;
  held_timer_.expires_at(deadline);
  held_timer_.async_wait([this](const std::error_code& ec) {
    if (ec || stopped_) return;  // re-armed earlier, or shut down
    held_timer_at_ = Clock::time_point::max();
    expire_held();
  });
}

// Held items whose deadline passed end "timeout", never sent.
void Connector::expire_held() {
  const auto now = Clock::now();
  auto next = Clock::time_point::max();
  std::size_t n = 0;
  for (std::uint32_t i = 1; i < count_.load(std::memory_order_acquire); ++i) {
    auto& held = peers_[i]->held;
    // One pass (erasing from the middle of a deque one by one is quadratic).
    n += std::erase_if(held, [&](OutItem& item) {
      if (!item.notified) return false;
      if (item.deadline > now) {
        next = std::min(next, item.deadline);
        return false;
      }
      counters_.timeouts.add();
      peers_[i]->queued_bytes.fetch_sub(item.payload.size(), std::memory_order_relaxed);
      calls_.end_unsent(item, failure(errc::timeout, kTimeout));
      return true;
    });
    peers_[i]->held_count.store(held.size(), std::memory_order_relaxed);
  }
  arm_held_timer(next);
  if (n != 0) calls_.space().notify_waiting();
}

// Node::disconnect() ended the peer's last use (not when a connect() came in
// between): what is queued ends "disconnected", unsent, and so does what is
// sent from now on; calls already sent keep the connection, and its
// heartbeats, until they end as they would have; then it closes.
void Connector::close(Peer& p) {
  if (stopped_ || p.uses.load() != 0 || p.state == PeerState::disconnected) return;
  log_->info("peer {} ({}) disconnected", p.address, p.info.identity);
  p.state_before_close = p.state;
  set_state(p, PeerState::disconnected);
  for (auto& [promise, at] : p.handler_queries) {
    promise.set_exception(std::make_exception_ptr(NetworkError(kDisconnected)));
  }
  p.handler_queries.clear();
  end_queued(p);
  if (p.channel && !p.loopback && (calls_in_flight(p) != 0 || !p.backlog.empty())) {
    p.draining = true;  // the tick closes it once they ended
    return;
  }
  // (A loopback peer's calls went to this node's own manager: they end there, as they would have.)
  finish_close(p);
}

void Connector::finish_close(Peer& p) {
  p.draining = false;
  p.backlog.clear();
  p.channel.reset();
  p.loopback = false;  // reopened, it says HELLO again like a new peer
  p.hello_unsent = false;
  // Nothing of it is left in flight (calls, held items, a local backlog): its
  // slot may go to another address. Under connect()'s mutex, so that a
  // connect() to its own address (which takes a use and clears `free`) is
  // either seen here or comes after.
  if (calls_in_flight(p) == 0 && p.held.empty() && p.local_backlog.empty()) {
    std::lock_guard lock{connect_mutex_};
    if (p.uses.load() == 0) p.free.store(true, std::memory_order_release);
  }
}

std::uint64_t Connector::calls_in_flight(const Peer& p) noexcept {
  const auto& c = p.call_counters;
  return c.sent.get() - c.ok.get() - c.failed.get();
}

// connect() named a disconnected peer again: still draining, it is as it was;
// else it is dialed afresh.
void Connector::reopen(Peer& p) {
  if (stopped_ || p.state != PeerState::disconnected) return;  // close() did not run (a connect() came first)
  if (p.draining) {
    p.draining = false;
    set_state(p, p.state_before_close);
    schedule_flush(p);
    return;
  }
  open(p);
}

// What waits for a disconnected peer (held or queued) ends here, never sent.
void Connector::end_queued(Peer& p) {
  std::vector<OutItem> ending;  // taken out first, as in fail_unreachable()
  OutItem out;
  while (p.take(out)) ending.push_back(std::move(out));
  for (auto& item : ending) end_disconnected(item);
  if (!ending.empty()) calls_.space().notify_waiting();
}

// No HELLO_ACK within heartbeat_timeout: what waits for this peer ends now,
// never sent. (Calls sent on an earlier connection ended when it was lost.)
void Connector::end_disconnected(OutItem& item) {
  if (!item.notified) counters_.unsent_disconnected.add();
  calls_.end_unsent(item, failure(errc::disconnected, kDisconnected));
}

void Connector::fail_unreachable(Peer& p) {
  // Taken out first: a caller that sends again from its outcome (run inline,
  // on this thread) queues for the next attempt instead of being failed in
  // the same loop forever.
  std::vector<OutItem> failing;
  OutItem out;
  while (p.take(out)) failing.push_back(std::move(out));
  const std::size_t n = failing.size();
  for (auto& item : failing) {
    if (p.stale(item)) {
      end_disconnected(item);
      continue;
    }
    if (item.notified) {
      counters_.calls_failed_peer.add();
    } else {
      counters_.unsent_unreachable.add();
    }
    calls_.end_unsent(item, failure(errc::peer_unreachable, kPeerUnreachable));
  }
  if (n != 0) calls_.space().notify_waiting();
}

}  // namespace amsg::net
