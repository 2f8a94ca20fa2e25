// The ZeroMQ link's reader against ZMQ_FD's edge-like signal: any operation on
// a socket may take the signal that says another client's frame is waiting.
// These tests run the link's executor by hand, so the order of events is fixed.

#include <gtest/gtest.h>

#include <poll.h>

#include <chrono>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <zmq.hpp>

#include "amsg/payload.hpp"
#include "link/zmq_link.hpp"

namespace amsg::net {
namespace {

using namespace std::chrono_literals;

struct Recorder final : ListenerEvents {
  std::vector<std::string> frames;
  bool accepting_frames() override { return true; }
  void on_client_frame(std::string_view, std::span<const std::byte> frame, std::size_t) override {
    frames.emplace_back(reinterpret_cast<const char*>(frame.data()), frame.size());
  }
  bool on_clients_writable() override { return false; }
};

// Runs the executor until `done` or 5 s.
template <class Done>
bool run_until(asio::io_context& io, Done done) {
  const auto until = std::chrono::steady_clock::now() + 5s;
  while (!done() && std::chrono::steady_clock::now() < until) io.run_one_for(50ms);
  return done();
}

bool fd_readable(int fd, std::chrono::milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) == 1;
}

// The listener's PING to a client that has gone (EHOSTUNREACH) while another
// client's frame was waiting: the frame must still be read. It was not: the
// failed send took the fd's signal and the reader stayed parked, so a new
// `amsg send` got no HELLO_ACK and ended "peer unreachable".
TEST(ZmqLink, AFailedSendToAGoneClientDoesNotHideAnotherClientsFrame) {
  asio::io_context io;
  Recorder events;
  ZmqLink link{1000, 1000, std::int64_t{1} << 20};
  link.open(io.get_executor(), events);
  const std::string address = link.listen("tcp://127.0.0.1:*");

  zmq::context_t ctx;
  zmq::socket_t client{ctx, zmq::socket_type::dealer};
  client.set(zmq::sockopt::linger, 0);
  client.connect(address);
  client.send(zmq::str_buffer("first"));
  ASSERT_TRUE(run_until(io, [&] { return events.frames.size() == 1; }));
  io.poll();  // the reader drains the socket and parks on its fd

  client.send(zmq::str_buffer("second"));
  ASSERT_TRUE(fd_readable(link.listen_fd(), 5000ms));  // ZeroMQ signalled the frame; nobody has looked yet
  Frame ping{Payload::copy_of(std::string_view{"ping"})};
  EXPECT_EQ(link.send_to_client("no such client", ping), LinkSend::gone);

  EXPECT_TRUE(run_until(io, [&] { return events.frames.size() == 2; }));
  ASSERT_EQ(events.frames.size(), 2U);
  EXPECT_EQ(events.frames[1], "second");
  link.close(0ms);
}

}  // namespace
}  // namespace amsg::net
