#pragma once
// Connector: the connecting half of a session (Seastar RPC's `client`s).
//
// One Peer per address the node is connected to, plus the node itself (slot 0).
// A slot whose peer is closed with nothing in flight and no use left goes to
// the next connect() to another address; its PeerId's generation changes, so
// an old PeerId names no peer, and an item a sender pushed with one just as
// the slot changed hands ends "disconnected", never sent to the new address.
// Senders on any thread push into the peer's bounded queue and post one flush
// per burst; on the executor a flush registers the calls and writes what it
// finds as one frame (a BATCH of up to 256 messages). The peer's channel brings
// back REPLYs, HELLO_ACK, PINGs, BYE and ERRORs. Heartbeats declare a silent
// peer lost and dial it afresh, so nothing queued for a dead process reaches
// its successor; the PeerId stays. (Heartbeats and held deadlines: peer_watch.cpp.)

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <spdlog/logger.h>
#include <asio/steady_timer.hpp>

#include "amsg/message.hpp"
#include "amsg/net/node_stats.hpp"
#include "amsg/net/peer.hpp"
#include "amsg/send_status.hpp"
#include "concurrency/bounded_queue.hpp"
#include "link/link.hpp"
#include "session/call.hpp"
#include "session/calls.hpp"
#include "session/counters.hpp"
#include "session/rate_limited_log.hpp"

namespace amsg::net {

class LocalPath;
class Links;

struct ConnectorOptions {
  std::size_t peer_queue_capacity = 0;
  std::size_t peer_queue_bytes = 0;
  std::chrono::milliseconds heartbeat_timeout{};
};

class Connector {
 public:
  static constexpr std::uint32_t kSelf = 0;
  // A PeerId is its slot (the low kSlotBits) and the slot's generation.
  static constexpr std::uint32_t kSlotBits = 12;
  static constexpr std::uint32_t kMaxPeers = 1U << kSlotBits;
  [[nodiscard]] static constexpr std::uint32_t slot_of(PeerId id) noexcept { return id.value & (kMaxPeers - 1); }

  // A frame written and its calls registered, that the link could not take yet.
  struct Encoded {
    Frame frame;
    std::uint64_t call_id = 0;  // of a lone notified MSG (0 for a BATCH)
    std::size_t count = 1;      // messages in the frame
  };

  struct Peer final : ChannelEvents {
    Peer(Connector& c, std::uint32_t i, std::string addr, std::size_t capacity)
        : connector{c}, index{i}, address{addr}, slot_address{std::move(addr)}, queue{capacity}, id{i} {}
    void on_frame(std::span<const std::byte> frame, std::size_t parts) override {
      connector.on_frame(*this, frame, parts);
    }
    void on_frame_in_parts(std::span<const std::byte> head, Payload& body) override {
      connector.on_frame(*this, head, 1, &body);
    }
    void on_writable() override { connector.on_writable(*this); }
    // Every push goes through here, so that the byte count stays true. The
    // bytes are counted before the push: the flusher may take the item at once.
    bool push(OutItem& item) {
      const std::size_t bytes = item.payload.size();
      queued_bytes.fetch_add(bytes, std::memory_order_relaxed);
      if (queue.try_push(item) == amsg::detail::PushResult::ok) return true;
      queued_bytes.fetch_sub(bytes, std::memory_order_relaxed);
      return false;
    }
    // The next item to send: those held while connecting first, in order.
    bool take(OutItem& item) {
      if (held.empty()) {
        if (!queue.try_pop(item)) return false;
      } else {
        item = std::move(held.front());
        held.pop_front();
        held_count.store(held.size(), std::memory_order_relaxed);
      }
      queued_bytes.fetch_sub(item.payload.size(), std::memory_order_relaxed);
      return true;
    }
    // Pushed with a PeerId this slot no longer has (it changed hands meanwhile).
    [[nodiscard]] bool stale(const OutItem& item) const noexcept {
      return item.peer != id.load(std::memory_order_relaxed);
    }
    [[nodiscard]] std::size_t queued() const noexcept {
      return queue.size() + held_count.load(std::memory_order_relaxed);
    }

    Connector& connector;
    const std::uint32_t index;  // the slot
    std::string address;        // on the executor: what it dials (adopt() sets it when the slot changes hands)
    std::string slot_address;   // under connect_mutex_: what connect() matches (set with the new id)
    amsg::detail::BoundedQueue<OutItem> queue;
    std::atomic<std::uint32_t> id;  // the PeerId value that names it now (slot and generation)
    std::atomic<bool> free{false};  // closed, nothing in flight, no use: connect() may reuse the slot
    std::atomic<bool> flush_posted{false};
    std::atomic<std::size_t> held_count{0};    // held.size(), for senders: the queue's bound covers both
    std::atomic<std::size_t> queued_bytes{0};  // payload bytes in the queue and held, for the byte bound
    std::atomic<std::uint32_t> uses{0};        // connect()s not ended by disconnect() (changed under connect_mutex_)

    // On the executor only.
    std::unique_ptr<Channel> channel;
    PeerState state = PeerState::connecting;
    bool loopback = false;  // its identity is ours: sends go the local way
    Clock::time_point last_rx{};
    Clock::time_point connecting_since{};  // when the current HELLO exchange began
    errc incompatible_code = errc::version_mismatch;
    std::string incompatible_reason;
    std::uint32_t max_payload = 0;  // the largest body the peer accepts (its HELLO_ACK); 0: not known yet
    std::deque<Encoded> backlog;    // the frames the link refused (and CANCELs behind them)
    bool hello_unsent = false;      // a new connection's HELLO the link refused: the tick sends it
    // Disconnected with calls in flight: the channel (and its heartbeats) stay
    // until they end, so each ends as it would have (ok, peer lost, ...).
    bool draining = false;
    PeerState state_before_close = PeerState::connecting;
    // Taken from the queue while connecting (nothing is sent before the
    // HELLO_ACK), so that their deadlines are kept meanwhile.
    std::deque<OutItem> held;
    std::deque<std::pair<Message, std::uint64_t>> local_backlog;  // local path: the inbox said full
    bool local_pump_running = false;
    std::vector<std::pair<std::promise<std::vector<std::string>>, Clock::time_point>> handler_queries;
    PeerCallCounters call_counters;  // written on the executor, read by peer_stats() from any thread

    // Published for other threads.
    mutable std::mutex info_mutex;
    std::condition_variable info_changed;
    PeerInfo info;
  };

  Connector(const SessionExecutor& executor, ConnectorOptions options, Calls& calls, Links& links, LocalPath& local,
            SessionCounters& counters, std::shared_ptr<spdlog::logger> log);
  ~Connector();

  // --- any thread ---
  // The same address gives the same peer (and one more use of it; a peer whose
  // uses had all ended is opened again). Throws NetworkError for a bad address.
  PeerId connect(const std::string& address);
  // Ends one use of the peer; after the last its connection closes (close()).
  void disconnect(PeerId id);
  // Null for a PeerId that names no peer (never given, or its slot was reused).
  [[nodiscard]] Peer* peer_at(PeerId id) const noexcept;
  // The peer in `slot` now (calls and cancellations record slots).
  [[nodiscard]] Peer* peer_in_slot(std::uint32_t slot) const noexcept;
  [[nodiscard]] std::uint32_t peer_count() const noexcept { return count_.load(std::memory_order_acquire); }
  [[nodiscard]] std::vector<PeerStats> peer_stats() const;
  bool wait_ready(PeerId id, std::chrono::milliseconds timeout);
  std::optional<PeerInfo> peer_info(PeerId id) const;
  void set_identity(const std::string& identity);
  // Queues `item` for `peer`; wait: block while full. The item is moved from only on ok.
  SendStatus enqueue(Peer& p, OutItem& item, bool wait, const std::atomic<Lifecycle>& state);
  [[nodiscard]] bool has_room(const Peer& p, bool notified) const noexcept;
  void schedule_flush(Peer& p);

  // --- on the executor ---
  // At start: from now on connect() dials at once; dials every peer connected before.
  void start();
  void open(Peer& p);
  // A free slot given to `address` by connect(): its counters start again, then it dials.
  void adopt(Peer& p, std::string address);
  void query_handlers(Peer& p, std::promise<std::vector<std::string>> promise);
  // Heartbeat: PING every peer; declare silent ones lost, fail calls to unreachable ones.
  void tick(Clock::time_point now);
  // The current HELLO frame (the handler list may change): set by the session.
  std::function<Payload()> make_hello;
  // Shutdown: ends what is queued (node shutting down) and stops flushing.
  void stop();
  void fail_queued();
  // The caller cancelled call `call_id`, sent to `peer`: a CANCEL follows the
  // MSG (or the call to this node itself is cancelled in its manager).
  void send_cancel(std::uint32_t peer, std::uint64_t call_id);
  // The caller cancelled a call not yet sent to `peer`: ended now if it is held
  // (the peer is connecting), else when the flusher takes it.
  void cancel_unsent(std::uint32_t peer, const CallCancel& c);
  // An item that was never sent ends "disconnected" (counted when not notified).
  void end_disconnected(OutItem& item);

 private:
  friend struct Peer;
  void flush(Peer& p);
  void open_all(std::uint32_t count);
  bool admit(Peer& p, OutItem& item, Clock::time_point now);
  bool send_out(Peer& p, std::vector<OutItem>& items, Clock::time_point now);
  bool send_backlog(Peer& p);
  // `body`: the frame came in two parts, `frame` then `body` (a REPLY's
  // payload, taken without a copy when `frame` is its whole header).
  void on_frame(Peer& p, std::span<const std::byte> frame, std::size_t parts, Payload* body = nullptr);
  void on_reply(Peer& p, std::span<const std::byte> frame, Payload* body = nullptr);
  void on_hello_ack(Peer& p, std::span<const std::byte> frame);
  void on_error_frame(Peer& p, std::span<const std::byte> frame);
  void set_state(Peer& p, PeerState state);
  void fail_unreachable(Peer& p);
  void close(Peer& p);
  void reopen(Peer& p);
  void end_queued(Peer& p);  // disconnected: what waits ends unsent
  void finish_close(Peer& p);
  // The slot's next PeerId value: one generation on. A slot at its last
  // generation is never reused (a PeerId must not name a later peer).
  [[nodiscard]] static std::uint32_t next_id(std::uint32_t id) noexcept {
    return ((id >> kSlotBits) + 1) << kSlotBits | (id & (kMaxPeers - 1));
  }
  [[nodiscard]] static bool last_generation(std::uint32_t id) noexcept {
    return (id >> kSlotBits) == (~std::uint32_t{0} >> kSlotBits);
  }
  [[nodiscard]] static std::uint64_t calls_in_flight(const Peer& p) noexcept;
  void hold(Peer& p);
  void arm_held_timer(Clock::time_point deadline);
  void expire_held();
  void set_incompatible(Peer& p, errc code, std::string reason);
  void declare_lost(Peer& p);
  void malformed(const Peer& p, std::string_view why);
  void on_writable(Peer& p);

  const SessionExecutor& executor_;
  const ConnectorOptions options_;
  Calls& calls_;
  Links& links_;
  LocalPath& local_;
  SessionCounters& counters_;
  std::shared_ptr<spdlog::logger> log_;
  std::string identity_;

  std::vector<std::unique_ptr<Peer>> peers_;
  std::atomic<std::uint32_t> count_{0};
  mutable std::mutex connect_mutex_;
  std::atomic<bool> started_{false};  // changed under connect_mutex_

  // On the executor.
  bool stopped_ = false;
  bool collecting_ = false;         // a reader is handling a frame: see schedule_flush()
  std::vector<Peer*> collected_;    // peers to flush once it is done
  std::vector<OutItem> out_batch_;  // flush()'s scratch
  std::vector<std::span<const std::byte>> batch_entries_;
  std::uint64_t ping_nonce_ = 0;
  asio::steady_timer held_timer_;  // the earliest deadline among held items
  Clock::time_point held_timer_at_ = Clock::time_point::max();
  RateLimitedLog malformed_log_;
};

}  // namespace amsg::net
