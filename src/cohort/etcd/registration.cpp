// EtcdRegistration: one thread that claims the worker's key under a lease and
// keeps the lease alive; a lease that expired (etcd was out of reach for
// longer than its TTL) or a key that vanished is registered again.

#include <condition_variable>
#include <mutex>
#include <thread>

#include "amsg/log.hpp"
#include "amsg/net/etcd_membership.hpp"
#include "amsg/net/node.hpp"
#include "cohort/etcd/etcd_client.hpp"
#include "cohort/etcd/member_record.hpp"

namespace amsg::net {

struct EtcdRegistration::State {
  State(Node& worker, const etcd::Address& where, const std::string& own, std::optional<std::uint32_t> asked,
        EtcdOptions opts)
      : prefix{where.prefix},
        wanted{asked},
        options{opts},
        client{where.endpoints, opts.request_timeout},
        record{0, own, worker.identity(), worker.manager().handlers().types(), 0} {}

  void run() {
    std::int64_t lease = 0;
    bool written = false;
    auto kept = std::chrono::steady_clock::now();  // when the lease was granted or kept alive last
    while (!stopping()) {
      try {
        if (lease == 0) {
          lease = client.grant(options.lease_ttl);
          kept = std::chrono::steady_clock::now();
          written = false;
        } else if (std::chrono::steady_clock::now() - kept >= options.lease_ttl / 3) {
          // Kept alive whatever else fails (a claim that waits for its rank, say).
          if (client.keepalive(lease) <= 0) {
            amsg::logger()->warn("amsg etcd: the lease of {} expired; registering again", record.address);
            lease = 0;
            continue;
          }
          kept = std::chrono::steady_clock::now();
          const auto mine = client.get(etcd::member_key(prefix, current_rank()));
          if (!mine || mine->lease != lease) written = false;  // deleted, or taken over: write it again
        }
        if (!written) {
          claim(lease);
          written = true;
        }
        succeeded();
        if (pause(options.lease_ttl / 3)) break;
      } catch (const etcd::EtcdInterrupted&) {
        break;
      } catch (const std::exception& e) {
        failed(e.what());
        if (pause(options.retry)) break;
      }
    }
    if (lease != 0) {
      try {
        etcd::Client last{endpoints, options.request_timeout};
        last.revoke(lease);  // the leader sees the worker leave now, not at the lease's expiry
      } catch (const std::exception& e) {
        amsg::logger()->info("amsg etcd: lease not revoked ({}); it expires in {} s", e.what(),
                             options.lease_ttl.count());
      }
    }
  }

  // Writes the key of the wanted rank, of this address's rank of before, or of
  // the lowest free rank, bound to `lease`.
  void claim(std::int64_t lease) {
    std::int64_t revision = 0;
    const auto keys = client.range(prefix, revision);
    std::optional<std::uint32_t> rank = wanted;
    std::int64_t expected = 0;  // the key's mod revision (0: it must not exist)
    std::vector<bool> taken;
    for (const auto& kv : keys) {
      const auto member = etcd::parse_member(prefix, kv);
      if (!member) continue;
      if (member->address == record.address && (!wanted || *wanted == member->rank)) {
        rank = member->rank;  // ours (this worker before a restart): take it over
        expected = kv.mod_revision;
        break;
      }
      if (wanted && *wanted == member->rank)
        throw etcd::EtcdError{"rank " + std::to_string(member->rank) + " is held by " + member->address};
      if (member->rank < 4096) {
        if (taken.size() <= member->rank) taken.resize(member->rank + 1);
        taken[member->rank] = true;
      }
    }
    if (!rank) {
      std::uint32_t free = 0;
      while (free < taken.size() && taken[free]) ++free;
      rank = free;
    }
    auto value = record;
    value.rank = *rank;
    if (!client.put_if(etcd::member_key(prefix, *rank), etcd::member_value(value), lease, expected))
      throw etcd::EtcdError{"rank " + std::to_string(*rank) + " was taken meanwhile"};
    std::lock_guard lock{mutex};
    registered_rank = rank;
    ++registrations;
    changed.notify_all();
  }

  // True when stopping (the wait was cut short).
  bool pause(std::chrono::milliseconds duration) {
    std::unique_lock lock{mutex};
    return changed.wait_for(lock, duration, [&] { return stop; });
  }
  bool stopping() {
    std::lock_guard lock{mutex};
    return stop;
  }
  std::uint32_t current_rank() {
    std::lock_guard lock{mutex};
    return registered_rank.value_or(0);
  }
  void failed(const std::string& why) {
    std::lock_guard lock{mutex};
    if (error.empty()) amsg::logger()->warn("amsg etcd: registration failing: {} (retried)", why);  // once per outage
    error = why;
  }
  void succeeded() {
    std::lock_guard lock{mutex};
    if (!error.empty()) amsg::logger()->info("amsg etcd: registration is back (rank {})", registered_rank.value_or(0));
    error.clear();
  }

  const std::string prefix;
  const std::optional<std::uint32_t> wanted;
  const EtcdOptions options;
  std::vector<std::string> endpoints;
  etcd::Client client;
  const EtcdMember record;
  mutable std::mutex mutex;
  std::condition_variable changed;
  bool stop = false;
  std::optional<std::uint32_t> registered_rank;
  std::uint64_t registrations = 0;
  std::string error;
  std::thread thread;
};

EtcdRegistration::EtcdRegistration(Node& worker, const std::string& etcd_address, const std::string& own_address,
                                   std::optional<std::uint32_t> rank, EtcdOptions options) {
  const auto where = etcd::parse_address(etcd_address);
  state_ = std::make_shared<State>(worker, where, own_address, rank, options);
  state_->endpoints = where.endpoints;
  state_->thread = std::thread{[state = state_.get()] { state->run(); }};
}

EtcdRegistration::~EtcdRegistration() {
  {
    std::lock_guard lock{state_->mutex};
    state_->stop = true;
  }
  state_->changed.notify_all();
  state_->client.interrupt();
  state_->thread.join();
}

std::optional<std::uint32_t> EtcdRegistration::rank() const {
  std::lock_guard lock{state_->mutex};
  return state_->registered_rank;
}

std::uint64_t EtcdRegistration::registrations() const {
  std::lock_guard lock{state_->mutex};
  return state_->registrations;
}

std::string EtcdRegistration::last_error() const {
  std::lock_guard lock{state_->mutex};
  return state_->error;
}

bool EtcdRegistration::wait_registered(std::chrono::milliseconds timeout) {
  std::unique_lock lock{state_->mutex};
  return state_->changed.wait_for(lock, timeout, [&] { return state_->registrations > 0; });
}

}  // namespace amsg::net
