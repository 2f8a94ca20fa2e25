// Writes the seed corpus (fuzz/corpus/<target>/) from the encoder, so that
// every seed is a valid frame of today's protocol: amsg_fuzz_seeds DIR.

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "wire/codec.hpp"

namespace wire = amsg::net::wire;
namespace fs = std::filesystem;

namespace {

std::string msg(std::uint64_t call_id, std::string_view type, std::string_view id, std::uint32_t timeout_ms,
                std::string_view body) {
  std::string out(wire::msg_size(type, id) + body.size(), '\0');
  wire::write_msg(reinterpret_cast<std::byte*>(out.data()), call_id, type, id, timeout_ms,  // NOLINT
                  {reinterpret_cast<const std::byte*>(body.data()), body.size()});          // NOLINT
  return out;
}

std::string reply(std::uint64_t call_id, wire::Status status, wire::ErrorCode code, std::string_view error,
                  std::string_view body) {
  std::string out(wire::reply_size(error) + body.size(), '\0');
  wire::write_reply(reinterpret_cast<std::byte*>(out.data()), call_id, status, code, error,  // NOLINT
                    {reinterpret_cast<const std::byte*>(body.data()), body.size()});         // NOLINT
  return out;
}

std::string batch(const std::vector<std::string>& entries) {
  std::size_t size = wire::kBatchFixed;
  for (const auto& e : entries) size += wire::batch_entry_overhead() + e.size();
  std::string out(size, '\0');
  auto* at = reinterpret_cast<std::byte*>(out.data());  // NOLINT
  wire::write_batch_prefix(at, static_cast<std::uint32_t>(entries.size()));
  at += wire::kBatchFixed;
  for (const auto& e : entries) {
    at = wire::write_batch_entry(at, static_cast<std::uint32_t>(e.size()));
    std::memcpy(at, e.data(), e.size());
    at += e.size();
  }
  return out;
}

// A session input: the connection byte, then u16-length-prefixed frames.
std::string session(std::uint8_t connection, const std::vector<std::string>& frames) {
  std::string out(1, static_cast<char>(connection));
  for (const auto& f : frames) {
    out.push_back(static_cast<char>(f.size() & 0xFFU));
    out.push_back(static_cast<char>((f.size() >> 8U) & 0xFFU));
    out += f;
  }
  return out;
}

void write(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream{dir / name, std::ios::binary} << bytes;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: amsg_fuzz_seeds DIR\n");
    return 2;
  }
  const fs::path root{argv[1]};
  const std::vector<std::string> handlers{"echo", "fail"};
  const std::string hello = wire::encode_hello(wire::Kind::hello, 1U << 20U, "fuzz-client", handlers);
  const std::string ack = wire::encode_hello(wire::Kind::hello_ack, 16U << 20U, "fuzz-server", handlers);
  const std::string m1 = msg(1, "echo", "req-1", 0, "hello");
  const std::string m2 = msg(2, "fail", "", 250, "boom");
  const std::string ff = msg(0, "echo", "", 0, "fire and forget");
  const std::string r1 = reply(1, wire::Status::ok, wire::ErrorCode::none, "", "hello");
  const std::string r2 = reply(2, wire::Status::error, wire::ErrorCode::remote_error, "boom", "");
  const std::string ping = wire::encode_ping(7);
  const std::string bye = wire::encode_bye();
  const std::string cancel = wire::encode_cancel(2);
  const std::string error = wire::encode_error(wire::ErrorCode::malformed, "malformed frame: too short");

  for (const auto& [name, bytes] : std::vector<std::pair<std::string, std::string>>{{"msg", m1},
                                                                                    {"msg-deadline", m2},
                                                                                    {"msg-fire-and-forget", ff},
                                                                                    {"reply-ok", r1},
                                                                                    {"reply-error", r2},
                                                                                    {"hello", hello},
                                                                                    {"hello-ack", ack},
                                                                                    {"ping", ping},
                                                                                    {"bye", bye},
                                                                                    {"cancel", cancel},
                                                                                    {"error", error}}) {
    write(root / "frame", name, bytes);
  }
  write(root / "batch", "msgs", batch({m1, m2, ff}));
  write(root / "batch", "replies", batch({r1, r2}));
  write(root / "batch", "one", batch({m1}));
  write(root / "hello", "hello", hello);
  write(root / "hello", "hello-ack", ack);
  write(root / "hello", "no-handlers", wire::encode_hello(wire::Kind::hello, 0, "", {}));
  write(root / "notification", "ok", "req-1:ok");
  write(root / "notification", "err", "req-2:err(disk full)");
  write(root / "notification", "cancelled", "a:b:err(cancelled)");
  write(root / "session", "hello-then-calls", session(0, {hello, m1, m2, ff, ping}));
  write(root / "session", "calls-without-hello", session(1, {m1, batch({m1, m2, ff})}));
  write(root / "session", "hello-bye", session(2, {hello, bye, m1}));
  write(root / "session", "call-then-cancel", session(0, {hello, m1, m2, cancel, cancel, wire::encode_cancel(99)}));
  write(root / "session", "wrong-way", session(3, {r1, ack, error, batch({r1, r2})}));
  return 0;
}
