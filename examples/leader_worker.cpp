// A leader and a worker in one program, over a real socket (ipc by default, or
// the address given as the first argument, e.g. tcp://127.0.0.1:0).
//
// The worker serves "offload" (copies a block range, answers how many bytes it
// moved) and "flush". The leader waits for the worker, makes a call and reads
// its response, sends notified messages (one of them fails on purpose) and
// reads their outcomes from the notification channel, then both shut down.
// Exit code 0 only if every outcome is the expected one.

#include <unistd.h>

#include <amsg/amsg.hpp>
#include <amsg/net/node.hpp>
#include <amsg/version.hpp>
#include <asio/use_future.hpp>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace {

using namespace std::chrono_literals;

// "first-last" (inclusive block numbers) to the number of blocks.
std::size_t blocks_in(std::string_view range) {
  const auto dash = range.find('-');
  std::size_t first = 0;
  std::size_t last = 0;
  if (dash == std::string_view::npos || std::from_chars(range.data(), range.data() + dash, first).ec != std::errc{} ||
      std::from_chars(range.data() + dash + 1, range.data() + range.size(), last).ec != std::errc{} || last < first) {
    throw std::invalid_argument("bad block range: " + std::string{range});
  }
  return last - first + 1;
}

void register_worker_handlers(amsg::Manager& manager) {
  manager.register_handler("offload", amsg::make_handler([](amsg::Message& msg) -> asio::awaitable<void> {
                             const std::size_t bytes = blocks_in(msg.payload.as_string_view()) * 4096;
                             msg.response = amsg::Payload::copy_of(std::to_string(bytes));
                             co_return;
                           }));
  manager.register_handler("flush", amsg::make_handler([](amsg::Message&) -> asio::awaitable<void> { co_return; }));
}

}  // namespace

int main(int argc, char** argv) {
  const std::string listen = argc > 1 ? argv[1] : "ipc:///tmp/amsg-example-" + std::to_string(::getpid()) + ".ipc";
  std::printf("amsg %s (wire protocol %d)\n", amsg::version(), AMSG_PROTOCOL_VERSION);

  amsg::net::NodeOptions worker_options;
  worker_options.listen = {listen};
  worker_options.manager.concurrency = 4;
  amsg::net::Node worker{worker_options};
  register_worker_handlers(worker.manager());
  worker.start();
  const std::string address = worker.endpoints().at(0);  // a tcp port 0 is resolved here
  std::printf("worker listening on %s\n", address.c_str());

  amsg::net::Node leader;
  leader.start();
  const amsg::net::PeerId peer = leader.connect(address);
  if (!leader.wait_ready(peer, 10s)) {
    std::fprintf(stderr, "the worker did not answer\n");
    return 1;
  }

  bool all_ok = true;

  // Request/response: a call, waited for through a std::future.
  amsg::Notification reply = leader
                                 .call(peer, "offload", amsg::Payload::copy_of("0-63"),
                                       amsg::net::CallOptions{"offload-1", 2s}, asio::use_future)
                                 .get();
  std::printf("%s -> %s bytes\n", reply.text().c_str(), std::string{reply.payload.as_string_view()}.c_str());
  all_ok = all_ok && reply.is_success() && reply.payload.as_string_view() == "262144";

  // Notified sends: each gets one outcome on the leader's notification channel.
  leader.send(peer, "offload", amsg::Payload::copy_of("64-127"), amsg::net::SendOptions{"offload-2"});
  leader.send(peer, "offload", amsg::Payload::copy_of("oops"), amsg::net::SendOptions{"offload-3"});  // fails
  leader.send(peer, "flush", amsg::Payload{}, amsg::net::SendOptions{"flush-1"});
  for (int i = 0; i < 3; ++i) {
    const auto note = leader.manager().receive_for(10s);
    if (!note) {
      std::fprintf(stderr, "an outcome did not arrive\n");
      return 1;
    }
    std::printf("%s\n", note->text().c_str());
    const bool expected_failure = note->id == "offload-3";
    all_ok = all_ok && note->is_success() != expected_failure;
  }

  leader.shutdown();
  worker.shutdown();
  if (listen.starts_with("ipc://")) ::unlink(listen.substr(6).c_str());
  std::printf("%s\n", all_ok ? "all outcomes as expected" : "UNEXPECTED OUTCOME");
  return all_ok ? 0 : 1;
}
