#include <amsg/manager.hpp>
#include <amsg/metrics.hpp>
#include <amsg/net/node.hpp>
#include <limits>
#include <utility>

namespace amsg::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Families in the order they are first named; each metric gets the current base labels.
class Families {
 public:
  explicit Families(const Labels& base) : base_{&base} {}
  void set_base(const Labels& base) { base_ = &base; }

  void counter(const std::string& name, const std::string& help, double value, const Labels& labels = {}) {
    family(name, help, MetricType::Counter).metric.push_back(metric(labels, [&](ClientMetric& m) {
      m.counter.value = value;
    }));
  }
  void gauge(const std::string& name, const std::string& help, double value, const Labels& labels = {}) {
    family(name, help, MetricType::Gauge).metric.push_back(metric(labels, [&](ClientMetric& m) {
      m.gauge.value = value;
    }));
  }
  void histogram(const std::string& name, const std::string& help, const DurationHistogram& h,
                 const Labels& labels = {}) {
    family(name, help, MetricType::Histogram).metric.push_back(metric(labels, [&](ClientMetric& m) {
      m.histogram.sample_count = h.count;
      m.histogram.sample_sum = h.sum_s;
      for (std::size_t i = 0; i < h.upper_bounds_s.size() && i < h.counts.size(); ++i) {
        m.histogram.bucket.push_back({h.counts[i], h.upper_bounds_s[i]});
      }
      m.histogram.bucket.push_back({h.count, std::numeric_limits<double>::infinity()});
    }));
  }
  std::vector<MetricFamily> take() { return std::move(families_); }

 private:
  MetricFamily& family(const std::string& name, const std::string& help, MetricType type) {
    for (auto& f : families_) {
      if (f.name == name) return f;
    }
    families_.push_back(MetricFamily{name, help, type, {}});
    return families_.back();
  }
  template <typename Fill>
  ClientMetric metric(const Labels& labels, Fill&& fill) const {
    ClientMetric m;
    Labels all = *base_;
    all.insert(labels.begin(), labels.end());
    for (const auto& [k, v] : all) m.label.push_back({k, v});
    fill(m);
    return m;
  }

  const Labels* base_;
  std::vector<MetricFamily> families_;
};

// Counters are read one by one while they move, so a part may briefly exceed its whole: clamp at zero
// rather than wrap to 2^64.
std::uint64_t minus(std::uint64_t whole, std::uint64_t part) { return whole > part ? whole - part : 0; }

void add_manager(Families& f, const Stats& s) {
  f.counter("amsg_messages_received_total", "Messages accepted into the inbox.", static_cast<double>(s.received));
  // Every received message ends in exactly one outcome; `code` is its amsg::errc name ("ok" when it succeeded).
  const std::uint64_t handler_errors = minus(minus(s.failed, s.unknown_type), s.timed_out);
  const std::pair<const char*, std::uint64_t> outcomes[] = {{"ok", s.ok},
                                                            {"handler_error", handler_errors},
                                                            {"unknown_type", s.unknown_type},
                                                            {"timeout", s.timed_out},
                                                            {"payload_too_large", s.rejected},
                                                            {"cancelled", s.cancelled}};
  for (const auto& [code, n] : outcomes) {
    f.counter("amsg_messages_ended_total", "Messages that ended, by outcome code.", static_cast<double>(n),
              {{"code", code}});
  }
  f.counter("amsg_notifications_total", "Notifications produced (one per message with a notification id).",
            static_cast<double>(s.notifications));
  f.gauge("amsg_handlers_running", "Handlers running now (never above the concurrency limit).",
          static_cast<double>(s.in_flight));
  f.gauge("amsg_handlers_running_max", "The most handlers that ran at once.", static_cast<double>(s.max_in_flight));
  f.gauge("amsg_inbox_messages", "Messages waiting in the inbox.", static_cast<double>(s.queue_depth));
  f.gauge("amsg_notification_channel_messages", "Notifications waiting in the channel for a reader.",
          static_cast<double>(s.notifications_queued));
  f.histogram("amsg_message_duration_seconds", "From inbox to the message's end (queueing and handler).",
              s.latency_histogram);
  for (const auto& h : s.handlers) {
    const std::pair<const char*, std::uint64_t> runs[] = {
        {"ok", h.ok}, {"error", minus(h.failed, h.timed_out)}, {"timeout", h.timed_out}, {"cancelled", h.cancelled}};
    for (const auto& [outcome, n] : runs) {
      f.counter("amsg_handler_runs_total", "Handler runs that ended, by message type and outcome.",
                static_cast<double>(n), {{"type", h.type}, {"outcome", outcome}});
    }
    f.gauge("amsg_handler_running", "Handlers of the type running now.", static_cast<double>(h.running),
            {{"type", h.type}});
    f.histogram("amsg_handler_duration_seconds", "Handler run time, start to end.", h.duration, {{"type", h.type}});
  }
}

void add_node(Families& f, const net::NodeStats& s) {
  const auto d = [](std::uint64_t v) { return static_cast<double>(v); };
  f.counter("amsg_node_messages_sent_total", "MSGs this node wrote to peers.", d(s.messages_sent));
  f.counter("amsg_node_messages_received_total", "MSGs this node read from peers.", d(s.messages_received));
  f.counter("amsg_node_replies_sent_total", "REPLYs written.", d(s.replies_sent));
  f.counter("amsg_node_replies_received_total", "REPLYs matched to a waiting call.", d(s.replies_received));
  f.counter("amsg_node_late_replies_total", "REPLYs for calls that had already ended.", d(s.late_replies));
  f.counter("amsg_node_replies_dropped_total", "Replies whose peer had gone or was cut off.", d(s.replies_dropped));
  f.counter("amsg_node_clients_cut_off_total",
            "Clients cut off for not reading what they were sent, or for sending on after their refusals.",
            d(s.clients_cut_off));
  f.counter("amsg_node_frames_ignored_total", "Frames from cut-off clients, ignored.", d(s.frames_ignored));
  f.counter("amsg_node_handshakes_failed_total", "Clients refused during the handshake (CURVE).",
            d(s.handshakes_failed));
  f.counter("amsg_node_dial_handshakes_failed_total",
            "Handshakes of this node's own connections that failed (CURVE: its key refused, a wrong server key).",
            d(s.dial_handshakes_failed));
  f.counter("amsg_node_unsent_unreachable_total", "Fire-and-forget messages never sent: their peer was unreachable.",
            d(s.unsent_unreachable));
  f.counter("amsg_node_unsent_disconnected_total",
            "Fire-and-forget messages never sent: the node disconnected from their peer first.",
            d(s.unsent_disconnected));
  f.counter("amsg_node_cancels_total", "CANCEL frames, by direction.", d(s.cancels_sent), {{"direction", "sent"}});
  f.counter("amsg_node_cancels_total", "CANCEL frames, by direction.", d(s.cancels_received),
            {{"direction", "received"}});
  f.counter("amsg_node_cancelled_waiting_total",
            "Messages a CANCEL ended while they waited here for a turn (never run).", d(s.cancelled_waiting));
  f.counter("amsg_node_refused_total", "Messages refused, by reason.", d(s.refused_shutting_down),
            {{"reason", "shutting_down"}});
  f.counter("amsg_node_refused_total", "Messages refused, by reason.", d(s.refused_too_large),
            {{"reason", "payload_too_large"}});
  f.counter("amsg_node_refused_total", "Messages refused, by reason.", d(s.refused_overloaded),
            {{"reason", "overloaded"}});
  f.counter("amsg_node_idempotent_replays_total",
            "Idempotent retries answered with the first outcome instead of running again.", d(s.replies_replayed));
  f.counter("amsg_node_malformed_frames_total", "Frames that failed to decode.", d(s.malformed_frames));
  f.counter("amsg_node_call_timeouts_total", "Calls ended by their deadline (here, or at the peer).", d(s.timeouts));
  f.counter("amsg_node_calls_failed_peer_total", "Calls ended by peer lost, unreachable or incompatible.",
            d(s.calls_failed_peer));
  f.counter("amsg_node_peers_lost_total", "Connections declared lost.", d(s.peers_lost));
  f.gauge("amsg_node_calls_outstanding", "Calls waiting for an outcome.", d(s.outstanding_calls));
}

void add_peers(Families& f, const std::vector<net::PeerStats>& peers) {
  for (const auto& p : peers) {
    const Labels peer{{"peer", p.info.address}};
    f.gauge("amsg_peer_up", "1 when the hello exchange with the peer is done and it is not closing.",
            p.info.state == net::PeerState::ready ? 1.0 : 0.0, peer);
    f.counter("amsg_peer_calls_sent_total", "Calls (and notified sends) sent to the peer.",
              static_cast<double>(p.calls_sent), peer);
    const std::pair<const char*, std::uint64_t> ended[] = {
        {"ok", p.calls_ok}, {"error", minus(p.calls_failed, p.timeouts)}, {"timeout", p.timeouts}};
    for (const auto& [outcome, n] : ended) {
      Labels l = peer;
      l["outcome"] = outcome;
      f.counter("amsg_peer_calls_ended_total", "Calls to the peer that ended, by outcome.", static_cast<double>(n), l);
    }
    f.gauge("amsg_peer_calls_outstanding", "Calls to the peer waiting for an outcome.",
            static_cast<double>(p.calls_outstanding), peer);
    f.gauge("amsg_peer_queue_messages", "Messages waiting in the peer's queue.", static_cast<double>(p.queued), peer);
    f.counter("amsg_peer_lost_total", "Times the peer was declared lost.", static_cast<double>(p.lost_events), peer);
    f.counter("amsg_peer_connections_total", "Completed hello exchanges with the peer (reconnections count).",
              static_cast<double>(p.info.connections), peer);
    f.histogram("amsg_peer_round_trip_seconds", "From sending a call to the peer's REPLY.", p.round_trip, peer);
  }
}

}  // namespace

ManagerCollector::ManagerCollector(const Manager& manager, Labels labels)
    : manager_{manager}, labels_{std::move(labels)} {}

std::vector<MetricFamily> ManagerCollector::Collect() const {
  Families f{labels_};
  add_manager(f, manager_.stats());
  return f.take();
}

NodeCollector::NodeCollector(net::Node& node, Labels labels) { nodes_.emplace_back(&node, std::move(labels)); }

void NodeCollector::add(net::Node& node, Labels labels) {
  std::lock_guard lock{mutex_};
  nodes_.emplace_back(&node, std::move(labels));
}

void NodeCollector::remove(const net::Node& node) {
  std::lock_guard lock{mutex_};
  std::erase_if(nodes_, [&](const auto& entry) { return entry.first == &node; });
}

std::vector<MetricFamily> NodeCollector::Collect() const {
  std::lock_guard lock{mutex_};
  const Labels none;
  Families f{none};
  for (const auto& [node, labels] : nodes_) {
    f.set_base(labels);
    const net::NodeStats s = node->stats();
    add_manager(f, s.manager);
    add_node(f, s);
    add_peers(f, node->peer_stats());
  }
  return f.take();
}

}  // namespace amsg::metrics
