#include "link/memory_link.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <deque>

#include <asio/post.hpp>

#include "amsg/errors.hpp"

namespace amsg::net {
namespace {

constexpr std::size_t kMaxUnsent = 10000;  // frames a channel keeps while nobody listens (then drops)

std::vector<std::byte> copy_of(std::span<const std::byte> bytes) { return {bytes.begin(), bytes.end()}; }

}  // namespace

// The listening side of one MemoryLink (and the home of its executor).
struct MemoryNetwork::Port {
  std::mutex mutex;  // other nodes post to the executor while close() lets go of it
  asio::any_io_executor executor;
  ListenerEvents* events = nullptr;
  std::atomic<bool> closed{false};
  std::vector<std::string> addresses;
  // On the executor.
  std::deque<std::pair<std::string, std::vector<std::byte>>> pending;  // arrived while the session took none
  std::map<std::string, std::weak_ptr<ChannelState>, std::less<>> clients;
};

struct MemoryNetwork::ChannelState {
  asio::any_io_executor executor;
  ChannelEvents* events = nullptr;
  std::string address;
  std::string key;  // how the listener names this connection
  std::atomic<bool> closed{false};
  std::mutex mutex;                            // also held while a delivery posts to the executor
  bool connected = false;                      // a listener was there once: frames go straight out
  std::vector<std::vector<std::byte>> unsent;  // until then
};

// ---------------------------------------------------------------- network

void MemoryNetwork::set_filter(Filter filter) {
  std::lock_guard lock{mutex_};
  filter_ = std::move(filter);
}

std::size_t MemoryNetwork::release_held(bool reverse) {
  std::vector<Delivery> held;
  {
    std::lock_guard lock{mutex_};
    held.swap(held_);
  }
  if (reverse) std::reverse(held.begin(), held.end());
  for (auto& d : held) d();
  return held.size();
}

std::size_t MemoryNetwork::held() const {
  std::lock_guard lock{mutex_};
  return held_.size();
}

void MemoryNetwork::route(const std::string& listener, bool to_listener, std::span<const std::byte> bytes,
                          const std::function<Delivery(std::vector<std::byte>)>& make_delivery) {
  Verdict verdict = Verdict::pass;
  {
    std::lock_guard lock{mutex_};
    if (filter_) verdict = filter_(Frame{listener, to_listener, bytes});
    if (verdict == Verdict::hold) {
      held_.push_back(make_delivery(copy_of(bytes)));
      return;
    }
  }
  switch (verdict) {
    case Verdict::drop:
      dropped_.fetch_add(1);
      return;
    case Verdict::duplicate:
      make_delivery(copy_of(bytes))();
      [[fallthrough]];
    default:
      make_delivery(copy_of(bytes))();
      return;
  }
}

// ---------------------------------------------------------------- channel

class MemoryLink::MemoryChannel final : public Channel {
 public:
  MemoryChannel(std::shared_ptr<MemoryNetwork> network, std::shared_ptr<MemoryNetwork::ChannelState> state)
      : network_{std::move(network)}, state_{std::move(state)} {}
  ~MemoryChannel() override {
    std::lock_guard lock{state_->mutex};  // a delivery from another node may be posting to the executor
    state_->closed = true;
    state_->executor = asio::any_io_executor{};
  }
  MemoryChannel(const MemoryChannel&) = delete;
  MemoryChannel& operator=(const MemoryChannel&) = delete;

  LinkSend send(Frame& frame) override {
    if (state_->closed) return LinkSend::gone;
    const Payload whole = std::move(frame).joined();  // this link copies every frame anyway
    frame = Frame{};
    std::unique_lock lock{state_->mutex};
    if (!state_->connected) {
      if (state_->unsent.size() < kMaxUnsent) state_->unsent.push_back(copy_of(whole.bytes()));
      return LinkSend::sent;
    }
    lock.unlock();
    send_to_listener(*network_, state_, whole.bytes());
    return LinkSend::sent;
  }

  // A frame to whoever listens at the channel's address now (nobody: lost).
  static void send_to_listener(MemoryNetwork& network, const std::shared_ptr<MemoryNetwork::ChannelState>& state,
                               std::span<const std::byte> bytes) {
    std::weak_ptr<MemoryNetwork::Port> port;
    {
      std::lock_guard lock{network.mutex_};
      if (auto it = network.listeners_.find(state->address); it != network.listeners_.end()) port = it->second;
    }
    std::weak_ptr<MemoryNetwork::ChannelState> from = state;
    network.route(state->address, true, bytes, [port, from, key = state->key](std::vector<std::byte> b) {
      return [port, from, key, b = std::move(b)]() mutable {
        auto p = port.lock();
        if (!p) return;
        std::lock_guard lock{p->mutex};
        if (p->closed) return;
        asio::post(p->executor, [port, from, key, b = std::move(b)] {
          auto target = port.lock();
          if (!target || target->closed) return;
          target->clients[key] = from;
          if (target->pending.empty() && target->events->accepting_frames()) {
            target->events->on_client_frame(key, b, 1);
          } else {
            target->pending.emplace_back(key, b);
          }
        });
      };
    });
  }

 private:
  std::shared_ptr<MemoryNetwork> network_;
  std::shared_ptr<MemoryNetwork::ChannelState> state_;
};

// ---------------------------------------------------------------- link

MemoryLink::MemoryLink(std::shared_ptr<MemoryNetwork> network)
    : network_{std::move(network)}, port_{std::make_shared<MemoryNetwork::Port>()} {}

MemoryLink::~MemoryLink() { close(std::chrono::milliseconds{0}); }

bool MemoryLink::serves(std::string_view address) const { return address.starts_with("mem://"); }

void MemoryLink::check_address(const std::string& address) const {
  if (address.size() <= 6) throw NetworkError(fmt::format("amsg: bad address '{}': mem:// needs a name", address));
}

void MemoryLink::open(const asio::any_io_executor& executor, ListenerEvents& listener) {
  port_->executor = executor;
  port_->events = &listener;
}

std::string MemoryLink::listen(const std::string& address) {
  check_address(address);
  std::vector<std::weak_ptr<MemoryNetwork::ChannelState>> waiting;
  {
    std::lock_guard lock{network_->mutex_};
    if (auto it = network_->listeners_.find(address); it != network_->listeners_.end() && !it->second.expired()) {
      if (auto other = it->second.lock(); other && !other->closed) {
        throw NetworkError(fmt::format("amsg: cannot listen on '{}': address in use", address));
      }
    }
    network_->listeners_[address] = port_;
    port_->addresses.push_back(address);
    if (auto it = network_->waiting_dials_.find(address); it != network_->waiting_dials_.end()) {
      waiting.swap(it->second);
      network_->waiting_dials_.erase(it);
    }
  }
  for (const auto& w : waiting) {  // channels dialed before anyone listened: connect them now
    auto c = w.lock();
    if (!c) continue;
    std::lock_guard lock{c->mutex};
    c->connected = true;
    for (const auto& frame : c->unsent) MemoryChannel::send_to_listener(*network_, c, frame);
    c->unsent.clear();
  }
  return address;
}

std::unique_ptr<Channel> MemoryLink::dial(const std::string& address, ChannelEvents& events) {
  check_address(address);
  auto state = std::make_shared<MemoryNetwork::ChannelState>();
  state->executor = port_->executor;
  state->events = &events;
  state->address = address;
  state->key = fmt::format("c{}", network_->next_connection_.fetch_add(1));
  {
    std::lock_guard lock{network_->mutex_};
    auto it = network_->listeners_.find(address);
    auto listener = it != network_->listeners_.end() ? it->second.lock() : nullptr;
    if (listener && !listener->closed) {
      state->connected = true;
    } else {
      auto& waiting = network_->waiting_dials_[address];
      std::erase_if(waiting, [](const auto& w) { return w.expired(); });
      waiting.push_back(state);
    }
  }
  return std::make_unique<MemoryChannel>(network_, std::move(state));
}

LinkSend MemoryLink::send_to_client(std::string_view client, Frame& frame) {
  auto it = port_->clients.find(client);
  auto channel = it != port_->clients.end() ? it->second.lock() : nullptr;
  if (!channel || channel->closed) {
    if (it != port_->clients.end()) port_->clients.erase(it);
    return LinkSend::gone;
  }
  std::weak_ptr<MemoryNetwork::ChannelState> to = channel;
  const Payload whole = std::move(frame).joined();
  frame = Frame{};
  network_->route(channel->address, false, whole.bytes(), [to](std::vector<std::byte> b) {
    return [to, b = std::move(b)]() mutable {
      auto c = to.lock();
      if (!c) return;
      std::lock_guard lock{c->mutex};
      if (c->closed) return;
      asio::post(c->executor, [to, b = std::move(b)] {
        auto target = to.lock();
        if (target && !target->closed) target->events->on_frame(b, 1);
      });
    };
  });
  return LinkSend::sent;
}

// Posted, not inline: the session may call this while it handles a frame.
void MemoryLink::resume_reading() {
  asio::post(port_->executor, [port = std::weak_ptr<MemoryNetwork::Port>{port_}] {
    auto p = port.lock();
    while (p && !p->closed && !p->pending.empty() && p->events->accepting_frames()) {
      auto [key, bytes] = std::move(p->pending.front());
      p->pending.pop_front();
      p->events->on_client_frame(key, bytes, 1);
    }
  });
}

// Called once the session's executor has stopped. The link may outlive the
// session (NodeOptions::links is the user's): it lets go of the executor now,
// which must not outlive its io_context.
void MemoryLink::close(std::chrono::milliseconds /*linger*/) {
  std::unique_lock port_lock{port_->mutex};
  if (port_->closed.exchange(true)) return;
  port_lock.unlock();
  {
    std::lock_guard lock{network_->mutex_};
    for (const auto& address : port_->addresses) {
      if (auto it = network_->listeners_.find(address);
          it != network_->listeners_.end() && it->second.lock() == port_) {
        network_->listeners_.erase(it);
      }
    }
  }
  port_->pending.clear();
  port_->clients.clear();
  port_->events = nullptr;
  port_lock.lock();
  port_->executor = asio::any_io_executor{};
}

}  // namespace amsg::net
