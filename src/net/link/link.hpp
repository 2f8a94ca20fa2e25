#pragma once
// Link: how a node's session reaches the network. A link owns its sockets (or
// whatever carries its frames); the session (src/net/session/) talks to it only
// through the interfaces below and knows nothing of ZeroMQ or any other
// transport. A link serves the addresses of its schemes ("tcp", "ipc" for
// ZeroMQ; "mem" for the in-memory link) and may both listen and dial.
//
// Frames are whole protocol messages (docs/wire-protocol.md): the link delivers
// each as it arrived and never looks inside. Inbound frames are views valid for
// the duration of the callback.
//
// Threads: every member is called on the session's executor (one strand), and
// the link calls back on it, except wait_clients_writable() and close(), which
// the session calls from its shutting-down thread once that executor has stopped.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include <asio/any_io_executor.hpp>

#include "amsg/payload.hpp"

namespace amsg::net {

enum class LinkSend : std::uint8_t {
  sent,   // the link took the frame
  again,  // no room now (high-water mark): the frame stays with the caller; on_writable() follows
  gone,   // the other side has gone: the frame stays with the caller and will never go
};

// What an outbound connection (the connecting side) hears.
class ChannelEvents {
 public:
  // One inbound message: `parts` frames arrived together (anything but 1 is
  // malformed); `frame` is the first.
  virtual void on_frame(std::span<const std::byte> frame, std::size_t parts) = 0;
  // After send() said again: there may be room now.
  virtual void on_writable() = 0;

 protected:
  ~ChannelEvents() = default;
};

// One outbound connection, to one address. Destroying it closes it without
// linger: nothing still queued in it reaches a successor at that address.
class Channel {
 public:
  virtual ~Channel() = default;
  // On sent the link has taken (moved from) `frame`.
  virtual LinkSend send(Payload& frame) = 0;
};

// What the listening side hears. `client` names one connecting peer (an opaque
// byte string the link chose; stable while that connection lasts).
class ListenerEvents {
 public:
  // False: the session cannot take frames now; the link leaves them where they
  // are (its own buffers, then the sender's) until resume_reading().
  virtual bool accepting_frames() = 0;
  virtual void on_client_frame(std::string_view client, std::span<const std::byte> frame, std::size_t parts) = 0;
  // After send_to_client() said again for some client: there may be room now.
  // True when something was sent (false: nobody had room; wait for the next signal).
  virtual bool on_clients_writable() = 0;

 protected:
  ~ListenerEvents() = default;
};

class Link {
 public:
  virtual ~Link() = default;

  // Whether `address` belongs to this link (by scheme).
  [[nodiscard]] virtual bool serves(std::string_view address) const = 0;
  // Throws NetworkError naming `address` when it is malformed. Any thread.
  virtual void check_address(const std::string& address) const = 0;

  // Once, before listen() or dial(): where to run and whom to tell.
  virtual void open(const asio::any_io_executor& executor, ListenerEvents& listener) = 0;
  // Binds; returns the bound address (tcp ports resolved). Throws NetworkError.
  virtual std::string listen(const std::string& address) = 0;
  // A connection to `address`; frames sent before it is up wait in it.
  virtual std::unique_ptr<Channel> dial(const std::string& address, ChannelEvents& events) = 0;

  // Listening side: a frame to one client. On sent the link has taken `frame`.
  virtual LinkSend send_to_client(std::string_view client, Payload& frame) = 0;
  // The session can take frames again (see ListenerEvents::accepting_frames).
  virtual void resume_reading() = 0;

  // Shutdown: stop every wait the link keeps on the executor, so it can stop.
  virtual void stop_waiting() = 0;
  // After the executor stopped: waits up to `timeout` for room to send to
  // clients (then send_to_client() may be retried). False on timeout.
  virtual bool wait_clients_writable(std::chrono::milliseconds timeout) = 0;
  // Closes every socket; frames still queued to clients get up to `linger` to leave.
  virtual void close(std::chrono::milliseconds linger) = 0;
};

}  // namespace amsg::net
