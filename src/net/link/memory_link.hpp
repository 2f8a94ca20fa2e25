#pragma once
// MemoryLink: a link within one process (mem://NAME addresses), with faults on
// demand. It exists so that the session's behaviour under faults (peer loss,
// late, lost, reordered or duplicated frames, reconnection, backpressure) can be
// tested in one process, deterministically, without sockets.
//
//   auto net = std::make_shared<MemoryNetwork>();
//   NodeOptions o;  o.links = {std::make_shared<MemoryLink>(net)};  o.listen = {"mem://server"};
//   net->set_filter([](const MemoryNetwork::Frame& f) {
//     return f.to_listener ? MemoryNetwork::Verdict::hold : MemoryNetwork::Verdict::pass; });
//   ...  net->release_held(/*reverse=*/true);   // delivers what was held, last first
//
// Frames go from one node's executor to another's by asio::post, in order
// unless a fault says otherwise. A frame to an address nobody listens on waits
// in its channel until someone does (as a ZeroMQ DEALER's would); a channel
// whose listener closed sends into the void (as to a dead process).

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "link/link.hpp"

namespace amsg::net {

class MemoryNetwork {
 public:
  enum class Verdict : std::uint8_t {
    pass,       // deliver
    drop,       // lose it
    hold,       // keep it until release_held()
    duplicate,  // deliver it twice
  };
  struct Frame {
    std::string_view listener;  // the listening side's address ("mem://...")
    bool to_listener = true;    // direction: connecting -> listening, or back
    std::span<const std::byte> bytes;
  };
  using Filter = std::function<Verdict(const Frame&)>;

  // Every frame crossing the network is shown to the filter (under the
  // network's lock: keep it short). Empty: everything passes.
  void set_filter(Filter filter);
  // Delivers the held frames, in the order they were held or reversed. Returns how many.
  std::size_t release_held(bool reverse = false);
  [[nodiscard]] std::size_t held() const;
  [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_.load(); }

 private:
  friend class MemoryLink;
  struct Port;
  struct ChannelState;
  using Delivery = std::function<void()>;

  // Decides the frame's fate and delivers, drops or holds it.
  void route(const std::string& listener, bool to_listener, std::span<const std::byte> bytes,
             const std::function<Delivery(std::vector<std::byte>)>& make_delivery);

  mutable std::mutex mutex_;
  Filter filter_;
  std::vector<Delivery> held_;
  std::map<std::string, std::weak_ptr<Port>, std::less<>> listeners_;
  std::map<std::string, std::vector<std::weak_ptr<ChannelState>>, std::less<>> waiting_dials_;
  std::atomic<std::uint64_t> next_connection_{1};
  std::atomic<std::uint64_t> dropped_{0};
};

class MemoryLink final : public Link {
 public:
  explicit MemoryLink(std::shared_ptr<MemoryNetwork> network);
  ~MemoryLink() override;
  MemoryLink(const MemoryLink&) = delete;
  MemoryLink& operator=(const MemoryLink&) = delete;

  [[nodiscard]] bool serves(std::string_view address) const override;
  void check_address(const std::string& address) const override;
  void open(const asio::any_io_executor& executor, ListenerEvents& listener) override;
  std::string listen(const std::string& address) override;
  std::unique_ptr<Channel> dial(const std::string& address, ChannelEvents& events) override;
  LinkSend send_to_client(std::string_view client, Frame& frame) override;
  void resume_reading() override;
  void stop_waiting() override {}
  bool wait_clients_writable(std::chrono::milliseconds /*timeout*/) override { return true; }
  void close(std::chrono::milliseconds linger) override;

 private:
  class MemoryChannel;
  std::shared_ptr<MemoryNetwork> network_;
  std::shared_ptr<MemoryNetwork::Port> port_;
};

}  // namespace amsg::net
