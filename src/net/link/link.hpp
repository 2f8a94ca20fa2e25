#pragma once
// Link: how a node's session reaches the network. A link owns its sockets (or
// whatever carries its frames); the session (src/net/session/) talks to it only
// through the interfaces below and knows nothing of ZeroMQ or any other
// transport. A link serves the addresses of its schemes ("tcp", "ipc" for
// ZeroMQ; "mem" for the in-memory link) and may both listen and dial.
//
// Frames are whole protocol messages (docs/wire-protocol.md): the link delivers
// each as it arrived and never looks inside. Inbound frames are views valid for
// the duration of the callback. A frame may travel in two parts, a head and a
// body (a MSG's or REPLY's header and payload): a link whose transport has a
// place for each (UCX: an AM's header and data) sends the body from the
// caller's buffer and receives it into one the session keeps, so that a large
// payload is not copied on either side; other links join the parts.
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
#include <utility>

#include <asio/any_io_executor.hpp>

#include "amsg/payload.hpp"

namespace amsg::net {

// An outbound frame: its bytes are head's followed by body's (body is usually
// empty; the session splits a large MSG or REPLY at its payload).
struct Frame {
  Frame() = default;
  explicit Frame(Payload whole) noexcept : head{std::move(whole)} {}
  Frame(Payload head_part, Payload body_part) noexcept : head{std::move(head_part)}, body{std::move(body_part)} {}

  Payload head;
  Payload body;

  [[nodiscard]] std::size_t size() const noexcept { return head.size() + body.size(); }
  // The frame in one buffer: head itself when there is no body, else a copy of both.
  [[nodiscard]] Payload joined() &&;
};

// The frame that arrived as `head` then `body`, in one buffer (a copy).
[[nodiscard]] Payload join_frame(std::span<const std::byte> head, std::span<const std::byte> body);

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
  // One inbound frame that arrived in two parts, `head` then `body` (whoever
  // handles it may take `body`'s buffer). By default joined and passed to on_frame().
  virtual void on_frame_in_parts(std::span<const std::byte> head, Payload& body) {
    const Payload frame = join_frame(head, body.bytes());
    on_frame(frame.bytes(), 1);
  }
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
  // On sent the link has taken (moved from) `frame`; otherwise `frame` still
  // holds the same bytes (perhaps joined into its head).
  virtual LinkSend send(Frame& frame) = 0;
};

// What the listening side hears. `client` names one connecting peer (an opaque
// byte string the link chose; stable while that connection lasts).
class ListenerEvents {
 public:
  // False: the session cannot take frames now; the link leaves them where they
  // are (its own buffers, then the sender's) until resume_reading().
  virtual bool accepting_frames() = 0;
  virtual void on_client_frame(std::string_view client, std::span<const std::byte> frame, std::size_t parts) = 0;
  // As ChannelEvents::on_frame_in_parts(), from a client.
  virtual void on_client_frame_in_parts(std::string_view client, std::span<const std::byte> head, Payload& body) {
    const Payload frame = join_frame(head, body.bytes());
    on_client_frame(client, frame.bytes(), 1);
  }
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

  // Listening side: a frame to one client. On sent the link has taken `frame`
  // (otherwise as Channel::send()).
  virtual LinkSend send_to_client(std::string_view client, Frame& frame) = 0;
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
