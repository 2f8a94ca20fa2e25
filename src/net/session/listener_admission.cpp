// The listener's budgets and turns: what each client may have in this node,
// and the order in which clients' messages go into the manager. See listener.hpp.

#include <fmt/format.h>

#include <algorithm>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>

#include "session/listener.hpp"

namespace amsg::net {
namespace {
// A client that becomes busy while another one is keeps the node in turns this
// long: a client that sends one call after another is between two calls most
// of the time, and its next one must not find the flood's share grown back.
constexpr std::chrono::milliseconds kContentionMemory{100};
}  // namespace

bool Listener::over_budget(const Client& c, std::size_t bytes) const noexcept {
  return c.inflight >= options_.max_inflight_per_client ||
         (c.inflight > 0 && c.inflight_bytes + bytes > options_.max_inflight_bytes_per_client);
}

// No other client that could be hurt: one that said HELLO and reads.
bool Listener::alone(std::string_view key) const {
  return std::none_of(clients_.begin(), clients_.end(),
                      [key](const auto& e) { return e.first != key && e.second.hello && !e.second.cut_off; });
}

// While two or more clients have work here, each has its share in the manager.
bool Listener::may_run(const Client& c) const noexcept {
  return c.running < options_.fair_share || (busy_clients_ < 2 && now_ >= contended_until_);
}

// One MSG that passed its checks: over budget, waiting its turn, or into the manager.
void Listener::admit(std::string_view key, Message&& m, std::uint64_t call_id, std::uint32_t max_response,
                     std::string&& idem_key) {
  const std::size_t bytes = m.payload.size();
  Client* c = &clients_[std::string{key}];
  if (over_budget(*c, bytes)) {
    if (!alone(key)) {
      refuse_overloaded(key, call_id, *c);
      if (!idem_key.empty())
        end_of_key(idem_key, wire::Status::error, wire::ErrorCode::overloaded, "overloaded", {}, false);
      // Refused for longer than a heartbeat timeout (time enough to have seen
      // it) without backing off, and a whole budget's worth refused within one
      // heartbeat timeout: its refusals would cost this node as much as serving
      // it. (A burst refused at once is not counted.)
      const auto window = options_.heartbeat_timeout;
      if (c->first_refusal == Clock::time_point{} || now_ - c->last_refusal >= window) {
        c->first_refusal = now_;  // a new episode
        c->window_start = now_;
        c->late_refusals = 0;
      } else if (now_ - c->first_refusal >= window) {
        if (now_ - c->window_start >= window) {
          c->window_start = now_;
          c->late_refusals = 0;
        }
        if (++c->late_refusals > options_.max_inflight_per_client) {
          cut_off(std::string{key}, *c,
                  fmt::format("{} messages refused overloaded within {} ms, after refusals for longer than that",
                              c->late_refusals, window.count()));
        }
      }
      c->last_refusal = now_;
      return;
    }
    if (!c->over_budget) {  // alone: slowed instead, reading pauses until its messages end
      c->over_budget = true;
      ++over_budget_;
    }
  }
  const std::uint32_t slot = free_slots_.back();     // frames are read only with kMaxBatch slots free
  if (call_id != 0) c->calls.insert(call_id, slot);  // first: it may throw (growing), and nothing is taken yet
  free_slots_.pop_back();
  Inflight& f = slab_[slot];
  f.client.assign(key);
  f.call_id = call_id;
  f.max_response = max_response;
  f.bytes = bytes;
  f.running = false;
  f.idem_key = std::move(idem_key);
  if (c->inflight++ == 0) {
    if (busy_clients_ != 0) contended_until_ = now_ + kContentionMemory;
    ++busy_clients_;
  }
  c->inflight_bytes += bytes;
  inflight_bytes_ += bytes;
  if (c->waiting.empty() && !pump_running_ && may_run(*c)) {
    const SendStatus s = ingress_.try_submit(std::move(m), slot);
    if (s != SendStatus::full) {
      submitted(*c, slot, s);
      return;
    }
  }
  c->waiting.push_back(Waiting{std::move(m), slot});  // NOLINT(bugprone-use-after-move): refused when full, still ours
  if (!c->in_turns) {
    c->in_turns = true;
    turns_.emplace_back(key);
  }
  if (!pump_running_) feed();
}

// Turns until the inbox is full; then the pump waits for room.
void Listener::feed() {
  if (take_turns()) return;
  pump_running_ = true;
  asio::co_spawn(executor_.get(), pump(), asio::detached);
}

void Listener::refuse_overloaded(std::string_view key, std::uint64_t call_id, const Client& c) {
  counters_.refused_overloaded.add();
  overload_log_.warn(*log_,
                     "client over its budget: {} messages and {} bytes here (limits {} and {}); refused "
                     "err(overloaded)",
                     c.inflight, c.inflight_bytes, options_.max_inflight_per_client,
                     options_.max_inflight_bytes_per_client);
  if (call_id != 0) {
    reply_error(key, call_id, wire::ErrorCode::overloaded, "overloaded");
  } else {
    send_error(key, wire::ErrorCode::overloaded, "overloaded");
  }
}

// What try_submit or async_submit said about the message in `slot`. False when
// the inbox was full (the message is still the caller's).
bool Listener::submitted(Client& c, std::uint32_t slot, SendStatus s) {
  if (s == SendStatus::ok) {
    slab_[slot].running = true;
    ++c.running;
    return true;
  }
  if (s == SendStatus::full) return false;
  counters_.refused_shutting_down.add();
  const Inflight& f = slab_[slot];
  if (f.call_id != 0) reply_error(f.client, f.call_id, wire::ErrorCode::shutting_down, kRemoteShuttingDown);
  if (!f.idem_key.empty()) {
    end_of_key(f.idem_key, wire::Status::error, wire::ErrorCode::shutting_down, kRemoteShuttingDown, {}, false);
  }
  end(slot);
  return true;
}

// Messages that wait go into the manager one per client per round, each client
// within its share. False when the inbox is full: the turn stays at the front.
bool Listener::take_turns() {
  bool progress = true;
  while (progress && !turns_.empty()) {
    progress = false;
    for (std::size_t n = turns_.size(); n > 0 && !turns_.empty(); --n) {
      std::string key = std::move(turns_.front());
      turns_.pop_front();
      Client& c = clients_[key];
      if (c.waiting.empty()) {
        c.in_turns = false;
        continue;
      }
      if (!may_run(c)) {
        turns_.push_back(std::move(key));
        continue;
      }
      Waiting& w = c.waiting.front();
      const std::uint32_t slot = w.slot;
      const SendStatus s = ingress_.try_submit(std::move(w.message), slot);
      if (s == SendStatus::full) {
        turns_.push_front(std::move(key));
        return false;
      }
      c.waiting.pop_front();
      if (c.waiting.empty()) {
        c.in_turns = false;
      } else {
        turns_.push_back(key);
      }
      submitted(c, slot, s);  // may end the message, never erases the client (see erasable())
      progress = true;
    }
  }
  return true;
}

// The inbox was full: wait for room with the message whose turn it is, then
// go on taking turns. Reading stays paused meanwhile.
asio::awaitable<void> Listener::pump() {
  while (!take_turns()) {
    const std::string key = turns_.front();  // take_turns() left the blocked client in front
    Client& c = clients_[key];
    Waiting w = std::move(c.waiting.front());
    c.waiting.pop_front();
    if (c.waiting.empty()) {
      c.in_turns = false;
      turns_.pop_front();
    } else {
      turns_.push_back(key);
      turns_.pop_front();
    }
    const SendStatus s = co_await ingress_.async_submit(std::move(w.message), w.slot);
    submitted(clients_[key], w.slot, s == SendStatus::full ? SendStatus::closed : s);
  }
  pump_running_ = false;
  if (accepting()) resume_reading();
}

// A message has ended (its REPLY left or was dropped, or the manager released
// it): its slot, its bytes and its client's budget are free again.
void Listener::end(std::uint32_t slot) {
  const bool was_accepting = accepting();
  Inflight& f = slab_[slot];
  auto it = clients_.find(f.client);
  if (it != clients_.end()) {
    Client& c = it->second;
    if (f.running) --c.running;
    if (f.call_id != 0) c.calls.erase(f.call_id, slot);  // ended: a CANCEL no longer finds it
    c.inflight_bytes -= f.bytes;
    if (--c.inflight == 0) --busy_clients_;
    if (c.inflight <= options_.max_inflight_per_client * 3 / 4 &&
        c.inflight_bytes <= options_.max_inflight_bytes_per_client * 3 / 4) {
      c.first_refusal = Clock::time_point{};  // it backed off
      c.late_refusals = 0;
      if (c.over_budget) {
        c.over_budget = false;
        --over_budget_;
      }
    }
  }
  inflight_bytes_ -= f.bytes;
  if (f.cancelled) ingress_.forget_cancel(slot);  // before the slot (the token) is used again
  f.cancelled = false;
  f.call_id = 0;
  f.running = false;
  f.bytes = 0;
  f.idem_key.clear();
  free_slots_.push_back(slot);
  if (!turns_.empty() && !pump_running_) {
    now_ = Clock::now();
    feed();
  }
  if (!was_accepting && accepting()) resume_reading();
}

// The client no longer wants the outcome of its call `call_id`. Still waiting
// its turn here: it never runs, and is answered cancelled now. In the manager:
// cancelled there (never runs if still queued; a running handler gets asio's
// cancellation), answered with whatever outcome it then has. Unknown or ended:
// nothing (the REPLY may be on its way). An idempotent call is not cancelled:
// other callers may be waiting on its outcome.
void Listener::on_cancel(std::string_view key, std::uint64_t call_id) {
  const auto client = clients_.find(std::string{key});
  if (client == clients_.end()) return;
  Client& c = client->second;
  const std::uint32_t slot = c.calls.find(call_id);
  if (slot == CallIndex::kNotFound || slab_[slot].call_id != call_id) return;
  Inflight* const it = &slab_[slot];
  if (it->cancelled || !it->idem_key.empty()) return;
  auto waiting = std::find_if(c.waiting.begin(), c.waiting.end(), [slot](const Waiting& w) { return w.slot == slot; });
  if (waiting != c.waiting.end()) {
    c.waiting.erase(waiting);  // (take_turns() passes over a client left with nothing waiting)
    counters_.cancelled_waiting.add();
    send_outcome(key, call_id, 0, wire::Status::cancelled, wire::ErrorCode::cancelled, "cancelled", {});
    end(slot);
    return;
  }
  it->cancelled = true;
  ingress_.cancel(slot);
}

// A client with messages here stays known until they have ended: they account to it.
bool Listener::erasable(const std::string& key) const {
  auto it = clients_.find(key);
  return it == clients_.end() || it->second.inflight == 0;
}

}  // namespace amsg::net
