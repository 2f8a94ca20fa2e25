// EtcdDirectory: one thread that lists the prefix into the cohort and then
// follows its watch; after any failure it lists again (a watch that broke, or
// a compacted revision, loses nothing that way), and etcd_members().

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include "amsg/errors.hpp"
#include "amsg/log.hpp"
#include "amsg/net/cohort.hpp"
#include "amsg/net/etcd_membership.hpp"
#include "cohort/etcd/etcd_client.hpp"
#include "cohort/etcd/member_record.hpp"

namespace amsg::net {

struct EtcdDirectory::State {
  State(Cohort& c, const etcd::Address& where, EtcdOptions opts)
      : cohort{c}, prefix{where.prefix}, options{opts}, client{where.endpoints, opts.request_timeout} {}

  void run() {
    while (!stopping()) {
      try {
        std::int64_t revision = 0;
        const auto keys = client.range(prefix, revision);
        std::map<std::uint32_t, std::string> now;
        for (const auto& kv : keys) {
          if (const auto m = etcd::parse_member(prefix, kv)) now[m->rank] = m->address;
        }
        for (auto it = owned.begin(); it != owned.end();) {  // left while we were not watching
          const auto found = now.find(it->first);
          if (found == now.end() || found->second != it->second) {
            cohort.remove(it->first);
            it = owned.erase(it);
          } else {
            ++it;
          }
        }
        for (const auto& [rank, address] : now) put(rank, address);
        synced();
        client.watch(prefix, revision + 1, [&](const etcd::WatchEvent& event) {
          const auto rank = etcd::rank_of(prefix, event.kv.key);
          if (!rank) return;
          if (event.deleted) {
            if (owned.erase(*rank) == 1) cohort.remove(*rank);
          } else if (const auto m = etcd::parse_member(prefix, event.kv)) {
            put(m->rank, m->address);
          }
        });
      } catch (const etcd::EtcdInterrupted&) {
        break;
      } catch (const std::exception& e) {
        failed(e.what());
        std::unique_lock lock{mutex};
        if (changed.wait_for(lock, options.retry, [&] { return stop; })) break;
      }
    }
  }

  // The member of `rank` is at `address` now: add it, or move it.
  void put(std::uint32_t rank, const std::string& address) {
    const auto held = owned.find(rank);
    if (held != owned.end() && held->second == address) return;
    if (held != owned.end()) {
      cohort.remove(rank);
      owned.erase(held);
    }
    for (const auto& member : cohort.members()) {
      const bool ours = owned.contains(member.rank);
      if (member.address == address && member.rank != rank) {
        if (!ours) {  // a member added otherwise (static, announced) is left alone
          amsg::logger()->warn("amsg etcd: {} is rank {} of the cohort already; its key for rank {} is ignored",
                               address, member.rank, rank);
          return;
        }
        cohort.remove(member.rank);  // it moved to another rank
        owned.erase(member.rank);
      } else if (member.rank == rank && !ours) {
        amsg::logger()->warn("amsg etcd: rank {} ({}) is a member added otherwise; {} is not added", rank,
                             member.address, address);
        return;
      }
    }
    try {
      cohort.add(address, rank);
      owned[rank] = address;
    } catch (const std::exception& e) {
      amsg::logger()->warn("amsg etcd: member {} at {} not added: {}", rank, address, e.what());
    }
  }

  bool stopping() {
    std::lock_guard lock{mutex};
    return stop;
  }
  void synced() {
    std::lock_guard lock{mutex};
    if (!error.empty()) amsg::logger()->info("amsg etcd: following {} again", prefix);
    error.clear();
    watching = true;
    ++syncs;
    changed.notify_all();
  }
  void failed(const std::string& why) {
    std::lock_guard lock{mutex};
    if (error.empty())
      amsg::logger()->warn("amsg etcd: cannot follow {}: {} (retried)", prefix, why);  // once per outage
    error = why;
    watching = false;
  }

  Cohort& cohort;
  const std::string prefix;
  const EtcdOptions options;
  etcd::Client client;
  std::map<std::uint32_t, std::string> owned;  // the members this directory added (its thread only)
  mutable std::mutex mutex;
  std::condition_variable changed;
  bool stop = false;
  bool watching = false;
  std::uint64_t syncs = 0;
  std::string error;
  std::thread thread;
};

EtcdDirectory::EtcdDirectory(Cohort& cohort, const std::string& etcd_address, EtcdOptions options)
    : state_{std::make_unique<State>(cohort, etcd::parse_address(etcd_address), options)} {
  state_->thread = std::thread{[state = state_.get()] { state->run(); }};
}

EtcdDirectory::~EtcdDirectory() {
  {
    std::lock_guard lock{state_->mutex};
    state_->stop = true;
  }
  state_->changed.notify_all();
  state_->client.interrupt();
  state_->thread.join();
}

bool EtcdDirectory::connected() const {
  std::lock_guard lock{state_->mutex};
  return state_->watching;
}

std::uint64_t EtcdDirectory::syncs() const {
  std::lock_guard lock{state_->mutex};
  return state_->syncs;
}

std::string EtcdDirectory::last_error() const {
  std::lock_guard lock{state_->mutex};
  return state_->error;
}

bool EtcdDirectory::wait_synced(std::chrono::milliseconds timeout) {
  std::unique_lock lock{state_->mutex};
  return state_->changed.wait_for(lock, timeout, [&] { return state_->syncs > 0; });
}

std::vector<EtcdMember> etcd_members(const std::string& etcd_address, std::chrono::milliseconds timeout) {
  const auto where = etcd::parse_address(etcd_address);
  std::vector<EtcdMember> out;
  try {
    etcd::Client client{where.endpoints, timeout};
    std::int64_t revision = 0;
    for (const auto& kv : client.range(where.prefix, revision)) {
      if (auto m = etcd::parse_member(where.prefix, kv)) out.push_back(std::move(*m));
    }
  } catch (const std::exception& e) {  // etcd's errors, and answers that are not what the v3 API says
    throw NetworkError{e.what()};
  }
  // etcd returns keys sorted as bytes ("10" before "2")
  std::sort(out.begin(), out.end(), [](const EtcdMember& a, const EtcdMember& b) { return a.rank < b.rank; });
  return out;
}

}  // namespace amsg::net
