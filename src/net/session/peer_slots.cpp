// Connector's peers, from any thread: connect() and disconnect(), the slots
// and their reuse, and lookups by PeerId.

#include <fmt/format.h>

#include <asio/post.hpp>

#include "amsg/errors.hpp"
#include "session/connector.hpp"
#include "session/links.hpp"

namespace amsg::net {

PeerId Connector::connect(const std::string& address) {
  (void)links_.for_address(address);  // a bad address is an error at once
  std::lock_guard lock{connect_mutex_};
  const std::uint32_t count = count_.load();
  Peer* free_slot = nullptr;
  for (std::uint32_t i = 1; i < count; ++i) {
    Peer& known = *peers_[i];
    if (known.slot_address != address) {
      if (free_slot == nullptr && known.uses.load() == 0 && known.free.load(std::memory_order_acquire) &&
          !last_generation(known.id.load(std::memory_order_relaxed))) {
        free_slot = &known;
      }
      continue;
    }
    // Its uses had all ended: open it again (after the close(), posted before).
    // Its slot is its own again: not free, whatever happens before reopen() runs.
    known.free.store(false, std::memory_order_relaxed);
    if (known.uses.fetch_add(1) == 0 && started_.load()) asio::post(executor_.get(), [this, &known] { reopen(known); });
    return PeerId{known.id.load(std::memory_order_relaxed)};
  }
  if (free_slot != nullptr) {  // a closed peer's slot, for this new address
    Peer& p = *free_slot;
    p.free.store(false, std::memory_order_relaxed);
    p.slot_address = address;
    const std::uint32_t id = next_id(p.id.load(std::memory_order_relaxed));
    {
      // With the info, so that a reader of both (peer_info(), peer_stats(),
      // wait_ready()) never pairs the old id with the new address.
      std::lock_guard info_lock{p.info_mutex};
      p.info = PeerInfo{};
      p.info.address = address;
      p.id.store(id, std::memory_order_release);
    }
    p.uses.store(1);
    // (A slot is free only once the node has started.)
    asio::post(executor_.get(), [this, &p, address] { adopt(p, address); });
    return PeerId{id};
  }
  if (count == kMaxPeers) {
    throw NetworkError(fmt::format("amsg: cannot connect to '{}': {} peers are connected (or still ending their calls)",
                                   address, kMaxPeers - 1));
  }
  auto p = std::make_unique<Peer>(*this, count, address, options_.peer_queue_capacity);
  p->info.address = address;
  p->uses.store(1);
  Peer* raw = p.get();
  peers_[count] = std::move(p);
  count_.store(count + 1, std::memory_order_release);
  if (started_.load()) asio::post(executor_.get(), [this, raw] { open(*raw); });  // else start() dials it
  return PeerId{count};
}

void Connector::disconnect(PeerId id) {
  if (id.value == kSelf) return;
  std::lock_guard lock{connect_mutex_};
  Peer* named = peer_at(id);
  if (named == nullptr) return;
  Peer& p = *named;
  if (p.uses.load() == 0) return;  // more disconnects than connects: nothing left to end
  // Before start() nothing is open: open_all() skips a peer with no use.
  if (p.uses.fetch_sub(1) == 1 && started_.load()) asio::post(executor_.get(), [this, &p] { close(p); });
}

Connector::Peer* Connector::peer_at(PeerId id) const noexcept {
  Peer* p = peer_in_slot(slot_of(id));
  return p != nullptr && p->id.load(std::memory_order_acquire) == id.value ? p : nullptr;
}

Connector::Peer* Connector::peer_in_slot(std::uint32_t slot) const noexcept {
  if (slot >= count_.load(std::memory_order_acquire)) return nullptr;
  return peers_[slot].get();
}

bool Connector::wait_ready(PeerId id, std::chrono::milliseconds timeout) {
  Peer* p = peer_at(id);
  if (p == nullptr) return false;
  std::unique_lock lock{p->info_mutex};
  const auto mine = [p, id] { return p->id.load(std::memory_order_relaxed) == id.value; };
  (void)p->info_changed.wait_for(
      lock, timeout, [&] { return !mine() || p->info.state == PeerState::ready || p->info.state == PeerState::local; });
  return mine() && (p->info.state == PeerState::ready || p->info.state == PeerState::local);
}

std::optional<PeerInfo> Connector::peer_info(PeerId id) const {
  Peer* p = peer_at(id);
  if (p == nullptr) return std::nullopt;
  std::lock_guard lock{p->info_mutex};
  if (p->id.load(std::memory_order_relaxed) != id.value) return std::nullopt;  // its slot changed hands just now
  return p->info;
}

}  // namespace amsg::net
