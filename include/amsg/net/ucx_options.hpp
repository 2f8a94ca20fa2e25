#pragma once
/// @file
/// UcxOptions: how a node uses its UCX link (`ucx://HOST:PORT` addresses).
///
/// UCX picks the transport for each connection: shared memory between the
/// processes of one host, tcp across hosts, RDMA where the hardware has it.
/// Connections are made through UCX's sockaddr connection manager, which is
/// tcp's, so `tcp` must stay in the transports allowed.

#include <chrono>
#include <string>

namespace amsg::net {

/// The UCX link's settings. Empty strings leave UCX's own setting (its
/// environment variables `UCX_TLS`, `UCX_NET_DEVICES`, or its defaults).
struct UcxOptions {
  /// UCX transports to use, as `UCX_TLS` takes them ("tcp", "sm,tcp", "rc,sm,tcp").
  std::string transports{};
  /// Network devices, as `UCX_NET_DEVICES` takes them ("lo", "eth0", "mlx5_0:1").
  std::string net_devices{};
  /// How long the node keeps polling UCX after the last event before it sleeps
  /// until the next one. 0 (the default): sleep at once, so an idle node uses
  /// no CPU. A few tens of microseconds turn most round trips into shared-memory
  /// or polling speed, at the cost of that much CPU after every burst.
  std::chrono::microseconds spin{0};
  /// Never sleep: poll UCX continuously on one thread of the node's pool, for
  /// the lowest latency. It also sets the node's ManagerOptions::busy_poll (its
  /// pool runs queued work without a system call between steps), so every
  /// thread of the node's pool stays at 100 % CPU while the node runs: use it
  /// with a pool of one thread (the default).
  bool busy_poll = false;
  /// UCX has no authentication or encryption: anyone who can reach a listening
  /// address could run this node's handlers. A node refuses to listen on
  /// anything but loopback unless this is set (`amsg serve --insecure`).
  bool allow_insecure = false;
};

}  // namespace amsg::net
