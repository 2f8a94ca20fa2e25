// The wire protocol as docs/wire-protocol.md states it, checked from outside:
// a raw ZeroMQ socket (as a peer written in another language would be) against
// a node in this process, and a node against a fake listener. One test per
// behaviour the page specifies beyond plain request and answer.

#include <gtest/gtest.h>

#include <asio/use_future.hpp>

#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <atomic>
#include <charconv>
#include <deque>
#include <future>

#include "amsg/errors.hpp"
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
namespace wire = net::wire;

// A listening node with the test handlers (add_handlers) and a raw socket connected to it.
struct Listening {
  explicit Listening(const std::string& name, std::size_t concurrency = 4, std::size_t max_payload = 16u << 20)
      : node{options(name, concurrency, max_payload)} {
    add_handlers(node.manager(), &counted);
    node.start();
    raw.set(zmq::sockopt::linger, 0);
    raw.connect(path.address());
  }
  NodeOptions options(const std::string& name, std::size_t concurrency, std::size_t max_payload) {
    NodeOptions o;
    o.listen = {path.address()};
    o.manager.logger_name = quiet_logger(name);
    o.manager.threads = 2;
    o.manager.concurrency = concurrency;
    o.manager.max_payload_bytes = max_payload;
    return o;
  }
  void send(const std::string& frame, zmq::send_flags flags = zmq::send_flags::none) {
    (void)raw.send(zmq::buffer(frame), flags);
  }
  // The next answer (REPLY, ERROR or BATCH) that is not a PING.
  std::string next() {
    auto a = read_answer(raw, 10s);
    if (!a) {
      ADD_FAILURE() << "no answer";
      return {};
    }
    return *a;
  }
  // The next REPLY, alone or from a BATCH.
  std::string next_reply() {
    if (replies.empty()) {
      const std::string a = next();
      if (a.size() >= 8 && a[2] == 8) {  // a BATCH: u32 count, then u32 length + entry each
        std::size_t at = 8;
        while (at + 4 <= a.size()) {
          const std::size_t len = static_cast<unsigned char>(a[at]) | (static_cast<unsigned char>(a[at + 1]) << 8U);
          replies.push_back(a.substr(at + 4, len));
          at += 4 + len;
        }
      } else {
        replies.push_back(a);
      }
    }
    std::string r = replies.front();
    replies.pop_front();
    return r;
  }
  // The REPLY for `call_id`; fails the test if anything else comes first.
  std::string reply_for(std::uint64_t call_id) {
    std::string a = next_reply();
    EXPECT_GE(a.size(), 16u);
    EXPECT_EQ(a[2], 2) << "expected a REPLY";
    EXPECT_EQ(a.substr(4, 8), le64(call_id));
    return a;
  }
  // The next ERROR: its code and text.
  std::pair<int, std::string> error() {
    const std::string a = next();
    if (a.size() < 8 || a[2] != 7) {
      ADD_FAILURE() << "expected an ERROR, got kind " << (a.size() > 2 ? int{a[2]} : -1);
      return {};
    }
    return {a[4], a.substr(8)};
  }
  IpcPath path;
  std::deque<std::string> replies;  // entries of a BATCH not yet looked at
  std::atomic<int> counted{0};
  Node node;
  zmq::context_t ctx;
  zmq::socket_t raw{ctx, zmq::socket_type::dealer};
};

std::string reply_text(const std::string& reply) { return reply.substr(16, static_cast<unsigned char>(reply[14])); }

std::string batch_of(std::initializer_list<std::string> entries) {
  std::string out = frame_of({0xAE, 2, 8, 0}) + le32(entries.size());
  for (const auto& e : entries) out += le32(e.size()) + e;
  return out;
}

TEST(WireConformance, ABatchEntryThatIsNotAMsgGetsAnErrorNeverAReply) {
  Listening l{"conf-batch-entry"};
  const std::string ping = frame_of({0xAE, 2, 5, 0}) + le64(777);  // bytes 4..11 look like a call id
  l.send(batch_of({ping}));
  EXPECT_EQ(l.error(), std::make_pair(6, std::string{"malformed frame: batch entry of a kind a batch may not hold"}));
  const std::string nested = batch_of({msg_header(2, 5, "echo")});
  l.send(batch_of({nested}));
  EXPECT_EQ(l.error().second, "malformed frame: batch entry of a kind a batch may not hold");
  // A good MSG after them: the very next answer is its REPLY (no REPLY was made up for the entries).
  l.send(msg_header(2, 901, "echo") + "ok");
  EXPECT_EQ(l.reply_for(901)[12], 0);
  EXPECT_EQ(l.node.stats().malformed_frames, 2u);
}

TEST(WireConformance, AMsgOfAnotherVersionInABatchIsAnsweredAsIfSentAlone) {
  Listening l{"conf-batch-version"};
  l.send(msg_header(3, 77, "echo"));
  const std::string alone = l.reply_for(77);
  EXPECT_EQ(alone[13], 5);
  l.send(batch_of({msg_header(3, 78, "echo")}));
  const std::string batched = l.reply_for(78);
  EXPECT_EQ(batched[13], 5);
  EXPECT_EQ(reply_text(batched), "incompatible protocol version 3 (this node speaks 2)");
}

TEST(WireConformance, MultipartPingAndAByeOfTheWrongSizeAreMalformed) {
  Listening l{"conf-ping-bye"};
  l.send(frame_of({0xAE, 2, 5, 0}) + le64(1), zmq::send_flags::sndmore);
  l.send("tail");
  EXPECT_EQ(l.error(), std::make_pair(6, std::string{"malformed frame: not exactly one frame"}));
  l.send(frame_of({0xAE, 2, 6, 0, 0}));
  EXPECT_EQ(l.error().second, "malformed frame: declared length disagrees with the frame or exceeds a limit");
  l.send(frame_of({0xAE, 2, 5, 0}) + le64(1) + "x");
  EXPECT_EQ(l.error().second, "malformed frame: declared length disagrees with the frame or exceeds a limit");
}

// CANCEL (kind 9): the call it names is stopped (its running handler
// cancelled, answered cancelled); a CANCEL for a call that is not there
// changes nothing and is not answered; one of the wrong size, or for call id
// 0, is malformed.
TEST(WireConformance, ACancelStopsTheCallItNamesAndNothingElse) {
  Listening l{"conf-cancel"};
  l.send(frame_of({0xAE, 2, 9, 0}) + le64(12345));  // no such call
  l.send(msg_header(2, 77, "sleep") + "60000");
  ASSERT_TRUE(eventually([&] { return l.node.stats().manager.dispatched == 1; }));
  l.send(frame_of({0xAE, 2, 9, 0}) + le64(77));
  const std::string r = l.reply_for(77);  // the first answer of all
  EXPECT_EQ(r[12], 2);                    // status cancelled
  EXPECT_EQ(r[13], 7);                    // code cancelled
  EXPECT_EQ(reply_text(r), "cancelled");
  EXPECT_EQ(l.node.stats().manager.cancelled, 1u);
  l.send(frame_of({0xAE, 2, 9, 0}) + le64(77).substr(0, 4));
  EXPECT_EQ(l.error(), std::make_pair(6, std::string{"malformed frame: frame too short"}));
  l.send(frame_of({0xAE, 2, 9, 0}) + le64(77) + "x");
  EXPECT_EQ(l.error().second, "malformed frame: declared length disagrees with the frame or exceeds a limit");
  l.send(frame_of({0xAE, 2, 9, 0}) + le64(0));
  EXPECT_EQ(l.error().second, "malformed frame: field value out of range");
}

TEST(WireConformance, AMalformedFireAndForgetMsgGetsAnError) {
  Listening l{"conf-ff"};
  l.send(msg_header(2, 0, "x", 0xFFFF));  // call_id 0: there is no call to answer
  EXPECT_EQ(l.error(), std::make_pair(6, std::string{"malformed frame: declared length disagrees with the frame or "
                                                     "exceeds a limit"}));
  l.send(msg_header(2, 902, "x", 0xFFFF));  // with a call id: a REPLY
  const std::string r = l.reply_for(902);
  EXPECT_EQ(r[13], 6);
  EXPECT_EQ(reply_text(r), "malformed frame: declared length disagrees with the frame or exceeds a limit");
}

TEST(WireConformance, FramesSentTheWrongWayAreRefused) {
  Listening l{"conf-wrong-way"};
  std::string reply(wire::reply_size(""), '\0');
  wire::write_reply(reinterpret_cast<std::byte*>(reply.data()), 5, wire::Status::ok, wire::ErrorCode::none, "", {});
  l.send(reply);
  EXPECT_EQ(l.error(), std::make_pair(6, std::string{"malformed frame: unexpected frame kind"}));
  l.send(wire::encode_hello(wire::Kind::hello_ack, 100, "x", std::vector<std::string>{}));
  EXPECT_EQ(l.error().second, "malformed frame: unexpected frame kind");
  l.send(frame_of({0xAE, 2, 99, 0}));
  EXPECT_EQ(l.error().second, "malformed frame: unknown frame kind");
}

TEST(WireConformance, AResponseOverTheCallersAnnouncedLimitIsAnsweredWithThatError) {
  Listening l{"conf-response-limit"};
  l.send(wire::encode_hello(wire::Kind::hello, 4, "small-peer", std::vector<std::string>{}));
  l.send(msg_header(2, 31, "echo") + "0123456789");  // after the HELLO: frames are handled in order
  const std::string r = l.reply_for(31);
  EXPECT_EQ(r[12], 1);
  EXPECT_EQ(r[13], 3);
  EXPECT_EQ(reply_text(r), "payload of 10 bytes exceeds the limit of 4 bytes");
  EXPECT_EQ(r.size(), 16u + reply_text(r).size()) << "the bytes themselves never went";
}

TEST(WireConformance, AMessageOverThePeersAnnouncedLimitFailsAtTheSender) {
  Listening l{"conf-send-limit", 4, 8};
  Node client{client_options("conf-send-limit-c")};
  client.start();
  const PeerId peer = client.connect(l.path.address());
  ASSERT_TRUE(client.wait_ready(peer, 10s));
  EXPECT_EQ(client.peer_info(peer)->max_payload, 8u);
  auto f = client.call(peer, "echo", bytes(std::string(100, 'x')), CallOptions{"big"}, asio::use_future);
  const Notification n = get(f);
  EXPECT_EQ(n.text(), "big:err(payload of 100 bytes exceeds the limit of 8 bytes)");
  EXPECT_EQ(n.code, errc::payload_too_large);
  EXPECT_EQ(client.stats().messages_sent, 0u);
  auto small = client.call(peer, "echo", bytes("tiny"), {}, asio::use_future);
  EXPECT_EQ(get(small).payload.as_string_view(), "tiny");
  EXPECT_EQ(l.node.stats().messages_received, 1u);
}

TEST(WireConformance, AReplyTheCallerCannotDecodeEndsItsCallAtOnce) {
  IpcPath path;
  zmq::context_t ctx;
  zmq::socket_t fake{ctx, zmq::socket_type::router};
  fake.set(zmq::sockopt::linger, 0);
  fake.bind(path.address());
  Node client{client_options("conf-bad-reply")};
  client.start();
  const PeerId peer = client.connect(path.address());
  const auto t0 = std::chrono::steady_clock::now();
  auto f = client.call(peer, "echo", bytes(""), CallOptions{"r", 60s}, asio::use_future);
  // Answer the HELLO, then answer the MSG with a REPLY whose status is invalid.
  for (int answered = 0; answered < 2;) {
    zmq::pollitem_t item{fake.handle(), 0, ZMQ_POLLIN, 0};
    ASSERT_GT(zmq::poll(&item, 1, std::chrono::milliseconds{10000}), 0);
    zmq::message_t rid;
    zmq::message_t frame;
    (void)fake.recv(rid);
    (void)fake.recv(frame);
    const std::string f0 = frame.to_string();
    if (f0[2] == 3) {
      (void)fake.send(rid, zmq::send_flags::sndmore);
      (void)fake.send(zmq::buffer(wire::encode_hello(wire::Kind::hello_ack, 1024, "fake", std::vector<std::string>{})),
                      zmq::send_flags::none);
      ++answered;
    } else if (f0[2] == 1) {
      std::string reply = frame_of({0xAE, 2, 2, 0}) + f0.substr(4, 8) + frame_of({9, 0, 0, 0});
      (void)fake.send(rid, zmq::send_flags::sndmore);
      (void)fake.send(zmq::buffer(reply), zmq::send_flags::none);
      ++answered;
    }
  }
  const Notification n = get(f);
  EXPECT_EQ(n.text(), "r:err(malformed frame: field value out of range)");
  EXPECT_EQ(n.code, errc::malformed);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s) << "ended at once, not by its 60 s deadline";
}

TEST(WireConformance, ABadAddressIsRefusedAtOnceNamingIt) {
  Node client{client_options("conf-bad-address")};
  client.start();
  for (const std::string address : {"foo://bar", "127.0.0.1:5555", "tcp://nohost", "tcp://h:port", "ipc://"}) {
    try {
      (void)client.connect(address);
      ADD_FAILURE() << address << " was accepted";
    } catch (const NetworkError& e) {
      EXPECT_NE(std::string{e.what()}.find(address), std::string::npos) << e.what();
    }
  }
}

// An address that looks right but that the link cannot dial (an ipc path longer
// than a socket address holds): every call to it ends with bad_address, at once.
TEST(WireConformance, CallsToAnAddressTheLinkCannotDialEndWithBadAddress) {
  Node client{client_options("conf-undialable")};
  client.start();
  const std::string address = "ipc:///tmp/" + std::string(200, 'p');
  PeerId peer{};
  try {
    peer = client.connect(address);
  } catch (const NetworkError& e) {
    SUCCEED() << "refused by connect: " << e.what();
    return;
  }
  auto f = client.call(peer, "echo", bytes(""), CallOptions{"far"}, asio::use_future);
  const Notification n = get(f, 5s);
  EXPECT_EQ(n.code, errc::bad_address) << n.text();
  ASSERT_EQ(client.send(peer, "echo", bytes(""), {"notified"}), SendStatus::ok);
  auto got = receive_n(client.manager(), 1, 5s);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].code, errc::bad_address);
  // (A notified send counts as outstanding until it is on the channel: the count drops just after.)
  EXPECT_TRUE(eventually([&] { return client.stats().outstanding_calls == 0; }));
}

TEST(WireConformance, AMessageWhoseDeadlinePassedWhileQueuedIsAnsweredTimeoutAndNeverRuns) {
  Listening l{"conf-queued-deadline", 1};
  l.send(msg_header(2, 40, "sleep") + "300");  // holds the only worker
  l.send(msg_header(2, 41, "count", -1, 20));  // 20 ms to live, queued behind it
  // 41 is answered when a worker reaches it, after 40.
  const std::string r40 = l.reply_for(40);
  EXPECT_EQ(r40[12], 0);
  const std::string r41 = l.reply_for(41);
  EXPECT_EQ(r41[12], 1);
  EXPECT_EQ(r41[13], 8);
  EXPECT_EQ(reply_text(r41), "timeout");
  EXPECT_EQ(l.counted.load(), 0) << "an expired message never runs";
  EXPECT_EQ(l.node.stats().manager.timed_out, 1u);
}

TEST(WireConformance, ARunningHandlerIsCancelledWhenTheCallersDeadlinePasses) {
  Listening l{"conf-running-deadline"};
  Node client{client_options("conf-running-deadline-c")};
  client.start();
  const PeerId peer = client.connect(l.path.address());
  ASSERT_TRUE(client.wait_ready(peer, 20s));  // a deadline that passes while connecting ends it unsent
  auto f = client.call(peer, "sleep", bytes("30000"), CallOptions{"s", 100ms}, asio::use_future);
  EXPECT_EQ(get(f).code, errc::timeout);
  // The server stopped the handler at the deadline instead of running it for 30 s.
  ASSERT_TRUE(eventually([&] { return l.node.stats().manager.timed_out == 1; }, 10s));
  EXPECT_TRUE(eventually([&] { return l.node.stats().manager.in_flight == 0; }, 5s)) << "its lane is free again";
  // The server's timeout REPLY is late (discarded and counted) when the caller's
  // own deadline fired first, else it is the outcome itself: either way, one.
  EXPECT_LE(client.stats().late_replies, 1u);
}

}  // namespace
}  // namespace amsg::test
