#pragma once
// Listener: the listening half of a session (Seastar RPC's `server` and its
// connections).
//
// Frames from connecting peers ("clients") arrive through every link the node
// listens on. A MSG becomes a Message in the manager's inbox; when it asked for
// a notification it takes an inflight slot (the client's key and call id) until
// its REPLY has left. Workers deliver outcomes into a bounded queue; one flush
// per burst sends them, one frame per client per burst. A REPLY the link cannot
// take yet waits in a per-client backlog and frees its slot there, so a client
// that stops reading holds no slot, only its own backlog, bounded in bytes: past
// the bound the client is cut off (its backlog dropped, its frames ignored until
// it says HELLO again). Reading pauses while slots run short or the inbox is full.

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <spdlog/logger.h>
#include <asio/awaitable.hpp>

#include "amsg/communication_layer.hpp"
#include "concurrency/bounded_queue.hpp"
#include "link/link.hpp"
#include "session/call.hpp"
#include "session/counters.hpp"
#include "session/links.hpp"
#include "session/rate_limited_log.hpp"
#include "wire/codec.hpp"

namespace amsg::net {

struct ListenerOptions {
  std::size_t max_inflight = 0;
  std::size_t max_payload = 0;
  std::chrono::milliseconds heartbeat_timeout{};
  std::size_t max_backlog_bytes_per_client = 0;
};

class Listener {
 public:
  Listener(const SessionExecutor& executor, ListenerOptions options, const Links& links, SessionCounters& counters,
           std::shared_ptr<spdlog::logger> log, const std::atomic<Lifecycle>& state);
  ~Listener();

  [[nodiscard]] std::shared_ptr<CommunicationLayer> layer();
  // The events the link at `index` (in Links::all()) reports to.
  ListenerEvents& events_for(std::size_t index);
  std::function<Payload()> make_hello_ack;  // the current HELLO_ACK frame: set by the session
  std::function<void()> on_drained;         // the manager drained (CommunicationLayer::on_drained)

  // --- on the executor ---
  void tick(Clock::time_point now);  // heartbeat: PING clients, forget long-gone ones
  void say_bye();                    // shutdown begins: BYE to every client that said HELLO
  void stop();                       // the manager drained: send the last replies, stop reading
  // After the executor stopped: the last replies, waiting up to `linger` for room.
  void final_flush(std::chrono::milliseconds linger);

 private:
  class Layer;
  struct Port;
  struct Client {
    Clock::time_point last_rx{};
    bool hello = false;
    std::uint32_t max_payload = 0;  // announced in its HELLO; 0: not known
    std::size_t backlog_bytes = 0;  // frames waiting in backlog_ for it
    bool cut_off = false;           // it stopped reading: frames ignored until its next HELLO
  };
  struct Inflight {
    std::string client;  // link index byte + the link's client name
    std::uint64_t call_id = 0;
    std::uint32_t max_response = 0;  // the client's announced limit (0: not known)
  };
  struct ReplyItem {
    std::uint64_t slot = 0;
    Notification notification;
  };
  struct Backlogged {
    Payload frame;
    std::size_t replies = 0;  // REPLYs in it (counted as dropped if it never leaves)
  };

  bool accepting() const noexcept;
  void on_frame(std::string_view key, std::span<const std::byte> frame, std::size_t parts);
  void on_batch(std::string_view key, std::span<const std::byte> frame, std::uint32_t max_response);
  void on_msg(std::string_view key, std::span<const std::byte> frame, std::uint32_t max_response);
  void on_hello(std::string_view key, std::span<const std::byte> frame);
  void refuse(std::string_view key, std::span<const std::byte> frame, wire::ErrorCode code, std::string_view text);
  void reply_error(std::string_view key, std::uint64_t call_id, wire::ErrorCode code, std::string_view text);
  void send_error(std::string_view key, wire::ErrorCode code, std::string_view text);
  void malformed(std::string_view why);
  // `must`: REPLY, HELLO_ACK and BYE wait in the client's backlog when the link
  // says again; PING and ERROR frames are dropped instead.
  void send(std::string_view key, Payload&& frame, bool must, std::size_t replies = 0);
  void cut_off(const std::string& key, Client& client);
  [[nodiscard]] bool is_cut_off(std::string_view key) const;
  LinkSend try_send(std::string_view key, Payload& frame);
  bool drain_backlog();  // true when a frame left
  void forget(const std::string& key);
  void deliver(std::uint64_t slot, Notification&& n);
  void flush_replies();
  void send_replies(std::size_t first, std::size_t last);
  void free_slot(std::uint32_t slot);
  void resume_reading();
  asio::awaitable<void> pump();

  const SessionExecutor& executor_;
  const ListenerOptions options_;
  const Links& links_;
  SessionCounters& counters_;
  std::shared_ptr<spdlog::logger> log_;
  const std::atomic<Lifecycle>& state_;
  Ingress ingress_;
  std::shared_ptr<Layer> layer_;
  std::vector<std::unique_ptr<Port>> ports_;

  // Cross-thread: outcomes from workers.
  amsg::detail::BoundedQueue<ReplyItem> replies_;
  std::atomic<bool> replies_posted_{false};

  // On the executor.
  bool stopped_ = false;
  std::unordered_map<std::string, Client> clients_;
  std::unordered_map<std::string, std::deque<Backlogged>> backlog_;
  std::vector<Inflight> slab_;
  std::vector<std::uint32_t> free_slots_;
  std::deque<std::pair<Message, std::uint64_t>> waiting_;  // read, waiting for inbox room
  bool pump_running_ = false;
  std::vector<std::span<const std::byte>> batch_entries_;
  std::vector<ReplyItem> reply_batch_;
  std::string key_;  // on_frame()'s scratch
  RateLimitedLog malformed_log_;
  RateLimitedLog drop_log_;
  RateLimitedLog cut_off_log_;
  std::uint64_t cut_offs_ = 0;  // clients cut off so far: on_batch() checks its client only when it changes
};

}  // namespace amsg::net
