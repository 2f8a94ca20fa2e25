#include "session/session.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <asio/bind_executor.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include "amsg/errors.hpp"
#include "amsg/log.hpp"
#include "link/ucx_link.hpp"
#include "link/zmq_link.hpp"
#include "wire/codec.hpp"

namespace amsg::net {
namespace {

std::string make_identity() {
  std::array<char, 256> host{};
  if (::gethostname(host.data(), host.size() - 1) != 0) std::strcpy(host.data(), "node");
  std::random_device rd;
  const std::uint64_t r = (static_cast<std::uint64_t>(rd()) << 32U) ^ rd();
  return fmt::format("{}-{}-{:016x}", host.data(), ::getpid(), r);
}

NodeOptions validated(NodeOptions o) {
  if (o.heartbeat_interval.count() <= 0 || o.heartbeat_timeout <= o.heartbeat_interval) {
    throw InvalidOptionsError("amsg: heartbeat_timeout must exceed heartbeat_interval > 0");
  }
  if (o.peer_queue_capacity < 2 || o.max_outstanding_calls == 0 || o.max_inflight < 2 * wire::kMaxBatch) {
    throw InvalidOptionsError("amsg: needs peer_queue_capacity >= 2, max_outstanding_calls >= 1, max_inflight >= 512");
  }
  if (o.peer_queue_bytes == 0) throw InvalidOptionsError("amsg: peer_queue_bytes must be > 0");
  if (o.max_inflight_per_client == 0 || o.max_inflight_bytes_per_client == 0 || o.max_inflight_bytes == 0) {
    throw InvalidOptionsError(
        "amsg: max_inflight_per_client, max_inflight_bytes_per_client and max_inflight_bytes must be > 0");
  }
  if (o.identity.size() > wire::kMaxIdentityLength) throw InvalidOptionsError("amsg: identity longer than 255 bytes");
  // Polling UCX without sleeping pays off only if the work it brings runs
  // without a system call between steps too.
  if (o.ucx.busy_poll) o.manager.busy_poll = true;
  return o;
}

Links make_links(const NodeOptions& o, ZmqSecurity::Report on_handshake_failed, ZmqSecurity::Report on_dial_failed) {
  Links links;
  const std::size_t max_frame = wire::max_frame_size(o.manager.max_payload_bytes);
  // High-water marks count frames: what one connection can make us hold, each
  // way, is as many of the largest as the byte bound allows (a few at least,
  // or small frames would wait for room one by one).
  constexpr std::size_t kFewestFrames = 8;
  const std::size_t cap = o.socket_hwm > 0 ? static_cast<std::size_t>(o.socket_hwm) : SIZE_MAX;  // 0: none
  const std::size_t frames =
      std::min({std::max(o.socket_buffer_bytes / max_frame, kFewestFrames), cap, std::size_t{INT_MAX}});
  links.add(std::make_shared<ZmqLink>(
      static_cast<int>(frames), static_cast<int>(frames),
      static_cast<std::int64_t>(std::min<std::size_t>(max_frame, std::numeric_limits<std::int64_t>::max())), o.curve,
      std::move(on_handshake_failed), std::move(on_dial_failed)));
  // A UCX link of the application's own (a test's, with settings of its own) takes ucx:// addresses instead.
  if (std::none_of(o.links.begin(), o.links.end(), [](const auto& l) { return l->serves("ucx://"); })) {
    links.add(std::make_shared<UcxLink>(o.ucx, max_frame, cap, frames, o.socket_buffer_bytes));
  }
  for (const auto& link : o.links) links.add(link);
  return links;
}

}  // namespace

Session::Session(NodeOptions o)
    : options{validated(std::move(o))},
      manager{options.manager},
      identity{options.identity.empty() ? make_identity() : options.identity},
      log_{logger(options.manager.logger_name)},
      executor_{manager.executor(), manager.options().threads == 1},
      links_{make_links(
          options,
          [this](const std::string& why) {  // on the executor
            counters_.handshakes_failed.add();
            handshake_log_.warn(*log_, "{}", why);
          },
          [this](const std::string& why) {  // on the executor
            counters_.dial_handshakes_failed.add();
            dial_log_.warn(*log_, "{}", why);
          })},
      calls_{executor_, counters_, options.max_outstanding_calls},
      local_{executor_, calls_, counters_},
      connector_{
          executor_, ConnectorOptions{options.peer_queue_capacity, options.peer_queue_bytes, options.heartbeat_timeout},
          calls_,    links_,
          local_,    counters_,
          log_},
      listener_{executor_,
                ListenerOptions{options.max_inflight, options.manager.max_payload_bytes, options.heartbeat_timeout,
                                options.max_unread_bytes_per_client, options.max_inflight_per_client,
                                options.max_inflight_bytes_per_client, options.max_inflight_bytes,
                                options.fair_share != 0 ? options.fair_share
                                                        : std::max<std::size_t>(options.manager.concurrency, 1),
                                IdempotencyCache::Limits{options.idempotency_window, options.idempotency_max_entries,
                                                         options.idempotency_max_bytes}},
                links_,
                counters_,
                log_,
                state_},
      heartbeat_timer_{executor_.get()} {
  local_.set_connector(connector_);
  calls_.set_peer_counters([this](std::uint32_t peer) -> PeerCallCounters* {
    auto* p = connector_.peer_in_slot(peer);
    return p == nullptr ? nullptr : &p->call_counters;
  });
  connector_.set_identity(identity);
  const auto max_payload = static_cast<std::uint32_t>(
      std::min<std::size_t>(options.manager.max_payload_bytes, std::numeric_limits<std::uint32_t>::max()));
  auto hello = [this, max_payload](wire::Kind kind) {
    return [this, max_payload, kind] {
      const std::string frame = wire::encode_hello(kind, max_payload, identity, manager.handlers().types());
      return Payload::copy_of(frame);
    };
  };
  connector_.make_hello = hello(wire::Kind::hello);
  listener_.make_hello_ack = hello(wire::Kind::hello_ack);
  listener_.on_drained = [this] { stop_waiting(); };
}

Session::~Session() {
  for (const auto& link : links_.all()) link->close(std::chrono::milliseconds{0});
}

void Session::start() {
  std::lock_guard lock{lifecycle_mutex_};
  if (state_.load() != Lifecycle::created) throw LifecycleError("amsg: Node::start() called twice or after shutdown");
  for (std::size_t i = 0; i < links_.all().size(); ++i) links_.all()[i]->open(executor_.get(), listener_.events_for(i));
  for (const auto& address : options.listen) endpoints.push_back(links_.for_address(address).listen(address));
  manager.attach(listener_.layer());
  manager.attach(local_.layer());
  calls_.attach(local_.ingress());
  manager.start();
  state_.store(Lifecycle::running, std::memory_order_release);
  calls_.start();
  asio::co_spawn(executor_.get(), heartbeat_loop(), asio::detached);
  connector_.start();
  log_->info("node {} listening on [{}]", identity, fmt::join(endpoints, ", "));
}

template <typename F>
void Session::run_on_executor_and_wait(F&& f) {
  std::promise<void> done;
  auto fut = done.get_future();
  asio::post(executor_.get(), [&] {
    f();
    done.set_value();
  });
  fut.wait();
}

ShutdownReport Session::shutdown(std::chrono::milliseconds drain) {
  std::lock_guard lock{lifecycle_mutex_};
  if (report_) return *report_;
  const auto t0 = Clock::now();
  const bool was_running = state_.exchange(Lifecycle::closing) == Lifecycle::running;
  calls_.space().notify_all();  // blocked senders see closed
  if (!was_running) {
    connector_.fail_queued();  // nothing runs the executor: calls queued before start end here
    report_ = manager.shutdown(drain);
    state_.store(Lifecycle::stopped);
    return *report_;
  }
  asio::post(executor_.get(), [this] { listener_.say_bye(); });
  // Our own calls get the drain period to finish.
  (void)calls_.wait_all_ended(t0 + drain);
  run_on_executor_and_wait([this] {
    connector_.fail_queued();
    calls_.fail_all();
  });
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  ShutdownReport report = manager.shutdown(std::max(std::chrono::milliseconds{0}, drain - elapsed));
  // The manager's pool has stopped and its threads are joined: what is left of
  // the executor's work runs here, on this thread.
  connector_.stop();
  calls_.stop();
  local_.drain_outcomes();
  // A sender that passed the intake check just before it closed may have queued
  // after the sweep above: its call ends here (its handler, if bound to this
  // node's executor, cannot run any more; futures and other executors do).
  connector_.fail_queued();
  calls_.fail_all();
  listener_.final_flush(options.linger);
  heartbeat_stopped_ = true;
  heartbeat_timer_.cancel();
  for (const auto& link : links_.all()) link->close(options.linger);
  state_.store(Lifecycle::stopped, std::memory_order_release);
  report.took = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0);
  log_->info("node {} shut down", identity);
  report_ = report;
  return report;
}

// The manager has drained: the last replies leave now, and the parts stop
// waiting on the pool (links, timers), so it can stop at once. What is left
// (replies the link cannot take yet) Listener::final_flush() handles.
void Session::stop_waiting() {
  asio::post(executor_.get(), [this] {
    connector_.stop();
    listener_.stop();
    for (const auto& link : links_.all()) link->stop_waiting();
    heartbeat_stopped_ = true;
    heartbeat_timer_.cancel();
    calls_.stop();
  });
}

asio::awaitable<void> Session::heartbeat_loop() {
  for (;;) {
    heartbeat_timer_.expires_after(options.heartbeat_interval);
    asio::error_code ec;
    co_await heartbeat_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (heartbeat_stopped_) co_return;
    const auto now = Clock::now();
    connector_.tick(now);
    listener_.tick(now);
  }
}

// ---------------------------------------------------------------- sending

Connector::Peer& Session::peer_or_throw(PeerId peer) const {
  Connector::Peer* p = connector_.peer_at(peer);
  if (p == nullptr) throw std::invalid_argument("amsg: unknown PeerId");
  return *p;
}

// What was about to be queued for a peer that is gone (its slot went to
// another address) ends as a send to a disconnected peer does: never sent. On
// the executor, which owns the counters and the notification backlog. It held
// no room among the outstanding calls, which its outcome gives back: taken
// here, on the calling thread, so that shutdown waits for it as for any call.
void Session::end_disconnected(OutItem&& item) {
  if (item.notified) calls_.reserve();  // first: shutdown waits for it too (Calls::wait_all_ended)
  asio::post(executor_.get(), [this, self = shared_from_this(), item = std::move(item)]() mutable {
    connector_.end_disconnected(item);
  });
}

// Limits of the wire format (docs/wire-protocol.md, "Limits").
void Session::check_limits(std::string_view type, std::string_view notify_id) {
  if (type.empty() || type.size() > wire::kMaxTypeLength) {
    throw std::invalid_argument("amsg: message type must be 1..255 bytes");
  }
  if (notify_id.size() > wire::kMaxIdLength) throw std::invalid_argument("amsg: notify id longer than 1024 bytes");
}

void Session::check(PeerId peer, std::string_view type, std::string_view notify_id) const {
  (void)peer_or_throw(peer);
  check_limits(type, notify_id);
}

std::string Session::next_call_name() {
  return fmt::format("call-{}", call_names_.fetch_add(1, std::memory_order_relaxed) + 1);
}

SendStatus Session::enqueue(PeerId peer, OutItem& item, bool wait) {
  Connector::Peer& p = peer_or_throw(peer);
  validate(item);
  item.peer = peer.value;
  return connector_.enqueue(p, item, wait, state_);
}

// (Node::async_send and Node::call check the limits before they start; these do not again.)
void Session::async_enqueue(PeerId peer, OutItem&& item, std::unique_ptr<detail::Completion<SendStatus>> done) {
  Connector::Peer* named = connector_.peer_at(peer);
  if (named == nullptr) {  // (Node checked the PeerId): disconnected since, and its slot went to another address
    if (intake_closed(state_)) {
      done->complete_later(SendStatus::closed);
      return;
    }
    end_disconnected(std::move(item));
    done->complete_later(SendStatus::ok);
    return;
  }
  Connector::Peer& p = *named;
  item.peer = peer.value;
  const SendStatus s = connector_.enqueue(p, item, false, state_);
  if (s != SendStatus::full) {
    done->complete_later(SendStatus{s});
    return;
  }
  // Full: try again once there is room (or shutdown began), on the executor.
  const bool notified = item.notified;
  calls_.space().coroutines.async_wait(
      [this, &p, notified] { return intake_closed(state_) || connector_.has_room(p, notified); },
      asio::bind_executor(executor_.get(),
                          [self = shared_from_this(), peer, item = std::move(item), done = std::move(done)]() mutable {
                            self->retry_enqueue(peer, std::move(item), std::move(done));
                          }));
}

// A waiting async_send's next try: runs from the wait list, so it may complete inline.
void Session::retry_enqueue(PeerId peer, OutItem&& item, std::unique_ptr<detail::Completion<SendStatus>> done) {
  Connector::Peer* named = connector_.peer_at(peer);
  if (named == nullptr) {  // disconnected meanwhile, and its slot went to another address
    end_disconnected(std::move(item));
    done->complete(SendStatus::ok);
    return;
  }
  Connector::Peer& p = *named;
  const SendStatus s = connector_.enqueue(p, item, false, state_);
  if (s != SendStatus::full) {
    done->complete(SendStatus{s});
    return;
  }
  async_enqueue(peer, std::move(item), std::move(done));
}

void Session::call(PeerId peer, OutItem&& item) {
  Connector::Peer* named = connector_.peer_at(peer);
  if (named != nullptr && !intake_closed(state_)) {
    Connector::Peer& p = *named;
    item.peer = peer.value;
    if (item.cancel) item.cancel->peer = p.index;
    if (connector_.has_room(p, true)) {
      calls_.reserve();
      if (p.push(item)) {
        if (state_.load(std::memory_order_acquire) == Lifecycle::running) connector_.schedule_flush(p);
        return;
      }
      calls_.release();
    }
    // Full (or another sender took the last slot): try again once there is room.
    calls_.space().coroutines.async_wait(
        [this, &p] { return intake_closed(state_) || connector_.has_room(p, true); },
        asio::bind_executor(executor_.get(), [self = shared_from_this(), peer, item = std::move(item)]() mutable {
          self->call(peer, std::move(item));
        }));
    return;
  }
  if (!intake_closed(state_)) {  // (Node checked the PeerId): disconnected since, and its slot went to another address
    end_disconnected(std::move(item));
    return;
  }
  auto completion = std::move(item.completion);
  Notification n = failure(errc::node_shutting_down, kNodeShuttingDown);
  n.id = std::move(item.notify_id);
  n.message_type = std::move(item.type);
  completion->complete_later(std::move(n));  // we may be inside call()'s initiating function
}

std::future<std::vector<std::string>> Session::query_handlers(PeerId peer) {
  std::promise<std::vector<std::string>> promise;
  auto fut = promise.get_future();
  Connector::Peer* p = connector_.peer_at(peer);
  if (p == nullptr) {
    promise.set_exception(std::make_exception_ptr(std::invalid_argument("amsg: unknown PeerId")));
    return fut;
  }
  if (peer.value == Connector::kSelf) {
    promise.set_value(manager.handlers().types());
    return fut;
  }
  if (state_.load() != Lifecycle::running) {
    promise.set_exception(std::make_exception_ptr(LifecycleError("amsg: query_handlers() needs a running node")));
    return fut;
  }
  asio::post(executor_.get(), [this, p, peer, pr = std::move(promise)]() mutable {
    if (p->id.load(std::memory_order_relaxed) != peer.value) {  // its slot changed hands meanwhile
      pr.set_exception(std::make_exception_ptr(NetworkError(kDisconnected)));
      return;
    }
    if (p->loopback) {
      pr.set_value(manager.handlers().types());
      return;
    }
    connector_.query_handlers(*p, std::move(pr));
  });
  return fut;
}

NodeStats Session::stats() const {
  NodeStats s;
  s.messages_sent = counters_.messages_sent.get();
  s.replies_received = counters_.replies_received.get();
  s.late_replies = counters_.late_replies.get();
  s.timeouts = counters_.timeouts.get();
  s.calls_failed_peer = counters_.calls_failed_peer.get();
  s.peers_lost = counters_.peers_lost.get();
  s.messages_received = counters_.messages_received.get();
  s.replies_sent = counters_.replies_sent.get();
  s.replies_dropped = counters_.replies_dropped.get();
  s.clients_cut_off = counters_.clients_cut_off.get();
  s.frames_ignored = counters_.frames_ignored.get();
  s.handshakes_failed = counters_.handshakes_failed.get();
  s.dial_handshakes_failed = counters_.dial_handshakes_failed.get();
  s.unsent_unreachable = counters_.unsent_unreachable.get();
  s.unsent_disconnected = counters_.unsent_disconnected.get();
  s.cancels_sent = counters_.cancels_sent.get();
  s.cancels_received = counters_.cancels_received.get();
  s.cancelled_waiting = counters_.cancelled_waiting.get();
  s.refused_shutting_down = counters_.refused_shutting_down.get();
  s.refused_too_large = counters_.refused_too_large.get();
  s.refused_overloaded = counters_.refused_overloaded.get();
  s.replies_replayed = counters_.replies_replayed.get();
  s.malformed_frames = counters_.malformed_frames.get();
  s.outstanding_calls = calls_.outstanding();
  s.manager = manager.stats();
  return s;
}

void CallCancel::request(bool unsent_only) noexcept {
  const auto s = session.lock();
  if (!s) return;
  try {
    asio::post(s->executor().get(), [self = shared_from_this(), unsent_only] {
      if (const auto s = self->session.lock()) s->cancel_call(*self, unsent_only);
    });
  } catch (...) {  // NOLINT(bugprone-empty-catch): no memory for the post: the call ends as it would have
  }
}

// Still queued: ends cancelled when its turn to be sent comes (Connector::admit),
// never sent. Sent: ends cancelled now, and a CANCEL follows it to the peer,
// whose REPLY, when it comes, is late.
void Session::cancel_call(CallCancel& c, bool unsent_only) {
  if (c.call_id == 0) {
    c.requested = true;
    connector_.cancel_unsent(c.peer, c);
    return;
  }
  if (unsent_only || calls_.find(c.call_id) == nullptr) return;
  connector_.send_cancel(c.peer, c.call_id);  // first: the outcome may run the caller's code inline
  calls_.complete(c.call_id, failure(errc::cancelled, kCancelled));
}

}  // namespace amsg::net
