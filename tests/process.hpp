#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
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

// An address for a test's server on one link: "ipc" (a path under /tmp,
// removed afterwards) or "ucx" (a loopback port that was free a moment ago;
// UCX's listener reuses addresses, so a restarted server binds it again).
class TestAddress {
 public:
  explicit TestAddress(const std::string& link) {
    if (link != "ucx") {
      address_ = ipc_.address();
      return;
    }
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      throw std::runtime_error("no free loopback port");
    }
    ::close(fd);
    address_ = "ucx://127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  }
  [[nodiscard]] const std::string& address() const { return address_; }

 private:
  IpcPath ipc_;
  std::string address_;
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
