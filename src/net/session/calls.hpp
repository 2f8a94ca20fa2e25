#pragma once
// Calls: the session's waiting calls and where each outcome goes.
//
// Every notified message gets an entry when it is sent (or handed to this
// node's own manager): its id text, type, deadline and completion. Exactly one
// outcome ends it: the peer's REPLY, its deadline, a transport failure
// (peer lost...), or shutdown. The outcome goes to the caller's completion
// (call()) or, in order, onto the notification channel (notified send()).
//
// The outstanding count (calls queued, sent, or on their way to the channel)
// is what senders wait on; it is the only part used off the executor.

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <queue>
#include <string>
#include <utility>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/steady_timer.hpp>

#include "amsg/communication_layer.hpp"
#include "concurrency/event_count.hpp"
#include "concurrency/signal.hpp"
#include "session/call.hpp"
#include "session/call_table.hpp"
#include "session/counters.hpp"

namespace amsg::net {

class Calls {
 public:
  Calls(const SessionExecutor& executor, SessionCounters& counters, std::size_t max_outstanding);

  void attach(Ingress ingress) { ingress_ = std::move(ingress); }
  // Where each peer's call counters are (set once, before start()).
  void set_peer_counters(std::function<PeerCallCounters*(std::uint32_t)> lookup) { peer_counters_ = std::move(lookup); }

  // --- any thread ---
  [[nodiscard]] bool has_room() const noexcept {
    return outstanding_.load(std::memory_order_relaxed) < max_outstanding_;
  }
  void reserve() noexcept { outstanding_.fetch_add(1, std::memory_order_acq_rel); }
  void release() noexcept;
  [[nodiscard]] std::size_t outstanding() const noexcept { return outstanding_.load(std::memory_order_acquire); }
  // Senders waiting for room (peer queue or outstanding limit).
  amsg::detail::Signal& space() noexcept { return space_; }
  // Shutdown waits here for the outstanding count to reach 0.
  bool wait_all_ended(Clock::time_point until);

  // --- on the executor ---
  void start();
  void stop();
  // Registers a call (the caller fills in its id text, type and completion) and
  // arms its deadline.
  std::pair<std::uint64_t, Pending&> add(std::uint32_t peer, Clock::time_point now, Clock::time_point deadline);
  [[nodiscard]] const Pending* find(std::uint64_t call_id) noexcept { return table_.find(call_id); }
  // Ends the call with this outcome (nothing when it has ended already);
  // `replied`: the outcome came back from the peer (it counts as a round trip).
  void complete(std::uint64_t call_id, Notification&& n, bool replied = false);
  // Ends a notified item that never became a call (never sent).
  void end_unsent(OutItem& item, Notification&& n);
  // Ends the calls sent to `peer` before `sent_before`, in the order they were sent.
  void fail_peer(std::uint32_t peer, errc code, const std::string& text, Clock::time_point sent_before);
  // Shutdown: ends every call with node shutting down, past the channel's capacity.
  void fail_all();

 private:
  void count(const Pending& pd, const Notification& n, bool replied);
  void route(Pending&& pd, Notification&& n);
  void publish(Notification&& n);
  asio::awaitable<void> publisher();
  asio::awaitable<void> deadline_loop();

  const SessionExecutor& executor_;
  SessionCounters& counters_;
  const std::size_t max_outstanding_;
  std::function<PeerCallCounters*(std::uint32_t)> peer_counters_;
  Ingress ingress_;
  std::atomic<std::size_t> outstanding_{0};
  amsg::detail::Signal space_;
  amsg::detail::EventCount all_ended_;
  std::atomic<bool> shutting_down_{false};  // someone waits in wait_all_ended()

  // On the executor.
  CallTable<Pending> table_;
  std::uint64_t next_seq_ = 0;
  std::priority_queue<std::pair<Clock::time_point, std::uint64_t>,
                      std::vector<std::pair<Clock::time_point, std::uint64_t>>, std::greater<>>
      deadlines_;
  asio::steady_timer deadline_timer_;
  Clock::time_point deadline_armed_ = Clock::time_point::max();
  bool stopped_ = false;
  std::deque<Notification> publish_backlog_;
  bool publisher_running_ = false;
};

}  // namespace amsg::net
