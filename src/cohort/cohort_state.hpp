#pragma once
// The shared state behind a Cohort: its members, and the watch that turns the
// leader's view of each member's connection into joins and leaves. Shared with
// the watch timer's callbacks and the join handler, which may outlive the
// Cohort object by a moment (they find `stopped` set).

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <asio/steady_timer.hpp>

#include "amsg/net/cohort.hpp"

namespace amsg::net {

struct Cohort::State : std::enable_shared_from_this<Cohort::State> {
  State(Node& leader, CohortOptions opts) : node{leader}, options{opts}, timer{leader.executor()} {}

  struct Entry {
    std::string address;
    PeerId peer{};
    bool ready = false;             // as of the last look
    std::uint64_t connections = 0;  // hello exchanges as of the last look: a change is a leave and a join
  };

  std::uint32_t add(const std::string& address, std::optional<std::uint32_t> rank);
  // Looks at every member's connection; calls the callbacks for what changed.
  void look();
  void schedule_look();

  Node& node;
  const CohortOptions options;
  mutable std::mutex mutex;
  std::condition_variable changed;  // after each look
  std::map<std::uint32_t, Entry> members;
  std::vector<CohortEvent> removed;  // leaves of ready members remove()d, reported at the next look
  std::vector<std::function<void(const CohortEvent&)>> callbacks;
  asio::steady_timer timer;  // used on the node's executor only
  bool stopped = false;
  // Held while on_change() callbacks run, so that ~Cohort() waits for them.
  std::mutex callback_mutex;
  bool serving_joins = false;
  std::atomic<std::uint64_t> next_fanout{1};
};

}  // namespace amsg::net
