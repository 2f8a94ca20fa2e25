#pragma once
// Child processes for the multi-process tests: `amsg serve` started and ready
// (tool::ChildProcess underneath), and unique loopback ipc paths that are
// removed afterwards.

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "child_process.hpp"

namespace amsg::test {

// A unique ipc:// address under /tmp; the file is removed when this goes away.
class IpcPath {
 public:
  IpcPath() {
    static std::atomic<int> counter{0};
    path_ = "/tmp/amsg-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".ipc";
    ::unlink(path_.c_str());
  }
  ~IpcPath() { ::unlink(path_.c_str()); }
  IpcPath(const IpcPath&) = delete;
  IpcPath& operator=(const IpcPath&) = delete;
  [[nodiscard]] std::string address() const { return "ipc://" + path_; }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Child processes are the tool's: one implementation for the tool and the tests.
using Process = tool::ChildProcess;

#ifdef AMSG_CLI_PATH
// `amsg serve` listening on `address`, ready once it has printed where it listens.
class Server {
 public:
  explicit Server(const std::string& address, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{AMSG_CLI_PATH, "serve", "--listen", address};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process_.emplace(argv);
    if (!process_->wait_for_line("listening on", std::chrono::seconds{30})) {
      throw std::runtime_error("amsg serve did not start: " + process_->output());
    }
  }
  Process& process() { return *process_; }

 private:
  std::optional<Process> process_;
};
#endif  // AMSG_CLI_PATH

}  // namespace amsg::test
