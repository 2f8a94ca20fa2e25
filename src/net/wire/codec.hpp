#pragma once
// The amsg wire protocol, version 2: frame layouts, encoders and a validating
// decoder. docs/wire-protocol.md is the specification; this file follows it.
// Pure: no sockets, no state; links carry the frames it makes.
//
// Every message is one frame: a header, and for MSG and REPLY the body
// (payload) right after it, to the end of the frame. All integers
// are little-endian. The first four header bytes are the same in every
// version (magic, version, kind, flags) and so are a MSG's or REPLY's call id at
// bytes 4..11, so a node can address an error reply to a peer speaking another
// version.

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace amsg::net::wire {

inline constexpr std::uint8_t kMagic = 0xAE;
inline constexpr std::uint8_t kVersion = 2;

inline constexpr std::size_t kMaxTypeLength = 255;
inline constexpr std::size_t kMaxIdLength = 1024;
inline constexpr std::size_t kMaxErrorLength = 4096;
inline constexpr std::size_t kMaxIdentityLength = 255;
inline constexpr std::size_t kMaxHandlers = 4096;
inline constexpr std::size_t kMaxBatch = 256;  // messages in one BATCH frame

enum class Kind : std::uint8_t {
  msg = 1,
  reply = 2,
  hello = 3,
  hello_ack = 4,
  ping = 5,
  bye = 6,
  error = 7,
  batch = 8,
  cancel = 9
};

enum class Status : std::uint8_t { ok = 0, error = 1, cancelled = 2 };

// Why a REPLY or ERROR says err. Receivers must accept codes they do not know
// (treat as remote_error); the text is what users see.
enum class ErrorCode : std::uint8_t {
  none = 0,
  remote_error = 1,       // the remote handler threw or its runtime failed (text says how)
  unknown_type = 2,       // the receiver has no handler for the type
  payload_too_large = 3,  // the body exceeds the receiver's limit
  shutting_down = 4,      // the receiver is shutting down and takes no new messages
  version_mismatch = 5,   // the receiver does not speak the sender's version
  malformed = 6,          // the receiver could not decode the frame
  cancelled = 7,          // the receiver's shutdown, or the sender's CANCEL, cancelled the message
  timeout = 8,            // the message's deadline passed at the receiver (queued: not run; running: cancelled)
  overloaded = 9,         // the sender is over its budget at the receiver: refused, not run
};

// Fixed sizes of each kind's header before its variable-length fields.
inline constexpr std::size_t kPrefixSize = 4;
inline constexpr std::size_t kMsgFixed = 20;    // prefix, call_id u64, type_len u16, id_len u16, timeout_ms u32
inline constexpr std::size_t kReplyFixed = 16;  // prefix, call_id u64, status u8, code u8, error_len u16
inline constexpr std::size_t kHelloFixed = 12;  // prefix, max_payload u32, identity_len u16, handler_count u16
inline constexpr std::size_t kPingFixed = 12;   // prefix, nonce u64
inline constexpr std::size_t kByeFixed = 4;
inline constexpr std::size_t kCancelFixed = 12;  // prefix, call_id u64
// HELLO_ACK flag: sent unasked, because a connection the listener has not heard
// a HELLO on sent something else first (the client's link reconnected by itself).
inline constexpr std::uint8_t kFlagNewConnection = 0x01;
// MSG flag: the id is an idempotency key (docs/wire-protocol.md, "Idempotent calls").
inline constexpr std::uint8_t kFlagIdempotent = 0x02;
// A BATCH stops taking entries once it holds this many bytes: its frame is at
// most this plus one entry.
inline constexpr std::size_t kMaxBatchBytes = std::size_t{1} << 20;
inline constexpr std::size_t kMaxHelloBytes = kHelloFixed + kMaxIdentityLength + kMaxHandlers * (1 + kMaxTypeLength);
// The largest frame a peer that takes bodies of up to `max_body` bytes can be
// sent: a BATCH's bytes plus its last entry, or a HELLO. A link refuses larger
// frames before reading them (ZeroMQ: ZMQ_MAXMSGSIZE drops the connection).
[[nodiscard]] constexpr std::size_t max_frame_size(std::size_t max_body) noexcept {
  constexpr std::size_t kFixed = kMaxBatchBytes + kMaxHelloBytes;
  constexpr std::size_t kMost = std::numeric_limits<std::size_t>::max();
  return max_body > kMost - kFixed ? kMost : kFixed + max_body;
}
inline constexpr std::size_t kErrorFixed = 8;  // prefix, code u8, reserved u8, text_len u16
inline constexpr std::size_t kBatchFixed = 8;  // prefix, count u32; then per entry: len u32, then a MSG or REPLY

struct MsgHeader {
  std::uint64_t call_id = 0;  // 0: fire-and-forget (no REPLY)
  std::string_view type;
  std::string_view id;           // the sender's notification id (informative; may be empty)
  std::uint32_t timeout_ms = 0;  // the call's remaining time when sent; 0: no deadline
  std::span<const std::byte> body;
  bool idempotent = false;  // flag 0x02: `id` is an idempotency key
};

struct ReplyHeader {
  std::uint64_t call_id = 0;
  Status status = Status::ok;
  ErrorCode code = ErrorCode::none;
  std::string_view error;
  std::span<const std::byte> body;
};

struct Hello {
  std::uint32_t max_payload = 0;
  std::string_view identity;
  std::vector<std::string_view> handlers;
};

struct ErrorFrame {
  ErrorCode code = ErrorCode::malformed;
  std::string_view text;
};

// A MSG or REPLY whose body is at least this large is sent in a frame of its
// own, in two parts (header, body), so that links that can send the body from
// where it is (UCX) do; smaller ones are copied into their frame (or BATCH).
inline constexpr std::size_t kBodyApartFrom = std::size_t{16} * 1024;

// --- encoding: size first, then write into a buffer of exactly that size ---
// msg_size/reply_size are the header sizes; the frame is header + body bytes.
[[nodiscard]] std::size_t msg_size(std::string_view type, std::string_view id) noexcept;
void write_msg(std::byte* out, std::uint64_t call_id, std::string_view type, std::string_view id,
               std::uint32_t timeout_ms, std::span<const std::byte> body, std::uint8_t flags = 0) noexcept;

[[nodiscard]] std::size_t reply_size(std::string_view error) noexcept;  // error is cut to kMaxErrorLength
void write_reply(std::byte* out, std::uint64_t call_id, Status status, ErrorCode code, std::string_view error,
                 std::span<const std::byte> body) noexcept;

[[nodiscard]] std::string encode_hello(Kind kind, std::uint32_t max_payload, std::string_view identity,
                                       std::span<const std::string> handlers);
// A BATCH of `count` entries of the given sizes: batch_size() bytes in all;
// write_batch_prefix() writes the fixed part, write_batch_entry() one entry's
// length and returns where its bytes (a complete MSG or REPLY frame) go.
[[nodiscard]] constexpr std::size_t batch_entry_overhead() noexcept { return 4; }
void write_batch_prefix(std::byte* out, std::uint32_t count) noexcept;
std::byte* write_batch_entry(std::byte* at, std::uint32_t size) noexcept;
[[nodiscard]] std::string encode_ping(std::uint64_t nonce);
[[nodiscard]] std::string encode_bye();
[[nodiscard]] std::string encode_cancel(std::uint64_t call_id);
[[nodiscard]] std::string encode_error(ErrorCode code, std::string_view text);

// --- decoding ---
enum class DecodeError : std::uint8_t {
  none,
  too_short,    // shorter than the fixed part of its kind
  bad_magic,    // byte 0 is not kMagic
  bad_version,  // byte 1 is not kVersion (the prefix is still readable)
  bad_kind,     // unknown kind byte
  bad_length,   // declared lengths disagree with the frame size or exceed a limit
  bad_frames,   // not exactly one frame
  bad_value,    // a field holds a value the kind does not allow
  bad_entry,    // a BATCH entry of a kind a BATCH may not hold
  wrong_way,    // a known kind that this side never receives (a REPLY sent to a listener...)
};
// The reason as it appears in texts: "malformed frame: <reason>" (docs/wire-protocol.md).
[[nodiscard]] std::string_view to_string(DecodeError e) noexcept;
// "malformed frame: <to_string(e)>": the text of every ERROR and REPLY with code malformed.
[[nodiscard]] std::string malformed_text(DecodeError e);
// "incompatible protocol version V (this node speaks 2)".
[[nodiscard]] std::string incompatible_text(unsigned version);

// Reads the version-stable prefix. Returns too_short / bad_magic only.
struct Prefix {
  std::uint8_t version = 0;
  Kind kind = Kind::msg;
  std::uint8_t flags = 0;
};
[[nodiscard]] DecodeError read_prefix(std::span<const std::byte> frame, Prefix& out) noexcept;
// The call id of a MSG/REPLY header of any version (bytes 4..11), or 0 when too short.
[[nodiscard]] std::uint64_t stable_call_id(std::span<const std::byte> frame) noexcept;

// Whether `head` is exactly the header of a MSG or REPLY of this version, with
// no body bytes: a frame that arrived in two parts (head, then body) is then
// read without joining them.
[[nodiscard]] bool is_bare_header(std::span<const std::byte> head) noexcept;
[[nodiscard]] DecodeError decode_msg(std::span<const std::byte> frame, MsgHeader& out) noexcept;
[[nodiscard]] DecodeError decode_reply(std::span<const std::byte> frame, ReplyHeader& out) noexcept;
[[nodiscard]] DecodeError decode_hello(std::span<const std::byte> frame, Hello& out);
[[nodiscard]] DecodeError decode_ping(std::span<const std::byte> frame, std::uint64_t& nonce) noexcept;
[[nodiscard]] DecodeError decode_error(std::span<const std::byte> frame, ErrorFrame& out) noexcept;
[[nodiscard]] DecodeError decode_bye(std::span<const std::byte> frame) noexcept;
[[nodiscard]] DecodeError decode_cancel(std::span<const std::byte> frame, std::uint64_t& call_id) noexcept;
// Splits a BATCH into its entries (each still to be decoded; entries of a kind
// other than `entry_kind`, MSG or REPLY, are the caller's to answer).
[[nodiscard]] DecodeError decode_batch(std::span<const std::byte> frame, std::vector<std::span<const std::byte>>& out);

}  // namespace amsg::net::wire
