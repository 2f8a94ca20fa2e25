#pragma once
/// @file
/// amsg::metrics: a node's counters in Prometheus form, for prometheus-cpp.
///
/// The collector reads Node::stats(), Node::peer_stats() and the manager's
/// Stats when it is scraped; nothing is recorded for it on the message path, so
/// exposing metrics costs only the scrapes. Register it beside your own
/// registry on your prometheus-cpp Exposer:
///
/// @code
///   auto metrics = std::make_shared<amsg::metrics::NodeCollector>(node);
///   exposer.RegisterCollectable(metrics);
///   ...
///   exposer.RemoveCollectable(metrics);  // before the node is destroyed
/// @endcode
///
/// A collector reads the nodes it was given on the exposer's thread, so a node
/// must stay alive while a collector that names it is registered: remove the
/// collector from the exposer (or the node from the collector, remove()) first.
///
/// Names follow Prometheus conventions (amsg_..._total counters, _seconds
/// histograms in base units). Label sets are bounded: `type` is one of the
/// first 31 handler types registered, then "(other)"; `peer` one of the addresses this node
/// connected to, `code` an amsg::errc name; never a notification id.
/// docs/operations.md lists every metric.

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

#include "amsg/export.hpp"

namespace amsg {
class Manager;
namespace net {
class Node;
}

namespace metrics {

/// Labels added to every metric (e.g. {"role", "worker"}).
using Labels = std::map<std::string, std::string>;

/// A manager's metrics: messages, outcomes by code, handlers per type, the inbox.
class AMSG_EXPORT ManagerCollector final : public prometheus::Collectable {
 public:
  /// Collects `manager`'s metrics, each with `labels`; the manager must outlive the collector's registration.
  explicit ManagerCollector(const Manager& manager, Labels labels = {});
  /// The metric families now (prometheus-cpp calls this on every scrape).
  [[nodiscard]] std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  const Manager& manager_;
  Labels labels_;
};

/// Nodes' metrics: each one's manager, transport and one set per peer it
/// connected to. Several nodes in one process go in one collector (add()),
/// told apart by their labels: an exposition names each metric family once.
class AMSG_EXPORT NodeCollector final : public prometheus::Collectable {
 public:
  /// Collects `node`'s metrics, each with `labels`; the node must outlive the collector's registration.
  explicit NodeCollector(net::Node& node, Labels labels = {});
  /// Another node, with labels that tell it from the others. Thread-safe.
  void add(net::Node& node, Labels labels);
  /// Stops collecting `node` (waits for a scrape in progress); then the node may be destroyed. Thread-safe.
  void remove(const net::Node& node);
  /// The metric families now (prometheus-cpp calls this on every scrape).
  [[nodiscard]] std::vector<prometheus::MetricFamily> Collect() const override;

 private:
  mutable std::mutex mutex_;
  std::vector<std::pair<net::Node*, Labels>> nodes_;
};

}  // namespace metrics
}  // namespace amsg
