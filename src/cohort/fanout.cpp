// Cohort's fan-out operations: one call per member, their outcomes collected in
// rank order, the whole completed when the policy says.

#include <algorithm>
#include <mutex>
#include <stdexcept>

#include <fmt/format.h>

#include <asio/bind_cancellation_slot.hpp>
#include <asio/cancellation_signal.hpp>

#include "amsg/net/cohort.hpp"
#include "cohort/cohort_state.hpp"

namespace amsg::net {
namespace {

// Collects one outcome per rank and completes the fan-out once: when all are
// in, or earlier when the policy allows (the outstanding ones then end
// `abandoned` and their calls are cancelled, which cancels them at their
// workers; their own outcomes, arriving later, are dropped).
class Collector {
 public:
  Collector(std::vector<std::uint32_t> ranks, std::string id, const FanoutOptions& options,
            std::unique_ptr<detail::Completion<FanoutResult>> done)
      : ranks_{std::move(ranks)},
        id_{std::move(id)},
        policy_{options.policy},
        quorum_{options.quorum},
        outcomes_(ranks_.size()),
        remaining_{ranks_.size()},
        done_{std::move(done)} {
    if (policy_ != FanoutPolicy::all) {
      signals_.reserve(ranks_.size());
      for (std::size_t i = 0; i < ranks_.size(); ++i) signals_.push_back(std::make_unique<asio::cancellation_signal>());
    }
  }

  // Where rank `index`'s call listens for its cancellation (none for the policy all).
  [[nodiscard]] asio::cancellation_slot slot(std::size_t index) {
    return signals_.empty() ? asio::cancellation_slot{} : signals_[index]->slot();
  }

  // Every call has been started (their slots assigned): an early end may cancel them now.
  void started() {
    std::lock_guard lock{mutex_};
    started_ = true;
    if (!done_) cancel_outstanding();
  }

  [[nodiscard]] std::string id_of(std::size_t index) const { return fmt::format("{}#{}", id_, ranks_[index]); }

  // `in_initiation`: called from within the operation's initiating function,
  // where the handler must not run inline (Asio's rule).
  void record(std::size_t index, Notification outcome, bool in_initiation = false) {
    std::unique_ptr<detail::Completion<FanoutResult>> done;
    FanoutResult result;
    {
      std::lock_guard lock{mutex_};
      if (!done_) return;  // completed early: this one was reported abandoned
      (outcome.is_success() ? ok_ : failed_) += 1;
      outcomes_[index] = std::move(outcome);
      --remaining_;
      if (!finished()) return;
      if (started_) cancel_outstanding();
      result = take_result();
      done = std::move(done_);
    }
    if (in_initiation) {
      done->complete_later(std::move(result));
    } else {
      done->complete(std::move(result));
    }
  }

  // For a fan-out to nobody: completes at once (through the handler's executor).
  void complete_empty() {
    auto done = std::move(done_);
    FanoutResult result = take_result();
    done->complete_later(std::move(result));
  }

 private:
  [[nodiscard]] bool finished() const {
    if (remaining_ == 0) return true;
    switch (policy_) {
      case FanoutPolicy::all:
        return false;
      case FanoutPolicy::fail_fast:
        return failed_ > 0;
      case FanoutPolicy::quorum:
        return ok_ >= quorum_ || ok_ + remaining_ < quorum_;
    }
    return false;
  }

  // Under mutex_, once: the calls still outstanding are cancelled (each
  // signal's slot was assigned before started_, and is emitted only here).
  void cancel_outstanding() {
    for (std::size_t i = 0; i < signals_.size(); ++i) {
      if (!outcomes_[i]) signals_[i]->emit(asio::cancellation_type::terminal);
    }
  }

  FanoutResult take_result() {
    FanoutResult r;
    r.ranks = ranks_;
    r.outcomes.reserve(outcomes_.size());
    for (std::size_t i = 0; i < outcomes_.size(); ++i) {
      if (outcomes_[i]) {
        r.outcomes.push_back(std::move(*outcomes_[i]));
      } else {
        r.outcomes.push_back(
            Notification{id_of(i), Outcome::error, "abandoned", {}, {}, make_error_code(errc::abandoned)});
      }
    }
    r.succeeded = policy_ == FanoutPolicy::quorum ? ok_ >= quorum_ : ok_ == ranks_.size();
    return r;
  }

  const std::vector<std::uint32_t> ranks_;
  const std::string id_;
  const FanoutPolicy policy_;
  const std::size_t quorum_;
  std::mutex mutex_;
  std::vector<std::optional<Notification>> outcomes_;
  std::size_t remaining_;
  std::size_t ok_ = 0;
  std::size_t failed_ = 0;
  std::unique_ptr<detail::Completion<FanoutResult>> done_;
  std::vector<std::unique_ptr<asio::cancellation_signal>> signals_;  // one per rank, unless the policy is all
  bool started_ = false;
};

std::string fanout_id(const FanoutOptions& options, std::atomic<std::uint64_t>& next) {
  return options.id.empty() ? fmt::format("fanout-{}", next.fetch_add(1)) : options.id;
}

// A worker's outcome for a call that was never sent.
Notification not_sent(std::string id, const std::string& why) {
  return Notification{std::move(id), Outcome::error, why, {}, {}, make_error_code(errc::bad_address)};
}

// Starts one call per (rank, peer, payload); each outcome goes to the collector.
// Never throws (it runs inside an Asio initiation): a call that cannot start
// is that rank's outcome.
void start_calls(Node& node, const std::string& type, std::vector<std::pair<std::optional<PeerId>, Payload>> targets,
                 const std::shared_ptr<Collector>& collector, std::chrono::milliseconds timeout) {
  for (std::size_t i = 0; i < targets.size(); ++i) {
    if (!targets[i].first) {
      collector->record(i, not_sent(collector->id_of(i), "not a member of the cohort"), true);
      continue;
    }
    try {
      node.call(*targets[i].first, type, std::move(targets[i].second), CallOptions{collector->id_of(i), timeout},
                asio::bind_cancellation_slot(collector->slot(i),
                                             [collector, i](Notification n) { collector->record(i, std::move(n)); }));
    } catch (const std::exception& e) {
      collector->record(i, not_sent(collector->id_of(i), e.what()), true);
    }
  }
  collector->started();
}

}  // namespace

void Cohort::check(const std::string& type, const FanoutOptions& options,
                   const std::map<std::uint32_t, Payload>* payloads) const {
  constexpr std::size_t kMaxType = 255;  // the wire's limits (docs/wire-protocol.md, "Limits")
  constexpr std::size_t kMaxId = 1024;
  constexpr std::size_t kRankDigits = 11;  // "#" and up to 10 digits
  if (type.empty() || type.size() > kMaxType) {
    throw std::invalid_argument(fmt::format("amsg: a message type has 1 to {} bytes, not {}", kMaxType, type.size()));
  }
  if (options.id.size() + kRankDigits > kMaxId) {
    throw std::invalid_argument(
        fmt::format("amsg: a fan-out id has at most {} bytes, not {}", kMaxId - kRankDigits, options.id.size()));
  }
  std::lock_guard lock{state_->mutex};
  if (payloads != nullptr) {
    for (const auto& [rank, payload] : *payloads) {
      if (!state_->members.contains(rank)) {
        throw std::invalid_argument(fmt::format("amsg: scatter to rank {}, which is not a member", rank));
      }
    }
  }
  const std::size_t targets = payloads != nullptr ? payloads->size() : state_->members.size();
  if (options.policy == FanoutPolicy::quorum && options.quorum > targets) {
    throw std::invalid_argument(
        fmt::format("amsg: a quorum of {} out of {} workers can never be reached", options.quorum, targets));
  }
}

std::size_t FanoutResult::ok_count() const noexcept {
  return static_cast<std::size_t>(
      std::count_if(outcomes.begin(), outcomes.end(), [](const Notification& n) { return n.is_success(); }));
}

const Notification* FanoutResult::find(std::uint32_t rank) const noexcept {
  auto it = std::lower_bound(ranks.begin(), ranks.end(), rank);
  if (it == ranks.end() || *it != rank) return nullptr;
  return &outcomes[static_cast<std::size_t>(it - ranks.begin())];
}

void Cohort::start_broadcast(const std::string& type, Payload payload, const FanoutOptions& options,
                             std::unique_ptr<detail::Completion<FanoutResult>> done) {
  std::vector<std::uint32_t> ranks;
  std::vector<std::pair<std::optional<PeerId>, Payload>> targets;
  {
    std::lock_guard lock{state_->mutex};
    ranks.reserve(state_->members.size());
    targets.reserve(state_->members.size());
    for (const auto& [rank, entry] : state_->members) {
      ranks.push_back(rank);
      targets.emplace_back(entry.peer, Payload{});
    }
  }
  // Each worker's frame owns its bytes: one copy per worker but the last.
  for (std::size_t i = 0; i + 1 < targets.size(); ++i) targets[i].second = Payload::copy_of(payload.bytes());
  if (!targets.empty()) targets.back().second = std::move(payload);
  auto collector =
      std::make_shared<Collector>(std::move(ranks), fanout_id(options, state_->next_fanout), options, std::move(done));
  if (targets.empty()) return collector->complete_empty();
  start_calls(node_, type, std::move(targets), collector, options.timeout);
}

void Cohort::start_scatter(const std::string& type, std::map<std::uint32_t, Payload>&& payloads,
                           const FanoutOptions& options, std::unique_ptr<detail::Completion<FanoutResult>> done) {
  std::vector<std::uint32_t> ranks;
  std::vector<std::pair<std::optional<PeerId>, Payload>> targets;
  {
    std::lock_guard lock{state_->mutex};
    for (auto& [rank, payload] : payloads) {
      auto it = state_->members.find(rank);  // checked before; removed since: not sent
      ranks.push_back(rank);
      targets.emplace_back(it == state_->members.end() ? std::nullopt : std::optional{it->second.peer},
                           std::move(payload));
    }
  }
  auto collector =
      std::make_shared<Collector>(std::move(ranks), fanout_id(options, state_->next_fanout), options, std::move(done));
  if (targets.empty()) return collector->complete_empty();
  start_calls(node_, type, std::move(targets), collector, options.timeout);
}

std::vector<std::uint32_t> Cohort::broadcast_notified(const std::string& type, const Payload& payload,
                                                      const std::string& id, std::chrono::milliseconds timeout) {
  std::vector<std::pair<std::uint32_t, PeerId>> targets;
  {
    std::lock_guard lock{state_->mutex};
    for (const auto& [rank, entry] : state_->members) targets.emplace_back(rank, entry.peer);
  }
  std::vector<std::uint32_t> sent;
  sent.reserve(targets.size());
  for (const auto& [rank, peer] : targets) {
    if (node_.send(peer, type, Payload::copy_of(payload.bytes()),
                   SendOptions{fmt::format("{}#{}", id, rank), timeout}) != SendStatus::ok) {
      break;  // closed: the node is shutting down
    }
    sent.push_back(rank);
  }
  return sent;
}

}  // namespace amsg::net
