// Every decoder on any bytes: nothing read outside the frame (ASan), no
// undefined behaviour (UBSan), and what decodes re-encodes to a frame that
// decodes to the same fields.

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.hpp"
#include "wire/codec.hpp"

namespace wire = amsg::net::wire;

namespace {

void msg_round_trip(std::span<const std::byte> frame) {
  wire::MsgHeader m;
  if (wire::decode_msg(frame, m) != wire::DecodeError::none) return;
  std::vector<std::byte> out(wire::msg_size(m.type, m.id) + m.body.size());
  wire::write_msg(out.data(), m.call_id, m.type, m.id, m.timeout_ms, m.body);
  wire::MsgHeader again;
  amsg::fuzz::require(wire::decode_msg(out, again) == wire::DecodeError::none, "a re-encoded MSG decodes");
  amsg::fuzz::require(again.call_id == m.call_id && again.type == m.type && again.id == m.id &&
                          again.timeout_ms == m.timeout_ms && std::ranges::equal(again.body, m.body),
                      "a re-encoded MSG keeps its fields");
  amsg::fuzz::require(wire::stable_call_id(frame) == m.call_id, "the stable call id is the MSG's");
}

void reply_round_trip(std::span<const std::byte> frame) {
  wire::ReplyHeader r;
  if (wire::decode_reply(frame, r) != wire::DecodeError::none) return;
  std::vector<std::byte> out(wire::reply_size(r.error) + r.body.size());
  wire::write_reply(out.data(), r.call_id, r.status, r.code, r.error, r.body);
  wire::ReplyHeader again;
  amsg::fuzz::require(wire::decode_reply(out, again) == wire::DecodeError::none, "a re-encoded REPLY decodes");
  amsg::fuzz::require(again.call_id == r.call_id && again.status == r.status && again.code == r.code &&
                          again.error == r.error && std::ranges::equal(again.body, r.body),
                      "a re-encoded REPLY keeps its fields");
}

}  // namespace

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto frame = amsg::fuzz::bytes(data, size);
  (void)wire::stable_call_id(frame);
  wire::Prefix prefix;
  const wire::DecodeError e = wire::read_prefix(frame, prefix);
  (void)wire::to_string(e);
  if (e != wire::DecodeError::none) return 0;
  msg_round_trip(frame);
  reply_round_trip(frame);
  std::uint64_t nonce = 0;
  if (wire::decode_ping(frame, nonce) == wire::DecodeError::none) {
    amsg::fuzz::require(wire::encode_ping(nonce).size() == frame.size(), "a PING is its fixed size");
  }
  wire::ErrorFrame ef;
  if (wire::decode_error(frame, ef) == wire::DecodeError::none) {
    const std::string out = wire::encode_error(ef.code, ef.text);
    wire::ErrorFrame again;
    amsg::fuzz::require(wire::decode_error(amsg::fuzz::bytes(out), again) == wire::DecodeError::none &&
                            again.code == ef.code && again.text == ef.text,
                        "a re-encoded ERROR keeps its fields");
  }
  (void)wire::decode_bye(frame);
  std::uint64_t call_id = 0;
  if (wire::decode_cancel(frame, call_id) == wire::DecodeError::none) {
    std::uint64_t again = 0;
    const std::string out = wire::encode_cancel(call_id);  // flags 0: receivers ignore the bits
    amsg::fuzz::require(call_id != 0 && out.size() == frame.size() &&
                            wire::decode_cancel(amsg::fuzz::bytes(out), again) == wire::DecodeError::none &&
                            again == call_id,
                        "a re-encoded CANCEL keeps its call id");
  }
  (void)wire::incompatible_text(prefix.version);
  return 0;
}
