// Faults across emulated hosts: two network namespaces joined by a veth pair
// (client 10.231.0.1, server 10.231.0.2: addresses that exist only inside
// them), `amsg serve` in one and a node of this process in the other. The link
// is cut (both ways, or one way with nftables), the server paused (SIGSTOP) and
// killed and restarted; each time the outcomes are checked against what ran.
// Needs root, `ip` and `nft`; skipped with a message where that is not so.

#include <gtest/gtest.h>

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

#include "amsg/net/node.hpp"
#include "net_test_support.hpp"
#include "process.hpp"
#include "test_support.hpp"

namespace amsg::test {
namespace {

using net::CallOptions;
using net::Node;
using net::NodeOptions;
using net::PeerId;

constexpr const char* kServerAddress = "tcp://10.231.0.2:5555";

bool sh(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()) == 0; }  // NOLINT

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
  explicit Server(const Hosts& hosts)
      : process_{{"/usr/sbin/ip", "netns", "exec", hosts.server(), AMSG_CLI_PATH, "serve", "--listen", kServerAddress,
                  "--insecure", "--concurrency", "64"}} {
    if (!process_.wait_for_line("listening on", 30s)) throw std::runtime_error("no server: " + process_.output());
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
bool all_threads_stopped(pid_t pid) {
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

class Netns : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!hosts_.ok()) GTEST_SKIP() << "needs root, ip and nft, and network namespaces (ip netns add failed)";
  }
  Hosts hosts_;
};

TEST_F(Netns, ACutLinkEndsCallsInFlightWithPeerLostAndTrafficResumesWhenItHeals) {
  Server server{hosts_};
  Client c{hosts_, client_options("netns-cut")};
  ASSERT_TRUE(c.node().wait_ready(c.peer(), 20s));
  auto in_flight = c.calls(5, "sleep", "60000");
  ASSERT_TRUE(eventually([&] { return c.node().stats().messages_sent == 5; }));
  hosts_.link(false);
  const auto cut = std::chrono::steady_clock::now();
  for (auto& f : in_flight) EXPECT_EQ(get(f).code, errc::peer_lost);
  EXPECT_LT(std::chrono::steady_clock::now() - cut, 5s) << "the loss is noticed within the heartbeat bound";
  hosts_.link(true);
  ASSERT_TRUE(c.node().wait_ready(c.peer(), 20s));
  auto after = c.calls(1, "echo", "healed", 10s);
  EXPECT_EQ(get(after[0]).payload.as_string_view(), "healed");
  EXPECT_EQ(c.node().stats().outstanding_calls, 0u);
}

TEST_F(Netns, ServerToClientDroppedEndsCallsPeerLostAndEveryOkRan) {
  Server server{hosts_};
  Client c{hosts_, client_options("netns-drop-out")};
  ASSERT_TRUE(c.node().wait_ready(c.peer(), 20s));
  hosts_.drop("output");
  auto calls = c.calls(20, "echo", "x");
  int lost = 0;
  for (auto& f : calls) {
    const Notification n = get(f);
    EXPECT_EQ(n.code, errc::peer_lost) << n.text();  // the requests arrived (and ran); the answers did not
    lost += n.code == errc::peer_lost ? 1 : 0;
  }
  hosts_.heal();
  ASSERT_TRUE(c.node().wait_ready(c.peer(), 20s));
  auto after = c.calls(1, "echo", "back", 10s);
  EXPECT_EQ(get(after[0]).payload.as_string_view(), "back");
  const long ran = server.handlers_ok();
  EXPECT_GE(ran, 1);         // at least the one that came back ok
  EXPECT_LE(ran, 1 + lost);  // and none beyond what "may have run" allows
}

TEST_F(Netns, ClientToServerDroppedEndsCallsByTheirDeadlineAndHeals) {
  Server server{hosts_};
  Client c{hosts_, client_options("netns-drop-in")};
  ASSERT_TRUE(c.node().wait_ready(c.peer(), 20s));
  hosts_.drop("input");
  auto calls = c.calls(10, "echo", "x", 500ms);
  for (auto& f : calls) EXPECT_EQ(get(f).code, errc::timeout);
  hosts_.heal();
  auto after = c.calls(1, "echo", "back", 20s);
  const Notification n = get(after[0], 30s);
  EXPECT_TRUE(n.is_success()) << n.text();
  EXPECT_EQ(c.node().stats().outstanding_calls, 0u);
}

TEST_F(Netns, APausedServerIsLostThenResumesAndWhatRanIsAccountedFor) {
  Server server{hosts_};
  Client c{hosts_, client_options("netns-pause")};
  ASSERT_TRUE(c.node().wait_ready(c.peer(), 20s));
  const long before = server.handlers_ok();
  server.process().signal(SIGSTOP);
  ASSERT_TRUE(eventually([&] { return all_threads_stopped(server.process().pid()); }));
  auto calls = c.calls(20, "echo", "paused");
  int lost = 0;
  for (auto& f : calls) {
    const Notification n = get(f);
    EXPECT_EQ(n.code, errc::peer_lost) << n.text();
    lost += n.code == errc::peer_lost ? 1 : 0;
  }
  server.process().signal(SIGCONT);
  ASSERT_TRUE(c.node().wait_ready(c.peer(), 20s));
  auto after = c.calls(1, "echo", "resumed", 10s);
  EXPECT_EQ(get(after[0]).payload.as_string_view(), "resumed");
  const long ran = server.handlers_ok() - before;
  EXPECT_GE(ran, 1);
  EXPECT_LE(ran, 1 + lost);
}

TEST_F(Netns, AServerKilledAndRestartedAtOnceIsNoticedAndServesAgain) {
  std::optional<Server> server;
  server.emplace(hosts_);
  NodeOptions o = client_options("netns-restart");
  o.heartbeat_timeout = 30s;  // only the new connection can explain a quick peer lost
  Client c{hosts_, o};
  ASSERT_TRUE(c.node().wait_ready(c.peer(), 20s));
  const std::string first = c.node().peer_info(c.peer())->identity;
  auto orphan = c.calls(1, "sleep", "600000");
  ASSERT_TRUE(eventually([&] { return c.node().stats().messages_sent == 1; }));
  server->process().signal(SIGKILL);
  ASSERT_TRUE(server->process().wait_exit(10s));
  server.emplace(hosts_);
  const auto restarted = std::chrono::steady_clock::now();
  while (orphan[0].wait_for(0s) != std::future_status::ready && std::chrono::steady_clock::now() - restarted < 20s) {
    auto ping = c.calls(1, "echo", "x", 300ms);
    (void)get(ping[0]);
  }
  EXPECT_EQ(get(orphan[0], 1s).code, errc::peer_lost);
  EXPECT_LT(std::chrono::steady_clock::now() - restarted, 10s);
  EXPECT_NE(c.node().peer_info(c.peer())->identity, first);
  auto after = c.calls(1, "echo", "after", 10s);
  EXPECT_EQ(get(after[0]).payload.as_string_view(), "after");
}

}  // namespace
}  // namespace amsg::test
