// Multi-process tests: `amsg serve` in child processes, driven by a node (or a
// raw ZeroMQ socket) in this one. Loopback only: ipc (files removed
// afterwards), and the first tests also over UCX (ucx:// on loopback).

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <asio/use_future.hpp>

#include <future>
#include <random>
#include <zmq.hpp>

#include "amsg/net/cohort.hpp"
#include "amsg/net/node.hpp"
#include "net_test_support.hpp"
#include "process.hpp"
#include "raw_peer.hpp"
#include "test_support.hpp"
#include "wire/codec.hpp"

namespace amsg::test {
namespace {

using net::CallOptions;
using net::Node;
using net::NodeOptions;
using net::PeerId;
using net::PeerState;

// The link under test: "ipc" (ZeroMQ) or "ucx".
class ProcessOverLink : public ::testing::TestWithParam<std::string> {};

TEST_P(ProcessOverLink, EverySendPatternAndRemoteFailureAgainstAmsgServe) {
  TestAddress path{GetParam()};
  Server server{path.address(), {"--max-payload", "1024"}};
  Node client{client_options("proc-patterns")};
  client.start();
  const PeerId peer = client.connect(path.address());

  auto echo = client.call(peer, "echo", bytes("ping"), {}, asio::use_future);
  EXPECT_EQ(get(echo).payload.as_string_view(), "ping");
  ASSERT_EQ(client.send(peer, "sink", bytes("fire and forget")), SendStatus::ok);
  ASSERT_EQ(client.send(peer, "echo", bytes("x"), {"n-ok"}), SendStatus::ok);
  ASSERT_EQ(client.send(peer, "fail", bytes("Invalid data format"), {"n-err"}), SendStatus::ok);
  auto got = receive_n(client.manager(), 2);
  ASSERT_EQ(got.size(), 2u);
  std::set<std::string> texts{got[0].text(), got[1].text()};
  EXPECT_TRUE(texts.contains("n-ok:ok"));
  EXPECT_TRUE(texts.contains("n-err:err(Invalid data format)"));

  auto unknown = client.call(peer, "nope", bytes(""), CallOptions{"u"}, asio::use_future);
  EXPECT_EQ(get(unknown).text(), "u:err(unknown message type 'nope')");
  auto threw = client.call(peer, "fail", bytes("handler threw"), CallOptions{"t"}, asio::use_future);
  EXPECT_EQ(get(threw).text(), "t:err(handler threw)");
  auto big = client.call(peer, "echo", Payload{2048}, CallOptions{"big"}, asio::use_future);
  EXPECT_EQ(get(big).text(), "big:err(payload of 2048 bytes exceeds the limit of 1024 bytes)");
  auto slow = client.call(peer, "sleep", bytes("5000"), CallOptions{"s", 100ms}, asio::use_future);
  EXPECT_EQ(get(slow).text(), "s:err(timeout)");
  EXPECT_FALSE(client.manager().try_receive());
}

TEST_P(ProcessOverLink, AKilledWorkerFailsOutstandingCallsWithPeerLostAndARestartResumes) {
  TestAddress path{GetParam()};
  std::optional<Server> server;
  server.emplace(path.address(), std::vector<std::string>{"--concurrency", "4"});
  Node client{client_options("proc-kill")};
  client.start();
  const PeerId peer = client.connect(path.address());
  ASSERT_TRUE(client.wait_ready(peer, 20s));
  std::vector<std::future<Notification>> calls;
  calls.reserve(50);
  for (int i = 0; i < 50; ++i) calls.push_back(client.call(peer, "sleep", bytes("30000"), {}, asio::use_future));
  for (int i = 0; i < 10; ++i)
    ASSERT_EQ(client.send(peer, "sleep", bytes("30000"), {"n" + std::to_string(i)}), SendStatus::ok);
  ASSERT_TRUE(eventually([&] { return client.stats().messages_sent == 60; }));

  server->process().signal(SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  ASSERT_TRUE(server->process().wait_exit(10s));
  for (auto& f : calls) EXPECT_EQ(get(f).error, "peer lost");
  auto notes = receive_n(client.manager(), 10);
  ASSERT_EQ(notes.size(), 10u);
  for (const auto& n : notes) EXPECT_EQ(n.error, "peer lost") << n.text();
  const auto took = std::chrono::steady_clock::now() - killed;
  EXPECT_LT(took, 2s) << "default detection bound";
  EXPECT_TRUE(eventually([&] { return client.stats().outstanding_calls == 0; }));
  EXPECT_EQ(client.stats().calls_failed_peer, 60u);
  EXPECT_FALSE(client.manager().try_receive());  // exactly one outcome each

  // The same address comes back: the sender picks it up without a restart.
  server.emplace(path.address());
  ASSERT_TRUE(eventually([&] { return client.peer_info(peer)->connections == 2; }, 20s));
  auto again = client.call(peer, "echo", bytes("back"), {}, asio::use_future);
  EXPECT_EQ(get(again).payload.as_string_view(), "back");
}

// SIGKILL and a restart on the same address at once, while traffic flows:
// ZeroMQ reconnects by itself, the new process says so (an unasked HELLO_ACK),
// and the call the old process was running ends peer lost instead of hanging.
TEST_P(ProcessOverLink, AnImmediateRestartIsNoticedAndTheOldProcessesCallsEndPeerLost) {
  TestAddress path{GetParam()};
  std::optional<Server> server;
  server.emplace(path.address());
  NodeOptions co = client_options("proc-fast-restart");
  co.heartbeat_timeout = 30s;  // silence cannot explain what follows: only the new connection can
  Node client{co};
  client.start();
  const PeerId peer = client.connect(path.address());
  ASSERT_TRUE(client.wait_ready(peer, 20s));
  const std::string first = client.peer_info(peer)->identity;
  auto orphan = client.call(peer, "sleep", bytes("600000"), CallOptions{"orphan"}, asio::use_future);  // no deadline
  ASSERT_TRUE(eventually([&] { return client.stats().messages_sent == 1; }));

  server->process().signal(SIGKILL);
  ASSERT_TRUE(server->process().wait_exit(10s));
  server.emplace(path.address());
  const auto restarted = std::chrono::steady_clock::now();
  // Traffic keeps the connection busy: the silence that would reveal a loss never comes.
  while (orphan.wait_for(0s) != std::future_status::ready && std::chrono::steady_clock::now() - restarted < 20s) {
    auto f = client.call(peer, "echo", bytes("x"), CallOptions{"e", 300ms}, asio::use_future);
    (void)get(f);  // ok, or timeout while the new process starts
  }
  const Notification n = get(orphan, 1s);
  EXPECT_EQ(n.code, errc::peer_lost) << n.text();
  EXPECT_LT(std::chrono::steady_clock::now() - restarted, 5s);
  EXPECT_NE(client.peer_info(peer)->identity, first);
  EXPECT_GE(client.peer_info(peer)->connections, 2u);
  auto after = client.call(peer, "echo", bytes("after"), CallOptions{"after", 10s}, asio::use_future);
  EXPECT_EQ(get(after).payload.as_string_view(), "after");
  EXPECT_EQ(client.stats().outstanding_calls, 0u);
  EXPECT_EQ(client.stats().peers_lost, 1u);
  EXPECT_EQ(client.peer_info(peer)->state, PeerState::ready);
}

TEST_P(ProcessOverLink, AnUnreachablePeerFailsCallsInsteadOfHanging) {
  TestAddress path{GetParam()};  // nobody listens here
  Node client{client_options("proc-unreachable")};
  client.start();
  const PeerId peer = client.connect(path.address());
  auto f = client.call(peer, "echo", bytes(""), CallOptions{"x"}, asio::use_future);
  EXPECT_EQ(get(f, 10s).text(), "x:err(peer unreachable)");
}

TEST_P(ProcessOverLink, SigtermDrainsRunningHandlersAndExitsZero) {
  TestAddress path{GetParam()};
  Server server{path.address()};
  Node client{client_options("proc-sigterm")};
  client.start();
  const PeerId peer = client.connect(path.address());
  auto running = client.call(peer, "sleep", bytes("300"), CallOptions{"drained"}, asio::use_future);
  // The server reads a connection in order: once the echo is answered, the sleep is in its inbox.
  auto echo = client.call(peer, "echo", bytes("after"), {}, asio::use_future);
  ASSERT_EQ(get(echo).payload.as_string_view(), "after");
  server.process().signal(SIGTERM);
  EXPECT_EQ(get(running).text(), "drained:ok");
  const auto status = server.process().wait_exit(20s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0);
}

TEST(Process, AmsgSendPrintsTheOutcomeAndItsExitCodeSaysWhichOne) {
  IpcPath path;
  Server server{path.address()};
  auto run = [&](std::vector<std::string> args) {
    std::vector<std::string> argv{AMSG_CLI_PATH, "send", "--to", path.address()};
    argv.insert(argv.end(), args.begin(), args.end());
    Process p{argv};
    auto line = p.wait_for_line("", 30s);
    auto status = p.wait_exit(30s);
    return std::make_pair(line.value_or("<none>"), status ? WEXITSTATUS(*status) : -1);
  };
  EXPECT_EQ(run({"--type", "echo", "--data", "hi"}), std::make_pair(std::string{"hi"}, 0));
  EXPECT_EQ(run({"--type", "echo", "--data", "hi", "--notify", "req-1"}), std::make_pair(std::string{"req-1:ok"}, 0));
  EXPECT_EQ(run({"--type", "fail", "--data", "bad", "--notify", "req-2"}),
            std::make_pair(std::string{"req-2:err(bad)"}, 1));
  // A malformed address is refused at once (exit 2, on stderr), not after a 10 s wait.
  for (const std::string bad : {"127.0.0.1:5555", "foo://bar"}) {
    const auto t0 = std::chrono::steady_clock::now();
    Process p{{AMSG_CLI_PATH, "send", "--to", bad, "--type", "echo"}};
    const auto status = p.wait_exit(30s);
    ASSERT_TRUE(status) << bad;
    EXPECT_EQ(WEXITSTATUS(*status), 2) << bad;
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s) << bad;
  }
}

// --- a raw ZeroMQ socket speaking garbage ---

TEST(Process, GarbageFromARawSocketIsAnsweredAndTheNodeKeepsServing) {
  IpcPath path;
  Server server{path.address()};
  zmq::context_t ctx;
  zmq::socket_t raw{ctx, zmq::socket_type::dealer};
  raw.set(zmq::sockopt::linger, 0);
  raw.connect(path.address());

  std::mt19937 rng{12345};
  for (int i = 0; i < 200; ++i) {
    std::string junk(static_cast<std::size_t>(rng() % 64), '\0');
    for (auto& c : junk) c = static_cast<char>(rng());
    (void)raw.send(zmq::buffer(junk), zmq::send_flags::none);
  }
  (void)raw.send(zmq::buffer(frame_of({0xAE, 2})), zmq::send_flags::none);  // truncated prefix
  (void)raw.send(zmq::buffer(frame_of({})), zmq::send_flags::none);         // empty frame
  // A MSG claiming a 65535-byte type in a 21-byte frame: answered "malformed" by call id.
  (void)raw.send(zmq::buffer(msg_header(2, 901, "x", 0xFFFF)), zmq::send_flags::none);
  // A MSG split over two frames (one frame per message): also malformed.
  (void)raw.send(zmq::buffer(msg_header(2, 904, "echo")), zmq::send_flags::sndmore);
  (void)raw.send(zmq::str_buffer("x"), zmq::send_flags::none);
  auto a = read_answer(raw, 10s);
  ASSERT_TRUE(a);
  // Skip any ERROR frames the junk earned, until the REPLY for call 901.
  while (a && !((*a)[2] == 2 && a->substr(4, 8) == le64(901))) a = read_answer(raw, 10s);
  ASSERT_TRUE(a) << "no REPLY for the malformed MSG";
  EXPECT_EQ((*a)[12], 1);  // status error
  EXPECT_EQ((*a)[13], 6);  // code malformed
  do {
    a = read_answer(raw, 10s);
  } while (a && !((*a)[2] == 2 && a->substr(4, 8) == le64(904)));
  ASSERT_TRUE(a) << "no REPLY for the two-frame MSG";
  EXPECT_EQ((*a)[13], 6);

  // A BATCH claiming a million entries: answered with an ERROR, the node carries on.
  (void)raw.send(zmq::buffer(frame_of({0xAE, 2, 8, 0, 0x40, 0x42, 0x0F, 0})), zmq::send_flags::none);
  // A BATCH of two MSGs: both answered.
  const std::string m1 = msg_header(2, 911, "echo") + "first";
  const std::string m2 = msg_header(2, 912, "echo") + "second";
  (void)raw.send(zmq::buffer(frame_of({0xAE, 2, 8, 0}) + le32(2) + le32(m1.size()) + m1 + le32(m2.size()) + m2),
                 zmq::send_flags::none);
  std::string answers;
  const auto batch_deadline = std::chrono::steady_clock::now() + 10s;
  while ((answers.find("first") == std::string::npos || answers.find("second") == std::string::npos) &&
         std::chrono::steady_clock::now() < batch_deadline) {
    auto got = read_answer(raw, 10s);
    if (!got) break;
    answers += *got;
  }
  EXPECT_NE(answers.find("first"), std::string::npos);
  EXPECT_NE(answers.find("second"), std::string::npos);

  // A MSG of version 3: answered "incompatible protocol version" in version 2.
  (void)raw.send(zmq::buffer(msg_header(3, 902, "echo") + "x"), zmq::send_flags::none);
  do {
    a = read_answer(raw, 10s);
  } while (a && !((*a)[2] == 2 && a->substr(4, 8) == le64(902)));
  ASSERT_TRUE(a);
  EXPECT_EQ((*a)[13], 5);  // code version_mismatch
  EXPECT_NE(a->find("incompatible protocol version 3"), std::string::npos);

  // A well-formed MSG on the same socket still works.
  (void)raw.send(zmq::buffer(msg_header(2, 903, "echo") + "still here"), zmq::send_flags::none);
  do {
    a = read_answer(raw, 10s);
  } while (a && !((*a)[2] == 2 && a->substr(4, 8) == le64(903)));
  ASSERT_TRUE(a);
  EXPECT_EQ((*a)[12], 0);                  // ok
  EXPECT_EQ(a->substr(16), "still here");  // the echo, after the 16-byte REPLY header

  // And so do real clients.
  Node client{client_options("proc-garbage")};
  client.start();
  const PeerId peer = client.connect(path.address());
  auto f = client.call(peer, "echo", bytes("fine"), {}, asio::use_future);
  EXPECT_EQ(get(f).payload.as_string_view(), "fine");
}

TEST(Process, APeerSpeakingAnotherVersionFailsCallsWithIncompatibleVersion) {
  IpcPath path;
  zmq::context_t ctx;
  zmq::socket_t fake{ctx, zmq::socket_type::router};
  fake.set(zmq::sockopt::linger, 0);
  fake.bind(path.address());
  Node client{client_options("proc-version")};
  client.start();
  const PeerId peer = client.connect(path.address());
  auto f = client.call(peer, "echo", bytes(""), CallOptions{"v"}, asio::use_future);
  // The fake answers the hello with a version-3 HELLO_ACK.
  zmq::pollitem_t item{fake.handle(), 0, ZMQ_POLLIN, 0};
  ASSERT_GT(zmq::poll(&item, 1, std::chrono::milliseconds{10000}), 0);
  zmq::message_t rid;
  zmq::message_t hello;
  (void)fake.recv(rid);
  (void)fake.recv(hello);
  (void)fake.send(rid, zmq::send_flags::sndmore);
  (void)fake.send(zmq::buffer(frame_of({0xAE, 3, 4, 0})), zmq::send_flags::none);
  EXPECT_EQ(get(f).text(), "v:err(incompatible protocol version 3 (this node speaks 2))");
}

// Three `amsg serve --join` workers announce themselves to a leader in this
// process; a broadcast reaches all three; one is killed mid-broadcast (its rank
// ends peer lost, the others ok), restarted on the same address, and rejoins
// with its rank without anything else restarting.
TEST(Process, ServeJoinsACohortAndAKilledWorkerRejoinsWithItsRank) {
  std::atomic<int> rejoined{0};  // outlives the cohort whose callback counts
  IpcPath leader_path;
  NodeOptions lo = client_options("proc-cohort");
  lo.listen = {leader_path.address()};
  Node leader{lo};
  net::Cohort cohort{leader};
  cohort.accept_joins();
  leader.start();
  std::array<IpcPath, 3> paths;
  std::vector<std::optional<Server>> workers(3);
  auto start_worker = [&](std::size_t i) {
    workers[i].emplace(paths[i].address(),
                       std::vector<std::string>{"--join", leader_path.address(), "--rank", std::to_string(i + 10)});
    const auto line = workers[i]->process().wait_for_line("joined the cohort", 30s);
    ASSERT_TRUE(line) << workers[i]->process().output();
    EXPECT_NE(line->find("as rank " + std::to_string(i + 10)), std::string::npos) << *line;
  };
  for (std::size_t i = 0; i < 3; ++i) start_worker(i);
  ASSERT_TRUE(cohort.wait_ready(3, 20s));
  auto hello = cohort.broadcast("echo", bytes("hello"), {"h", 10s}, asio::use_future);
  const auto r = hello.get();
  ASSERT_EQ(r.ranks, (std::vector<std::uint32_t>{10, 11, 12}));
  EXPECT_EQ(r.ok_count(), 3u);
  for (const auto& n : r.outcomes) EXPECT_EQ(n.payload.as_string_view(), "hello");

  cohort.on_change([&](const net::CohortEvent& e) {
    if (e.rank == 11 && e.kind == net::CohortEvent::Kind::joined) rejoined.fetch_add(1);
  });
  auto slow = cohort.broadcast("sleep", bytes("500"), {"s", 20s}, asio::use_future);
  workers[1]->process().signal(SIGKILL);
  ASSERT_EQ(slow.wait_for(20s), std::future_status::ready);
  const auto lost = slow.get();
  EXPECT_TRUE(lost.find(10)->is_success()) << lost.find(10)->text();
  EXPECT_EQ(lost.find(11)->code, errc::peer_lost) << lost.find(11)->text();
  EXPECT_TRUE(lost.find(12)->is_success()) << lost.find(12)->text();

  workers[1].reset();
  start_worker(1);
  ASSERT_TRUE(eventually([&] { return rejoined.load() >= 1; }, 20s));
  ASSERT_TRUE(cohort.wait_ready(3, 20s));
  auto again = cohort.broadcast("echo", bytes("again"), {"a", 10s}, asio::use_future);
  EXPECT_EQ(again.get().ok_count(), 3u);
  EXPECT_EQ(cohort.members().size(), 3u);
}

INSTANTIATE_TEST_SUITE_P(Links, ProcessOverLink, ::testing::Values("ipc", "ucx"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace amsg::test
