#include "link/zmq_link.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstring>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include "amsg/errors.hpp"
#include "concurrency/sanitizers.hpp"

namespace amsg::net {
namespace {

constexpr std::size_t kServiceBatch = 256;                     // messages read per turn before letting others run
constexpr std::chrono::milliseconds kRetryFull{2};             // see router_loop(): first retry,
constexpr std::chrono::milliseconds kRetryFullMost{128};       // doubling up to this
constexpr std::size_t kZeroCopyFrom = std::size_t{64} * 1024;  // larger frames are handed to ZeroMQ without a copy

// A frame as a ZeroMQ message (one frame: its parts joined): small ones
// copied, large ones handed over (the Payload is freed by ZeroMQ's I/O thread
// once sent; the pool allows that).
zmq::message_t to_message(Frame& frame) {
  const std::size_t size = frame.size();
  if (size < kZeroCopyFrom) {
    zmq::message_t msg{size};
    auto* at = static_cast<std::byte*>(msg.data());
    if (!frame.head.empty()) std::memcpy(at, frame.head.data(), frame.head.size());
    if (!frame.body.empty()) std::memcpy(at + frame.head.size(), frame.body.data(), frame.body.size());
    return msg;
  }
  auto* owned = new Payload{std::move(frame).joined()};
  // ZeroMQ's pipe to its I/O thread orders this thread's writes before the free
  // there, in code TSan does not see: said here, so that TSan sees no race (each
  // report, even a suppressed one, stalls that thread to symbolize it).
  std::byte* const data = owned->data();
  const std::size_t bytes = owned->size();
  AMSG_TSAN_RELEASE(owned);
  return zmq::message_t{data, bytes,
                        [](void*, void* hint) {
                          AMSG_TSAN_ACQUIRE(hint);
                          delete static_cast<Payload*>(hint);
                        },
                        owned};
}

// Receives one message: its first two frames into `frames` (more are counted,
// not kept). Returns the number of frames, 0 when nothing was waiting.
std::size_t recv_message(ZmqLink::Watched& w, std::vector<zmq::message_t>& frames) {
  frames.clear();
  zmq::message_t first;
  if (!w.socket->recv(first, zmq::recv_flags::dontwait)) {
    w.drained = true;
    return 0;
  }
  w.drained = false;
  bool more = first.more();
  frames.push_back(std::move(first));
  std::size_t parts = 1;
  while (more) {
    zmq::message_t part;
    (void)w.socket->recv(part, zmq::recv_flags::none);  // the rest of a message is already here
    more = part.more();
    ++parts;
    if (frames.size() < 2) frames.push_back(std::move(part));
  }
  return parts;
}

std::span<const std::byte> view(const zmq::message_t& m) { return {static_cast<const std::byte*>(m.data()), m.size()}; }

}  // namespace

// ---------------------------------------------------------------- Watched

ZmqLink::Watched::Watched() = default;
ZmqLink::Watched::~Watched() = default;

// Reading ZMQ_EVENTS takes ZeroMQ's pending commands too, and with them the
// fd's signal: whatever it says, input must be looked for again.
int ZmqLink::Watched::events() {
  drained = false;
  return socket->get(zmq::sockopt::events);
}

// Whether input may be waiting that the fd will not signal.
bool ZmqLink::Watched::maybe_readable() { return !drained && (events() & ZMQ_POLLIN) != 0; }

LinkSend ZmqLink::Watched::send(Frame& frame) {
  if (!socket) return LinkSend::gone;
  drained = false;  // ZeroMQ may take pending commands while sending, consuming the fd's signal
  const bool handed_over = frame.size() >= kZeroCopyFrom;
  zmq::message_t msg = to_message(frame);
  zmq::send_result_t sent;
  try {
    sent = socket->send(msg, zmq::send_flags::dontwait);
  } catch (const zmq::error_t&) {
    sent = std::nullopt;
  }
  if (sent) {
    frame = Frame{};
    poke();
    return LinkSend::sent;
  }
  // Refused: the frame stays the caller's. A handed-over one is copied back (at
  // the high-water mark only); the message frees its own.
  if (handed_over)
    frame.head = Payload::copy_of(std::span<const std::byte>{static_cast<const std::byte*>(msg.data()), msg.size()});
  want_out = true;
  poke();
  return LinkSend::again;
}

// Input (or, when a send waits for room, room) may have come while another
// operation consumed the fd's edge: wake the reader, which re-reads ZMQ_EVENTS.
void ZmqLink::Watched::poke() {
  if (!waiting) return;
  const int ev = events();
  if ((ev & ZMQ_POLLIN) != 0 || (want_out && (ev & ZMQ_POLLOUT) != 0)) fd->cancel();
}

void ZmqLink::Watched::close(int linger_ms) {
  if (fd) {
    fd->cancel();
    (void)fd->release();  // ZeroMQ owns the descriptor
    fd.reset();
  }
  if (socket) {
    socket->set(zmq::sockopt::linger, linger_ms);
    socket->close();
    socket.reset();
  }
  waiting = false;
  drained = false;
}

// ---------------------------------------------------------------- channels (DEALER)

struct ZmqLink::ChannelState {
  Watched sock;
  std::shared_ptr<ZmqSecurity::DialWatch> handshakes;  // closed before sock
  ChannelEvents* events = nullptr;
  bool closed = false;
};

class ZmqLink::ZmqChannel final : public Channel {
 public:
  explicit ZmqChannel(std::shared_ptr<ChannelState> state) : state_{std::move(state)} {}
  ~ZmqChannel() override {
    state_->closed = true;
    if (state_->handshakes) ZmqSecurity::close(*state_->handshakes);
    state_->sock.close(0);  // drops what ZeroMQ still holds for this connection
  }
  ZmqChannel(const ZmqChannel&) = delete;
  ZmqChannel& operator=(const ZmqChannel&) = delete;
  LinkSend send(Frame& frame) override { return state_->sock.send(frame); }

 private:
  std::shared_ptr<ChannelState> state_;
};

// ---------------------------------------------------------------- link

namespace {
ZmqSecurity::Report or_ignore(ZmqSecurity::Report r) {
  return r ? std::move(r) : [](const std::string&) {};
}
}  // namespace

ZmqLink::ZmqLink(int socket_hwm, int client_hwm, std::int64_t max_frame_bytes, CurveOptions curve,
                 ZmqSecurity::Report on_handshake_failed, ZmqSecurity::Report on_dial_failed)
    : hwm_{socket_hwm},
      client_hwm_{client_hwm},
      max_frame_bytes_{max_frame_bytes},
      security_{std::move(curve), or_ignore(std::move(on_handshake_failed)), or_ignore(std::move(on_dial_failed))} {
  security_.check();
  // Three sockets per connection this node dials (the DEALER and its handshake
  // monitor's two ends): ZeroMQ's default of 1023 would cap a node near 340 peers.
  ctx_.set(zmq::ctxopt::max_sockets, 16384);
}

ZmqLink::~ZmqLink() { close(std::chrono::milliseconds{0}); }

bool ZmqLink::serves(std::string_view address) const {
  return address.starts_with("tcp://") || address.starts_with("ipc://");
}

void ZmqLink::check_address(const std::string& address) const {
  auto bad = [&](std::string_view why) {
    return NetworkError(fmt::format("amsg: bad address '{}': {}", address, why));
  };
  if (address.starts_with("ipc://")) {
    if (address.size() == 6) throw bad("ipc:// needs a path");
    return;
  }
  if (!address.starts_with("tcp://")) throw bad("expected tcp://HOST:PORT or ipc://PATH");
  const std::string_view rest = std::string_view{address}.substr(6);
  const auto colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon == 0) throw bad("expected tcp://HOST:PORT");
  const std::string_view port = rest.substr(colon + 1);
  if (port == "*") return;
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc{} || end != port.data() + port.size() || value > 65535) throw bad("the port is not a number");
}

void ZmqLink::open(const asio::any_io_executor& executor, ListenerEvents& listener) {
  executor_ = executor;
  listener_ = &listener;
}

std::string ZmqLink::listen(const std::string& address) {
  check_address(address);
  security_.check_listen(address);
  if (!router_.socket) {
    router_.socket = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::router);
    router_.socket->set(zmq::sockopt::router_mandatory, 1);  // learn, not guess, that a client has gone
    router_.socket->set(zmq::sockopt::sndhwm, client_hwm_);
    router_.socket->set(zmq::sockopt::rcvhwm, client_hwm_);
    router_.socket->set(zmq::sockopt::maxmsgsize, max_frame_bytes_);  // a huge frame is never read whole
    router_.socket->set(zmq::sockopt::linger, 0);
    security_.configure_server(ctx_, *router_.socket, executor_);
  }
  try {
    router_.socket->bind(address);
  } catch (const zmq::error_t& e) {
    throw NetworkError(fmt::format("amsg: cannot listen on '{}': {}", address, e.what()));
  }
  if (!router_.fd) {
    router_.fd = std::make_unique<asio::posix::stream_descriptor>(executor_, router_.socket->get(zmq::sockopt::fd));
    retry_full_ = std::make_unique<asio::steady_timer>(executor_);
    asio::co_spawn(executor_, router_loop(), asio::detached);
  }
  return router_.socket->get(zmq::sockopt::last_endpoint);
}

std::unique_ptr<Channel> ZmqLink::dial(const std::string& address, ChannelEvents& events) {
  check_address(address);
  auto state = std::make_shared<ChannelState>();
  state->events = &events;
  auto s = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::dealer);
  s->set(zmq::sockopt::sndhwm, hwm_);
  s->set(zmq::sockopt::rcvhwm, hwm_);
  s->set(zmq::sockopt::maxmsgsize, max_frame_bytes_);
  s->set(zmq::sockopt::linger, 0);
  s->set(zmq::sockopt::reconnect_ivl, 100);
  s->set(zmq::sockopt::reconnect_ivl_max, 1000);
  state->handshakes = security_.configure_client(ctx_, *s, address, executor_);
  try {
    s->connect(address);
  } catch (const zmq::error_t& e) {
    ZmqSecurity::close(*state->handshakes);  // an open socket would hold up the context's end
    throw NetworkError(fmt::format("amsg: cannot connect to '{}': {}", address, e.what()));
  }
  state->sock.socket = std::move(s);
  try {
    state->sock.fd =
        std::make_unique<asio::posix::stream_descriptor>(executor_, state->sock.socket->get(zmq::sockopt::fd));
    std::erase_if(channels_, [](const auto& w) { return w.expired(); });
    channels_.push_back(state);
    asio::co_spawn(executor_, channel_loop(state), asio::detached);
    return std::make_unique<ZmqChannel>(std::move(state));
  } catch (...) {
    ZmqSecurity::close(*state->handshakes);
    throw;
  }
}

LinkSend ZmqLink::send_to_client(std::string_view client, Frame& frame) {
  if (!router_.socket) return LinkSend::gone;
  try {
    router_.drained = false;
    if (!router_.socket->send(zmq::buffer(client), zmq::send_flags::sndmore | zmq::send_flags::dontwait)) {
      router_.want_out = true;
      router_.poke();
      return LinkSend::again;
    }
  } catch (const zmq::error_t&) {
    // EHOSTUNREACH: ROUTER_MANDATORY says the client has gone. The attempt may
    // have taken the fd's signal of another client's frames: poke all the same.
    router_.poke();
    return LinkSend::gone;
  }
  zmq::message_t msg = to_message(frame);
  (void)router_.socket->send(msg, zmq::send_flags::none);  // the rest of a started message is never refused
  frame = Frame{};
  router_.poke();
  return LinkSend::sent;
}

int ZmqLink::listen_fd() const { return router_.fd ? router_.fd->native_handle() : -1; }

void ZmqLink::resume_reading() {
  if (router_.waiting) router_.fd->cancel();
}

void ZmqLink::stop_waiting() {
  stopping_ = true;
  security_.stop_waiting();
  if (retry_full_) retry_full_->cancel();
  if (router_.fd) router_.fd->cancel();
  for (const auto& w : channels_) {
    auto c = w.lock();
    if (!c) continue;
    if (c->sock.fd) c->sock.fd->cancel();
    if (c->handshakes) ZmqSecurity::close(*c->handshakes);  // no more to learn: stop waiting on it
  }
}

bool ZmqLink::wait_clients_writable(std::chrono::milliseconds timeout) {
  if (!router_.socket) return false;
  zmq::pollitem_t item{router_.socket->handle(), 0, ZMQ_POLLOUT, 0};
  return zmq::poll(&item, 1, timeout) > 0;
}

void ZmqLink::close(std::chrono::milliseconds linger) {
  stopping_ = true;
  for (const auto& w : channels_) {
    if (auto c = w.lock()) {
      c->closed = true;
      if (c->handshakes) ZmqSecurity::close(*c->handshakes);
      c->sock.close(0);
    }
  }
  channels_.clear();
  retry_full_.reset();
  router_.close(static_cast<int>(linger.count()));
  security_.close();
  ctx_.close();
  executor_ = asio::any_io_executor{};  // must not outlive its io_context
}

// Reads the ROUTER while the session takes frames (else leaves them to ZeroMQ,
// whose high-water marks then stop the senders). Always waits on the socket's
// fd, so frames the session keeps for full clients go as soon as there is room.
asio::awaitable<void> ZmqLink::router_loop() {
  std::vector<zmq::message_t> frames;
  bool progress = true;
  for (;;) {
    if (stopping_ || !router_.socket) co_return;
    if (router_.want_out) {
      router_.want_out = false;
      progress = listener_->on_clients_writable();
      if (progress) retry_full_after_ = kRetryFull;
    }
    std::size_t n = 0;
    while (n < kServiceBatch && !stopping_ && listener_->accepting_frames()) {
      const std::size_t parts = recv_message(router_, frames);
      if (parts == 0) break;
      ++n;
      const std::string_view client{static_cast<const char*>(frames[0].data()), frames[0].size()};
      if (parts < 2) {
        listener_->on_client_frame(client, {}, 0);
      } else {
        listener_->on_client_frame(client, view(frames[1]), parts - 1);
      }
    }
    if (stopping_ || !router_.socket) co_return;
    if (n == kServiceBatch) {
      co_await asio::post(executor_, asio::use_awaitable);
      continue;
    }
    // A ROUTER with ROUTER_MANDATORY is writable while any client has room, so
    // POLLOUT says nothing of the client that was full: retry only while that
    // gets somewhere, else wait for the fd (and the session's next tick).
    if (router_.want_out && progress && (router_.events() & ZMQ_POLLOUT) != 0) continue;
    if (listener_->accepting_frames() && router_.maybe_readable()) continue;
    if (router_.want_out && !progress) {
      // ZeroMQ's word that the full client has room again may have been taken
      // by a receive above, and the fd will not repeat it: look again soon,
      // not at the session's next tick.
      retry_full_->expires_after(retry_full_after_);
      retry_full_after_ = std::min(retry_full_after_ * 2, kRetryFullMost);  // a client that never reads: less often
      retry_full_->async_wait([this](const asio::error_code& e) {
        if (!e && router_.waiting) router_.fd->cancel();  // (aborted: this link may be gone)
      });
    }
    asio::error_code ec;
    router_.waiting = true;
    co_await router_.fd->async_wait(asio::posix::stream_descriptor::wait_read,
                                    asio::redirect_error(asio::use_awaitable, ec));
    router_.waiting = false;
  }
}

asio::awaitable<void> ZmqLink::channel_loop(std::shared_ptr<ChannelState> channel) {
  std::vector<zmq::message_t> frames;
  Watched& sock = channel->sock;
  for (;;) {
    if (stopping_ || channel->closed) co_return;
    for (std::size_t i = 0; i < kServiceBatch; ++i) {
      const std::size_t parts = recv_message(sock, frames);
      if (parts == 0) break;
      channel->events->on_frame(view(frames[0]), parts);
      if (stopping_ || channel->closed) co_return;
    }
    if (sock.want_out && (sock.events() & ZMQ_POLLOUT) != 0) {
      sock.want_out = false;
      channel->events->on_writable();
      if (stopping_ || channel->closed) co_return;
    }
    if (sock.maybe_readable()) {
      co_await asio::post(executor_, asio::use_awaitable);  // more to read: let others run first
      continue;
    }
    asio::error_code ec;
    sock.waiting = true;
    co_await sock.fd->async_wait(asio::posix::stream_descriptor::wait_read,
                                 asio::redirect_error(asio::use_awaitable, ec));
    if (!channel->closed) sock.waiting = false;
  }
}

}  // namespace amsg::net
