// The listening session fed any sequence of frames from a client, through the
// in-memory link: the node never crashes, and after every input it still
// answers a well-behaved client, correctly and in time.
//
// Input: frames, each a u16 length (little endian) and that many bytes; the
// first byte picks one of a few raw connections, so sequences can span inputs
// (a connection that said HELLO, one that was cut off...).

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <future>
#include <memory>
#include <span>
#include <string>

#include <spdlog/logger.h>
#include <spdlog/spdlog.h>
#include <asio/io_context.hpp>
#include <asio/use_future.hpp>

#include "amsg/handler.hpp"
#include "amsg/net/node.hpp"
#include "fuzz_support.hpp"
#include "link/memory_link.hpp"

namespace net = amsg::net;
using namespace std::chrono_literals;

namespace {

std::string quiet(const std::string& name) {
  auto l = std::make_shared<spdlog::logger>(name);
  l->set_level(spdlog::level::off);
  spdlog::register_logger(l);
  return name;
}

// A connection's receiving end: the node's answers to raw frames are read and dropped.
struct Ignore final : net::ChannelEvents, net::ListenerEvents {
  void on_frame(std::span<const std::byte> /*frame*/, std::size_t /*parts*/) override {}
  void on_writable() override {}
  bool accepting_frames() override { return true; }
  void on_client_frame(std::string_view /*c*/, std::span<const std::byte> /*f*/, std::size_t /*p*/) override {}
  bool on_clients_writable() override { return false; }
};

struct Fixture {
  Fixture() {
    net::NodeOptions so;
    so.links = {std::make_shared<net::MemoryLink>(network)};
    so.listen = {"mem://fuzz"};
    so.manager.logger_name = quiet("fuzz-server");
    so.manager.threads = 1;
    so.max_unread_bytes_per_client = 1 << 20;
    // Liveness is not what is fuzzed here: a fuzzer starved of CPU (a busy
    // machine, ASan) must not see its own client declare the node lost.
    so.heartbeat_timeout = std::chrono::minutes{1};
    server = std::make_unique<net::Node>(so);
    server->manager().register_handler("echo", amsg::make_handler([](amsg::Message& m) -> asio::awaitable<void> {
                                         m.response = std::move(m.payload);
                                         co_return;
                                       }));
    server->manager().register_handler("fail", amsg::make_handler([](amsg::Message&) -> asio::awaitable<void> {
                                         throw std::runtime_error("failed on purpose");
                                         co_return;
                                       }));
    server->start();

    net::NodeOptions co;
    co.links = {std::make_shared<net::MemoryLink>(network)};
    co.manager.logger_name = quiet("fuzz-client");
    co.manager.threads = 1;
    co.heartbeat_timeout = std::chrono::minutes{1};
    client = std::make_unique<net::Node>(co);
    client->start();
    peer = client->connect("mem://fuzz");
    amsg::fuzz::require(client->wait_ready(peer, 10s), "the well-behaved client connects");

    raw_link->open(raw_io.get_executor(), ignore);
    for (auto& c : raw) c = raw_link->dial("mem://fuzz", ignore);
  }

  std::shared_ptr<net::MemoryNetwork> network = std::make_shared<net::MemoryNetwork>();
  std::unique_ptr<net::Node> server;
  std::unique_ptr<net::Node> client;
  net::PeerId peer{};
  asio::io_context raw_io;  // where the raw connections' answers arrive (polled, then dropped)
  Ignore ignore;
  std::shared_ptr<net::MemoryLink> raw_link = std::make_shared<net::MemoryLink>(network);
  std::array<std::unique_ptr<net::Channel>, 4> raw;
  std::uint64_t checks = 0;
};

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static auto* fixture = new Fixture;  // lives for the whole run (never destroyed: libFuzzer exits)
  Fixture& f = *fixture;
  if (size == 0) return 0;
  net::Channel& channel = *f.raw[data[0] % f.raw.size()];
  std::size_t at = 1;
  for (int frames = 0; frames < 64 && size - at >= 2; ++frames) {
    const std::size_t len = std::min<std::size_t>(data[at] | (std::size_t{data[at + 1]} << 8U), size - at - 2);
    at += 2;
    net::Frame frame{amsg::Payload::copy_of(amsg::fuzz::bytes(data + at, len))};
    (void)channel.send(frame);
    at += len;
  }
  // Whatever came before, the node still serves the client that behaves.
  const std::string body = "check " + std::to_string(++f.checks);
  auto reply =
      f.client->call(f.peer, "echo", amsg::Payload::copy_of(body), net::CallOptions{"check", 10s}, asio::use_future);
  amsg::fuzz::require(reply.wait_for(20s) == std::future_status::ready, "the node answers within its deadline");
  const amsg::Notification n = reply.get();
  amsg::fuzz::require(n.is_success() && n.payload.as_string_view() == body, "the node answers correctly", n.text());
  f.raw_io.restart();
  (void)f.raw_io.poll();
  return 0;
}
