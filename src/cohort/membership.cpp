// CohortMembership: announces a worker to its leader, and again whenever the
// hello exchange with the leader is a new one (PeerInfo::connections moved).

#include "amsg/net/cohort_membership.hpp"

#include <condition_variable>
#include <mutex>

#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include "cohort/join_text.hpp"

namespace amsg::net {

struct CohortMembership::State : std::enable_shared_from_this<CohortMembership::State> {
  State(Node& worker, PeerId leader_peer, const std::string& own, std::optional<std::uint32_t> asked,
        std::chrono::milliseconds retry_after)
      : node{worker},
        leader{leader_peer},
        payload_text{cohort_text::join_payload(asked, own)},
        retry{retry_after},
        timer{worker.executor()} {}

  // Looks at the connection to the leader every kLook; announces when it is a
  // new one (and no announcement is on its way, and the last failure is `retry` old).
  void look() {
    {
      std::lock_guard lock{mutex};
      if (stopped) return;
      const auto info = node.peer_info(leader);
      const bool ready = info && info->state == PeerState::ready;
      if (ready && !in_flight && info->connections != joined_connections &&
          std::chrono::steady_clock::now() >= next_try) {
        in_flight = true;
        announce(info->connections);
      }
    }
    timer.expires_after(kLook);
    timer.async_wait([self = shared_from_this()](const std::error_code& ec) {
      if (!ec) self->look();
    });
  }

  // Under the mutex; the answer comes back on the node's executor.
  void announce(std::uint64_t connections) {
    node.call(
        leader, std::string{cohort_text::kJoinType}, Payload::copy_of(payload_text),
        CallOptions{"cohort-join", std::chrono::seconds{5}}, [self = shared_from_this(), connections](Notification n) {
          std::lock_guard lock{self->mutex};
          self->in_flight = false;
          const auto given = n.is_success() ? cohort_text::parse_rank(n.payload.as_string_view()) : std::nullopt;
          if (given) {
            self->rank = given;
            self->joined_connections = connections;
            ++self->joins;
            self->last_error.clear();
            self->joined.notify_all();
          } else {
            self->last_error = n.is_success() ? "not a rank: " + std::string{n.payload.as_string_view()} : n.error;
            self->next_try = std::chrono::steady_clock::now() + self->retry;
          }
        });
  }

  static constexpr std::chrono::milliseconds kLook{50};
  Node& node;
  const PeerId leader;
  const std::string payload_text;
  const std::chrono::milliseconds retry;
  asio::steady_timer timer;  // on the node's executor only
  mutable std::mutex mutex;
  std::condition_variable joined;
  bool stopped = false;
  bool in_flight = false;
  std::uint64_t joined_connections = 0;  // the leader connection the last ok announcement went over
  std::chrono::steady_clock::time_point next_try{};
  std::optional<std::uint32_t> rank;
  std::uint64_t joins = 0;
  std::string last_error;
};

CohortMembership::CohortMembership(Node& worker, const std::string& leader_address, const std::string& own_address,
                                   std::optional<std::uint32_t> rank, std::chrono::milliseconds retry)
    : state_{std::make_shared<State>(worker, worker.connect(leader_address), own_address, rank, retry)} {
  asio::post(worker.executor(), [state = state_] { state->look(); });
}

CohortMembership::~CohortMembership() {
  {
    std::lock_guard lock{state_->mutex};
    state_->stopped = true;
  }
  asio::post(state_->node.executor(), [state = state_] { state->timer.cancel(); });
  state_->node.disconnect(state_->leader);  // the use the constructor's connect() began
}

std::optional<std::uint32_t> CohortMembership::rank() const {
  std::lock_guard lock{state_->mutex};
  return state_->rank;
}

std::uint64_t CohortMembership::joins() const {
  std::lock_guard lock{state_->mutex};
  return state_->joins;
}

std::string CohortMembership::last_error() const {
  std::lock_guard lock{state_->mutex};
  return state_->last_error;
}

bool CohortMembership::wait_joined(std::chrono::milliseconds timeout) {
  std::unique_lock lock{state_->mutex};
  return state_->joined.wait_for(lock, timeout, [&] { return state_->joins > 0; });
}

}  // namespace amsg::net
