#include "link/zmq_security.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include "amsg/errors.hpp"

namespace amsg::net {
namespace {

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";  // fixed by ZeroMQ (RFC 27)
constexpr int kWatchedEvents =
    ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;

bool is_loopback_host(std::string_view host) {
  if (host.starts_with('[') && host.ends_with(']')) host = host.substr(1, host.size() - 2);
  return host == "localhost" || host == "::1" || host == "lo" || host.starts_with("127.");
}

std::string z85(const void* key32) {
  std::array<char, 41> text{};
  zmq_z85_encode(text.data(), static_cast<const std::uint8_t*>(key32), 32);
  return text.data();
}

std::string describe(std::uint16_t event, std::uint32_t value) {
  if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
    return fmt::format("the client's key is not on the allowlist (ZAP status {})", value);
  }
  if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
    switch (value) {
      case ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
        return "the client does not use CURVE (no keys, or no server key for this address)";
      case ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
        return "the client's CURVE handshake does not decrypt (a wrong server key?)";
      default:
        return fmt::format("ZMTP protocol error 0x{:08x}", value);
    }
  }
  return "no detail from ZeroMQ";
}

// Why one of our handshakes failed, as the connecting side sees it.
std::string describe_dial(std::uint16_t event, std::uint32_t value, bool curve) {
  if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
    return fmt::format("the server refused this node's key (ZAP status {}): is it on the server's allowlist?", value);
  }
  if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL) {
    if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
      return curve ? "the server does not use CURVE (no keys)"
                   : "the server uses CURVE: give this node its public key (--server-key, CurveOptions)";
    }
    return fmt::format("ZMTP protocol error 0x{:08x}", value);
  }
  return fmt::format("the connection ended during the handshake ({}){}", zmq_strerror(static_cast<int>(value)),
                     curve ? ": a wrong server key?"
                           : ": does the server use CURVE? give this node its public key (--server-key, CurveOptions)");
}

std::string next_monitor_endpoint() {
  static std::atomic<unsigned> next{0};
  return fmt::format("inproc://amsg-handshakes-{}", next.fetch_add(1));
}

}  // namespace

struct ZmqSecurity::Watch {
  std::unique_ptr<zmq::socket_t> socket;
  std::unique_ptr<asio::posix::stream_descriptor> fd;
  [[nodiscard]] bool readable() const { return (socket->get(zmq::sockopt::events) & ZMQ_POLLIN) != 0; }
  void close() {
    if (fd) {
      fd->cancel();
      (void)fd->release();  // ZeroMQ owns the descriptor
      fd.reset();
    }
    if (socket) {
      socket->set(zmq::sockopt::linger, 0);
      socket->close();
      socket.reset();
    }
  }
};

struct ZmqSecurity::DialWatch {
  Watch watch;
  void* dealer = nullptr;  // the watched socket while its monitor runs
  std::string address;
  bool curve = false;
  bool closed = false;
  std::shared_ptr<Report> report;
};

ZmqSecurity::ZmqSecurity(CurveOptions options, Report on_handshake_failed, Report on_dial_failed)
    : options_{std::move(options)},
      on_handshake_failed_{std::move(on_handshake_failed)},
      on_dial_failed_{std::make_shared<Report>(std::move(on_dial_failed))} {
  std::sort(options_.allowed_clients.begin(), options_.allowed_clients.end());  // answer_zap() searches it
}

ZmqSecurity::~ZmqSecurity() { close(); }

void ZmqSecurity::check() const {
  auto bad = [](const std::string& why) { return InvalidOptionsError("amsg: CURVE options: " + why); };
  if (options_.keys) {
    if (!is_curve_key(options_.keys->secret_key)) throw bad("the secret key is not 40 characters of Z85");
    if (curve_public_key(options_.keys->secret_key) != options_.keys->public_key) {
      throw bad("the public key does not belong to the secret key");
    }
  }
  for (const auto& key : options_.allowed_clients) {
    if (!is_curve_key(key)) throw bad(fmt::format("allowed client key '{}' is not 40 characters of Z85", key));
  }
  for (const auto& [address, key] : options_.server_keys) {
    if (!is_curve_key(key)) throw bad(fmt::format("the server key for '{}' is not 40 characters of Z85", address));
  }
  if (!options_.server_key.empty() && !is_curve_key(options_.server_key)) {
    throw bad("server_key is not 40 characters of Z85");
  }
}

void ZmqSecurity::check_listen(const std::string& address) const {
  if (options_.keys || options_.allow_insecure || !address.starts_with("tcp://")) return;
  const std::string_view rest = std::string_view{address}.substr(6);
  if (is_loopback_host(rest.substr(0, rest.rfind(':')))) return;
  throw NetworkError(fmt::format(
      "amsg: refusing to listen on '{}' without CURVE keys: anyone who can reach it could run this node's handlers. "
      "Give the node keys and an allowlist (amsg serve --curve-secret FILE --allow FILE|DIR; NodeOptions::curve), "
      "listen on loopback, or accept the risk (--insecure; CurveOptions::allow_insecure)",
      address));
}

void ZmqSecurity::configure_server(zmq::context_t& ctx, zmq::socket_t& socket, const asio::any_io_executor& executor) {
  if (!options_.keys) return;
  if (options_.allowed_clients.empty()) {
    throw InvalidOptionsError(
        "amsg: CURVE options: listening with keys and no allowed_clients: no client could connect "
        "(list the clients' public keys)");
  }
  if (!zap_) {  // before the first bind: a CURVE server without a ZAP handler would accept any client key
    zap_ = std::make_unique<Watch>();
    zap_->socket = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::rep);
    zap_->socket->bind(kZapEndpoint);
    zap_->fd = std::make_unique<asio::posix::stream_descriptor>(executor, zap_->socket->get(zmq::sockopt::fd));
    asio::co_spawn(executor, serve(*zap_, &ZmqSecurity::answer_zap), asio::detached);

    const std::string endpoint = next_monitor_endpoint();
    if (zmq_socket_monitor(socket.handle(), endpoint.c_str(), kWatchedEvents) != 0) {
      throw NetworkError(fmt::format("amsg: cannot watch handshakes: {}", zmq_strerror(zmq_errno())));
    }
    monitor_ = std::make_unique<Watch>();
    monitor_->socket = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::pair);
    monitor_->socket->connect(endpoint);
    monitor_->fd = std::make_unique<asio::posix::stream_descriptor>(executor, monitor_->socket->get(zmq::sockopt::fd));
    asio::co_spawn(executor, serve(*monitor_, &ZmqSecurity::read_monitor), asio::detached);
  }
  socket.set(zmq::sockopt::curve_server, 1);
  socket.set(zmq::sockopt::curve_secretkey, options_.keys->secret_key);
  socket.set(zmq::sockopt::zap_domain, "amsg");
}

std::shared_ptr<ZmqSecurity::DialWatch> ZmqSecurity::configure_client(zmq::context_t& ctx, zmq::socket_t& socket,
                                                                      const std::string& address,
                                                                      const asio::any_io_executor& executor) {
  auto d = std::make_shared<DialWatch>();
  d->address = address;
  d->report = on_dial_failed_;
  const auto it = options_.server_keys.find(address);
  const std::string& server_key = it != options_.server_keys.end() ? it->second : options_.server_key;
  if (!server_key.empty()) {
    if (!client_keys_) client_keys_ = options_.keys ? *options_.keys : generate_curve_key_pair();
    socket.set(zmq::sockopt::curve_serverkey, server_key);
    socket.set(zmq::sockopt::curve_publickey, client_keys_->public_key);
    socket.set(zmq::sockopt::curve_secretkey, client_keys_->secret_key);
    d->curve = true;
  }
  // Best effort: a node that cannot watch (out of sockets) dials all the same.
  const std::string endpoint = next_monitor_endpoint();
  if (zmq_socket_monitor(socket.handle(), endpoint.c_str(), kWatchedEvents) != 0) {
    d->closed = true;
    return d;
  }
  d->dealer = socket.handle();
  try {
    d->watch.socket = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::pair);
    d->watch.socket->connect(endpoint);
    d->watch.fd = std::make_unique<asio::posix::stream_descriptor>(executor, d->watch.socket->get(zmq::sockopt::fd));
    asio::co_spawn(executor, watch_dial(d), asio::detached);
  } catch (...) {
    close(*d);
  }
  return d;
}

// Before the watched socket closes. The monitor stops first: ZeroMQ's I/O
// thread sends its events blocking, and would wait forever for a reader gone.
void ZmqSecurity::close(DialWatch& watch) {
  if (watch.dealer != nullptr) {
    (void)zmq_socket_monitor(watch.dealer, nullptr, 0);
    watch.dealer = nullptr;
  }
  watch.closed = true;
  watch.watch.close();
}

// Reports each failed handshake of one connecting socket until it is closed.
asio::awaitable<void> ZmqSecurity::watch_dial(std::shared_ptr<DialWatch> d) {
  for (;;) {
    while (!d->closed && d->watch.readable()) {
      zmq::message_t event;
      if (!d->watch.socket->recv(event, zmq::recv_flags::dontwait)) break;
      zmq::message_t endpoint;
      if (event.more()) (void)d->watch.socket->recv(endpoint, zmq::recv_flags::none);
      if (event.size() < 6) continue;
      std::uint16_t id = 0;
      std::uint32_t value = 0;
      std::memcpy(&id, event.data(), sizeof id);
      std::memcpy(&value, static_cast<const char*>(event.data()) + 2, sizeof value);
      (*d->report)(fmt::format("handshake with {} failed: {}", d->address, describe_dial(id, value, d->curve)));
    }
    if (d->closed) co_return;
    asio::error_code ec;
    co_await d->watch.fd->async_wait(asio::posix::stream_descriptor::wait_read,
                                     asio::redirect_error(asio::use_awaitable, ec));
  }
}

void ZmqSecurity::stop_waiting() {
  stopping_ = true;
  if (zap_ && zap_->fd) zap_->fd->cancel();
  if (monitor_ && monitor_->fd) monitor_->fd->cancel();
}

void ZmqSecurity::close() {
  stopping_ = true;
  if (zap_) zap_->close();
  if (monitor_) monitor_->close();
}

// ZeroMQ asks (RFC 27) whether a client may complete its handshake: a CURVE
// client whose public key is on the allowlist may; nothing else may.
void ZmqSecurity::answer_zap() {
  std::vector<zmq::message_t> request;
  zmq::message_t part;
  while (zap_->socket->recv(part, zmq::recv_flags::dontwait)) {
    const bool more = part.more();
    request.push_back(std::move(part));
    if (!more) break;
  }
  if (request.empty()) return;
  std::string status = "400";
  std::string text = "not allowed";
  std::string user;
  if (request.size() >= 7 && request[0].to_string_view() == "1.0" && request[5].to_string_view() == "CURVE" &&
      request[6].size() == 32) {
    user = z85(request[6].data());
    if (std::binary_search(options_.allowed_clients.begin(), options_.allowed_clients.end(), user)) {
      status = "200";
      text = "OK";
    } else {
      text = "key not allowed";
    }
  }
  const std::string request_id = request.size() > 1 ? request[1].to_string() : std::string{};
  const std::array<std::string, 6> reply{"1.0", request_id, status, text, status == "200" ? user : "", ""};
  for (std::size_t i = 0; i < reply.size(); ++i) {
    (void)zap_->socket->send(zmq::buffer(reply[i]),
                             i + 1 < reply.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
}

void ZmqSecurity::read_monitor() {
  zmq::message_t event;
  if (!monitor_->socket->recv(event, zmq::recv_flags::dontwait)) return;
  zmq::message_t endpoint;
  if (event.more()) (void)monitor_->socket->recv(endpoint, zmq::recv_flags::none);
  if (event.size() < 6) return;
  std::uint16_t id = 0;
  std::uint32_t value = 0;
  std::memcpy(&id, event.data(), sizeof id);
  std::memcpy(&value, static_cast<const char*>(event.data()) + 2, sizeof value);
  on_handshake_failed_(
      fmt::format("a client's handshake on {} failed: {}", endpoint.to_string_view(), describe(id, value)));
}

// Handles what arrives on `w` (one ZAP request or monitor event per call) until shutdown.
asio::awaitable<void> ZmqSecurity::serve(Watch& w, void (ZmqSecurity::*handle)()) {
  for (;;) {
    while (!stopping_ && w.readable()) (this->*handle)();
    if (stopping_) co_return;
    asio::error_code ec;
    co_await w.fd->async_wait(asio::posix::stream_descriptor::wait_read, asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace amsg::net
