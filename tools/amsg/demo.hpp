#pragma once
// `amsg demo`: a KV-cache leader and worker processes on loopback (ipc, tcp or UCX).

#include <cstddef>
#include <string>

namespace amsg::tool {

struct DemoOptions {
  std::size_t messages = 20'000;
  std::size_t workers = 2;
  std::size_t blocks = 1024;      // blocks per pool, per worker
  std::size_t block_kib = 16;     // block size
  std::size_t fail_every = 1000;  // every n-th command names blocks outside the pool
  std::size_t window = 64;        // commands outstanding at once
  std::string transport = "ipc";  // ipc, tcp or ucx: how the leader reaches its workers
  bool progress = true;
  bool json = false;
};

int run_demo(const DemoOptions& options);
// The worker side, started by run_demo() as `amsg demo-worker`.
int run_demo_worker(const std::string& listen, std::size_t blocks, std::size_t block_kib);

}  // namespace amsg::tool
