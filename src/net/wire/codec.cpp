#include "wire/codec.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

#include "amsg/version.hpp"

static_assert(amsg::net::wire::kVersion == AMSG_PROTOCOL_VERSION, "cmake/version.hpp.in and the codec disagree");

namespace amsg::net::wire {
namespace {

void put_u16(std::byte* p, std::uint16_t v) noexcept {
  p[0] = static_cast<std::byte>(v & 0xFFU);
  p[1] = static_cast<std::byte>(v >> 8U);
}
void put_u32(std::byte* p, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::byte>((v >> (8 * i)) & 0xFFU);
}
void put_u64(std::byte* p, std::uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::byte>((v >> (8 * i)) & 0xFFU);
}
std::uint16_t get_u16(const std::byte* p) noexcept {
  return static_cast<std::uint16_t>(std::to_integer<unsigned>(p[0]) | (std::to_integer<unsigned>(p[1]) << 8U));
}
std::uint32_t get_u32(const std::byte* p) noexcept {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8U) | std::to_integer<std::uint32_t>(p[i]);
  return v;
}
std::uint64_t get_u64(const std::byte* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8U) | std::to_integer<std::uint64_t>(p[i]);
  return v;
}
void put_prefix(std::byte* p, Kind kind) noexcept {
  p[0] = static_cast<std::byte>(kMagic);
  p[1] = static_cast<std::byte>(kVersion);
  p[2] = static_cast<std::byte>(kind);
  p[3] = std::byte{0};
}
void put_text(std::byte* p, std::string_view s) noexcept {
  if (!s.empty()) std::memcpy(p, s.data(), s.size());
}
std::string_view text_at(const std::byte* p, std::size_t n) noexcept { return {reinterpret_cast<const char*>(p), n}; }

// Checks the prefix for the expected kind and the fixed size.
DecodeError check(std::span<const std::byte> frame, Kind kind, std::size_t fixed) noexcept {
  Prefix prefix;
  if (auto e = read_prefix(frame, prefix); e != DecodeError::none) return e;
  if (prefix.version != kVersion) return DecodeError::bad_version;
  if (prefix.kind != kind) return DecodeError::bad_kind;
  if (frame.size() < fixed) return DecodeError::too_short;
  return DecodeError::none;
}

std::string_view clip_error(std::string_view error) noexcept { return error.substr(0, kMaxErrorLength); }

}  // namespace

std::string_view to_string(DecodeError e) noexcept {
  switch (e) {
    case DecodeError::none:
      return "ok";
    case DecodeError::too_short:
      return "frame too short";
    case DecodeError::bad_magic:
      return "bad magic byte";
    case DecodeError::bad_version:
      return "unsupported protocol version";
    case DecodeError::bad_kind:
      return "unknown frame kind";
    case DecodeError::bad_length:
      return "declared length disagrees with the frame or exceeds a limit";
    case DecodeError::bad_frames:
      return "not exactly one frame";
    case DecodeError::bad_value:
      return "field value out of range";
    case DecodeError::bad_entry:
      return "batch entry of a kind a batch may not hold";
    case DecodeError::wrong_way:
      return "unexpected frame kind";
  }
  return "unknown";
}

std::string malformed_text(DecodeError e) { return fmt::format("malformed frame: {}", to_string(e)); }

std::string incompatible_text(unsigned version) {
  return fmt::format("incompatible protocol version {} (this node speaks {})", version, kVersion);
}

std::size_t msg_size(std::string_view type, std::string_view id) noexcept {
  return kMsgFixed + type.size() + id.size();
}

void write_msg(std::byte* out, std::uint64_t call_id, std::string_view type, std::string_view id,
               std::uint32_t timeout_ms, std::span<const std::byte> body, std::uint8_t flags) noexcept {
  put_prefix(out, Kind::msg);
  out[3] = std::byte{flags};
  put_u64(out + 4, call_id);
  put_u16(out + 12, static_cast<std::uint16_t>(type.size()));
  put_u16(out + 14, static_cast<std::uint16_t>(id.size()));
  put_u32(out + 16, timeout_ms);
  put_text(out + kMsgFixed, type);
  put_text(out + kMsgFixed + type.size(), id);
  if (!body.empty()) std::memcpy(out + kMsgFixed + type.size() + id.size(), body.data(), body.size());
}

std::size_t reply_size(std::string_view error) noexcept { return kReplyFixed + clip_error(error).size(); }

void write_reply(std::byte* out, std::uint64_t call_id, Status status, ErrorCode code, std::string_view error,
                 std::span<const std::byte> body) noexcept {
  error = clip_error(error);
  put_prefix(out, Kind::reply);
  put_u64(out + 4, call_id);
  out[12] = static_cast<std::byte>(status);
  out[13] = static_cast<std::byte>(code);
  put_u16(out + 14, static_cast<std::uint16_t>(error.size()));
  put_text(out + kReplyFixed, error);
  if (!body.empty()) std::memcpy(out + kReplyFixed + error.size(), body.data(), body.size());
}

std::string encode_hello(Kind kind, std::uint32_t max_payload, std::string_view identity,
                         std::span<const std::string> handlers) {
  identity = identity.substr(0, kMaxIdentityLength);
  const std::size_t count = std::min(handlers.size(), kMaxHandlers);
  std::size_t size = kHelloFixed + identity.size();
  for (std::size_t i = 0; i < count; ++i) size += 1 + std::min(handlers[i].size(), kMaxTypeLength);
  std::string out(size, '\0');
  auto* p = reinterpret_cast<std::byte*>(out.data());
  put_prefix(p, kind);
  put_u32(p + 4, max_payload);
  put_u16(p + 8, static_cast<std::uint16_t>(identity.size()));
  put_u16(p + 10, static_cast<std::uint16_t>(count));
  std::size_t at = kHelloFixed;
  put_text(p + at, identity);
  at += identity.size();
  for (std::size_t i = 0; i < count; ++i) {
    const std::string_view h = std::string_view{handlers[i]}.substr(0, kMaxTypeLength);
    p[at++] = static_cast<std::byte>(h.size());
    put_text(p + at, h);
    at += h.size();
  }
  return out;
}

void write_batch_prefix(std::byte* out, std::uint32_t count) noexcept {
  put_prefix(out, Kind::batch);
  put_u32(out + 4, count);
}

std::byte* write_batch_entry(std::byte* at, std::uint32_t size) noexcept {
  put_u32(at, size);
  return at + 4;
}

std::string encode_ping(std::uint64_t nonce) {
  std::string out(kPingFixed, '\0');
  auto* p = reinterpret_cast<std::byte*>(out.data());
  put_prefix(p, Kind::ping);
  put_u64(p + 4, nonce);
  return out;
}

std::string encode_bye() {
  std::string out(kByeFixed, '\0');
  put_prefix(reinterpret_cast<std::byte*>(out.data()), Kind::bye);
  return out;
}

std::string encode_cancel(std::uint64_t call_id) {
  std::string out(kCancelFixed, '\0');
  auto* p = reinterpret_cast<std::byte*>(out.data());
  put_prefix(p, Kind::cancel);
  put_u64(p + 4, call_id);
  return out;
}

std::string encode_error(ErrorCode code, std::string_view text) {
  text = clip_error(text);
  std::string out(kErrorFixed + text.size(), '\0');
  auto* p = reinterpret_cast<std::byte*>(out.data());
  put_prefix(p, Kind::error);
  p[4] = static_cast<std::byte>(code);
  p[5] = std::byte{0};
  put_u16(p + 6, static_cast<std::uint16_t>(text.size()));
  put_text(p + kErrorFixed, text);
  return out;
}

DecodeError read_prefix(std::span<const std::byte> frame, Prefix& out) noexcept {
  if (frame.size() < kPrefixSize) return DecodeError::too_short;
  if (std::to_integer<std::uint8_t>(frame[0]) != kMagic) return DecodeError::bad_magic;
  out.version = std::to_integer<std::uint8_t>(frame[1]);
  out.kind = static_cast<Kind>(std::to_integer<std::uint8_t>(frame[2]));
  out.flags = std::to_integer<std::uint8_t>(frame[3]);
  return DecodeError::none;
}

std::uint64_t stable_call_id(std::span<const std::byte> frame) noexcept {
  return frame.size() < 12 ? 0 : get_u64(frame.data() + 4);
}

bool is_bare_header(std::span<const std::byte> head) noexcept {
  Prefix prefix;
  if (read_prefix(head, prefix) != DecodeError::none || prefix.version != kVersion) return false;
  if (prefix.kind == Kind::msg) {
    MsgHeader h;
    return decode_msg(head, h) == DecodeError::none && h.body.empty();
  }
  if (prefix.kind == Kind::reply) {
    ReplyHeader h;
    return decode_reply(head, h) == DecodeError::none && h.body.empty();
  }
  return false;
}

DecodeError decode_msg(std::span<const std::byte> frame, MsgHeader& out) noexcept {
  if (auto e = check(frame, Kind::msg, kMsgFixed); e != DecodeError::none) return e;
  const std::byte* p = frame.data();
  out.call_id = get_u64(p + 4);
  const std::size_t type_len = get_u16(p + 12);
  const std::size_t id_len = get_u16(p + 14);
  out.timeout_ms = get_u32(p + 16);
  if (type_len == 0 || type_len > kMaxTypeLength || id_len > kMaxIdLength) return DecodeError::bad_length;
  if (frame.size() < kMsgFixed + type_len + id_len) return DecodeError::bad_length;
  out.type = text_at(p + kMsgFixed, type_len);
  out.id = text_at(p + kMsgFixed + type_len, id_len);
  out.body = frame.subspan(kMsgFixed + type_len + id_len);
  out.idempotent = (std::to_integer<std::uint8_t>(p[3]) & kFlagIdempotent) != 0;
  return DecodeError::none;
}

DecodeError decode_reply(std::span<const std::byte> frame, ReplyHeader& out) noexcept {
  if (auto e = check(frame, Kind::reply, kReplyFixed); e != DecodeError::none) return e;
  const std::byte* p = frame.data();
  out.call_id = get_u64(p + 4);
  const auto status = std::to_integer<std::uint8_t>(p[12]);
  if (status > static_cast<std::uint8_t>(Status::cancelled)) return DecodeError::bad_value;
  out.status = static_cast<Status>(status);
  out.code = static_cast<ErrorCode>(std::to_integer<std::uint8_t>(p[13]));
  const std::size_t error_len = get_u16(p + 14);
  if (error_len > kMaxErrorLength || frame.size() < kReplyFixed + error_len) return DecodeError::bad_length;
  out.error = text_at(p + kReplyFixed, error_len);
  out.body = frame.subspan(kReplyFixed + error_len);
  return DecodeError::none;
}

DecodeError decode_hello(std::span<const std::byte> frame, Hello& out) {
  Prefix prefix;
  if (auto e = read_prefix(frame, prefix); e != DecodeError::none) return e;
  if (prefix.version != kVersion) return DecodeError::bad_version;
  if (prefix.kind != Kind::hello && prefix.kind != Kind::hello_ack) return DecodeError::bad_kind;
  if (frame.size() < kHelloFixed) return DecodeError::too_short;
  const std::byte* p = frame.data();
  out.max_payload = get_u32(p + 4);
  const std::size_t identity_len = get_u16(p + 8);
  const std::size_t count = get_u16(p + 10);
  if (identity_len > kMaxIdentityLength || count > kMaxHandlers) return DecodeError::bad_length;
  std::size_t at = kHelloFixed;
  if (frame.size() < at + identity_len) return DecodeError::bad_length;
  out.identity = text_at(p + at, identity_len);
  at += identity_len;
  out.handlers.clear();
  out.handlers.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    if (at >= frame.size()) return DecodeError::bad_length;
    const auto len = std::to_integer<std::size_t>(p[at++]);
    if (len == 0 || at + len > frame.size()) return DecodeError::bad_length;
    out.handlers.push_back(text_at(p + at, len));
    at += len;
  }
  if (at != frame.size()) return DecodeError::bad_length;
  return DecodeError::none;
}

DecodeError decode_ping(std::span<const std::byte> frame, std::uint64_t& nonce) noexcept {
  if (auto e = check(frame, Kind::ping, kPingFixed); e != DecodeError::none) return e;
  if (frame.size() != kPingFixed) return DecodeError::bad_length;
  nonce = get_u64(frame.data() + 4);
  return DecodeError::none;
}

DecodeError decode_error(std::span<const std::byte> frame, ErrorFrame& out) noexcept {
  if (auto e = check(frame, Kind::error, kErrorFixed); e != DecodeError::none) return e;
  const std::byte* p = frame.data();
  out.code = static_cast<ErrorCode>(std::to_integer<std::uint8_t>(p[4]));
  const std::size_t len = get_u16(p + 6);
  if (len > kMaxErrorLength || frame.size() != kErrorFixed + len) return DecodeError::bad_length;
  out.text = text_at(p + kErrorFixed, len);
  return DecodeError::none;
}

DecodeError decode_bye(std::span<const std::byte> frame) noexcept {
  if (auto e = check(frame, Kind::bye, kByeFixed); e != DecodeError::none) return e;
  return frame.size() == kByeFixed ? DecodeError::none : DecodeError::bad_length;
}

DecodeError decode_cancel(std::span<const std::byte> frame, std::uint64_t& call_id) noexcept {
  if (auto e = check(frame, Kind::cancel, kCancelFixed); e != DecodeError::none) return e;
  if (frame.size() != kCancelFixed) return DecodeError::bad_length;
  call_id = get_u64(frame.data() + 4);
  return call_id == 0 ? DecodeError::bad_value : DecodeError::none;
}

DecodeError decode_batch(std::span<const std::byte> frame, std::vector<std::span<const std::byte>>& out) {
  if (auto e = check(frame, Kind::batch, kBatchFixed); e != DecodeError::none) return e;
  const std::size_t count = get_u32(frame.data() + 4);
  if (count == 0 || count > kMaxBatch) return DecodeError::bad_length;
  out.clear();
  std::size_t at = kBatchFixed;
  for (std::size_t i = 0; i < count; ++i) {
    if (frame.size() - at < 4) return DecodeError::bad_length;
    const std::size_t len = get_u32(frame.data() + at);
    at += 4;
    if (len < kPrefixSize || frame.size() - at < len) return DecodeError::bad_length;
    out.push_back(frame.subspan(at, len));
    at += len;
  }
  if (at != frame.size()) return DecodeError::bad_length;
  return DecodeError::none;
}

}  // namespace amsg::net::wire
