// The wire codec: what docs/wire-protocol.md specifies, byte for byte.

#include "wire/codec.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

namespace amsg::net::wire {
namespace {

std::span<const std::byte> bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

std::string msg_frame(std::uint64_t call_id, std::string_view type, std::string_view id, std::string_view body = {},
                      std::uint32_t timeout_ms = 0) {
  std::string out(msg_size(type, id) + body.size(), '\0');
  write_msg(reinterpret_cast<std::byte*>(out.data()), call_id, type, id, timeout_ms,
            {reinterpret_cast<const std::byte*>(body.data()), body.size()});
  return out;
}

TEST(Wire, MsgLayoutIsLittleEndianWithTheDocumentedOffsets) {
  const std::string f = msg_frame(0x0102030405060708ULL, "ab", "xyz", "BODY", 0x01020304);
  ASSERT_EQ(f.size(), 20u + 2 + 3 + 4);
  EXPECT_EQ(static_cast<unsigned char>(f[0]), 0xAE);
  EXPECT_EQ(f[1], 2);
  EXPECT_EQ(f[2], 1);  // kind msg
  EXPECT_EQ(f[3], 0);
  EXPECT_EQ(f[4], 0x08);  // call id, least significant byte first
  EXPECT_EQ(f[11], 0x01);
  EXPECT_EQ(f[12], 2);     // type length
  EXPECT_EQ(f[14], 3);     // id length
  EXPECT_EQ(f[16], 0x04);  // timeout in milliseconds, least significant byte first
  EXPECT_EQ(f[19], 0x01);
  EXPECT_EQ(f.substr(20), "abxyzBODY");
  MsgHeader h;
  ASSERT_EQ(decode_msg(bytes(f), h), DecodeError::none);
  EXPECT_EQ(h.call_id, 0x0102030405060708ULL);
  EXPECT_EQ(h.type, "ab");
  EXPECT_EQ(h.id, "xyz");
  EXPECT_EQ(h.timeout_ms, 0x01020304u);
  EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(h.body.data()), h.body.size()), "BODY");
  EXPECT_EQ(stable_call_id(bytes(f)), 0x0102030405060708ULL);
}

TEST(Wire, CancelIsThePrefixAndTheCallId) {
  const std::string f = encode_cancel(0x0102030405060708ULL);
  ASSERT_EQ(f.size(), 12u);
  EXPECT_EQ(f.substr(0, 4), std::string("\xAE\x02\x09\x00", 4));
  EXPECT_EQ(f[4], 0x08);
  std::uint64_t call_id = 0;
  ASSERT_EQ(decode_cancel(bytes(f), call_id), DecodeError::none);
  EXPECT_EQ(call_id, 0x0102030405060708ULL);
  EXPECT_EQ(decode_cancel(bytes(f + "x"), call_id), DecodeError::bad_length);
  EXPECT_EQ(decode_cancel(bytes(encode_cancel(0)), call_id), DecodeError::bad_value);  // 0: no call
  EXPECT_EQ(decode_cancel(bytes(f.substr(0, 8)), call_id), DecodeError::too_short);
}

TEST(Wire, ReplyRoundTrips) {
  std::string f(reply_size("boom (x)") + 3, '\0');
  const std::string body = "abc";
  write_reply(reinterpret_cast<std::byte*>(f.data()), 42, Status::error, ErrorCode::remote_error, "boom (x)",
              bytes(body));
  ReplyHeader r;
  ASSERT_EQ(decode_reply(bytes(f), r), DecodeError::none);
  EXPECT_EQ(r.call_id, 42u);
  EXPECT_EQ(r.status, Status::error);
  EXPECT_EQ(r.code, ErrorCode::remote_error);
  EXPECT_EQ(r.error, "boom (x)");
  EXPECT_EQ(r.body.size(), 3u);
}

TEST(Wire, LongErrorTextIsCutToTheLimit) {
  const std::string long_error(kMaxErrorLength + 100, 'e');
  std::string f(reply_size(long_error), '\0');
  write_reply(reinterpret_cast<std::byte*>(f.data()), 1, Status::error, ErrorCode::remote_error, long_error, {});
  ReplyHeader r;
  ASSERT_EQ(decode_reply(bytes(f), r), DecodeError::none);
  EXPECT_EQ(r.error.size(), kMaxErrorLength);
}

TEST(Wire, HelloRoundTrips) {
  const std::vector<std::string> handlers{"echo", "sleep"};
  const std::string f = encode_hello(Kind::hello_ack, 1024, "node-1", handlers);
  Hello h;
  ASSERT_EQ(decode_hello(bytes(f), h), DecodeError::none);
  EXPECT_EQ(h.max_payload, 1024u);
  EXPECT_EQ(h.identity, "node-1");
  ASSERT_EQ(h.handlers.size(), 2u);
  EXPECT_EQ(h.handlers[1], "sleep");
}

TEST(Wire, PingByeAndErrorRoundTrip) {
  std::uint64_t nonce = 0;
  ASSERT_EQ(decode_ping(bytes(encode_ping(77)), nonce), DecodeError::none);
  EXPECT_EQ(nonce, 77u);
  Prefix p;
  ASSERT_EQ(read_prefix(bytes(encode_bye()), p), DecodeError::none);
  EXPECT_EQ(p.kind, Kind::bye);
  ErrorFrame e;
  const std::string error_frame = encode_error(ErrorCode::malformed, "bad");  // e views into it
  ASSERT_EQ(decode_error(bytes(error_frame), e), DecodeError::none);
  EXPECT_EQ(e.code, ErrorCode::malformed);
  EXPECT_EQ(e.text, "bad");
}

TEST(Wire, BatchCarriesCompleteFramesAndChecksItsLengths) {
  const std::string a = msg_frame(1, "echo", "", "one");
  const std::string b = msg_frame(2, "echo", "", "two!");
  std::string batch(kBatchFixed + 4 + a.size() + 4 + b.size(), '\0');
  auto* at = reinterpret_cast<std::byte*>(batch.data());
  write_batch_prefix(at, 2);
  at += kBatchFixed;
  at = write_batch_entry(at, static_cast<std::uint32_t>(a.size()));
  std::memcpy(at, a.data(), a.size());
  at += a.size();
  at = write_batch_entry(at, static_cast<std::uint32_t>(b.size()));
  std::memcpy(at, b.data(), b.size());
  std::vector<std::span<const std::byte>> entries;
  ASSERT_EQ(decode_batch(bytes(batch), entries), DecodeError::none);
  ASSERT_EQ(entries.size(), 2u);
  MsgHeader h;
  ASSERT_EQ(decode_msg(entries[1], h), DecodeError::none);
  EXPECT_EQ(h.call_id, 2u);
  EXPECT_EQ(h.body.size(), 4u);
  EXPECT_EQ(decode_batch(bytes(batch.substr(0, batch.size() - 1)), entries), DecodeError::bad_length);
  std::string absurd = batch;
  absurd[4] = static_cast<char>(0xFF);  // 255 entries claimed, 2 present
  EXPECT_EQ(decode_batch(bytes(absurd), entries), DecodeError::bad_length);
  absurd[5] = static_cast<char>(0xFF);  // over the 256 limit
  EXPECT_EQ(decode_batch(bytes(absurd), entries), DecodeError::bad_length);
}

TEST(Wire, RejectsEveryKindOfBrokenHeader) {
  MsgHeader h;
  EXPECT_EQ(decode_msg(bytes(std::string{}), h), DecodeError::too_short);
  EXPECT_EQ(decode_msg(bytes(std::string("\xAE\x01", 2)), h), DecodeError::too_short);
  std::string good = msg_frame(5, "t", "");
  std::string bad = good;
  bad[0] = 'X';
  EXPECT_EQ(decode_msg(bytes(bad), h), DecodeError::bad_magic);
  bad = good;
  bad[1] = 1;
  EXPECT_EQ(decode_msg(bytes(bad), h), DecodeError::bad_version);
  bad = good;
  bad[2] = 2;
  EXPECT_EQ(decode_msg(bytes(bad), h), DecodeError::bad_kind);
  bad = good;
  bad[12] = static_cast<char>(0xFF);  // type length 255+ declared, 1 byte present
  bad[13] = static_cast<char>(0xFF);
  EXPECT_EQ(decode_msg(bytes(bad), h), DecodeError::bad_length);
  bad = good;
  bad[12] = 0;  // empty type
  EXPECT_EQ(decode_msg(bytes(bad), h), DecodeError::bad_length);
  const std::string with_body = good + "body";  // the rest of the frame is the body
  ASSERT_EQ(decode_msg(bytes(with_body), h), DecodeError::none);
  EXPECT_EQ(h.body.size(), 4u);
  bad = good.substr(0, 19);
  EXPECT_EQ(decode_msg(bytes(bad), h), DecodeError::too_short);

  std::string reply(reply_size(""), '\0');
  write_reply(reinterpret_cast<std::byte*>(reply.data()), 1, Status::ok, ErrorCode::none, "", {});
  reply[12] = 9;  // no such status
  ReplyHeader r;
  EXPECT_EQ(decode_reply(bytes(reply), r), DecodeError::bad_value);

  std::string hello = encode_hello(Kind::hello, 1, "n", std::vector<std::string>{"a"});
  hello[10] = 50;  // claims 50 handlers, holds one
  Hello hh;
  EXPECT_EQ(decode_hello(bytes(hello), hh), DecodeError::bad_length);

  EXPECT_EQ(decode_bye(bytes(encode_bye())), DecodeError::none);
  EXPECT_EQ(decode_bye(bytes(encode_bye() + "x")), DecodeError::bad_length);  // BYE is exactly 4 bytes
}

TEST(Wire, ErrorTextsAreTheDocumentedOnes) {
  EXPECT_EQ(malformed_text(DecodeError::bad_magic), "malformed frame: bad magic byte");
  EXPECT_EQ(malformed_text(DecodeError::bad_frames), "malformed frame: not exactly one frame");
  EXPECT_EQ(malformed_text(DecodeError::bad_entry), "malformed frame: batch entry of a kind a batch may not hold");
  EXPECT_EQ(malformed_text(DecodeError::wrong_way), "malformed frame: unexpected frame kind");
  EXPECT_EQ(malformed_text(DecodeError::bad_kind), "malformed frame: unknown frame kind");
  EXPECT_EQ(incompatible_text(7), "incompatible protocol version 7 (this node speaks 2)");
}

}  // namespace
}  // namespace amsg::net::wire
