#pragma once
/// @file
/// Cohort membership through etcd (v3 API): workers register themselves under
/// a key prefix, bound to a lease they keep alive; the leader follows the
/// prefix into its Cohort, so puts become joins and deletes (a worker stopped,
/// or killed and its lease expired) become leaves.
///
/// @code
///   // a worker, listening on tcp://10.0.0.2:5555:
///   EtcdRegistration registration{worker, "etcd://10.0.0.9:2379/kv", "tcp://10.0.0.2:5555"};
///   registration.wait_registered(10s);           // registration.rank() is its rank
///
///   // the leader:
///   Cohort cohort{leader};
///   EtcdDirectory directory{cohort, "etcd://10.0.0.9:2379/kv"};
///   cohort.wait_ready(32, 30s);
/// @endcode
///
/// Addresses: `etcd://HOST:PORT[,HOST:PORT...]/PREFIX` (the endpoints are
/// tried in turn; PREFIX defaults to /amsg). Each member is the key
/// `PREFIX/RANK` whose value is a JSON object (docs/wire-protocol.md, "Cohorts
/// through etcd"). Losing etcd stops neither side: messages between nodes that
/// know each other go on, the loss is logged once and retried every
/// EtcdOptions::retry, and membership resumes when etcd answers again.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "amsg/export.hpp"

namespace amsg::net {

class Node;
class Cohort;

/// How a registration or a directory talks to etcd.
struct EtcdOptions {
  /// The lease's time to live, at least 2 s: a worker that dies leaves within
  /// this. It is kept alive every third of it, and a registration's requests
  /// are bounded by a third of it too.
  std::chrono::seconds lease_ttl{5};
  /// Between attempts while etcd does not answer (or a wanted rank is taken).
  std::chrono::milliseconds retry{500};
  /// One request's bound (a watch's connection: TCP keepalive, ~5 s).
  std::chrono::milliseconds request_timeout{2000};
};

/// One member as registered in etcd.
struct EtcdMember {
  std::uint32_t rank = 0;             ///< its rank (the key's last part)
  std::string address;                ///< where the leader dials it
  std::string identity;               ///< its node's identity
  std::vector<std::string> handlers;  ///< the message types it serves (at registration)
  std::int64_t lease = 0;             ///< the etcd lease its key is bound to
};

/// A worker's registration: its key under the prefix, bound to a lease it keeps alive.
class AMSG_EXPORT EtcdRegistration {
 public:
  /// Starts registering `worker` (which must listen at `own_address`) under the
  /// prefix of `etcd_address`, with `rank`, or its rank of before (a key that
  /// already holds `own_address`, or the rank it held before its lease
  /// expired), or the lowest free one; returns at once. A
  /// wanted rank held by another address is retried each EtcdOptions::retry
  /// (until that member's lease expires); a claim lost to a worker starting at
  /// the same moment is tried again after a random 1-20 ms pause. Once registered, its other keys
  /// (a stale one under another rank) are deleted. Throws
  /// std::invalid_argument for an address that is not `etcd://...` or a lease
  /// shorter than 2 s.
  EtcdRegistration(Node& worker, const std::string& etcd_address, const std::string& own_address,
                   std::optional<std::uint32_t> rank = std::nullopt, EtcdOptions options = {});
  /// Revokes the lease (the leader sees the worker leave at once) and stops.
  ~EtcdRegistration();
  EtcdRegistration(const EtcdRegistration&) = delete;
  EtcdRegistration& operator=(const EtcdRegistration&) = delete;

  /// The rank registered last; nullopt before the first registration.
  [[nodiscard]] std::optional<std::uint32_t> rank() const;
  /// How many times the key was written (1, plus one per lease that expired
  /// while etcd could not be reached, or key that disappeared).
  [[nodiscard]] std::uint64_t registrations() const;
  /// Why the last attempt failed (empty while etcd answers).
  [[nodiscard]] std::string last_error() const;
  /// Waits until the key was written once; false if `timeout` passes first.
  bool wait_registered(std::chrono::milliseconds timeout);

 private:
  struct State;
  std::shared_ptr<State> state_;
};

/// The leader's side: follows the prefix and keeps `cohort`'s members equal to it.
class AMSG_EXPORT EtcdDirectory {
 public:
  /// Lists the prefix of `etcd_address`, add()s each member to `cohort` with
  /// its rank, then watches: a put adds (or moves) a member, a delete removes
  /// it. Members that were not added through etcd are left alone (a key that
  /// names one of their ranks or addresses is ignored, with a warning). Returns
  /// at once. Throws std::invalid_argument for an address that is not `etcd://...`.
  EtcdDirectory(Cohort& cohort, const std::string& etcd_address, EtcdOptions options = {});
  /// Stops following (the cohort keeps its members). Destroy it before the cohort.
  ~EtcdDirectory();
  EtcdDirectory(const EtcdDirectory&) = delete;
  EtcdDirectory& operator=(const EtcdDirectory&) = delete;

  /// True once the prefix was listed and until the watch breaks (false while
  /// etcd cannot be reached).
  [[nodiscard]] bool connected() const;
  /// How many times the prefix was listed (1, plus one per reconnection to etcd).
  [[nodiscard]] std::uint64_t syncs() const;
  /// Why following last failed (empty while connected).
  [[nodiscard]] std::string last_error() const;
  /// Waits until the prefix was listed once; false if `timeout` passes first.
  bool wait_synced(std::chrono::milliseconds timeout);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

/// The members registered under the prefix of `etcd_address` now, in rank
/// order (for `amsg cohort status`). Throws NetworkError when etcd does not
/// answer within `timeout`, std::invalid_argument for a bad address.
AMSG_EXPORT std::vector<EtcdMember> etcd_members(const std::string& etcd_address,
                                                 std::chrono::milliseconds timeout = std::chrono::seconds{2});

}  // namespace amsg::net
