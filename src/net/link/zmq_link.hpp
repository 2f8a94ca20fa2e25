#pragma once
// ZmqLink: the ZeroMQ link (tcp:// and ipc:// addresses).
//
// Listening: one ROUTER socket bound to every listen address; a client is a
// ROUTER routing id. CURVE (keys, the allowlist, handshakes): zmq_security.hpp. Dialing: one DEALER socket per channel.
// Sockets are watched through ZMQ_FD with asio descriptors on the session's executor; no thread of our own (ZeroMQ
// keeps its one I/O thread).
//
// ZMQ_FD is edge-like: after any operation on a socket its readiness must be
// re-read (ZMQ_EVENTS), so every send is followed by poke(), which wakes the
// socket's reader when input is waiting, and a reader only parks after a
// receive that found nothing with nothing done to the socket since
// (Watched::drained; a send or a read of ZMQ_EVENTS clears it).

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>
#include <zmq.hpp>

#include "amsg/net/curve.hpp"
#include "link/link.hpp"
#include "link/zmq_security.hpp"

namespace amsg::net {

class ZmqLink final : public Link {
 public:
  // `socket_hwm`: the high-water marks of the dialing sockets, in messages;
  // `client_hwm`: the listening socket's (what one client can make this node
  // hold, unread or unsent).
  // `max_frame_bytes`: larger inbound frames drop their connection unread (ZMQ_MAXMSGSIZE).
  // `curve`: keys and trust (CURVE); `on_handshake_failed` hears of every client
  // refused, `on_dial_failed` of every handshake of ours that failed.
  ZmqLink(int socket_hwm, int client_hwm, std::int64_t max_frame_bytes, CurveOptions curve = {},
          ZmqSecurity::Report on_handshake_failed = {}, ZmqSecurity::Report on_dial_failed = {});
  ~ZmqLink() override;
  ZmqLink(const ZmqLink&) = delete;
  ZmqLink& operator=(const ZmqLink&) = delete;

  [[nodiscard]] bool serves(std::string_view address) const override;
  void check_address(const std::string& address) const override;
  void open(const asio::any_io_executor& executor, ListenerEvents& listener) override;
  std::string listen(const std::string& address) override;
  std::unique_ptr<Channel> dial(const std::string& address, ChannelEvents& events) override;
  LinkSend send_to_client(std::string_view client, Frame& frame) override;
  void resume_reading() override;
  void stop_waiting() override;
  bool wait_clients_writable(std::chrono::milliseconds timeout) override;
  void close(std::chrono::milliseconds linger) override;

  // The listening socket's ZMQ_FD (-1 before listen()): readable while ZeroMQ
  // holds commands for it. For tests that order events around the reader.
  [[nodiscard]] int listen_fd() const;

  // A socket with its ZMQ_FD watched by asio.
  struct Watched {
    Watched();
    ~Watched();
    Watched(const Watched&) = delete;
    Watched& operator=(const Watched&) = delete;
    std::unique_ptr<zmq::socket_t> socket;
    std::unique_ptr<asio::posix::stream_descriptor> fd;
    bool waiting = false;   // a reader is parked on fd
    bool drained = false;   // the last receive found nothing and nothing touched the socket since
    bool want_out = false;  // a send said again: tell the session when there is room

    [[nodiscard]] int events();
    [[nodiscard]] bool maybe_readable();
    LinkSend send(Frame& frame);
    void poke();
    void close(int linger_ms);
  };

 private:
  struct ChannelState;
  class ZmqChannel;

  asio::awaitable<void> router_loop();
  asio::awaitable<void> channel_loop(std::shared_ptr<ChannelState> channel);

  int hwm_;
  int client_hwm_;
  std::int64_t max_frame_bytes_;
  zmq::context_t ctx_{1};
  ZmqSecurity security_;
  asio::any_io_executor executor_;
  ListenerEvents* listener_ = nullptr;
  Watched router_;
  std::unique_ptr<asio::steady_timer> retry_full_;  // wakes the ROUTER's reader to retry a full client
  std::chrono::milliseconds retry_full_after_{2};
  bool stopping_ = false;
  std::vector<std::weak_ptr<ChannelState>> channels_;  // to close every socket at the end
};

}  // namespace amsg::net
