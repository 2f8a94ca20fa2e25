// amsg::net::Node: the ZeroMQ transport.
//
// Threads:
//  - The node's state (every socket, the pending-call table, the inflight slab,
//    all timers) lives on one strand of the manager's pool: nothing there is
//    locked, and a message goes from the socket to a worker and its reply back to
//    the socket without a thread wake-up when the pool has a thread at hand.
//    After the manager's shutdown has stopped the pool, the last replies are sent
//    from the thread that shuts down.
//  - Senders (any thread) push into a per-peer bounded MPSC queue and post one
//    flush per burst. Workers push replies (CommunicationLayer::deliver) into one
//    bounded MPSC queue and post one flush per burst.
//  - Sockets are watched through ZMQ_FD with asio descriptors. ZMQ_FD is edge-like:
//    after any operation on a socket its readiness must be re-read (ZMQ_EVENTS),
//    so every send is followed by poke(), which wakes the socket's reader when
//    input is waiting.
//
// Sockets: a ROUTER bound to the listen addresses serves remote senders; each
// connect() gets a DEALER of its own, replaced by a fresh one when the peer is
// declared lost (so nothing queued for a dead peer reaches its successor).

#include "amsg/net/node.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <limits>
#include <mutex>
#include <queue>
#include <random>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/dispatch.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/use_awaitable.hpp>
#include <zmq.hpp>

#include "amsg/communication_layer.hpp"
#include "amsg/errors.hpp"
#include "amsg/log.hpp"
#include "detail/bounded_queue.hpp"
#include "detail/histogram.hpp"
#include "detail/signal.hpp"
#include "net/call_table.hpp"
#include "net/wire.hpp"

namespace amsg::net {

const char* to_string(PeerState state) noexcept {
  switch (state) {
    case PeerState::connecting:
      return "connecting";
    case PeerState::ready:
      return "ready";
    case PeerState::closing:
      return "closing";
    case PeerState::incompatible:
      return "incompatible";
    case PeerState::local:
      return "local";
  }
  return "unknown";
}

namespace {

using Clock = std::chrono::steady_clock;
using detail::BoundedQueue;
using detail::PushResult;

constexpr std::uint64_t kLocalToken = 1ULL << 63U;  // deliver() token of a message this node sent itself
constexpr std::uint32_t kSelfIndex = 0;
constexpr std::size_t kMaxPeers = 4096;
constexpr std::size_t kServiceBatch = 256;  // frames read per turn before letting others run

constexpr const char* kPeerLost = "peer lost";
constexpr const char* kPeerUnreachable = "peer unreachable";
constexpr const char* kRemoteShuttingDown = "remote shutting down";
constexpr const char* kNodeShuttingDown = "node shutting down";
constexpr const char* kTimeout = "timeout";

std::string make_identity() {
  std::array<char, 256> host{};
  if (::gethostname(host.data(), host.size() - 1) != 0) std::strcpy(host.data(), "node");
  std::random_device rd;
  const std::uint64_t r = (static_cast<std::uint64_t>(rd()) << 32U) ^ rd();
  return fmt::format("{}-{}-{:016x}", host.data(), ::getpid(), r);
}

std::string incompatible_text(unsigned version) {
  return fmt::format("incompatible protocol version {} (this node speaks {})", version, wire::kVersion);
}

// Where a call's outcome goes when it does not go to the notification channel.
struct Completion {
  virtual ~Completion() = default;
  virtual void complete(Notification&& n) = 0;
};

// Where the node's sockets, timers and tables live: a strand of the manager's
// pool, or, when the pool has one thread, the pool itself, which is serial
// already (no strand queue and hand-off around every completion).
class NodeExecutor {
 public:
  NodeExecutor(const asio::any_io_executor& pool, bool one_thread) {
    const auto* io = pool.target<asio::io_context::executor_type>();
    if (one_thread && io != nullptr) {
      io_.emplace(*io);
      executor_ = *io;
    } else {
      strand_.emplace(asio::make_strand(pool));
      executor_ = *strand_;
    }
  }
  [[nodiscard]] const asio::any_io_executor& get() const noexcept { return executor_; }
  [[nodiscard]] bool running_in_this_thread() const noexcept {
    return strand_ ? strand_->running_in_this_thread() : io_->running_in_this_thread();
  }

 private:
  asio::any_io_executor executor_;
  std::optional<asio::strand<asio::any_io_executor>> strand_;
  std::optional<asio::io_context::executor_type> io_;
};

template <typename Handler>
struct HandlerCompletion final : Completion {
  HandlerCompletion(Handler&& h, const NodeExecutor& node) : handler{std::move(h)}, node_executor{node} {}
  // Resumes the caller at once when it runs on the node's executor (a coroutine on
  // Node::executor()) and we are on it, else dispatches to its executor. The first
  // case is what asio::dispatch does too, without wrapping the call in a
  // type-erased function object first.
  void complete(Notification&& n) override {
    auto ex = asio::get_associated_executor(handler);
    if (ex == node_executor.get() && node_executor.running_in_this_thread()) {
      std::move(handler)(std::move(n));
      return;
    }
    asio::dispatch(ex, [h = std::move(handler), n = std::move(n)]() mutable { std::move(h)(std::move(n)); });
  }
  Handler handler;
  const NodeExecutor& node_executor;
};

struct PromiseCompletion final : Completion {
  void complete(Notification&& n) override { promise.set_value(std::move(n)); }
  std::promise<Notification> promise;
};

struct OutItem {
  std::string type;
  Payload payload;
  std::string notify_id;
  bool notified = false;
  Clock::time_point deadline = Clock::time_point::max();
  std::unique_ptr<Completion> completion;  // null: the notification channel
};

// A MSG encoded and registered, waiting for ZeroMQ to take it (HWM reached).
struct Encoded {
  zmq::message_t frame;
  std::uint64_t call_id = 0;  // of a lone notified MSG (0 for a BATCH)
  std::size_t count = 1;      // messages in the frame
};

struct ReplyItem {
  std::uint64_t token = 0;
  Notification notification;
};

struct Pending {
  std::uint64_t seq = 0;  // orders calls by when they were sent
  std::uint32_t peer = 0;
  std::string notify_id;
  std::string type;
  Clock::time_point deadline = Clock::time_point::max();
  Clock::time_point sent_at;
  std::unique_ptr<Completion> completion;
};

// A ZeroMQ socket with its ZMQ_FD watched by asio.
struct Watched {
  std::unique_ptr<zmq::socket_t> socket;
  std::unique_ptr<asio::posix::stream_descriptor> fd;
  bool waiting = false;  // a reader is parked on fd
  // The last receive found nothing and nothing was sent since: ZeroMQ has taken
  // its pending commands (a receive that would block does), so new input will
  // signal the fd and asking ZMQ_EVENTS (a poll(2) each time) can be skipped.
  bool drained = false;

  [[nodiscard]] int events() const { return socket->get(zmq::sockopt::events); }
  // Whether input may be waiting that the fd will not signal.
  [[nodiscard]] bool maybe_readable() const { return !drained && (events() & ZMQ_POLLIN) != 0; }
  // Every send goes through here: ZeroMQ may take pending commands while sending,
  // consuming the fd's signal.
  template <typename Buffer>
  zmq::send_result_t send(Buffer&& buffer, zmq::send_flags flags) {
    drained = false;
    return socket->send(std::forward<Buffer>(buffer), flags);
  }
  // Input (or, when we wait to write, room) may have come while another operation
  // consumed the fd's edge: wake the reader, which re-reads ZMQ_EVENTS.
  void poke(bool want_out = false) {
    if (!waiting) return;
    const int ev = events();
    if ((ev & ZMQ_POLLIN) != 0 || (want_out && (ev & ZMQ_POLLOUT) != 0)) fd->cancel();
  }
  void close(int linger_ms) {
    if (fd) {
      fd->cancel();
      (void)fd->release();  // ZeroMQ owns the descriptor
      fd.reset();
    }
    if (socket) {
      socket->set(zmq::sockopt::linger, linger_ms);
      socket->close();
      socket.reset();
    }
    waiting = false;
    drained = false;
  }
};

// One outgoing connection (DEALER), or this node itself (kSelfIndex).
struct PeerConn {
  PeerConn(std::uint32_t i, std::string addr, std::size_t capacity)
      : index{i}, address{std::move(addr)}, queue{capacity} {}
  const std::uint32_t index;
  const std::string address;
  BoundedQueue<OutItem> queue;
  std::atomic<bool> flush_posted{false};

  // On the strand only.
  Watched sock;
  std::uint64_t epoch = 0;
  PeerState state = PeerState::connecting;
  bool loopback = false;  // its identity is ours: sends go the local way
  Clock::time_point last_rx{};
  Clock::time_point state_since{};
  std::string incompatible_reason;
  std::deque<Encoded> backlog;                                  // ZeroMQ said EAGAIN
  std::deque<std::pair<Message, std::uint64_t>> local_backlog;  // the inbox said full
  bool local_pump_running = false;
  std::vector<std::pair<std::promise<std::vector<std::string>>, Clock::time_point>> handler_queries;

  // Published for other threads.
  mutable std::mutex info_mutex;
  std::condition_variable info_changed;
  PeerInfo info;
};

struct Inflight {
  std::string routing_id;
  std::uint64_t call_id = 0;
};

// A frame for a sender that ZeroMQ could not take yet (its pipe is at the high-water mark).
struct RouterFrame {
  zmq::message_t frame;
  std::vector<std::uint32_t> slots;  // the inflight slots its REPLYs free once it is out
};

zmq::message_t frame_of(std::string_view bytes) { return zmq::message_t{bytes.data(), bytes.size()}; }

struct Client {
  Clock::time_point last_rx{};
  bool hello = false;
};

// At most one line per second for a noisy condition; says how many were skipped.
class RateLimitedLog {
 public:
  template <typename... Args>
  void warn(spdlog::logger& log, fmt::format_string<Args...> f, Args&&... args) {
    const auto now = Clock::now();
    if (now - last_ < std::chrono::seconds{1} && last_ != Clock::time_point{}) {
      ++suppressed_;
      return;
    }
    last_ = now;
    const std::string text = fmt::format(f, std::forward<Args>(args)...);
    if (suppressed_ != 0) {
      log.warn("{} ({} similar messages suppressed)", text, suppressed_);
    } else {
      log.warn("{}", text);
    }
    suppressed_ = 0;
  }

 private:
  Clock::time_point last_{};
  std::uint64_t suppressed_ = 0;
};

}  // namespace

class NodeImpl : public std::enable_shared_from_this<NodeImpl> {
 public:
  explicit NodeImpl(NodeOptions o);
  ~NodeImpl();

  void start();
  ShutdownReport shutdown(std::chrono::milliseconds drain);
  PeerId connect(const std::string& address);
  bool wait_ready(PeerId peer, std::chrono::milliseconds timeout);
  std::optional<PeerInfo> peer_info(PeerId peer) const;
  std::future<std::vector<std::string>> query_handlers(PeerId peer);
  SendStatus enqueue(PeerId peer, OutItem&& item, bool wait);
  static void validate(const OutItem& item);
  asio::awaitable<Notification> call(PeerId peer, OutItem item);
  asio::awaitable<SendStatus> async_enqueue(PeerId peer, OutItem item);
  NodeStats stats() const;
  std::string next_call_name() {
    return fmt::format("call-{}", call_names_.fetch_add(1, std::memory_order_relaxed) + 1);
  }

  // CommunicationLayer (worker threads).
  void deliver(std::uint64_t token, Notification&& n);

  NodeOptions opts;
  Manager manager;
  std::string identity;
  std::vector<std::string> endpoints;
  // Every socket, timer and table of the node is used on this executor only (a
  // strand, see NodeExecutor). It runs on the manager's pool, so a message read
  // from the wire reaches a worker, and its reply the socket, without waking
  // another thread.
  NodeExecutor executor_;

 private:
  class Layer;

  PeerConn* peer_at(PeerId id) const noexcept {
    if (id.value >= peer_count_.load(std::memory_order_acquire)) return nullptr;
    return peers_[id.value].get();
  }
  bool has_room(const PeerConn& p, bool notified) const noexcept {
    return p.queue.size() < p.queue.capacity() &&
           (!notified || outstanding_.load(std::memory_order_relaxed) < opts.max_outstanding_calls);
  }
  // After a push: the fence orders the push before reading the flag, against the
  // flusher's clearing of the flag before it drains (else both could miss).
  // While a reader on the strand handles replies, the callers it resumes have
  // their flushes collected instead: the reader does them when it is done, so the
  // next requests leave without a post and a turn of the scheduler.
  void schedule_flush(PeerConn& p) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!p.flush_posted.load(std::memory_order_relaxed) && !p.flush_posted.exchange(true, std::memory_order_acq_rel)) {
      if (executor_.running_in_this_thread() && collecting_flushes_) {
        collected_flushes_.push_back(&p);
        return;
      }
      asio::post(executor_.get(), [this, &p] { flush_peer(p); });
    }
  }
  void notify_space() { space_.notify_waiting(); }
  void release_outstanding() {
    outstanding_.fetch_sub(1, std::memory_order_acq_rel);
    notify_space();
  }
  template <typename F>
  void run_on_io_and_wait(F&& f);

  // --- on the strand ---
  void open_peer(PeerConn& p);
  void set_info(PeerConn& p, PeerState state);
  void flush_peer(PeerConn& p);
  bool send_backlog(PeerConn& p);
  bool admit(PeerConn& p, OutItem& item, Clock::time_point now);
  bool send_out(PeerConn& p, std::vector<OutItem>& items, Clock::time_point now);
  void flush_local(PeerConn& p);
  asio::awaitable<void> local_pump(PeerConn& p);
  asio::awaitable<void> peer_loop(PeerConn& p, std::uint64_t epoch);
  void service_peer(PeerConn& p);
  template <typename F>
  void collect_flushes_while(F&& f);
  void on_peer_frames(PeerConn& p, std::vector<zmq::message_t>& frames);
  void on_reply(PeerConn& p, std::span<const std::byte> frame);
  void declare_lost(PeerConn& p, const std::string& why);
  void fail_peer_calls(PeerConn& p, const std::string& why, Clock::time_point sent_before);
  asio::awaitable<void> router_loop();
  // Handles one message from the ROUTER; messages that found the inbox full wait in router_waiting_.
  void on_router_frames(std::vector<zmq::message_t>& frames);
  void on_msg(std::string_view rid, std::span<const std::byte> frame, std::uint64_t forced_call_id,
              wire::DecodeError forced);
  void reply_error(std::string_view routing_id, std::uint64_t call_id, wire::ErrorCode code, std::string_view text);
  enum class SendResult : std::uint8_t { sent, again, gone };
  SendResult router_try_send(std::string_view routing_id, zmq::message_t& frame);
  // `must`: REPLY, HELLO_ACK and BYE wait in a per-sender backlog when ZeroMQ says
  // EAGAIN; PING and ERROR frames are dropped instead.
  void router_send(std::string_view routing_id, zmq::message_t&& frame, bool must,
                   std::vector<std::uint32_t> slots = {});
  void send_replies(std::size_t first, std::size_t last);
  void drain_router_backlog();
  void forget_client(const std::string& routing_id);
  void flush_replies();
  void free_slot(std::uint32_t slot);
  asio::awaitable<void> heartbeat_loop();
  asio::awaitable<void> deadline_loop();
  void arm_deadline(Clock::time_point deadline, std::uint64_t call_id);
  void complete(std::uint64_t call_id, Notification&& n);
  void complete_pending(Pending&& pd, Notification&& n);
  void fail_item(OutItem& item, const std::string& why);
  void publish(Notification&& n);
  asio::awaitable<void> publisher();
  void malformed(std::string_view where, std::string_view why);
  std::string hello_frame(wire::Kind kind);
  bool recv_all(Watched& w, std::vector<zmq::message_t>& frames);
  void final_stop();
  void stop_waiting();

  std::shared_ptr<spdlog::logger> log_;
  std::shared_ptr<Layer> layer_;
  Ingress ingress_;
  zmq::context_t ctx_;
  Watched router_;

  std::vector<std::unique_ptr<PeerConn>> peers_;
  std::atomic<std::uint32_t> peer_count_{0};
  mutable std::mutex peers_mutex_;  // connect() only

  // Cross-thread.
  BoundedQueue<ReplyItem> replies_;
  std::atomic<bool> replies_posted_{false};
  detail::Signal space_;  // senders waiting for queue room or an outstanding slot
  std::atomic<std::size_t> outstanding_{0};
  std::atomic<std::uint64_t> call_names_{0};
  detail::EventCount outstanding_done_;
  std::atomic<bool> started_{false};
  std::atomic<bool> closing_{false};
  std::mutex lifecycle_mutex_;
  std::optional<ShutdownReport> report_;

  // On the strand only.
  bool stopping_ = false;
  bool collecting_flushes_ = false;           // see schedule_flush()
  std::vector<PeerConn*> collected_flushes_;  // peers to flush once the reader is done
  std::uint64_t next_call_seq_ = 0;
  std::uint64_t ping_nonce_ = 0;
  CallTable<Pending> pending_;
  std::priority_queue<std::pair<Clock::time_point, std::uint64_t>,
                      std::vector<std::pair<Clock::time_point, std::uint64_t>>, std::greater<>>
      deadlines_;
  asio::steady_timer deadline_timer_{executor_.get()};
  Clock::time_point deadline_armed_ = Clock::time_point::max();
  asio::steady_timer heartbeat_timer_{executor_.get()};
  std::unordered_map<std::string, Client> clients_;
  std::unordered_map<std::string, std::deque<RouterFrame>> router_backlog_;
  std::vector<Inflight> slab_;
  std::vector<std::uint32_t> free_slots_;
  std::deque<Notification> publish_backlog_;
  std::vector<OutItem> out_batch_;                                // flush_peer()'s scratch
  std::deque<std::pair<Message, std::uint64_t>> router_waiting_;  // read, waiting for inbox room
  std::vector<std::span<const std::byte>> batch_entries_;
  std::vector<ReplyItem> reply_batch_;
  bool publisher_running_ = false;
  RateLimitedLog malformed_log_;
  RateLimitedLog drop_log_;

  // Counters: written on the strand (one writer at a time), read by stats().
  detail::SingleWriterCounter messages_sent_, replies_received_, late_replies_, timeouts_, calls_failed_peer_,
      peers_lost_, messages_received_, replies_sent_, replies_dropped_, refused_shutting_down_, refused_too_large_,
      malformed_frames_;
};

class NodeImpl::Layer final : public CommunicationLayer {
 public:
  explicit Layer(NodeImpl* node) : node_{node} {}
  void on_attach(Ingress ingress) override { node_->ingress_ = std::move(ingress); }
  void deliver(std::uint64_t peer, Notification&& notification) override {
    node_->deliver(peer, std::move(notification));
  }
  void on_drained() override { node_->stop_waiting(); }

 private:
  NodeImpl* node_;  // the node outlives its manager's shutdown, after which nothing calls in
};

// ---------------------------------------------------------------- lifecycle

NodeImpl::NodeImpl(NodeOptions o)
    : opts{std::move(o)},
      manager{opts.manager},
      identity{opts.identity.empty() ? make_identity() : opts.identity},
      executor_{manager.executor(), manager.options().threads == 1},
      log_{logger(opts.manager.logger_name)},
      ctx_{1},
      peers_(kMaxPeers),
      replies_{std::max<std::size_t>(opts.max_inflight * 2, 1024)} {
  if (opts.heartbeat_interval.count() <= 0 || opts.heartbeat_timeout <= opts.heartbeat_interval) {
    throw InvalidOptionsError("amsg: heartbeat_timeout must exceed heartbeat_interval > 0");
  }
  if (opts.peer_queue_capacity < 2 || opts.max_outstanding_calls == 0 || opts.max_inflight < 2 * wire::kMaxBatch) {
    throw InvalidOptionsError("amsg: needs peer_queue_capacity >= 2, max_outstanding_calls >= 1, max_inflight >= 512");
  }
  if (identity.size() > wire::kMaxIdentityLength) throw InvalidOptionsError("amsg: identity longer than 255 bytes");
  auto self = std::make_unique<PeerConn>(kSelfIndex, "self", opts.peer_queue_capacity);
  self->state = PeerState::local;
  self->info.address = "self";
  self->info.state = PeerState::local;
  self->info.identity = identity;
  peers_[kSelfIndex] = std::move(self);
  peer_count_.store(1, std::memory_order_release);
  slab_.resize(opts.max_inflight);
  free_slots_.reserve(opts.max_inflight);
  for (std::size_t i = opts.max_inflight; i > 0; --i) free_slots_.push_back(static_cast<std::uint32_t>(i - 1));
}

NodeImpl::~NodeImpl() = default;

void NodeImpl::start() {
  std::lock_guard lock{lifecycle_mutex_};
  if (started_.load() || report_) throw LifecycleError("amsg: Node::start() called twice or after shutdown");
  router_.socket = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::router);
  router_.socket->set(zmq::sockopt::router_mandatory, 1);
  router_.socket->set(zmq::sockopt::sndhwm, opts.socket_hwm);
  router_.socket->set(zmq::sockopt::rcvhwm, opts.socket_hwm);
  router_.socket->set(zmq::sockopt::linger, 0);
  for (const auto& address : opts.listen) {
    try {
      router_.socket->bind(address);
    } catch (const zmq::error_t& e) {
      router_.socket->close();
      router_.socket.reset();
      throw NetworkError(fmt::format("amsg: cannot listen on '{}': {}", address, e.what()));
    }
    endpoints.push_back(router_.socket->get(zmq::sockopt::last_endpoint));
  }
  router_.fd = std::make_unique<asio::posix::stream_descriptor>(executor_.get(), router_.socket->get(zmq::sockopt::fd));

  layer_ = std::make_shared<Layer>(this);
  manager.attach(layer_);
  manager.start();

  asio::co_spawn(executor_.get(), router_loop(), asio::detached);
  asio::co_spawn(executor_.get(), heartbeat_loop(), asio::detached);
  asio::co_spawn(executor_.get(), deadline_loop(), asio::detached);
  {
    std::lock_guard peers_lock{peers_mutex_};  // connect() either sees started_ or is opened here
    for (std::uint32_t i = 1; i < peer_count_.load(); ++i) {
      asio::post(executor_.get(), [this, p = peers_[i].get()] { open_peer(*p); });
    }
    started_.store(true, std::memory_order_release);
  }
  schedule_flush(*peers_[kSelfIndex]);
  log_->info("node {} listening on [{}]", identity, fmt::join(endpoints, ", "));
}

template <typename F>
void NodeImpl::run_on_io_and_wait(F&& f) {
  std::promise<void> done;
  auto fut = done.get_future();
  asio::post(executor_.get(), [&] {
    f();
    done.set_value();
  });
  fut.wait();
}

ShutdownReport NodeImpl::shutdown(std::chrono::milliseconds drain) {
  std::lock_guard lock{lifecycle_mutex_};
  if (report_) return *report_;
  const auto t0 = Clock::now();
  closing_.store(true, std::memory_order_seq_cst);
  notify_space();  // blocked senders see closed
  if (!started_.load()) {
    // Never started: calls queued for peers end here, then the manager.
    for (std::uint32_t i = 0; i < peer_count_.load(); ++i) {
      OutItem item;
      while (peers_[i]->queue.try_pop(item)) fail_item(item, kNodeShuttingDown);
    }
    report_ = manager.shutdown(drain);
    return *report_;
  }
  asio::post(executor_.get(), [this] {
    const std::string bye = wire::encode_bye();
    std::vector<std::string> told;  // router_send() forgets senders that have gone: no iterating meanwhile
    for (const auto& [rid, client] : clients_) {
      if (client.hello) told.push_back(rid);
    }
    for (const auto& rid : told) router_send(rid, frame_of(bye), true);
    router_.poke(!router_backlog_.empty());
  });
  // Our own calls get the drain period to finish.
  outstanding_done_.wait_until([this] { return outstanding_.load(std::memory_order_acquire) == 0; }, t0 + drain);
  run_on_io_and_wait([this] {
    for (std::uint32_t i = 0; i < peer_count_.load(); ++i) {
      PeerConn& p = *peers_[i];
      OutItem item;
      while (p.queue.try_pop(item)) fail_item(item, kNodeShuttingDown);
      p.backlog.clear();
    }
    for (const auto call_id : pending_.ids()) {
      if (!pending_.contains(call_id)) continue;
      Pending pd = pending_.take(call_id);
      Notification n{pd.notify_id, Outcome::error, kNodeShuttingDown, pd.type};
      if (pd.completion) {
        pd.completion->complete(std::move(n));
        release_outstanding();
      } else {
        if (ingress_.force_publish(std::move(n)) != SendStatus::ok) log_->debug("notification dropped at shutdown");
        release_outstanding();
      }
    }
    while (!publish_backlog_.empty()) {
      (void)ingress_.force_publish(std::move(publish_backlog_.front()));
      publish_backlog_.pop_front();
      release_outstanding();
    }
  });
  const auto elapsed = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  ShutdownReport report = manager.shutdown(std::max(std::chrono::milliseconds{0}, drain - elapsed));
  // The manager's pool has stopped and its threads are joined: what is left of the
  // strand's work runs here, on this thread.
  final_stop();
  for (std::uint32_t i = 1; i < peer_count_.load(); ++i) peers_[i]->sock.close(0);
  router_.close(static_cast<int>(opts.linger.count()));
  ctx_.close();
  report.took = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0);
  log_->info("node {} shut down", identity);
  report_ = report;
  return report;
}

// The manager has drained: the last replies leave now, and the node's loops stop
// waiting on the pool (sockets, timers), so the pool can stop at once. What is
// left (replies ZeroMQ cannot take yet) final_stop() handles.
void NodeImpl::stop_waiting() {
  asio::post(executor_.get(), [this] {
    stopping_ = true;
    flush_replies();
    if (router_.fd) router_.fd->cancel();
    for (std::uint32_t i = 1; i < peer_count_.load(); ++i) {
      if (peers_[i]->sock.fd) peers_[i]->sock.fd->cancel();
    }
    heartbeat_timer_.cancel();
    deadline_timer_.cancel();
  });
}

// After the pool has stopped: sends the last replies the manager delivered
// (waiting up to `linger` for ZeroMQ to take them), then stops everything.
void NodeImpl::final_stop() {
  stopping_ = true;
  flush_replies();
  const auto until = Clock::now() + opts.linger;
  while (!router_backlog_.empty() && Clock::now() < until) {
    zmq::pollitem_t item{router_.socket->handle(), 0, ZMQ_POLLOUT, 0};
    (void)zmq::poll(&item, 1, std::chrono::milliseconds{10});
    drain_router_backlog();
  }
  if (!router_backlog_.empty()) log_->warn("node {}: replies still unsent after {} ms", identity, opts.linger.count());
  heartbeat_timer_.cancel();
  deadline_timer_.cancel();
}

// ---------------------------------------------------------------- peers

PeerId NodeImpl::connect(const std::string& address) {
  std::lock_guard lock{peers_mutex_};
  const std::uint32_t count = peer_count_.load();
  for (std::uint32_t i = 1; i < count; ++i) {
    if (peers_[i]->address == address) return PeerId{i};
  }
  if (count == kMaxPeers) throw NetworkError(fmt::format("amsg: cannot connect to '{}': too many peers", address));
  if (closing_.load()) throw LifecycleError("amsg: connect() on a node that is shutting down");
  auto p = std::make_unique<PeerConn>(count, address, opts.peer_queue_capacity);
  p->info.address = address;
  PeerConn* raw = p.get();
  peers_[count] = std::move(p);
  peer_count_.store(count + 1, std::memory_order_release);
  if (started_.load(std::memory_order_acquire)) asio::post(executor_.get(), [this, raw] { open_peer(*raw); });
  return PeerId{count};
}

void NodeImpl::set_info(PeerConn& p, PeerState state) {
  p.state = state;
  p.state_since = Clock::now();
  {
    std::lock_guard lock{p.info_mutex};
    p.info.state = state;
  }
  p.info_changed.notify_all();
}

std::string NodeImpl::hello_frame(wire::Kind kind) {
  const auto types = manager.handlers().types();
  return wire::encode_hello(kind,
                            static_cast<std::uint32_t>(std::min<std::size_t>(
                                opts.manager.max_payload_bytes, std::numeric_limits<std::uint32_t>::max())),
                            identity, types);
}

void NodeImpl::open_peer(PeerConn& p) {
  if (stopping_) return;
  auto s = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::dealer);
  s->set(zmq::sockopt::sndhwm, opts.socket_hwm);
  s->set(zmq::sockopt::rcvhwm, opts.socket_hwm);
  s->set(zmq::sockopt::linger, 0);
  s->set(zmq::sockopt::reconnect_ivl, 100);
  s->set(zmq::sockopt::reconnect_ivl_max, 1000);
  try {
    s->connect(p.address);
  } catch (const zmq::error_t& e) {
    log_->error("cannot connect to '{}': {}", p.address, e.what());
    p.incompatible_reason = fmt::format("cannot connect to '{}': {}", p.address, e.what());
    set_info(p, PeerState::incompatible);
    fail_peer_calls(p, p.incompatible_reason, Clock::time_point::max());
    return;
  }
  p.sock.socket = std::move(s);
  p.sock.fd = std::make_unique<asio::posix::stream_descriptor>(executor_.get(), p.sock.socket->get(zmq::sockopt::fd));
  ++p.epoch;
  p.last_rx = Clock::now();
  set_info(p, PeerState::connecting);
  const std::string hello = hello_frame(wire::Kind::hello);
  (void)p.sock.send(zmq::buffer(hello), zmq::send_flags::dontwait);
  asio::co_spawn(executor_.get(), peer_loop(p, p.epoch), asio::detached);
  flush_peer(p);
}

bool NodeImpl::wait_ready(PeerId id, std::chrono::milliseconds timeout) {
  PeerConn* p = peer_at(id);
  if (p == nullptr) return false;
  std::unique_lock lock{p->info_mutex};
  return p->info_changed.wait_for(
      lock, timeout, [p] { return p->info.state == PeerState::ready || p->info.state == PeerState::local; });
}

std::optional<PeerInfo> NodeImpl::peer_info(PeerId id) const {
  PeerConn* p = peer_at(id);
  if (p == nullptr) return std::nullopt;
  std::lock_guard lock{p->info_mutex};
  return p->info;
}

std::future<std::vector<std::string>> NodeImpl::query_handlers(PeerId id) {
  std::promise<std::vector<std::string>> promise;
  auto fut = promise.get_future();
  PeerConn* p = peer_at(id);
  if (p == nullptr) {
    promise.set_exception(std::make_exception_ptr(std::invalid_argument("amsg: unknown PeerId")));
    return fut;
  }
  if (id.value == kSelfIndex) {
    promise.set_value(manager.handlers().types());
    return fut;
  }
  if (!started_.load() || closing_.load()) {
    promise.set_exception(std::make_exception_ptr(LifecycleError("amsg: query_handlers() needs a running node")));
    return fut;
  }
  asio::post(executor_.get(), [this, p, pr = std::move(promise)]() mutable {
    if (p->loopback) {
      pr.set_value(manager.handlers().types());
      return;
    }
    if (p->state == PeerState::incompatible) {
      pr.set_exception(std::make_exception_ptr(NetworkError(p->incompatible_reason)));
      return;
    }
    p->handler_queries.emplace_back(std::move(pr), Clock::now());
    if (p->sock.socket) {
      const std::string hello = hello_frame(wire::Kind::hello);
      (void)p->sock.send(zmq::buffer(hello), zmq::send_flags::dontwait);
      p->sock.poke();
    }
  });
  return fut;
}

// ---------------------------------------------------------------- sending

// Limits of the wire format (docs/wire-protocol.md, "Limits").
void NodeImpl::validate(const OutItem& item) {
  if (item.type.empty() || item.type.size() > wire::kMaxTypeLength) {
    throw std::invalid_argument("amsg: message type must be 1..255 bytes");
  }
  if (item.notify_id.size() > wire::kMaxIdLength) throw std::invalid_argument("amsg: notify id longer than 1024 bytes");
}

SendStatus NodeImpl::enqueue(PeerId id, OutItem&& item, bool wait) {
  PeerConn* p = peer_at(id);
  if (p == nullptr) throw std::invalid_argument("amsg: unknown PeerId");
  validate(item);
  const bool notified = item.notified;
  for (;;) {
    if (closing_.load(std::memory_order_acquire)) return SendStatus::closed;
    if (has_room(*p, notified)) {
      if (notified) outstanding_.fetch_add(1, std::memory_order_acq_rel);
      if (p->queue.try_push(item) == PushResult::ok) break;
      if (notified) release_outstanding();
    }
    if (!wait) return SendStatus::full;
    space_.threads.wait([&] { return closing_.load(std::memory_order_acquire) || has_room(*p, notified); });
  }
  if (started_.load(std::memory_order_acquire)) schedule_flush(*p);
  return SendStatus::ok;
}

asio::awaitable<Notification> NodeImpl::call(PeerId id, OutItem item) {
  auto self = shared_from_this();  // we may suspend: keep the node alive
  PeerConn* p = peer_at(id);
  if (p == nullptr) throw std::invalid_argument("amsg: unknown PeerId");
  validate(item);
  for (;;) {
    if (closing_.load(std::memory_order_acquire)) {
      co_return Notification{std::move(item.notify_id), Outcome::error, kNodeShuttingDown, std::move(item.type)};
    }
    if (has_room(*p, true)) break;
    co_await space_.coroutines.async_wait([this, p] { return closing_.load() || has_room(*p, true); });
  }
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(Notification)>(
      [this, p, &item](auto handler) {
        using H = decltype(handler);
        item.completion = std::make_unique<HandlerCompletion<H>>(std::move(handler), executor_);
        outstanding_.fetch_add(1, std::memory_order_acq_rel);
        if (p->queue.try_push(item) == PushResult::ok) {
          if (started_.load(std::memory_order_acquire)) schedule_flush(*p);
          return;
        }
        // Lost the race for the last slot (or closing): the call ends now.
        release_outstanding();
        auto c = std::move(item.completion);
        c->complete(Notification{std::move(item.notify_id), Outcome::error,
                                 closing_.load() ? kNodeShuttingDown : std::string{"peer queue full"},
                                 std::move(item.type)});
      },
      asio::use_awaitable);
}

asio::awaitable<SendStatus> NodeImpl::async_enqueue(PeerId id, OutItem item) {
  auto self = shared_from_this();  // we may suspend: keep the node alive
  PeerConn* p = peer_at(id);
  if (p == nullptr) throw std::invalid_argument("amsg: unknown PeerId");
  const bool notified = item.notified;
  for (;;) {
    // enqueue() moves from the item only when it returns ok.
    const SendStatus s = enqueue(id, std::move(item), false);  // NOLINT(bugprone-use-after-move)
    if (s != SendStatus::full) co_return s;
    co_await space_.coroutines.async_wait([this, p, notified] { return closing_.load() || has_room(*p, notified); });
  }
}

// Ends an item that never reached the wire.
void NodeImpl::fail_item(OutItem& item, const std::string& why) {
  if (!item.notified) return;
  Pending pd;
  pd.notify_id = std::move(item.notify_id);
  pd.type = std::move(item.type);
  pd.completion = std::move(item.completion);
  Notification n{pd.notify_id, Outcome::error, why, pd.type};
  complete_pending(std::move(pd), std::move(n));
}

// Takes what senders queued for the peer, registers the calls and writes them:
// one frame per burst (a BATCH of up to kMaxBatch messages; a lone message goes
// as a plain MSG), so ZeroMQ and the kernel see one message per burst, not one
// per active message.
void NodeImpl::flush_peer(PeerConn& p) {
  p.flush_posted.store(false, std::memory_order_seq_cst);
  if (stopping_) return;
  if (p.index == kSelfIndex || p.loopback) {
    flush_local(p);
    return;
  }
  if (!p.sock.socket) return;  // open_peer() flushes once the socket exists
  if (!send_backlog(p)) return;
  std::size_t n = 0;
  OutItem item;
  for (;;) {  // the backlog holds at most the one frame ZeroMQ refused
    out_batch_.clear();
    const auto now = Clock::now();
    while (out_batch_.size() < wire::kMaxBatch && p.queue.try_pop(item)) {
      if (admit(p, item, now)) out_batch_.push_back(std::move(item));
      ++n;
    }
    if (out_batch_.empty()) break;
    if (!send_out(p, out_batch_, now)) break;  // now in the backlog
    if (n >= 4 * wire::kMaxBatch) {
      schedule_flush(p);  // let replies and other peers in
      break;
    }
  }
  p.sock.poke(!p.backlog.empty());
  if (n != 0) notify_space();
}

// False when the item ended here (the peer is closing or incompatible, or its
// deadline has passed) and must not be sent.
bool NodeImpl::admit(PeerConn& p, OutItem& item, Clock::time_point now) {
  if (p.state == PeerState::closing) {
    fail_item(item, kRemoteShuttingDown);
    return false;
  }
  if (p.state == PeerState::incompatible) {
    fail_item(item, p.incompatible_reason);
    return false;
  }
  if (item.notified && item.deadline <= now) {
    timeouts_.add();
    fail_item(item, kTimeout);
    return false;
  }
  return true;
}

// Encodes and registers the items and sends them in one frame. False when ZeroMQ
// would block (the frame then waits, encoded and registered, in the backlog).
bool NodeImpl::send_out(PeerConn& p, std::vector<OutItem>& items, Clock::time_point now) {
  const bool single = items.size() == 1;
  std::size_t total = single ? 0 : wire::kBatchFixed;
  for (const auto& item : items) {
    total +=
        wire::msg_size(item.type, item.notify_id) + item.payload.size() + (single ? 0 : wire::batch_entry_overhead());
  }
  Encoded e;
  e.frame.rebuild(total);
  auto* at = static_cast<std::byte*>(e.frame.data());
  if (!single) {
    wire::write_batch_prefix(at, static_cast<std::uint32_t>(items.size()));
    at += wire::kBatchFixed;
  }
  for (auto& item : items) {
    const std::size_t size = wire::msg_size(item.type, item.notify_id) + item.payload.size();
    if (!single) at = wire::write_batch_entry(at, static_cast<std::uint32_t>(size));
    std::uint64_t call_id = 0;
    if (item.notified) {
      auto [id, pd] = pending_.add();
      call_id = id;
      wire::write_msg(at, call_id, item.type, item.notify_id, item.payload.bytes());
      pd.seq = ++next_call_seq_;
      pd.peer = p.index;
      pd.notify_id = std::move(item.notify_id);
      pd.type = std::move(item.type);
      pd.deadline = item.deadline;
      pd.sent_at = now;
      pd.completion = std::move(item.completion);
      if (item.deadline != Clock::time_point::max()) arm_deadline(item.deadline, call_id);
    } else {
      wire::write_msg(at, 0, item.type, item.notify_id, item.payload.bytes());
    }
    at += size;
    item.payload = Payload{};
    if (single) e.call_id = call_id;
  }
  e.count = items.size();
  if (!p.backlog.empty() || !p.sock.send(e.frame, zmq::send_flags::dontwait)) {
    p.backlog.push_back(std::move(e));
    return false;
  }
  messages_sent_.add(items.size());
  return true;
}

// True when the backlog is empty (possibly after sending it).
bool NodeImpl::send_backlog(PeerConn& p) {
  while (!p.backlog.empty()) {
    Encoded& e = p.backlog.front();
    if (e.call_id != 0 && !pending_.contains(e.call_id)) {  // a lone call that ended (timeout) while waiting
      p.backlog.pop_front();
      continue;
    }
    if (!p.sock.send(e.frame, zmq::send_flags::dontwait)) return false;
    messages_sent_.add(e.count);
    p.backlog.pop_front();
  }
  return true;
}

// Sends to this node itself: straight into the manager, no socket.
void NodeImpl::flush_local(PeerConn& p) {
  OutItem item;
  std::size_t n = 0;
  while (p.local_backlog.size() < p.queue.capacity() && p.queue.try_pop(item)) {
    ++n;
    Message m{std::move(item.type), std::move(item.payload)};
    std::uint64_t token = 0;
    if (item.notified) {
      const auto now = Clock::now();
      if (item.deadline <= now) {
        timeouts_.add();
        item.type = std::move(m.type);
        fail_item(item, kTimeout);
        continue;
      }
      auto [call_id, pd] = pending_.add();
      token = kLocalToken | call_id;
      m.notify_id = item.notify_id;
      pd.seq = ++next_call_seq_;
      pd.peer = p.index;
      pd.notify_id = std::move(item.notify_id);
      pd.type = m.type;
      pd.deadline = item.deadline;
      pd.sent_at = now;
      pd.completion = std::move(item.completion);
      if (item.deadline != Clock::time_point::max()) arm_deadline(item.deadline, call_id);
    }
    if (!p.local_backlog.empty()) {
      p.local_backlog.emplace_back(std::move(m), token);
      continue;
    }
    const SendStatus s = ingress_.try_submit(std::move(m), token);
    if (s == SendStatus::full) {
      p.local_backlog.emplace_back(std::move(m), token);  // NOLINT(bugprone-use-after-move): refused, still ours
    } else if (s == SendStatus::closed && token != 0) {
      complete(token & ~kLocalToken, Notification{{}, Outcome::error, kNodeShuttingDown, {}});
    }
  }
  if (!p.local_backlog.empty() && !p.local_pump_running) {
    p.local_pump_running = true;
    asio::co_spawn(executor_.get(), local_pump(p), asio::detached);
  }
  if (n != 0) notify_space();
}

asio::awaitable<void> NodeImpl::local_pump(PeerConn& p) {
  while (!p.local_backlog.empty()) {
    auto [m, token] = std::move(p.local_backlog.front());
    p.local_backlog.pop_front();
    const SendStatus s = co_await ingress_.async_submit(std::move(m), token);
    if (s != SendStatus::ok && token != 0) {
      complete(token & ~kLocalToken, Notification{{}, Outcome::error, kNodeShuttingDown, {}});
    }
  }
  p.local_pump_running = false;
  if (p.queue.size() != 0) schedule_flush(p);
}

// ---------------------------------------------------------------- receiving (DEALER side)

bool NodeImpl::recv_all(Watched& w, std::vector<zmq::message_t>& frames) {
  frames.clear();
  zmq::message_t first;
  zmq::socket_t& s = *w.socket;
  if (!s.recv(first, zmq::recv_flags::dontwait)) {
    w.drained = true;
    return false;
  }
  w.drained = false;
  bool more = first.more();
  frames.push_back(std::move(first));
  while (more) {
    zmq::message_t part;
    (void)s.recv(part, zmq::recv_flags::none);  // the rest of a message is already here
    more = part.more();
    if (frames.size() < 8) frames.push_back(std::move(part));
  }
  return true;
}

asio::awaitable<void> NodeImpl::peer_loop(PeerConn& p, std::uint64_t epoch) {
  for (;;) {
    if (stopping_ || p.epoch != epoch || !p.sock.socket) co_return;
    service_peer(p);
    if (stopping_ || p.epoch != epoch || !p.sock.socket) co_return;
    if (p.sock.maybe_readable()) {
      co_await asio::post(executor_.get(), asio::use_awaitable);  // more to read: yield first
      continue;
    }
    asio::error_code ec;
    p.sock.waiting = true;
    co_await p.sock.fd->async_wait(asio::posix::stream_descriptor::wait_read,
                                   asio::redirect_error(asio::use_awaitable, ec));
    if (p.epoch == epoch) p.sock.waiting = false;
  }
}

template <typename F>
void NodeImpl::collect_flushes_while(F&& f) {
  collecting_flushes_ = true;
  try {
    std::forward<F>(f)();
  } catch (...) {
    collecting_flushes_ = false;
    for (PeerConn* p : collected_flushes_) asio::post(executor_.get(), [this, p] { flush_peer(*p); });
    collected_flushes_.clear();
    throw;
  }
  collecting_flushes_ = false;
  for (PeerConn* p : collected_flushes_) flush_peer(*p);  // collecting is off: the list cannot grow here
  collected_flushes_.clear();
}

void NodeImpl::service_peer(PeerConn& p) {
  std::vector<zmq::message_t> frames;
  const std::uint64_t epoch = p.epoch;
  for (std::size_t i = 0; i < kServiceBatch && p.epoch == epoch && p.sock.socket; ++i) {
    if (!recv_all(p.sock, frames)) break;
    // Requests from callers a reply resumed leave after each frame, before the
    // next receive: when that one finds nothing, nothing was sent after it, and
    // the wait needs no ZMQ_EVENTS check first.
    collect_flushes_while([&] { on_peer_frames(p, frames); });
  }
  if (p.epoch == epoch && p.sock.socket && !p.backlog.empty()) {
    if (send_backlog(p)) {
      flush_peer(p);
    } else {
      p.sock.poke(!p.backlog.empty());
    }
  }
}

void NodeImpl::on_peer_frames(PeerConn& p, std::vector<zmq::message_t>& frames) {
  p.last_rx = Clock::now();
  const auto header = std::span<const std::byte>{static_cast<const std::byte*>(frames[0].data()), frames[0].size()};
  wire::Prefix prefix;
  if (auto e = wire::read_prefix(header, prefix); e != wire::DecodeError::none) {
    malformed(p.address, wire::to_string(e));
    return;
  }
  if (prefix.version != wire::kVersion) {
    p.incompatible_reason = incompatible_text(prefix.version);
    log_->error("peer {}: {}", p.address, p.incompatible_reason);
    set_info(p, PeerState::incompatible);
    fail_peer_calls(p, p.incompatible_reason, Clock::time_point::max());
    return;
  }
  switch (prefix.kind) {
    case wire::Kind::reply:
      if (frames.size() != 1) {
        malformed(p.address, wire::to_string(wire::DecodeError::bad_frames));
        return;
      }
      on_reply(p, header);
      return;
    case wire::Kind::batch: {
      if (auto e = wire::decode_batch(header, batch_entries_); e != wire::DecodeError::none || frames.size() != 1) {
        malformed(p.address, e != wire::DecodeError::none ? wire::to_string(e) : "more than one frame");
        return;
      }
      for (const auto entry : batch_entries_) on_reply(p, entry);
      return;
    }
    case wire::Kind::hello_ack: {
      wire::Hello h;
      if (auto e = wire::decode_hello(header, h); e != wire::DecodeError::none || frames.size() != 1) {
        malformed(p.address, e != wire::DecodeError::none ? wire::to_string(e) : "wrong number of frames");
        return;
      }
      const bool is_us = h.identity == identity;
      std::vector<std::string> handlers{h.handlers.begin(), h.handlers.end()};
      {
        std::lock_guard lock{p.info_mutex};
        p.info.identity = std::string{h.identity};
        p.info.handlers = handlers;
        p.info.max_payload = h.max_payload;
        ++p.info.connections;
      }
      for (auto& [promise, at] : p.handler_queries) promise.set_value(handlers);
      p.handler_queries.clear();
      if (is_us && !p.loopback) {
        log_->info("peer {} is this node: its messages skip the socket", p.address);
        p.loopback = true;
      }
      if (p.state != PeerState::ready && p.state != PeerState::local) {
        set_info(p, is_us ? PeerState::local : PeerState::ready);
        log_->debug("peer {} ({}) ready", p.address, h.identity);
      }
      return;
    }
    case wire::Kind::ping:
      return;  // liveness only: last_rx is updated
    case wire::Kind::bye:
      log_->info("peer {} is shutting down", p.address);
      set_info(p, PeerState::closing);
      return;
    case wire::Kind::error: {
      wire::ErrorFrame ef;
      if (auto e = wire::decode_error(header, ef); e != wire::DecodeError::none) {
        malformed(p.address, wire::to_string(e));
        return;
      }
      if (ef.code == wire::ErrorCode::version_mismatch) {
        p.incompatible_reason = std::string{ef.text};
        set_info(p, PeerState::incompatible);
        fail_peer_calls(p, p.incompatible_reason, Clock::time_point::max());
      }
      log_->warn("peer {} reports an error: {}", p.address, ef.text);
      return;
    }
    default:
      malformed(p.address, "unexpected frame kind from a listening node");
      return;
  }
}

// One REPLY (alone or from a BATCH): completes the call it answers.
void NodeImpl::on_reply(PeerConn& p, std::span<const std::byte> frame) {
  wire::ReplyHeader r;
  if (auto e = wire::decode_reply(frame, r); e != wire::DecodeError::none) {
    malformed(p.address, wire::to_string(e));
    return;
  }
  const Pending* waiting = pending_.find(r.call_id);
  if (waiting == nullptr || waiting->peer != p.index) {
    late_replies_.add();
    return;
  }
  replies_received_.add();
  Pending pd = pending_.take(r.call_id);
  Notification n;
  n.id = std::move(pd.notify_id);
  n.message_type = std::move(pd.type);
  if (r.status == wire::Status::ok) {
    n.outcome = Outcome::ok;
    if (!r.body.empty()) n.payload = Payload::copy_of(r.body);
  } else {
    n.outcome = r.status == wire::Status::cancelled ? Outcome::cancelled : Outcome::error;
    n.error = std::string{r.error};
  }
  complete_pending(std::move(pd), std::move(n));
}

void NodeImpl::fail_peer_calls(PeerConn& p, const std::string& why, Clock::time_point sent_before) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> calls;  // (seq, id)
  for (const auto id : pending_.ids()) {
    const Pending& pd = *pending_.find(id);
    if (pd.peer == p.index && pd.sent_at < sent_before) calls.emplace_back(pd.seq, id);
  }
  std::sort(calls.begin(), calls.end());  // in the order they were sent
  for (const auto& [seq, id] : calls) {
    calls_failed_peer_.add();
    complete(id, Notification{{}, Outcome::error, why, {}});
  }
}

void NodeImpl::declare_lost(PeerConn& p, const std::string& why) {
  peers_lost_.add();
  log_->warn("peer {} ({}) lost: nothing heard for {} ms", p.address, p.info.identity, opts.heartbeat_timeout.count());
  fail_peer_calls(p, why, Clock::time_point::max());
  for (auto& [promise, at] : p.handler_queries) promise.set_exception(std::make_exception_ptr(NetworkError(why)));
  p.handler_queries.clear();
  p.backlog.clear();
  p.sock.close(0);  // drops what ZeroMQ still holds for the dead peer
  open_peer(p);     // and starts over: a restarted peer is picked up by the hello
}

// ---------------------------------------------------------------- receiving (ROUTER side)

// Reads the ROUTER: messages from remote senders. Pauses (leaving frames to
// ZeroMQ, whose high-water marks then stop the senders) while every inflight
// slot is taken or the inbox is full. Always waits on the socket's fd, so frames
// waiting in the backlog go out as soon as ZeroMQ has room again.
asio::awaitable<void> NodeImpl::router_loop() {
  std::vector<zmq::message_t> frames;
  for (;;) {
    if (stopping_) co_return;
    drain_router_backlog();
    std::size_t n = 0;
    // A frame may hold a BATCH: read only with room for a whole one in the slab.
    while (n < kServiceBatch && !stopping_ && free_slots_.size() >= wire::kMaxBatch) {
      if (!recv_all(router_, frames)) break;
      ++n;
      on_router_frames(frames);
      while (!router_waiting_.empty()) {  // the inbox is full: stop reading until it has room
        auto [m, token] = std::move(router_waiting_.front());
        router_waiting_.pop_front();
        const SendStatus s = co_await ingress_.async_submit(std::move(m), token);
        if (s != SendStatus::ok && token != 0) {
          const Inflight& f = slab_[token];
          reply_error(f.routing_id, f.call_id, wire::ErrorCode::shutting_down, kRemoteShuttingDown);
          free_slot(static_cast<std::uint32_t>(token));
        }
      }
    }
    if (stopping_) co_return;
    drain_router_backlog();
    if (n == kServiceBatch) {
      co_await asio::post(executor_.get(), asio::use_awaitable);
      continue;
    }
    if (free_slots_.size() >= wire::kMaxBatch && router_.maybe_readable()) continue;
    asio::error_code ec;
    router_.waiting = true;
    co_await router_.fd->async_wait(asio::posix::stream_descriptor::wait_read,
                                    asio::redirect_error(asio::use_awaitable, ec));
    router_.waiting = false;
  }
}

void NodeImpl::on_router_frames(std::vector<zmq::message_t>& frames) {
  const zmq::message_t& rid = frames[0];
  const std::string_view rid_view{static_cast<const char*>(rid.data()), rid.size()};
  const std::string_view where = "a sender";
  if (frames.size() < 2) {
    malformed(where, "no header frame");
    router_send(rid_view, frame_of(wire::encode_error(wire::ErrorCode::malformed, "no header frame")), false);
    return;
  }
  auto client_it = clients_.find(std::string{rid_view});
  if (client_it != clients_.end()) client_it->second.last_rx = Clock::now();
  const auto header = std::span<const std::byte>{static_cast<const std::byte*>(frames[1].data()), frames[1].size()};
  wire::Prefix prefix;
  if (auto e = wire::read_prefix(header, prefix); e != wire::DecodeError::none) {
    malformed(where, wire::to_string(e));
    router_send(rid_view, frame_of(wire::encode_error(wire::ErrorCode::malformed, wire::to_string(e))), false);
    return;
  }
  if (prefix.version != wire::kVersion) {
    malformed(where, incompatible_text(prefix.version));
    const std::uint64_t call_id = prefix.kind == wire::Kind::msg ? wire::stable_call_id(header) : 0;
    if (call_id != 0) {
      reply_error(rid_view, call_id, wire::ErrorCode::version_mismatch, incompatible_text(prefix.version));
    } else {
      router_send(rid_view,
                  frame_of(wire::encode_error(wire::ErrorCode::version_mismatch, incompatible_text(prefix.version))),
                  false);
    }
    return;
  }
  switch (prefix.kind) {
    case wire::Kind::msg:
      if (frames.size() != 2) {
        malformed(where, wire::to_string(wire::DecodeError::bad_frames));
        on_msg(rid_view, {}, wire::stable_call_id(header), wire::DecodeError::bad_frames);
        return;
      }
      on_msg(rid_view, header, 0, wire::DecodeError::none);
      return;
    case wire::Kind::batch: {
      auto e = wire::decode_batch(header, batch_entries_);
      if (e == wire::DecodeError::none && frames.size() != 2) e = wire::DecodeError::bad_frames;
      if (e != wire::DecodeError::none) {
        malformed(where, wire::to_string(e));
        router_send(rid_view, frame_of(wire::encode_error(wire::ErrorCode::malformed, wire::to_string(e))), false);
        return;
      }
      for (const auto entry : batch_entries_) on_msg(rid_view, entry, 0, wire::DecodeError::none);
      return;
    }
    case wire::Kind::hello: {
      wire::Hello h;
      if (auto e = wire::decode_hello(header, h); e != wire::DecodeError::none || frames.size() != 2) {
        const std::string why{e != wire::DecodeError::none ? wire::to_string(e) : "wrong number of frames"};
        malformed(where, why);
        router_send(rid_view, frame_of(wire::encode_error(wire::ErrorCode::malformed, why)), false);
        return;
      }
      auto& c = clients_[std::string{rid_view}];
      c.hello = true;
      c.last_rx = Clock::now();
      log_->debug("hello from {}", h.identity);
      router_send(rid_view, frame_of(hello_frame(wire::Kind::hello_ack)), true);
      if (closing_.load(std::memory_order_acquire)) router_send(rid_view, frame_of(wire::encode_bye()), true);
      return;
    }
    case wire::Kind::ping: {
      std::uint64_t nonce = 0;
      if (auto e = wire::decode_ping(header, nonce); e != wire::DecodeError::none) {
        malformed(where, wire::to_string(e));
        router_send(rid_view, frame_of(wire::encode_error(wire::ErrorCode::malformed, wire::to_string(e))), false);
      }
      return;
    }
    case wire::Kind::bye:
      clients_.erase(std::string{rid_view});
      return;
    case wire::Kind::error: {
      malformed(where, "ERROR frame sent to a listening node");  // never answered: no error loops
      return;
    }
    default:
      malformed(where, "unexpected frame kind");
      router_send(rid_view, frame_of(wire::encode_error(wire::ErrorCode::malformed, "unexpected frame kind")), false);
      return;
  }
}

// One MSG (alone or from a BATCH). `forced` reports a decoding error found by the
// caller (with the call id to answer, if any).
void NodeImpl::on_msg(std::string_view rid, std::span<const std::byte> frame, std::uint64_t forced_call_id,
                      wire::DecodeError forced) {
  wire::MsgHeader h;
  wire::DecodeError e = forced;
  std::uint64_t bad_call_id = forced_call_id;
  if (e == wire::DecodeError::none) {
    wire::Prefix prefix;
    e = wire::read_prefix(frame, prefix);
    if (e == wire::DecodeError::none && prefix.kind != wire::Kind::msg) e = wire::DecodeError::bad_kind;
    if (e == wire::DecodeError::none) e = wire::decode_msg(frame, h);
    bad_call_id = wire::stable_call_id(frame);
    if (e != wire::DecodeError::none) malformed("a sender", wire::to_string(e));
  }
  if (e != wire::DecodeError::none) {
    const std::string text = fmt::format("malformed frame: {}", wire::to_string(e));
    if (bad_call_id != 0) {
      reply_error(rid, bad_call_id, wire::ErrorCode::malformed, text);
    } else {
      router_send(rid, frame_of(wire::encode_error(wire::ErrorCode::malformed, text)), false);
    }
    return;
  }
  messages_received_.add();
  if (closing_.load(std::memory_order_acquire)) {
    refused_shutting_down_.add();
    if (h.call_id != 0) reply_error(rid, h.call_id, wire::ErrorCode::shutting_down, kRemoteShuttingDown);
    return;
  }
  if (h.body.size() > opts.manager.max_payload_bytes) {
    refused_too_large_.add();
    if (h.call_id != 0) {
      reply_error(rid, h.call_id, wire::ErrorCode::payload_too_large,
                  fmt::format("payload of {} bytes exceeds the limit of {} bytes", h.body.size(),
                              opts.manager.max_payload_bytes));
    }
    return;
  }
  Message m{std::string{h.type}, Payload::copy_of(h.body)};
  std::uint64_t token = 0;
  if (h.call_id != 0) {
    m.notify_id = h.id.empty() ? std::to_string(h.call_id) : std::string{h.id};
    token = free_slots_.back();  // router_loop() reads a frame only with kMaxBatch slots free
    free_slots_.pop_back();
    slab_[token].routing_id.assign(rid);
    slab_[token].call_id = h.call_id;
  }
  if (!router_waiting_.empty()) {  // keep the order: behind those already waiting
    router_waiting_.emplace_back(std::move(m), token);
    return;
  }
  const SendStatus s = ingress_.try_submit(std::move(m), token);
  if (s == SendStatus::ok) return;
  if (s == SendStatus::full) {
    router_waiting_.emplace_back(std::move(m), token);  // NOLINT(bugprone-use-after-move): refused, still ours
    return;
  }
  refused_shutting_down_.add();
  if (h.call_id != 0) {
    reply_error(rid, h.call_id, wire::ErrorCode::shutting_down, kRemoteShuttingDown);
    free_slot(static_cast<std::uint32_t>(token));
  }
}

NodeImpl::SendResult NodeImpl::router_try_send(std::string_view routing_id, zmq::message_t& frame) {
  try {
    auto sent = router_.send(zmq::buffer(routing_id), zmq::send_flags::sndmore | zmq::send_flags::dontwait);
    if (!sent) return SendResult::again;
    (void)router_.send(frame, zmq::send_flags::none);  // the rest of a started message is never refused
    return SendResult::sent;
  } catch (const zmq::error_t& e) {
    // EHOSTUNREACH: the sender has gone (ROUTER_MANDATORY says so instead of dropping silently).
    return SendResult::gone;
  }
}

void NodeImpl::router_send(std::string_view routing_id, zmq::message_t&& frame, bool must,
                           std::vector<std::uint32_t> slots) {
  SendResult r = SendResult::again;
  if (router_backlog_.empty() || !router_backlog_.contains(std::string{routing_id})) {
    r = router_try_send(routing_id, frame);
  }
  if (r == SendResult::sent) {
    for (const auto slot : slots) free_slot(slot);
    return;
  }
  if (r == SendResult::gone) {
    replies_dropped_.add(slots.size());
    drop_log_.warn(*log_, "dropping frames for a sender that has gone");
    for (const auto slot : slots) free_slot(slot);
    forget_client(std::string{routing_id});
    return;
  }
  if (!must) return;  // a PING or an ERROR: the next one will do
  router_backlog_[std::string{routing_id}].push_back(RouterFrame{std::move(frame), std::move(slots)});
}

void NodeImpl::drain_router_backlog() {
  for (auto it = router_backlog_.begin(); it != router_backlog_.end();) {
    auto& q = it->second;
    SendResult r = SendResult::sent;
    while (!q.empty()) {
      RouterFrame& f = q.front();
      r = router_try_send(it->first, f.frame);
      if (r != SendResult::sent) break;
      for (const auto slot : f.slots) free_slot(slot);
      q.pop_front();
    }
    if (r == SendResult::gone) {
      for (auto& f : q) {
        replies_dropped_.add(f.slots.size());
        for (const auto slot : f.slots) free_slot(slot);
      }
      clients_.erase(it->first);
      it = router_backlog_.erase(it);
      continue;
    }
    it = q.empty() ? router_backlog_.erase(it) : std::next(it);
  }
}

void NodeImpl::forget_client(const std::string& routing_id) {
  clients_.erase(routing_id);
  auto it = router_backlog_.find(routing_id);
  if (it == router_backlog_.end()) return;
  for (auto& f : it->second) {
    replies_dropped_.add(f.slots.size());
    for (const auto slot : f.slots) free_slot(slot);
  }
  router_backlog_.erase(it);
}

void NodeImpl::reply_error(std::string_view routing_id, std::uint64_t call_id, wire::ErrorCode code,
                           std::string_view text) {
  zmq::message_t frame{wire::reply_size(text)};
  wire::write_reply(static_cast<std::byte*>(frame.data()), call_id, wire::Status::error, code, text, {});
  router_send(routing_id, std::move(frame), true);
  replies_sent_.add();
}

void NodeImpl::deliver(std::uint64_t token, Notification&& n) {
  ReplyItem item{token, std::move(n)};
  while (replies_.try_push(item) != PushResult::ok) {
    std::this_thread::yield();  // cannot stay full: it holds more than every inflight slot
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);  // see schedule_flush()
  if (!replies_posted_.load(std::memory_order_relaxed) && !replies_posted_.exchange(true, std::memory_order_acq_rel)) {
    asio::post(executor_.get(), [this] { flush_replies(); });
  }
}

// Sends what the workers delivered. Replies to the same sender that arrive
// together go out as one frame (a BATCH), like requests do.
void NodeImpl::flush_replies() {
  replies_posted_.store(false, std::memory_order_seq_cst);
  bool any = false;
  for (;;) {
    reply_batch_.clear();
    ReplyItem item;
    while (reply_batch_.size() < wire::kMaxBatch && replies_.try_pop(item)) {
      if ((item.token & kLocalToken) == 0) {
        reply_batch_.push_back(std::move(item));
        continue;
      }
      const std::uint64_t call_id = item.token & ~kLocalToken;  // a message this node sent itself
      if (!pending_.contains(call_id)) {
        late_replies_.add();
        continue;
      }
      Pending pd = pending_.take(call_id);
      item.notification.id = std::move(pd.notify_id);
      complete_pending(std::move(pd), std::move(item.notification));
    }
    if (reply_batch_.empty()) break;
    any = true;
    std::size_t first = 0;
    while (first < reply_batch_.size()) {
      const std::string& rid = slab_[static_cast<std::uint32_t>(reply_batch_[first].token)].routing_id;
      std::size_t last = first + 1;
      while (last < reply_batch_.size() &&
             slab_[static_cast<std::uint32_t>(reply_batch_[last].token)].routing_id == rid) {
        ++last;
      }
      send_replies(first, last);
      first = last;
    }
  }
  if (any) router_.poke(!router_backlog_.empty());
}

// reply_batch_[first, last), all for one sender, in one frame.
void NodeImpl::send_replies(std::size_t first, std::size_t last) {
  const bool single = last - first == 1;
  std::size_t total = single ? 0 : wire::kBatchFixed;
  for (std::size_t i = first; i < last; ++i) {
    const Notification& n = reply_batch_[i].notification;
    total += wire::reply_size(n.error) + n.payload.size() + (single ? 0 : wire::batch_entry_overhead());
  }
  zmq::message_t frame{total};
  auto* at = static_cast<std::byte*>(frame.data());
  if (!single) {
    wire::write_batch_prefix(at, static_cast<std::uint32_t>(last - first));
    at += wire::kBatchFixed;
  }
  std::vector<std::uint32_t> slots;
  slots.reserve(last - first);
  for (std::size_t i = first; i < last; ++i) {
    const auto slot = static_cast<std::uint32_t>(reply_batch_[i].token);
    const Notification& n = reply_batch_[i].notification;
    const wire::Status status = n.outcome == Outcome::ok          ? wire::Status::ok
                                : n.outcome == Outcome::cancelled ? wire::Status::cancelled
                                                                  : wire::Status::error;
    const wire::ErrorCode code = n.outcome == Outcome::ok          ? wire::ErrorCode::none
                                 : n.outcome == Outcome::cancelled ? wire::ErrorCode::cancelled
                                                                   : wire::ErrorCode::remote_error;
    const std::size_t size = wire::reply_size(n.error) + n.payload.size();
    if (!single) at = wire::write_batch_entry(at, static_cast<std::uint32_t>(size));
    wire::write_reply(at, slab_[slot].call_id, status, code, n.error, n.payload.bytes());
    at += size;
    slots.push_back(slot);
  }
  replies_sent_.add(last - first);
  const std::string& rid = slab_[slots.front()].routing_id;    // freeing a slot leaves its routing id be
  router_send(rid, std::move(frame), true, std::move(slots));  // frees the slots once out
}

void NodeImpl::free_slot(std::uint32_t slot) {
  free_slots_.push_back(slot);
  if (free_slots_.size() == wire::kMaxBatch && router_.waiting) router_.fd->cancel();  // reading was paused
}

// ---------------------------------------------------------------- outcomes

void NodeImpl::complete(std::uint64_t call_id, Notification&& n) {
  if (!pending_.contains(call_id)) return;
  Pending pd = pending_.take(call_id);
  n.id = std::move(pd.notify_id);
  n.message_type = std::move(pd.type);
  complete_pending(std::move(pd), std::move(n));
}

void NodeImpl::complete_pending(Pending&& pd, Notification&& n) {
  if (n.id.empty()) n.id = std::move(pd.notify_id);
  if (n.message_type.empty()) n.message_type = std::move(pd.type);
  if (pd.completion) {
    release_outstanding();  // first, so a caller that sees its outcome also sees the count drop
    if (closing_.load(std::memory_order_relaxed)) outstanding_done_.notify_all();
    pd.completion->complete(std::move(n));
    return;
  }
  publish(std::move(n));
}

// Onto the node's notification channel, in order; waits (off this thread's
// critical path) while the channel is full. The call stays outstanding until
// it is there, which bounds what can pile up here.
void NodeImpl::publish(Notification&& n) {
  if (publish_backlog_.empty()) {
    const SendStatus s = ingress_.try_publish(std::move(n));
    if (s != SendStatus::full) {
      release_outstanding();
      if (closing_.load(std::memory_order_relaxed)) outstanding_done_.notify_all();
      return;
    }
  }
  publish_backlog_.push_back(std::move(n));  // NOLINT(bugprone-use-after-move): refused, still ours
  if (!publisher_running_) {
    publisher_running_ = true;
    asio::co_spawn(executor_.get(), publisher(), asio::detached);
  }
}

asio::awaitable<void> NodeImpl::publisher() {
  while (!publish_backlog_.empty()) {
    Notification n = std::move(publish_backlog_.front());
    publish_backlog_.pop_front();
    (void)co_await ingress_.async_publish(std::move(n));
    release_outstanding();
    if (closing_.load(std::memory_order_relaxed)) outstanding_done_.notify_all();
  }
  publisher_running_ = false;
}

void NodeImpl::arm_deadline(Clock::time_point deadline, std::uint64_t call_id) {
  deadlines_.emplace(deadline, call_id);
  if (deadline < deadline_armed_) deadline_timer_.cancel();  // the loop re-arms earlier
}

asio::awaitable<void> NodeImpl::deadline_loop() {
  for (;;) {
    if (stopping_) co_return;
    const auto now = Clock::now();
    while (!deadlines_.empty() && deadlines_.top().first <= now) {
      const auto [deadline, call_id] = deadlines_.top();
      deadlines_.pop();
      if (const Pending* pd = pending_.find(call_id); pd != nullptr && pd->deadline == deadline) {
        timeouts_.add();
        complete(call_id, Notification{{}, Outcome::error, kTimeout, {}});
      }
    }
    deadline_armed_ = deadlines_.empty() ? Clock::time_point::max() : deadlines_.top().first;
    deadline_timer_.expires_at(deadline_armed_);
    asio::error_code ec;
    co_await deadline_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

asio::awaitable<void> NodeImpl::heartbeat_loop() {
  for (;;) {
    heartbeat_timer_.expires_after(opts.heartbeat_interval);
    asio::error_code ec;
    co_await heartbeat_timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (stopping_) co_return;
    const auto now = Clock::now();
    const std::string ping = wire::encode_ping(++ping_nonce_);
    for (std::uint32_t i = 1; i < peer_count_.load(std::memory_order_acquire); ++i) {
      PeerConn& p = *peers_[i];
      if (!p.sock.socket || p.loopback) continue;
      (void)p.sock.send(zmq::buffer(ping), zmq::send_flags::dontwait);
      p.sock.poke(!p.backlog.empty());
      const bool silent = now - p.last_rx > opts.heartbeat_timeout;
      if ((p.state == PeerState::ready || p.state == PeerState::closing) && silent) {
        declare_lost(p, kPeerLost);
      } else if (p.state == PeerState::connecting) {
        fail_peer_calls(p, kPeerUnreachable, now - opts.heartbeat_timeout);
        auto& q = p.handler_queries;
        for (auto it = q.begin(); it != q.end();) {
          if (now - it->second > opts.heartbeat_timeout) {
            it->first.set_exception(std::make_exception_ptr(NetworkError(kPeerUnreachable)));
            it = q.erase(it);
          } else {
            ++it;
          }
        }
      }
    }
    drain_router_backlog();
    const bool reading = free_slots_.size() >= wire::kMaxBatch;
    for (auto it = clients_.begin(); it != clients_.end();) {
      if (reading && now - it->second.last_rx > opts.heartbeat_timeout * 10 && !router_backlog_.contains(it->first)) {
        it = clients_.erase(it);  // long gone; its replies would be dropped anyway
        continue;
      }
      const std::string rid = it->first;
      ++it;
      if (clients_.at(rid).hello) router_send(rid, frame_of(ping), false);
    }
    router_.poke(!router_backlog_.empty());
  }
}

void NodeImpl::malformed(std::string_view where, std::string_view why) {
  malformed_frames_.add();
  malformed_log_.warn(*log_, "malformed frame from {}: {}", where, why);
}

NodeStats NodeImpl::stats() const {
  NodeStats s;
  s.messages_sent = messages_sent_.get();
  s.replies_received = replies_received_.get();
  s.late_replies = late_replies_.get();
  s.timeouts = timeouts_.get();
  s.calls_failed_peer = calls_failed_peer_.get();
  s.peers_lost = peers_lost_.get();
  s.messages_received = messages_received_.get();
  s.replies_sent = replies_sent_.get();
  s.replies_dropped = replies_dropped_.get();
  s.refused_shutting_down = refused_shutting_down_.get();
  s.refused_too_large = refused_too_large_.get();
  s.malformed_frames = malformed_frames_.get();
  s.outstanding_calls = outstanding_.load(std::memory_order_relaxed);
  s.manager = manager.stats();
  return s;
}

// ---------------------------------------------------------------- Node

Node::Node(NodeOptions options) : impl_{std::make_shared<NodeImpl>(std::move(options))} {}

Node::~Node() {
  try {
    impl_->shutdown(std::chrono::milliseconds{0});
  } catch (const std::exception& e) {
    logger(impl_->opts.manager.logger_name)->error("node shutdown in destructor failed: {}", e.what());
  }
}

Manager& Node::manager() noexcept { return impl_->manager; }
void Node::start() { impl_->start(); }
ShutdownReport Node::shutdown(std::chrono::milliseconds drain) { return impl_->shutdown(drain); }
const std::string& Node::identity() const noexcept { return impl_->identity; }
std::vector<std::string> Node::endpoints() const { return impl_->endpoints; }
PeerId Node::connect(const std::string& address) { return impl_->connect(address); }
PeerId Node::self() const noexcept { return PeerId{kSelfIndex}; }
bool Node::wait_ready(PeerId peer, std::chrono::milliseconds timeout) { return impl_->wait_ready(peer, timeout); }
std::optional<PeerInfo> Node::peer_info(PeerId peer) const { return impl_->peer_info(peer); }
std::future<std::vector<std::string>> Node::query_handlers(PeerId peer) { return impl_->query_handlers(peer); }

namespace {
OutItem make_item(std::string type, Payload payload, std::optional<std::string> notify_id,
                  std::chrono::milliseconds timeout) {
  OutItem item;
  item.type = std::move(type);
  item.payload = std::move(payload);
  if (notify_id) {
    item.notified = true;
    item.notify_id = std::move(*notify_id);
    if (timeout.count() > 0) item.deadline = Clock::now() + timeout;
  }
  return item;
}
}  // namespace

SendStatus Node::send(PeerId peer, std::string type, Payload payload) {
  return impl_->enqueue(peer, make_item(std::move(type), std::move(payload), std::nullopt, {}), true);
}
SendStatus Node::send(PeerId peer, std::string type, Payload payload, std::string notify_id,
                      std::chrono::milliseconds timeout) {
  return impl_->enqueue(peer, make_item(std::move(type), std::move(payload), std::move(notify_id), timeout), true);
}
SendStatus Node::try_send(PeerId peer, std::string type, Payload payload) {
  return impl_->enqueue(peer, make_item(std::move(type), std::move(payload), std::nullopt, {}), false);
}
SendStatus Node::try_send(PeerId peer, std::string type, Payload payload, std::string notify_id,
                          std::chrono::milliseconds timeout) {
  return impl_->enqueue(peer, make_item(std::move(type), std::move(payload), std::move(notify_id), timeout), false);
}

asio::awaitable<Notification> Node::call(PeerId peer, std::string type, Payload payload, const CallOptions& options) {
  OutItem item = make_item(std::move(type), std::move(payload),
                           options.notify_id.empty() ? impl_->next_call_name() : options.notify_id, options.timeout);
  return impl_->call(peer, std::move(item));
}

asio::awaitable<Notification> Node::call(PeerId peer, std::string type, Payload payload, std::string notify_id,
                                         std::chrono::milliseconds timeout) {
  OutItem item = make_item(std::move(type), std::move(payload),
                           notify_id.empty() ? impl_->next_call_name() : std::move(notify_id), timeout);
  return impl_->call(peer, std::move(item));
}

asio::awaitable<SendStatus> Node::async_send(PeerId peer, std::string type, Payload payload) {
  return impl_->async_enqueue(peer, make_item(std::move(type), std::move(payload), std::nullopt, {}));
}

asio::awaitable<SendStatus> Node::async_send(PeerId peer, std::string type, Payload payload, std::string notify_id,
                                             std::chrono::milliseconds timeout) {
  return impl_->async_enqueue(peer, make_item(std::move(type), std::move(payload), std::move(notify_id), timeout));
}

std::future<Notification> Node::call_future(PeerId peer, std::string type, Payload payload,
                                            const CallOptions& options) {
  auto completion = std::make_unique<PromiseCompletion>();
  auto fut = completion->promise.get_future();
  OutItem item = make_item(std::move(type), std::move(payload),
                           options.notify_id.empty() ? impl_->next_call_name() : options.notify_id, options.timeout);
  item.completion = std::move(completion);
  const SendStatus s = impl_->enqueue(peer, std::move(item), true);
  if (s != SendStatus::ok) {
    std::promise<Notification> failed;
    fut = failed.get_future();
    failed.set_value(Notification{"call", Outcome::error, kNodeShuttingDown, {}});
  }
  return fut;
}

NodeStats Node::stats() const { return impl_->stats(); }
asio::any_io_executor Node::executor() const { return impl_->executor_.get(); }

}  // namespace amsg::net
