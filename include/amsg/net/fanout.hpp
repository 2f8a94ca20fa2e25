#pragma once
/// @file
/// How a cohort's fan-out operations (Cohort::broadcast, Cohort::scatter) end:
/// FanoutOptions chooses the policy, FanoutResult holds one outcome per worker.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "amsg/export.hpp"
#include "amsg/notification.hpp"

namespace amsg::net {

/// When a fan-out completes.
enum class FanoutPolicy : std::uint8_t {
  all,        ///< once every worker's outcome is in (the default)
  fail_fast,  ///< at the first outcome that is not ok, or once all are in
  quorum,     ///< once FanoutOptions::quorum outcomes are ok, once that can no longer happen, or once all are in
};

/// Options of Cohort::broadcast() and Cohort::scatter().
class AMSG_EXPORT FanoutOptions {
 public:
  FanoutOptions() = default;
  /// The outcomes' ids are "{id}#{rank}" (empty: "fanout-<n>#{rank}"); each
  /// worker's call has the deadline `timeout` (0: none), which travels to the
  /// worker: it skips the message or cancels its handler once the deadline passes.
  FanoutOptions(std::string id, std::chrono::milliseconds timeout = std::chrono::milliseconds{0})  // NOLINT
      : id{std::move(id)}, timeout{timeout} {}
  /// As above.
  FanoutOptions(const char* id, std::chrono::milliseconds timeout = std::chrono::milliseconds{0})  // NOLINT
      : id{id}, timeout{timeout} {}

  /// Fail fast: completes at the first outcome that is not ok.
  FanoutOptions& fail_fast() {
    policy = FanoutPolicy::fail_fast;
    return *this;
  }
  /// Quorum: completes once `count` workers have answered ok.
  FanoutOptions& need(std::size_t count) {
    policy = FanoutPolicy::quorum;
    quorum = count;
    return *this;
  }

  std::string id{};                         ///< the prefix of the outcomes' ids
  std::chrono::milliseconds timeout{0};     ///< each worker's call's deadline (0: none)
  FanoutPolicy policy = FanoutPolicy::all;  ///< when the fan-out completes
  std::size_t quorum = 0;                   ///< ok outcomes that complete a quorum fan-out
};

/// One outcome per worker the fan-out went to, in rank order.
struct AMSG_EXPORT FanoutResult {
  /// outcomes[i] is the outcome of the worker of rank ranks[i]: ok with the bytes
  /// its handler put in Message::response (Notification::payload), or its error
  /// (the worker's, or timeout, peer lost, ...). A policy that completes early
  /// ends the outcomes still outstanding with errc::abandoned and cancels
  /// those calls (a call not yet sent never is; a CANCEL goes to each worker
  /// that was sent one, which does not run the message
  /// if it has not started it and cancels its handler if it has; a handler
  /// that had finished, or finishes anyway, ran).
  std::vector<Notification> outcomes;
  std::vector<std::uint32_t> ranks;  ///< the rank of each outcome, ascending
  bool succeeded = false;            ///< all ok (all, fail_fast), or the quorum reached (quorum)

  /// How many outcomes are ok.
  [[nodiscard]] std::size_t ok_count() const noexcept;
  /// The outcome of the worker of `rank`; nullptr when the fan-out did not go to it.
  [[nodiscard]] const Notification* find(std::uint32_t rank) const noexcept;
};

}  // namespace amsg::net
