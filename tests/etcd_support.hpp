#pragma once
// A real etcd for the tests (Debian's etcd-server): one member on a loopback
// port (or, for the cluster test, a namespace's address), in a temporary data
// directory that is removed afterwards. kill() and start() again keep the data,
// as a crashed and restarted etcd would.

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "amsg/net/etcd_membership.hpp"
#include "process.hpp"

namespace amsg::test {

inline constexpr const char* kEtcdBinary = "/usr/bin/etcd";

// A loopback TCP port that was free a moment ago.
inline int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t size = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &size) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

class EtcdServer {
 public:
  // `host` and ports: where it listens; `wrapper`: a command it runs under
  // (e.g. {"/usr/sbin/ip", "netns", "exec", NS}).
  explicit EtcdServer(std::string host = "127.0.0.1", int client_port = free_port(), int peer_port = 0,
                      std::vector<std::string> wrapper = {})
      : host_{std::move(host)}, client_port_{client_port}, peer_port_{peer_port}, wrapper_{std::move(wrapper)} {
    while (peer_port_ == 0 || peer_port_ == client_port_) peer_port_ = free_port();
    dir_ = "/tmp/amsg-etcd-" + std::to_string(::getpid()) + "-" + std::to_string(client_port_);
    std::filesystem::remove_all(dir_);
  }
  ~EtcdServer() {
    process_.reset();
    std::filesystem::remove_all(dir_);
  }
  EtcdServer(const EtcdServer&) = delete;
  EtcdServer& operator=(const EtcdServer&) = delete;

  static bool available() { return ::access(kEtcdBinary, X_OK) == 0; }

  // Starts it and waits until it answers (true), or 30 s; `wait` false: does
  // not wait (a test in another namespace than etcd's cannot ask it).
  bool start(bool wait = true) {
    const std::string client = "http://" + host_ + ":" + std::to_string(client_port_);
    const std::string peer = "http://" + host_ + ":" + std::to_string(peer_port_);
    std::vector<std::string> argv = wrapper_;
    for (const std::string& a : std::vector<std::string>{
             kEtcdBinary, "--name=amsg-test", "--data-dir=" + dir_ + "/data", "--listen-client-urls=" + client,
             "--advertise-client-urls=" + client, "--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
             "--initial-cluster=amsg-test=" + peer, "--logger=zap", "--log-outputs=" + dir_ + "/etcd.log"})
      argv.push_back(a);
    std::filesystem::create_directories(dir_);
    process_.emplace(argv);
    if (!wait) return true;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
    while (std::chrono::steady_clock::now() < deadline) {
      try {
        (void)net::etcd_members(address("/health-probe"), std::chrono::milliseconds{500});
        return true;
      } catch (const std::exception&) {
        if (process_->wait_exit(std::chrono::milliseconds{100})) return false;  // it died (port taken?)
      }
    }
    return false;
  }
  // SIGKILL, as a crash (the data stays).
  void kill() {
    process_->signal(SIGKILL);
    (void)process_->wait_exit(std::chrono::seconds{10});
    process_.reset();
  }
  [[nodiscard]] std::string address(const std::string& prefix) const {
    return "etcd://" + host_ + ":" + std::to_string(client_port_) + prefix;
  }
  [[nodiscard]] std::string log() const { return dir_ + "/etcd.log"; }

 private:
  std::string host_;
  int client_port_;
  int peer_port_;
  std::vector<std::string> wrapper_;
  std::string dir_;
  std::optional<Process> process_;
};

}  // namespace amsg::test
