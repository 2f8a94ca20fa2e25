#pragma once
/// @file
/// amsg::net::CohortMembership: a worker's standing membership in a leader's
/// cohort. It announces the worker (as Cohort::join() does) and announces it
/// again whenever its connection to the leader is a new one: a leader that
/// restarted, or came back after a network cut, learns of the worker again
/// without the worker restarting.
///
/// @code
///   Node worker{{.listen = {"tcp://10.0.0.2:5555"}}};
///   worker.start();
///   CohortMembership membership{worker, "tcp://10.0.0.1:5555", "tcp://10.0.0.2:5555"};
///   membership.wait_joined(10s);   // membership.rank() is its rank
/// @endcode

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "amsg/export.hpp"
#include "amsg/net/node.hpp"

namespace amsg::net {

/// A worker's membership in the cohort of the leader at one address, kept up.
class AMSG_EXPORT CohortMembership {
 public:
  /// Starts announcing `worker` (which must listen at `own_address`) to the
  /// leader at `leader_address`, asking for `rank` (or any free rank); returns
  /// at once. The announcement is repeated each `retry` while it fails, and
  /// made again whenever the hello exchange with the leader is a new one.
  /// Throws NetworkError for a leader address no link serves.
  CohortMembership(Node& worker, const std::string& leader_address, const std::string& own_address,
                   std::optional<std::uint32_t> rank = std::nullopt,
                   std::chrono::milliseconds retry = std::chrono::milliseconds{500});
  /// Stops announcing and ends the use of the connection to the leader that the
  /// constructor began (Node::disconnect: it closes unless something else of
  /// the worker's uses it). The leader keeps the member until it loses it.
  ~CohortMembership();
  CohortMembership(const CohortMembership&) = delete;
  CohortMembership& operator=(const CohortMembership&) = delete;

  /// The rank the leader gave at the last announcement; nullopt before the first.
  [[nodiscard]] std::optional<std::uint32_t> rank() const;
  /// How many announcements the leader has answered ok.
  [[nodiscard]] std::uint64_t joins() const;
  /// The leader's answer to the last announcement that failed (empty: none failed since the last ok).
  [[nodiscard]] std::string last_error() const;
  /// Waits until the leader has answered an announcement ok; false if `timeout` passes first.
  bool wait_joined(std::chrono::milliseconds timeout);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace amsg::net
