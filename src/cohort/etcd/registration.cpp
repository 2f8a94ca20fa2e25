// EtcdRegistration: one thread that claims the worker's key under a lease and
// keeps the lease alive; a lease that expired (etcd was out of reach for
// longer than its TTL) or a key that vanished is registered again.

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <stdexcept>
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
        client{where.endpoints, std::min(opts.request_timeout,
                                         std::chrono::duration_cast<std::chrono::milliseconds>(opts.lease_ttl) / 3)},
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
        } else if (std::chrono::steady_clock::now() - kept >= interval()) {
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
        if (pause(interval())) break;
      } catch (const etcd::EtcdInterrupted&) {
        break;
      } catch (const std::exception& e) {
        failed(e.what());
        if (pause(options.retry)) break;
      }
    }
    if (lease != 0) {
      try {
        etcd::Client last{endpoints, std::min(options.request_timeout, interval())};
        last.revoke(lease);  // the leader sees the worker leave now, not at the lease's expiry
      } catch (const std::exception& e) {
        amsg::logger()->info("amsg etcd: lease not revoked ({}); it expires in {} s", e.what(),
                             options.lease_ttl.count());
      }
    }
  }

  // A third of the lease's TTL: how often it is kept alive, and the bound of
  // each request (a slow etcd cannot make it miss its keepalive).
  [[nodiscard]] std::chrono::milliseconds interval() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(options.lease_ttl) / 3;
  }

  // Writes the key of the wanted rank, of this address's rank of before, or of
  // the lowest free rank, bound to `lease`; then deletes any other key that
  // holds this address (a stale one of a restart under another rank). A
  // transaction lost to another worker is tried again at once with a fresh
  // listing (workers starting together), after a short random pause.
  void claim(std::int64_t lease) {
    for (int attempt = 0;; ++attempt) {
      std::int64_t revision = 0;
      const auto keys = client.range(prefix, revision);
      const auto choice = choose(keys);
      auto value = record;
      value.rank = choice.rank;
      if (client.put_if(etcd::member_key(prefix, choice.rank), etcd::member_value(value), lease, choice.expected)) {
        for (const auto& kv : keys) {  // our other keys, if any
          const auto m = etcd::parse_member(prefix, kv);
          if (m && m->address == record.address && m->rank != choice.rank)
            (void)client.erase_if(kv.key, kv.mod_revision);
        }
        std::lock_guard lock{mutex};
        registered_rank = choice.rank;
        ++registrations;
        changed.notify_all();
        return;
      }
      if (attempt >= 100) throw etcd::EtcdError{"rank claims kept losing to other workers"};
      std::uniform_int_distribution<int> jitter{1, 20};
      if (pause(std::chrono::milliseconds{jitter(random)})) throw etcd::EtcdInterrupted{};
    }
  }

  struct Choice {
    std::uint32_t rank = 0;
    std::int64_t expected = 0;  // the key's mod revision (0: it must not exist)
  };
  // Which key to write, from a listing: see claim().
  Choice choose(const std::vector<etcd::KeyValue>& keys) {
    std::map<std::uint32_t, std::pair<std::string, std::int64_t>> held;  // rank -> (address, mod revision)
    for (const auto& kv : keys) {
      if (const auto m = etcd::parse_member(prefix, kv)) {
        held[m->rank] = {m->address, kv.mod_revision};
      } else if (const auto rank = etcd::rank_of(prefix, kv.key)) {
        held[*rank] = {"an unreadable value", kv.mod_revision};  // its rank is taken all the same
      }
    }
    auto take = [&](std::uint32_t rank) -> std::optional<Choice> {
      const auto it = held.find(rank);
      if (it == held.end()) return Choice{rank, 0};
      if (it->second.first == record.address) return Choice{rank, it->second.second};  // ours: take it over
      return std::nullopt;
    };
    if (wanted) {
      if (auto c = take(*wanted)) return *c;
      throw etcd::EtcdError{"rank " + std::to_string(*wanted) + " is held by " + held[*wanted].first};
    }
    for (const auto& [rank, holder] : held) {  // this address's rank of before (a restarted worker)
      if (holder.first == record.address) return Choice{rank, holder.second};
    }
    if (const auto before = current_rank_if_any()) {  // the rank it had (its lease expired meanwhile)
      if (auto c = take(*before)) return *c;
    }
    std::uint32_t free = 0;
    while (held.contains(free)) ++free;
    return Choice{free, 0};
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
  std::optional<std::uint32_t> current_rank_if_any() {
    std::lock_guard lock{mutex};
    return registered_rank;
  }
  void failed(const std::string& why) {
    std::lock_guard lock{mutex};
    // Once per outage, at error level: `amsg serve` shows errors by default.
    if (error.empty()) amsg::logger()->error("amsg etcd: registration failing: {} (retried)", why);
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
  std::minstd_rand random{std::random_device{}()};
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
  if (options.lease_ttl < std::chrono::seconds{2})
    throw std::invalid_argument("amsg: an etcd lease lives at least 2 s (EtcdOptions::lease_ttl)");
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
