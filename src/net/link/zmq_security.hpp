#pragma once
// ZmqSecurity: CURVE for the ZeroMQ link. It configures sockets (a CURVE
// server on every listening socket when the node has keys; a CURVE client
// towards each address with a server key), answers ZeroMQ's authentication
// requests (ZAP: a client's key must be on the allowlist), and watches the
// listening socket's handshakes, reporting each one that failed (no keys, a
// wrong server key, a key not on the allowlist) to the session.
//
// It also refuses to listen in the clear on a tcp address other than loopback
// unless told it may (CurveOptions::allow_insecure).

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <zmq.hpp>

#include "amsg/net/curve.hpp"

namespace amsg::net {

class ZmqSecurity {
 public:
  // `on_handshake_failed` hears why (on the executor).
  ZmqSecurity(CurveOptions options, std::function<void(const std::string&)> on_handshake_failed);
  ~ZmqSecurity();
  ZmqSecurity(const ZmqSecurity&) = delete;
  ZmqSecurity& operator=(const ZmqSecurity&) = delete;

  // Throws InvalidOptionsError when the options cannot work (a bad key).
  void check() const;
  // Throws NetworkError when `address` may not be listened on in the clear.
  void check_listen(const std::string& address) const;
  // A listening socket, before its first bind: CURVE server, authentication and
  // handshake watch (when the node has keys). The ZAP handler lives in `ctx`.
  // Throws InvalidOptionsError for keys without an allowlist.
  void configure_server(zmq::context_t& ctx, zmq::socket_t& socket, const asio::any_io_executor& executor);
  // A connecting socket, before it connects to `address`.
  void configure_client(zmq::socket_t& socket, const std::string& address);
  // Shutdown: stop waiting on the executor; then close the sockets.
  void stop_waiting();
  void close();

 private:
  struct Watch;
  asio::awaitable<void> serve(Watch& w, void (ZmqSecurity::*handle)());
  void answer_zap();
  void read_monitor();

  CurveOptions options_;
  std::function<void(const std::string&)> on_handshake_failed_;
  std::unique_ptr<Watch> zap_;
  std::unique_ptr<Watch> monitor_;
  std::optional<CurveKeyPair> client_keys_;  // the node's keys, or an ephemeral pair
  bool stopping_ = false;
};

}  // namespace amsg::net
