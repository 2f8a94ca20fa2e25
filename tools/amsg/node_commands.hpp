#pragma once
// `amsg serve` and `amsg send`: a node with built-in handlers, and a one-shot sender.

#include <cstddef>
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
  long drain_ms = 5000;
  std::string metrics;  // HOST:PORT to serve Prometheus metrics on; empty: none
};

struct SendOptions {
  std::string to;
  std::string type;
  std::string data;
  std::string file;
  std::string notify;
  long timeout_ms = 5000;
  bool json = false;
};

int run_serve(const ServeOptions& options);
int run_send(const SendOptions& options);

}  // namespace amsg::tool
