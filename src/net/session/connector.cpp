#include "session/connector.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include <asio/post.hpp>

#include "amsg/errors.hpp"
#include "session/codes.hpp"
#include "session/links.hpp"
#include "session/local_path.hpp"
#include "wire/codec.hpp"

namespace amsg::net {
namespace {

// The MSG's timeout field: the call's remaining time, rounded up, at least 1 ms.
std::uint32_t remaining_ms(Clock::time_point deadline, Clock::time_point now) {
  if (deadline == Clock::time_point::max()) return 0;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
  return static_cast<std::uint32_t>(std::clamp<std::int64_t>(left, 1, std::numeric_limits<std::uint32_t>::max()));
}

}  // namespace

Connector::Connector(const SessionExecutor& executor, ConnectorOptions options, Calls& calls, Links& links,
                     LocalPath& local, SessionCounters& counters, std::shared_ptr<spdlog::logger> log)
    : executor_{executor},
      options_{options},
      calls_{calls},
      links_{links},
      local_{local},
      counters_{counters},
      log_{std::move(log)},
      peers_(kMaxPeers),
      held_timer_{executor.get()} {
  auto self = std::make_unique<Peer>(*this, kSelf, "self", options_.peer_queue_capacity);
  self->state = PeerState::local;
  self->info.address = "self";
  self->info.state = PeerState::local;
  peers_[kSelf] = std::move(self);
  count_.store(1, std::memory_order_release);
}

Connector::~Connector() = default;

void Connector::set_identity(const std::string& identity) {
  identity_ = identity;
  std::lock_guard lock{peers_[kSelf]->info_mutex};
  peers_[kSelf]->info.identity = identity;
}

// ---------------------------------------------------------------- any thread
// (connect(), disconnect() and the lookups: peer_slots.cpp)

// The byte bound is checked before a push: the message that crosses it is
// taken (so one larger than the bound goes alone), and senders racing on
// several threads may each add one.
bool Connector::has_room(const Peer& p, bool notified) const noexcept {
  return p.queued() < p.queue.capacity() &&
         p.queued_bytes.load(std::memory_order_relaxed) < options_.peer_queue_bytes && (!notified || calls_.has_room());
}

SendStatus Connector::enqueue(Peer& p, OutItem& item, bool wait, const std::atomic<Lifecycle>& state) {
  const bool notified = item.notified;
  for (;;) {
    if (intake_closed(state)) return SendStatus::closed;
    if (has_room(p, notified)) {
      if (notified) calls_.reserve();
      if (p.push(item)) break;
      if (notified) calls_.release();
    }
    if (!wait) return SendStatus::full;
    calls_.space().threads.wait([&] { return intake_closed(state) || has_room(p, notified); });
  }
  if (started_.load(std::memory_order_acquire)) schedule_flush(p);
  return SendStatus::ok;
}

// After a push: the fence orders the push before reading the flag, against the
// flusher's clearing of the flag before it drains (else both could miss).
// While a reader on the executor handles a frame, the callers it resumes have
// their flushes collected instead: the reader does them when it is done, so the
// next requests leave without a post and a turn of the scheduler.
void Connector::schedule_flush(Peer& p) {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!p.flush_posted.load(std::memory_order_relaxed) && !p.flush_posted.exchange(true, std::memory_order_acq_rel)) {
    if (executor_.running_in_this_thread() && collecting_) {  // collecting_ is the executor's: ask the thread first
      collected_.push_back(&p);
      return;
    }
    asio::post(executor_.get(), [this, &p] { flush(p); });
  }
}

// ---------------------------------------------------------------- sending

void Connector::start() {
  // connect() either sees started_ (and dials itself) or is among the `count` dialed here.
  std::lock_guard lock{connect_mutex_};
  started_.store(true, std::memory_order_release);
  asio::post(executor_.get(), [this, count = count_.load()] { open_all(count); });
}

void Connector::open_all(std::uint32_t count) {
  for (std::uint32_t i = 1; i < count; ++i) {
    Peer& p = *peers_[i];
    if (p.uses.load() != 0) {
      open(p);
    } else {
      close(p);  // disconnected before the node started
    }
  }
  schedule_flush(*peers_[kSelf]);
}

void Connector::adopt(Peer& p, std::string address) {
  p.address = std::move(address);
  PeerCallCounters& c = p.call_counters;
  for (auto* counter : {&c.sent, &c.ok, &c.failed, &c.timeouts, &c.lost_events, &c.round_trip_ns}) counter->reset();
  for (auto& bucket : c.round_trip_buckets) bucket.reset();
  p.incompatible_reason.clear();
  open(p);
}

void Connector::open(Peer& p) {
  if (stopped_) return;
  try {
    p.channel = links_.for_address(p.address).dial(p.address, p);
  } catch (const NetworkError& e) {
    log_->error("{}", e.what());
    set_incompatible(p, errc::bad_address, e.what());
    return;
  }
  p.last_rx = Clock::now();
  p.connecting_since = p.last_rx;
  p.max_payload = 0;       // whoever answers there announces its own limit
  p.hello_unsent = false;  // open() says HELLO itself
  set_state(p, PeerState::connecting);
  Frame hello{make_hello()};
  (void)p.channel->send(hello);
  flush(p);
}

// Takes what senders queued for the peer, registers the calls and writes them:
// one frame per burst (a BATCH of up to kMaxBatch messages; a lone message goes
// as a plain MSG), so the link and the kernel see one message per burst.
void Connector::flush(Peer& p) {
  p.flush_posted.store(false, std::memory_order_seq_cst);
  if (stopped_) return;
  if (p.state == PeerState::disconnected) {
    if (p.draining) (void)send_backlog(p);  // its calls were registered before: they go, and end as they would
    // With a use again, connect() has posted its reopen() or adopt(): what
    // waits goes once that has run; else it ends here.
    if (p.uses.load() == 0) end_queued(p);
    return;
  }
  if (p.index == kSelf || p.loopback) {
    local_.flush(p);
    return;
  }
  if (!p.channel) {
    // No channel: open() flushes once it exists, unless dialing failed, in which
    // case everything queued ends here (bad address) instead of waiting forever.
    if (p.state == PeerState::incompatible) {
      OutItem item;
      std::size_t n = 0;
      while (p.take(item)) {
        (void)admit(p, item, Clock::now());
        ++n;
      }
      if (n != 0) calls_.space().notify_waiting();
    }
    return;
  }
  // Nothing is sent before the HELLO_ACK: so a call that ends "peer unreachable"
  // was never sent (it cannot run later), and the peer's limit is known first.
  if (p.state == PeerState::connecting) {
    hold(p);
    return;
  }
  if (!send_backlog(p)) return;
  std::size_t n = 0;
  OutItem item;
  for (;;) {  // the backlog holds the frames the link refused (and CANCELs behind them)
    out_batch_.clear();
    const auto now = Clock::now();
    std::size_t bytes = 0;  // a BATCH stops at kMaxBatchBytes (plus the entry that crossed it)
    bool alone = false;     // a large payload goes in a frame of its own (kBodyApartFrom)
    while (!alone && out_batch_.size() < wire::kMaxBatch && bytes < wire::kMaxBatchBytes && p.take(item)) {
      ++n;
      if (!admit(p, item, now)) continue;
      if (item.payload.size() >= wire::kBodyApartFrom) {
        alone = true;
        // What was taken before it leaves first, in a frame of its own (in the backlog if refused).
        if (!out_batch_.empty()) (void)send_out(p, out_batch_, now);
        out_batch_.clear();
      }
      bytes += item.payload.size() + item.type.size() + item.notify_id.size() + wire::kMsgFixed;
      out_batch_.push_back(std::move(item));
    }
    if (out_batch_.empty()) break;
    if (!send_out(p, out_batch_, now)) break;  // now in the backlog
    if (n >= 4 * wire::kMaxBatch) {
      schedule_flush(p);  // let replies and other peers in
      break;
    }
  }
  if (n != 0) calls_.space().notify_waiting();
}

// False when the item ended here and must not be sent.
bool Connector::admit(Peer& p, OutItem& item, Clock::time_point now) {
  if (p.stale(item)) {
    end_disconnected(item);
    return false;
  }
  if (item.cancel && item.cancel->requested) {
    calls_.end_unsent(item, failure(errc::cancelled, kCancelled));  // its caller cancelled it before it went
    return false;
  }
  if (p.state == PeerState::closing) {
    calls_.end_unsent(item, failure(errc::remote_shutting_down, kRemoteShuttingDown));
    return false;
  }
  if (p.state == PeerState::incompatible) {
    calls_.end_unsent(item, failure(p.incompatible_code, p.incompatible_reason));
    return false;
  }
  if (item.notified && item.deadline <= now) {
    counters_.timeouts.add();
    calls_.end_unsent(item, failure(errc::timeout, kTimeout));
    return false;
  }
  if (p.max_payload != 0 && item.payload.size() > p.max_payload) {  // what the peer announced it takes
    counters_.refused_too_large.add();
    calls_.end_unsent(item,
                      failure(errc::payload_too_large, fmt::format("payload of {} bytes exceeds the limit of {} bytes",
                                                                   item.payload.size(), p.max_payload)));
    return false;
  }
  return true;
}

// Encodes and registers the items and sends them in one frame. False when the
// link would block (the frame then waits, encoded and registered, in the backlog).
bool Connector::send_out(Peer& p, std::vector<OutItem>& items, Clock::time_point now) {
  const bool single = items.size() == 1;
  // A large payload goes alone, after its header, from its own buffer (see kBodyApartFrom).
  const bool apart = single && items.front().payload.size() >= wire::kBodyApartFrom;
  std::size_t total = single ? 0 : wire::kBatchFixed;
  for (const auto& item : items) {
    total += wire::msg_size(item.type, item.notify_id) + (apart ? 0 : item.payload.size()) +
             (single ? 0 : wire::batch_entry_overhead());
  }
  Encoded e{Frame{Payload{total}, Payload{}}, 0, items.size()};
  auto* at = e.frame.head.data();
  if (!single) {
    wire::write_batch_prefix(at, static_cast<std::uint32_t>(items.size()));
    at += wire::kBatchFixed;
  }
  for (auto& item : items) {
    const std::span<const std::byte> body = apart ? std::span<const std::byte>{} : item.payload.bytes();
    const std::size_t size = wire::msg_size(item.type, item.notify_id) + body.size();
    if (!single) at = wire::write_batch_entry(at, static_cast<std::uint32_t>(size));
    if (item.notified) {
      auto [call_id, pd] = calls_.add(p.index, now, item.deadline);
      if (item.cancel) {
        item.cancel->call_id = call_id;
        item.cancel->peer = p.index;
      }
      wire::write_msg(at, call_id, item.type, item.notify_id, remaining_ms(item.deadline, now), body,
                      item.idempotent ? wire::kFlagIdempotent : std::uint8_t{0});
      pd.notify_id = std::move(item.notify_id);
      pd.type = std::move(item.type);
      pd.completion = std::move(item.completion);
      if (single) e.call_id = call_id;
    } else {
      wire::write_msg(at, 0, item.type, item.notify_id, 0, body);
    }
    at += size;
    if (apart) {
      e.frame.body = std::move(item.payload);
    } else {
      item.payload = Payload{};
    }
  }
  if (!p.backlog.empty() || p.channel->send(e.frame) != LinkSend::sent) {
    p.backlog.push_back(std::move(e));
    return false;
  }
  counters_.messages_sent.add(items.size());
  return true;
}

// True when the backlog is empty (possibly after sending it).
bool Connector::send_backlog(Peer& p) {
  while (!p.backlog.empty()) {
    Encoded& e = p.backlog.front();
    if (e.call_id != 0 && calls_.find(e.call_id) == nullptr) {  // a lone call that ended (timeout) while waiting
      p.backlog.pop_front();
      continue;
    }
    if (p.channel->send(e.frame) != LinkSend::sent) return false;
    counters_.messages_sent.add(e.count);
    p.backlog.pop_front();
  }
  return true;
}

void Connector::on_writable(Peer& p) {
  if (p.backlog.empty()) return;
  if (send_backlog(p)) flush(p);
}

// ---------------------------------------------------------------- receiving

void Connector::on_frame(Peer& p, std::span<const std::byte> frame, std::size_t parts, Payload* body) {
  Payload joined;
  if (body != nullptr && !wire::is_bare_header(frame)) {  // not split at a payload: read as one
    joined = join_frame(frame, body->bytes());
    frame = joined.bytes();
    body = nullptr;
  }
  p.last_rx = Clock::now();
  collecting_ = true;
  try {
    if (parts != 1) {
      malformed(p, wire::to_string(wire::DecodeError::bad_frames));
    } else {
      wire::Prefix prefix;
      if (auto e = wire::read_prefix(frame, prefix); e != wire::DecodeError::none) {
        malformed(p, wire::to_string(e));
      } else if (prefix.version != wire::kVersion) {
        log_->error("peer {}: {}", p.address, wire::incompatible_text(prefix.version));
        set_incompatible(p, errc::version_mismatch, wire::incompatible_text(prefix.version));
      } else {
        switch (prefix.kind) {
          case wire::Kind::reply:
            on_reply(p, frame, body);
            break;
          case wire::Kind::batch:
            if (auto e = wire::decode_batch(frame, batch_entries_); e != wire::DecodeError::none) {
              malformed(p, wire::to_string(e));
              break;
            }
            for (const auto entry : batch_entries_) {
              wire::Prefix ep;
              if (auto e = wire::read_prefix(entry, ep); e != wire::DecodeError::none) {
                malformed(p, wire::to_string(e));
              } else if (ep.kind != wire::Kind::reply) {
                malformed(p, wire::to_string(wire::DecodeError::bad_entry));
              } else {
                on_reply(p, entry);
              }
            }
            break;
          case wire::Kind::hello_ack:
            on_hello_ack(p, frame);
            break;
          case wire::Kind::ping: {
            std::uint64_t nonce = 0;
            if (auto e = wire::decode_ping(frame, nonce); e != wire::DecodeError::none)
              malformed(p, wire::to_string(e));
            break;
          }
          case wire::Kind::bye:
            if (auto e = wire::decode_bye(frame); e != wire::DecodeError::none) {
              malformed(p, wire::to_string(e));
              break;
            }
            log_->info("peer {} is shutting down", p.address);
            if (p.draining) {
              p.state_before_close = PeerState::closing;  // if connect() reopens it while it drains
              break;
            }
            set_state(p, PeerState::closing);
            schedule_flush(p);  // what waits for it ends remote shutting down
            break;
          case wire::Kind::error:
            on_error_frame(p, frame);
            break;
          default:
            malformed(p, "unexpected frame kind");
            break;
        }
      }
    }
  } catch (...) {
    collecting_ = false;
    for (Peer* c : collected_) asio::post(executor_.get(), [this, c] { flush(*c); });
    collected_.clear();
    throw;
  }
  collecting_ = false;
  // Requests from callers a reply resumed leave now, before the link's next
  // receive: when that one finds nothing, nothing was sent after it.
  for (Peer* c : collected_) flush(*c);  // collecting is off: the list cannot grow here
  collected_.clear();
}

// One REPLY (alone or from a BATCH): completes the call it answers.
void Connector::on_reply(Peer& p, std::span<const std::byte> frame, Payload* body) {
  wire::ReplyHeader r;
  if (auto e = wire::decode_reply(frame, r); e != wire::DecodeError::none) {
    malformed(p, wire::to_string(e));
    // Its call id is readable: that call ends now, instead of at its deadline.
    const std::uint64_t call_id = wire::stable_call_id(frame);
    if (const Pending* pd = calls_.find(call_id); pd != nullptr && pd->peer == p.index) {
      calls_.complete(call_id, failure(errc::malformed, wire::malformed_text(e)), /*replied=*/true);
    }
    return;
  }
  const Pending* waiting = calls_.find(r.call_id);
  if (waiting == nullptr || waiting->peer != p.index) {
    counters_.late_replies.add();
    return;
  }
  counters_.replies_received.add();
  Notification n;
  if (r.status == wire::Status::ok) {
    n.outcome = Outcome::ok;
    if (body != nullptr) {
      n.payload = std::move(*body);  // received apart, into a buffer of its own
    } else if (!r.body.empty()) {
      n.payload = Payload::copy_of(r.body);
    }
  } else {
    n = failure(r.status == wire::Status::cancelled ? errc::cancelled : to_errc(r.code), std::string{r.error});
    if (n.code == errc::timeout) counters_.timeouts.add();  // the deadline passed at the peer, a moment before ours
  }
  calls_.complete(r.call_id, std::move(n), /*replied=*/true);
}

void Connector::on_hello_ack(Peer& p, std::span<const std::byte> frame) {
  wire::Hello h;
  if (auto e = wire::decode_hello(frame, h); e != wire::DecodeError::none) {
    malformed(p, wire::to_string(e));
    return;
  }
  const bool is_us = h.identity == identity_;
  // The link reconnected by itself, perhaps to a restarted node: replies to
  // what the old connection carried will never come.
  const bool relinked = (std::to_integer<std::uint8_t>(frame[3]) & wire::kFlagNewConnection) != 0 &&
                        (p.state == PeerState::ready || p.state == PeerState::closing || p.draining);
  if (relinked) {
    if (h.identity != p.info.identity) {
      log_->warn("peer {} restarted (was {}, now {}): calls in flight end peer lost", p.address, p.info.identity,
                 h.identity);
    } else {
      log_->warn("peer {} ({}): connection re-established: calls in flight end peer lost", p.address, h.identity);
    }
  }
  std::vector<std::string> handlers{h.handlers.begin(), h.handlers.end()};
  p.max_payload = h.max_payload;
  {
    std::lock_guard lock{p.info_mutex};
    if (relinked) ++p.info.connections;
    p.info.identity = std::string{h.identity};
    p.info.handlers = handlers;
    p.info.max_payload = h.max_payload;
    // A completed exchange counts once (HELLO is re-sent while unanswered, and to query handlers).
    if (p.state == PeerState::connecting) ++p.info.connections;
  }
  if (relinked) {  // after the new identity is visible to whoever sees these outcomes
    counters_.peers_lost.add();
    p.call_counters.lost_events.add();
    p.backlog.clear();  // its calls end below: what they carried is not sent after that
    calls_.fail_peer(p.index, errc::peer_lost, kPeerLost, Clock::time_point::max());
    if (p.draining) {  // disconnected: nothing is left to wait for
      finish_close(p);
      return;
    }
    // The new connection starts with a HELLO like any other, so the peer knows
    // our limits and heartbeats us; a node that restarted is not closing. One
    // refused at the high-water mark goes again with the next heartbeat.
    Frame hello{make_hello()};
    p.hello_unsent = p.channel->send(hello) != LinkSend::sent;
    if (p.state == PeerState::closing) set_state(p, PeerState::ready);
  }
  for (auto& [promise, at] : p.handler_queries) promise.set_value(handlers);
  p.handler_queries.clear();
  if (is_us && !p.loopback) {
    log_->info("peer {} is this node: its messages skip the link", p.address);
    p.loopback = true;
  }
  if (p.state == PeerState::connecting) {  // a closing peer stays closing (a HELLO_ACK to a query)
    set_state(p, is_us ? PeerState::local : PeerState::ready);
    schedule_flush(p);             // what waited for the exchange
    if (p.info.connections > 1) {  // after a loss or a restart: worth an operator's attention
      log_->info("peer {} ({}) reconnected (connection {})", p.address, h.identity, p.info.connections);
    } else {
      log_->debug("peer {} ({}) ready", p.address, h.identity);
    }
  }
}

void Connector::on_error_frame(Peer& p, std::span<const std::byte> frame) {
  wire::ErrorFrame ef;
  if (auto e = wire::decode_error(frame, ef); e != wire::DecodeError::none) {
    malformed(p, wire::to_string(e));
    return;
  }
  if (ef.code == wire::ErrorCode::version_mismatch) {
    set_incompatible(p, errc::version_mismatch, std::string{ef.text});
  }
  malformed_log_.warn(*log_, "peer {} reports an error: {}", p.address, ef.text);
}

// ---------------------------------------------------------------- states

void Connector::set_state(Peer& p, PeerState state) {
  p.state = state;
  {
    std::lock_guard lock{p.info_mutex};
    p.info.state = state;
  }
  p.info_changed.notify_all();
}

void Connector::set_incompatible(Peer& p, errc code, std::string reason) {
  p.incompatible_code = code;
  p.incompatible_reason = std::move(reason);
  if (p.draining) {  // disconnected: its calls end so, and it closes (still disconnected)
    calls_.fail_peer(p.index, code, p.incompatible_reason, Clock::time_point::max());
    finish_close(p);
    return;
  }
  set_state(p, PeerState::incompatible);
  calls_.fail_peer(p.index, code, p.incompatible_reason, Clock::time_point::max());
  schedule_flush(p);  // and so does what waits in its queue
  for (auto& [promise, at] : p.handler_queries) {
    promise.set_exception(std::make_exception_ptr(NetworkError(p.incompatible_reason)));
  }
  p.handler_queries.clear();
}

void Connector::query_handlers(Peer& p, std::promise<std::vector<std::string>> promise) {
  if (p.state == PeerState::incompatible) {
    promise.set_exception(std::make_exception_ptr(NetworkError(p.incompatible_reason)));
    return;
  }
  if (p.state == PeerState::disconnected) {
    promise.set_exception(std::make_exception_ptr(NetworkError(kDisconnected)));
    return;
  }
  p.handler_queries.emplace_back(std::move(promise), Clock::now());
  if (p.channel) {
    Frame hello{make_hello()};
    (void)p.channel->send(hello);
  }
}

void Connector::stop() {
  stopped_ = true;
  held_timer_.cancel();
}

void Connector::fail_queued() {
  for (std::uint32_t i = 0; i < count_.load(); ++i) {
    Peer& p = *peers_[i];
    OutItem item;
    while (p.take(item)) calls_.end_unsent(item, failure(errc::node_shutting_down, kNodeShuttingDown));
    p.backlog.clear();  // their calls are registered: Calls::fail_all() ends them
  }
}

void Connector::malformed(const Peer& p, std::string_view why) {
  counters_.malformed_frames.add();
  malformed_log_.warn(*log_, "malformed frame from {}: {}", p.address, why);
}

}  // namespace amsg::net
