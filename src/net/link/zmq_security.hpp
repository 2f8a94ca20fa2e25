#pragma once
// ZmqSecurity: CURVE for the ZeroMQ link. It configures sockets (a CURVE
// server on every listening socket when the node has keys; a CURVE client
// towards each address with a server key), answers ZeroMQ's authentication
// requests (ZAP: a client's key must be on the allowlist), and watches the
// listening socket's handshakes, reporting each one that failed (no keys, a
// wrong server key, a key not on the allowlist) to the session; and each
// connecting socket's, so that a node the server refuses learns why.
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
  using Report = std::function<void(const std::string&)>;
  // `on_handshake_failed` hears why a client's handshake failed,
  // `on_dial_failed` why one of ours did (both on the executor).
  ZmqSecurity(CurveOptions options, Report on_handshake_failed, Report on_dial_failed);
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
  // A connecting socket, before it connects to `address`: CURVE when there is
  // a server key for it; and a watch over its handshakes, which lasts until
  // the returned handle is closed (before the socket is).
  struct DialWatch;
  std::shared_ptr<DialWatch> configure_client(zmq::context_t& ctx, zmq::socket_t& socket, const std::string& address,
                                              const asio::any_io_executor& executor);
  static void close(DialWatch& watch);
  // Shutdown: stop waiting on the executor; then close the sockets.
  void stop_waiting();
  void close();

 private:
  struct Watch;
  asio::awaitable<void> serve(Watch& w, void (ZmqSecurity::*handle)());
  void answer_zap();
  void read_monitor();
  static asio::awaitable<void> watch_dial(std::shared_ptr<DialWatch> d);

  CurveOptions options_;
  Report on_handshake_failed_;
  std::shared_ptr<Report> on_dial_failed_;  // shared with the dial watches, which may outlive this
  std::unique_ptr<Watch> zap_;
  std::unique_ptr<Watch> monitor_;
  std::optional<CurveKeyPair> client_keys_;  // the node's keys, or an ephemeral pair
  bool stopping_ = false;
};

}  // namespace amsg::net
