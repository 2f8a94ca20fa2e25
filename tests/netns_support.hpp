#pragma once
// Emulated hosts for the namespace and chaos tests: two network namespaces
// joined by a veth pair (client 10.231.0.1, server 10.231.0.2: addresses that
// exist only inside them), `amsg serve` in one and a node of the test process
// in the other. Needs root, `ip` and `nft`; Hosts::ok() says whether they work.

#include <fcntl.h>
#include <sched.h>
#include <unistd.h>

#include <asio/use_future.hpp>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "amsg/net/node.hpp"
#include "net_test_support.hpp"
#include "process.hpp"
#include "test_support.hpp"

namespace amsg::test::netns {

using net::CallOptions;
using net::Node;
using net::NodeOptions;
using net::PeerId;

inline constexpr const char* kServerAddress = "tcp://10.231.0.2:5555";

inline bool sh(const std::string& command) {
  return std::system((command + " >/dev/null 2>&1").c_str()) == 0;
}  // NOLINT

// Two namespaces and the veth pair between them; removed whatever happens.
class Hosts {
 public:
  Hosts()
      : client_{"amsg-c-" + std::to_string(::getpid())},
        server_{"amsg-s-" + std::to_string(::getpid())},
        client_if_{"amc" + std::to_string(::getpid() % 100000)},
        server_if_{"ams" + std::to_string(::getpid() % 100000)} {
    ok_ = ::geteuid() == 0 && sh("ip netns add " + client_) && sh("ip netns add " + server_) &&
          sh("ip link add " + client_if_ + " netns " + client_ + " type veth peer name " + server_if_ + " netns " +
             server_) &&
          sh("ip -n " + client_ + " addr add 10.231.0.1/24 dev " + client_if_) &&
          sh("ip -n " + server_ + " addr add 10.231.0.2/24 dev " + server_if_) &&
          sh("ip -n " + client_ + " link set " + client_if_ + " up") &&
          sh("ip -n " + server_ + " link set " + server_if_ + " up") && sh("ip -n " + client_ + " link set lo up") &&
          sh("ip -n " + server_ + " link set lo up") && sh("command -v nft");
  }
  ~Hosts() {
    sh("ip netns del " + client_);  // takes its end of the veth pair, and so the pair, with it
    sh("ip netns del " + server_);
  }
  Hosts(const Hosts&) = delete;
  Hosts& operator=(const Hosts&) = delete;

  [[nodiscard]] bool ok() const { return ok_; }
  [[nodiscard]] const std::string& client() const { return client_; }
  [[nodiscard]] const std::string& server() const { return server_; }
  void link(bool up) { ASSERT_TRUE(sh("ip -n " + server_ + " link set " + server_if_ + (up ? " up" : " down"))); }
  // Drops the node's packets at the server: `hook` input (client to server) or
  // output (server to client).
  void drop(const std::string& hook) {
    const std::string nft = "ip netns exec " + server_ + " nft ";
    const std::string match = hook == "input" ? "tcp dport 5555" : "tcp sport 5555";
    ASSERT_TRUE(sh(nft + "add table inet amsg"));
    ASSERT_TRUE(sh(nft + "'add chain inet amsg " + hook + " { type filter hook " + hook + " priority 0; }'"));
    ASSERT_TRUE(sh(nft + "add rule inet amsg " + hook + " " + match + " drop"));
  }
  void heal() { ASSERT_TRUE(sh("ip netns exec " + server_ + " nft delete table inet amsg")); }

 private:
  std::string client_, server_, client_if_, server_if_;
  bool ok_ = false;
};

// `amsg serve` in the server's namespace.
class Server {
 public:
  explicit Server(const Hosts& hosts, const std::vector<std::string>& extra = {}) : process_{argv(hosts, extra)} {
    if (!process_.wait_for_line("listening on", 30s)) throw std::runtime_error("no server: " + process_.output());
  }
  static std::vector<std::string> argv(const Hosts& hosts, const std::vector<std::string>& extra) {
    std::vector<std::string> a{"/usr/sbin/ip", "netns",        "exec",       hosts.server(),  AMSG_CLI_PATH, "serve",
                               "--listen",     kServerAddress, "--insecure", "--concurrency", "64"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  Process& process() { return process_; }
  // Handler runs that ended ok so far (from the stats it prints on SIGUSR1).
  long handlers_ok() {
    process_.signal(SIGUSR1);
    const auto line = process_.wait_for_line("amsg serve: stats:", 10s);
    if (!line) return -1;
    const auto at = line->find(", ok ");  // (std::regex trips GCC 12's warnings under the sanitizers)
    return at == std::string::npos ? -1 : std::stol(line->substr(at + 5));
  }

 private:
  Process process_;
};

// A node living in the client's namespace: made, started and destroyed on a
// thread that entered it (threads made from there, ZeroMQ's included, stay in it).
class Client {
 public:
  Client(const Hosts& hosts, NodeOptions options) {
    std::promise<void> ready;
    auto started = ready.get_future();
    thread_ = std::thread{[&, options = std::move(options)] {
      const int fd = ::open(("/var/run/netns/" + hosts.client()).c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) {
        ready.set_exception(std::make_exception_ptr(std::runtime_error("cannot enter the client namespace")));
        return;
      }
      ::close(fd);
      node_ = std::make_unique<Node>(options);
      node_->start();
      peer_ = node_->connect(kServerAddress);
      ready.set_value();
      stop_.get_future().wait();
      node_->shutdown(0ms);
      node_.reset();
    }};
    started.get();
  }
  ~Client() {
    stop_.set_value();
    thread_.join();
  }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  Node& node() { return *node_; }
  [[nodiscard]] PeerId peer() const { return peer_; }
  std::vector<std::future<Notification>> calls(int n, const std::string& type, const std::string& body,
                                               std::chrono::milliseconds timeout = 0ms) {
    std::vector<std::future<Notification>> out;
    out.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
      out.push_back(
          node_->call(peer_, type, bytes(body), CallOptions{"c" + std::to_string(i), timeout}, asio::use_future));
    }
    return out;
  }

 private:
  std::thread thread_;
  std::promise<void> stop_;
  std::unique_ptr<Node> node_;
  PeerId peer_{};
};

// Whether every thread of `pid` is stopped (SIGSTOP takes effect asynchronously).
inline bool all_threads_stopped(pid_t pid) {
  std::error_code ec;
  bool any = false;
  for (const auto& task : std::filesystem::directory_iterator{"/proc/" + std::to_string(pid) + "/task", ec}) {
    std::ifstream stat{task.path() / "stat"};
    std::string text{std::istreambuf_iterator<char>{stat}, std::istreambuf_iterator<char>{}};
    const auto close = text.rfind(')');  // "pid (comm) S ...": the state follows the command name
    if (close == std::string::npos || close + 2 >= text.size() || text[close + 2] != 'T') return false;
    any = true;
  }
  return any;
}

}  // namespace amsg::test::netns
