// CURVE over tcp loopback: an allowed client is served; a client without keys,
// with a wrong server key, or with a key not on the allowlist is refused during
// the handshake (counted, nothing run); the bytes on the wire do not hold the
// payload; listening beyond loopback in the clear is refused; key files.

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <asio/use_future.hpp>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "amsg/errors.hpp"
#include "amsg/net/curve.hpp"
#include "amsg/net/node.hpp"
#include "net_test_support.hpp"
#include "test_support.hpp"

namespace amsg::test {
namespace {

using net::CallOptions;
using net::CurveKeyPair;
using net::Node;
using net::NodeOptions;
using net::PeerId;

struct CurveServer {
  CurveServer(const std::string& name, std::optional<CurveKeyPair> keys, std::vector<std::string> allowed) {
    NodeOptions o;
    o.listen = {"tcp://127.0.0.1:0"};
    o.manager.logger_name = quiet_logger(name);
    o.curve.keys = std::move(keys);
    o.curve.allowed_clients = std::move(allowed);
    node = std::make_unique<Node>(o);
    add_handlers(node->manager(), nullptr, &runs);
    node->start();
    address = node->endpoints().front();
  }
  std::atomic<int> runs{0};
  std::unique_ptr<Node> node;
  std::string address;
};

NodeOptions client(const std::string& name, std::optional<CurveKeyPair> keys, std::string server_key) {
  NodeOptions o = client_options(name);
  o.curve.keys = std::move(keys);
  o.curve.server_key = std::move(server_key);
  o.heartbeat_interval = 100ms;
  o.heartbeat_timeout = 500ms;  // an unanswered hello ends the call "peer unreachable" this soon
  return o;
}

Notification echo(Node& node, const std::string& address, const std::string& body) {
  const PeerId peer = node.connect(address);
  auto f = node.call(peer, "echo", bytes(body), CallOptions{"e", 10s}, asio::use_future);
  return get(f);
}

TEST(Curve, AnAllowedClientIsServed) {
  const CurveKeyPair server_keys = net::generate_curve_key_pair();
  const CurveKeyPair client_keys = net::generate_curve_key_pair();
  CurveServer server{"curve-ok-s", server_keys, {client_keys.public_key}};
  Node c{client("curve-ok-c", client_keys, server_keys.public_key)};
  c.start();
  const Notification n = echo(c, server.address, "hello");
  ASSERT_TRUE(n.is_success()) << n.text();
  EXPECT_EQ(n.payload.as_string_view(), "hello");
  EXPECT_EQ(server.node->stats().handshakes_failed, 0u);
}

// Each refused client: its call ends "peer unreachable" (never sent, so not
// run), the server counts the failed handshake and runs nothing.
TEST(Curve, ClientsWithoutTheRightKeysAreRefusedCountedAndNothingRuns) {
  const CurveKeyPair server_keys = net::generate_curve_key_pair();
  const CurveKeyPair allowed = net::generate_curve_key_pair();
  const CurveKeyPair stranger = net::generate_curve_key_pair();
  const CurveKeyPair impostor = net::generate_curve_key_pair();  // claims to be the server
  CurveServer server{"curve-refused-s", server_keys, {allowed.public_key}};
  struct Case {
    const char* what;
    std::optional<CurveKeyPair> keys;
    std::string server_key;
  };
  const std::vector<Case> cases{{"no keys", std::nullopt, ""},
                                {"a wrong server key", allowed, impostor.public_key},
                                {"a key not on the allowlist", stranger, server_keys.public_key}};
  for (const auto& k : cases) {
    SCOPED_TRACE(k.what);
    const std::uint64_t failed_before = server.node->stats().handshakes_failed;
    Node c{client(std::string{"curve-refused-c"}, k.keys, k.server_key)};
    c.start();
    const Notification n = echo(c, server.address, "must not run");
    EXPECT_EQ(n.code, errc::peer_unreachable) << n.text();
    EXPECT_TRUE(eventually([&] { return server.node->stats().handshakes_failed > failed_before; }))
        << "the server counts the refused handshake";
    EXPECT_GT(c.stats().dial_handshakes_failed, 0u) << "the client learns that its handshake failed";
    c.shutdown(0ms);
  }
  EXPECT_EQ(server.runs.load(), 0);
  EXPECT_EQ(server.node->stats().messages_received, 0u);
  // The allowed client is still served.
  Node ok{client("curve-refused-ok", allowed, server_keys.public_key)};
  ok.start();
  EXPECT_TRUE(echo(ok, server.address, "fine").is_success());
}

// A TCP relay between client and server that keeps a copy of every byte.
class Tap {
 public:
  explicit Tap(int server_port) : server_port_{server_port} {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0;
    EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);  // NOLINT
    EXPECT_EQ(::listen(listener_, 4), 0);
    socklen_t len = sizeof a;
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&a), &len);  // NOLINT
    port_ = ntohs(a.sin_port);
    thread_ = std::thread{[this] { run(); }};
  }
  ~Tap() {
    stop_ = true;
    thread_.join();
    ::close(listener_);
  }
  Tap(const Tap&) = delete;
  Tap& operator=(const Tap&) = delete;
  [[nodiscard]] std::string address() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] std::string captured() const {
    std::lock_guard lock{mutex_};
    return captured_;
  }

 private:
  void run() {
    pollfd accept_poll{listener_, POLLIN, 0};
    while (!stop_ && ::poll(&accept_poll, 1, 50) <= 0) {
    }
    if (stop_) return;
    const int client = ::accept(listener_, nullptr, nullptr);
    const int server = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<std::uint16_t>(server_port_));
    if (::connect(server, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) stop_ = true;  // NOLINT
    std::array<pollfd, 2> fds{pollfd{client, POLLIN, 0}, pollfd{server, POLLIN, 0}};
    std::array<char, 65536> buf{};
    while (!stop_) {
      if (::poll(fds.data(), fds.size(), 50) <= 0) continue;
      for (std::size_t i = 0; i < 2; ++i) {
        if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0) continue;
        const ssize_t n = ::read(fds[i].fd, buf.data(), buf.size());
        if (n <= 0) {
          stop_ = true;
          break;
        }
        {
          std::lock_guard lock{mutex_};
          captured_.append(buf.data(), static_cast<std::size_t>(n));
        }
        for (ssize_t off = 0; off < n;) {
          const ssize_t w = ::write(fds[1 - i].fd, buf.data() + off, static_cast<std::size_t>(n - off));
          if (w <= 0) break;
          off += w;
        }
      }
    }
    ::close(client);
    ::close(server);
  }

  int server_port_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  mutable std::mutex mutex_;
  std::string captured_;
};

int port_of(const std::string& address) { return std::stoi(address.substr(address.rfind(':') + 1)); }

TEST(Curve, TheBytesOnTheWireDoNotHoldThePayload) {
  const std::string secret = "the-secret-payload-4f1c9b27";
  // Control: in the clear the tap sees the payload, so the tap works.
  {
    CurveServer plain{"curve-tap-plain-s", std::nullopt, {}};
    Tap tap{port_of(plain.address)};
    Node c{client("curve-tap-plain-c", std::nullopt, "")};
    c.start();
    ASSERT_TRUE(echo(c, tap.address(), secret).is_success());
    EXPECT_NE(tap.captured().find(secret), std::string::npos) << "the tap sees plain traffic";
    c.shutdown(0ms);
  }
  const CurveKeyPair server_keys = net::generate_curve_key_pair();
  const CurveKeyPair client_keys = net::generate_curve_key_pair();
  CurveServer server{"curve-tap-s", server_keys, {client_keys.public_key}};
  Tap tap{port_of(server.address)};
  Node c{client("curve-tap-c", client_keys, server_keys.public_key)};
  c.start();
  for (int i = 0; i < 20; ++i) {
    const Notification n = echo(c, tap.address(), secret);
    ASSERT_TRUE(n.is_success()) << n.text();
    EXPECT_EQ(n.payload.as_string_view(), secret);
  }
  const std::string wire = tap.captured();
  EXPECT_GT(wire.size(), 20 * secret.size()) << "the traffic went through the tap";
  EXPECT_EQ(wire.find(secret), std::string::npos) << "a payload crossed the wire in the clear";
  EXPECT_EQ(wire.find("echo"), std::string::npos) << "a message type crossed the wire in the clear";
  c.shutdown(0ms);
}

TEST(Curve, ListeningBeyondLoopbackInTheClearIsRefusedUnlessAllowed) {
  for (const char* address : {"tcp://0.0.0.0:0", "tcp://*:0"}) {
    NodeOptions o;
    o.listen = {address};
    o.manager.logger_name = quiet_logger("curve-insecure");
    Node node{o};
    try {
      node.start();
      ADD_FAILURE() << address << " was listened on in the clear";
    } catch (const NetworkError& e) {
      EXPECT_NE(std::string{e.what()}.find("without CURVE keys"), std::string::npos) << e.what();
      EXPECT_NE(std::string{e.what()}.find("--insecure"), std::string::npos) << e.what();
    }
  }
  NodeOptions keys_without_allowlist;
  keys_without_allowlist.listen = {"tcp://127.0.0.1:0"};
  keys_without_allowlist.manager.logger_name = quiet_logger("curve-insecure");
  keys_without_allowlist.curve.keys = net::generate_curve_key_pair();
  Node no_client_could_connect{keys_without_allowlist};
  EXPECT_THROW(no_client_could_connect.start(), InvalidOptionsError);
  NodeOptions bad_key;
  bad_key.curve.server_key = "not a key";
  EXPECT_THROW(Node{bad_key}, InvalidOptionsError);
}

TEST(Curve, KeyFilesRoundTripAndBadOnesAreNamed) {
  const auto dir = std::filesystem::temp_directory_path() / ("amsg-curve-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "allowed");
  const CurveKeyPair a = net::generate_curve_key_pair();
  const CurveKeyPair b = net::generate_curve_key_pair();
  net::write_curve_key_files(a, (dir / "allowed" / "a").string());
  net::write_curve_key_files(b, (dir / "b").string());
  EXPECT_EQ(net::curve_public_key(a.secret_key), a.public_key);

  const CurveKeyPair read = net::read_curve_secret_file((dir / "allowed" / "a_secret").string());
  EXPECT_EQ(read.public_key, a.public_key);
  EXPECT_EQ(read.secret_key, a.secret_key);
  EXPECT_EQ(net::read_curve_public_file((dir / "allowed" / "a").string()), a.public_key);
  struct stat st {};
  ASSERT_EQ(::stat((dir / "allowed" / "a_secret").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u) << "a secret certificate is its owner's only";

  std::filesystem::remove(dir / "allowed" / "a_secret");  // a directory allowlist: public certificates
  net::write_curve_key_files(b, (dir / "allowed" / "b").string());
  std::filesystem::remove(dir / "allowed" / "b_secret");
  auto keys = net::read_curve_allowlist((dir / "allowed").string());
  auto expected = std::vector<std::string>{a.public_key, b.public_key};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(keys, expected);
  std::ofstream{dir / "list"} << "# clients\n" << a.public_key << "\n\n" << b.public_key << "\n";
  EXPECT_EQ(net::read_curve_allowlist((dir / "list").string()), expected);

  std::ofstream{dir / "broken"} << "curve\n    secret-key = \"tooshort\"\n";
  try {
    (void)net::read_curve_secret_file((dir / "broken").string());
    ADD_FAILURE() << "a broken key was read";
  } catch (const NetworkError& e) {
    EXPECT_NE(std::string{e.what()}.find("broken"), std::string::npos) << e.what();
  }
  EXPECT_THROW((void)net::read_curve_public_file((dir / "missing").string()), NetworkError);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace amsg::test
