#pragma once
// LocalPath: messages a node sends itself (Node::self(), or a peer whose
// identity turned out to be this node's) go straight into its own manager, no
// link. Their outcomes come back through a CommunicationLayer of their own
// (LocalPath::layer()), never through the listening side's reply queue.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <asio/awaitable.hpp>

#include "amsg/communication_layer.hpp"
#include "session/call.hpp"
#include "session/calls.hpp"
#include "session/connector.hpp"
#include "session/counters.hpp"

namespace amsg::net {

class LocalPath {
 public:
  LocalPath(const SessionExecutor& executor, Calls& calls, SessionCounters& counters);

  // Attach to the manager; its deliver() brings back the outcomes of local calls.
  [[nodiscard]] std::shared_ptr<CommunicationLayer> layer();
  void set_connector(Connector& connector) { connector_ = &connector; }
  // Valid once layer() is attached.
  [[nodiscard]] const Ingress& ingress() const noexcept { return ingress_; }

  // On the executor: moves what senders queued for `p` into the manager.
  void flush(Connector::Peer& p);
  // On the executor: outcomes delivered so far.
  void drain_outcomes();
  // On the executor: a call to this node that its caller cancelled (its
  // message never runs if still queued; a running handler is cancelled).
  void cancel(std::uint64_t call_id);

 private:
  class Layer;
  struct Outcome {
    std::uint64_t call_id = 0;
    Notification notification;
  };
  void deliver(std::uint64_t call_id, Notification&& n);
  void submit(Connector::Peer& p, Message&& m, std::uint64_t call_id);
  asio::awaitable<void> pump(Connector::Peer& p);

  const SessionExecutor& executor_;
  Calls& calls_;
  SessionCounters& counters_;
  Connector* connector_ = nullptr;
  Ingress ingress_;
  std::shared_ptr<Layer> layer_;
  // From workers; bounded by the outstanding-call limit (every entry is a call).
  std::mutex outcomes_mutex_;
  std::vector<Outcome> outcomes_;
  std::vector<Outcome> draining_;
  std::vector<std::uint64_t> cancelled_;  // on the executor: cancelled, outcome not yet back
};

}  // namespace amsg::net
