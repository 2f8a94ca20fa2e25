#pragma once
// `amsg serve` and `amsg send`: a node with built-in handlers, and a one-shot sender.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <amsg/manager_options.hpp>

namespace amsg::tool {

struct ServeOptions {
  std::vector<std::string> listen;
  std::size_t concurrency = 4;
  std::size_t threads = ManagerOptions{}.threads;  // the library default; 0 = hardware threads
  std::size_t max_payload = 16u << 20;
  std::string identity;
  long spin_us = 0;
  bool busy_poll = false;  // UcxOptions::busy_poll
  long drain_ms = 5000;
  std::string metrics;                // HOST:PORT to serve Prometheus metrics on; empty: none
  std::string curve_secret;           // this node's secret certificate; empty: no CURVE
  std::string allow;                  // allowlist: a file or a directory of public certificates
  bool insecure = false;              // listen in the clear beyond loopback
  std::string journal;                // append the id of every message a handler starts to this file
  std::string join;                   // a cohort leader's address to announce this node to; empty: none
  std::optional<std::uint32_t> rank;  // with join: the rank asked for; none: any
  std::string advertise;              // with join: the address the leader dials; empty: the first endpoint
  long lease_ttl_s = 5;               // with join etcd://...: the lease's time to live
};

struct SendOptions {
  std::string to;
  std::string type;
  std::string data;
  std::string file;
  std::string notify;
  long timeout_ms = 5000;
  bool json = false;
  std::string curve_secret;  // this client's secret certificate (empty: an ephemeral key pair)
  std::string server_key;    // the server's public key, or a file holding it; empty: no CURVE
};

int run_serve(const ServeOptions& options);
int run_send(const SendOptions& options);
// `amsg keygen NAME`: writes NAME and NAME_secret; prints the public key.
int run_keygen(const std::string& path);
// `amsg cohort status etcd://...`: the members registered there.
int run_cohort_status(const std::string& address, bool json);

}  // namespace amsg::tool
