// Cohort membership: static members, announcements, and the watch that reports
// joins and leaves. The fan-out operations are in fanout.cpp.

#include "amsg/net/cohort.hpp"

#include <future>
#include <stdexcept>

#include <fmt/format.h>
#include <asio/post.hpp>
#include <asio/use_future.hpp>

#include "amsg/errors.hpp"
#include "amsg/handler.hpp"
#include "cohort/cohort_state.hpp"
#include "cohort/join_text.hpp"

namespace amsg::net {
using cohort_text::parse_rank;

std::uint32_t Cohort::State::add(const std::string& address, std::optional<std::uint32_t> rank) {
  std::unique_lock lock{mutex};
  if (stopped) throw std::runtime_error("amsg: this cohort is gone");
  for (const auto& [r, entry] : members) {
    if (entry.address != address) continue;
    if (rank && *rank != r) {
      throw std::invalid_argument(fmt::format("amsg: '{}' is rank {} in this cohort, not {}", address, r, *rank));
    }
    return r;
  }
  if (rank) {
    if (auto it = members.find(*rank); it != members.end()) {
      throw std::invalid_argument(fmt::format("amsg: rank {} is taken by '{}'", *rank, it->second.address));
    }
  } else {
    std::uint32_t free = 0;
    for (const auto& [r, entry] : members) {
      if (r != free) break;
      ++free;
    }
    rank = free;
  }
  const PeerId peer = node.connect(address);  // returns at once; throws for an address no link serves
  members.emplace(*rank, Entry{address, peer});
  return *rank;
}

void Cohort::State::schedule_look() {
  timer.expires_after(options.watch_interval);
  timer.async_wait([self = shared_from_this()](const std::error_code& ec) {
    if (!ec) self->look();
  });
}

void Cohort::State::look() {
  std::vector<CohortEvent> events;
  std::vector<std::function<void(const CohortEvent&)>> to_call;
  {
    std::lock_guard lock{mutex};
    if (stopped) return;
    events.swap(removed);  // ready members that remove() took out: they left
    for (auto& [rank, entry] : members) {
      const auto info = node.peer_info(entry.peer);
      const bool ready = info && (info->state == PeerState::ready || info->state == PeerState::local);
      const std::uint64_t connections = info ? info->connections : 0;
      const bool reconnected = ready && entry.ready && connections != entry.connections;
      if (entry.ready && (!ready || reconnected)) events.push_back({CohortEvent::Kind::left, rank, entry.address});
      if (ready && (!entry.ready || reconnected)) events.push_back({CohortEvent::Kind::joined, rank, entry.address});
      entry.ready = ready;
      entry.connections = connections;
    }
    if (!events.empty()) to_call = callbacks;
  }
  if (!events.empty()) {
    std::lock_guard calling{callback_mutex};
    if (std::lock_guard lock{mutex}; stopped) return;
    for (const auto& event : events) {
      for (const auto& callback : to_call) callback(event);
    }
  }
  changed.notify_all();  // after the callbacks: wait_ready() returns once its joins were reported
  schedule_look();
}

Cohort::Cohort(Node& leader, CohortOptions options) : node_{leader}, state_{std::make_shared<State>(leader, options)} {
  asio::post(node_.executor(), [state = state_] {
    std::unique_lock lock{state->mutex};
    if (!state->stopped) {
      lock.unlock();
      state->schedule_look();
    }
  });
}

Cohort::~Cohort() {
  bool serving_joins = false;
  {
    std::lock_guard lock{state_->mutex};
    state_->stopped = true;
    serving_joins = state_->serving_joins;
  }
  if (serving_joins) node_.manager().remove_handler(cohort_text::kJoinType);
  {
    std::lock_guard lock{state_->mutex};
    for (const auto& [rank, entry] : state_->members) node_.disconnect(entry.peer);  // the cohort's uses end
  }
  { std::lock_guard wait_for_callbacks{state_->callback_mutex}; }  // none runs after this returns
  // The timer lives on the node's executor: cancel it there. The State outlives
  // this object in the posted function, and the watch stops at `stopped`.
  asio::post(node_.executor(), [state = state_] { state->timer.cancel(); });
}

std::uint32_t Cohort::add(const std::string& address, std::optional<std::uint32_t> rank) {
  return state_->add(address, rank);
}

bool Cohort::remove(std::uint32_t rank) {
  std::lock_guard lock{state_->mutex};
  const auto it = state_->members.find(rank);
  if (it == state_->members.end()) return false;
  if (it->second.ready) state_->removed.push_back({CohortEvent::Kind::left, rank, it->second.address});
  node_.disconnect(it->second.peer);  // the cohort's use of it ends (add() was one)
  state_->members.erase(it);
  return true;
}

void Cohort::accept_joins() {
  std::lock_guard lock{state_->mutex};
  if (state_->serving_joins) return;
  // The announcement's payload: "<rank or *> <address>"; the answer: the rank.
  std::weak_ptr<State> weak = state_;
  node_.manager().register_handler(
      std::string{cohort_text::kJoinType}, make_handler([weak](Message& msg) -> asio::awaitable<void> {
        auto state = weak.lock();
        if (!state) throw std::runtime_error("amsg: this cohort is gone");
        const std::string_view text = msg.payload.as_string_view();
        const auto space = text.find(' ');
        if (space == std::string_view::npos || space + 1 == text.size()) {
          throw std::invalid_argument("amsg: a join names a rank (or *) and an address");
        }
        std::optional<std::uint32_t> rank;
        if (text.substr(0, space) != "*") {
          rank = parse_rank(text.substr(0, space));
          if (!rank) throw std::invalid_argument(fmt::format("amsg: bad rank '{}'", text.substr(0, space)));
        }
        const std::uint32_t assigned = state->add(std::string{text.substr(space + 1)}, rank);
        msg.response = Payload::copy_of(std::to_string(assigned));
        co_return;
      }));
  state_->serving_joins = true;
}

std::vector<CohortMember> Cohort::members() const {
  std::vector<CohortMember> out;
  std::lock_guard lock{state_->mutex};
  out.reserve(state_->members.size());
  for (const auto& [rank, entry] : state_->members) {
    CohortMember m;
    m.rank = rank;
    m.address = entry.address;
    m.peer = entry.peer;
    if (auto info = node_.peer_info(entry.peer)) {
      m.state = info->state;
      m.identity = std::move(info->identity);
      m.handlers = std::move(info->handlers);
    }
    out.push_back(std::move(m));
  }
  return out;
}

std::size_t Cohort::ready_count() const {
  // As the watch last saw them, so that it agrees with the joins on_change() reported.
  std::lock_guard lock{state_->mutex};
  std::size_t n = 0;
  for (const auto& [rank, entry] : state_->members) n += entry.ready ? 1 : 0;
  return n;
}

std::optional<PeerId> Cohort::peer(std::uint32_t rank) const {
  std::lock_guard lock{state_->mutex};
  auto it = state_->members.find(rank);
  if (it == state_->members.end()) return std::nullopt;
  return it->second.peer;
}

bool Cohort::wait_ready(std::size_t count, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (ready_count() < count) {
    std::unique_lock lock{state_->mutex};
    // Woken after each look (every watch_interval), or at the deadline.
    if (state_->changed.wait_until(lock, until) == std::cv_status::timeout) {
      lock.unlock();
      return ready_count() >= count;
    }
  }
  return true;
}

void Cohort::on_change(std::function<void(const CohortEvent&)> callback) {
  std::lock_guard lock{state_->mutex};
  state_->callbacks.push_back(std::move(callback));
}

std::uint32_t Cohort::join(Node& worker, const std::string& leader_address, const std::string& own_address,
                           std::optional<std::uint32_t> rank, std::chrono::milliseconds timeout) {
  if (timeout <= std::chrono::milliseconds{0})
    throw std::invalid_argument("amsg: Cohort::join needs a positive timeout");
  const PeerId leader = worker.connect(leader_address);
  auto answer = worker.call(leader, std::string{cohort_text::kJoinType},
                            Payload::copy_of(cohort_text::join_payload(rank, own_address)),
                            CallOptions{"cohort-join", timeout}, asio::use_future);
  // The call has the deadline: it ends by then (a little later at most).
  if (answer.wait_for(timeout + std::chrono::seconds{5}) != std::future_status::ready) {
    throw NetworkError(fmt::format("amsg: the leader at '{}' did not answer the join", leader_address));
  }
  const Notification n = answer.get();
  if (!n.is_success()) {
    throw NetworkError(fmt::format("amsg: joining the cohort at '{}' failed: {}", leader_address, n.error));
  }
  const auto assigned = parse_rank(n.payload.as_string_view());
  if (!assigned) {
    throw NetworkError(fmt::format("amsg: the leader at '{}' answered the join with '{}', not a rank", leader_address,
                                   n.payload.as_string_view()));
  }
  return *assigned;
}

}  // namespace amsg::net
