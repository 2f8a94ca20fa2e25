#pragma once
// Frames built by hand and a raw ZeroMQ socket reading answers: for tests that
// speak the wire protocol the way a peer written from docs/wire-protocol.md would.

#include <zmq.hpp>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace amsg::test {

inline std::string frame_of(std::initializer_list<int> head, std::string_view tail = {}) {
  std::string s;
  for (int b : head) s.push_back(static_cast<char>(b));
  s.append(tail);
  return s;
}

inline std::string le64(std::uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[static_cast<std::size_t>(i)] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return s;
}

// A MSG header: magic, version, kind 1, flags, call id, type length, id length,
// timeout (0: none), type.
inline std::string msg_header(int version, std::uint64_t call_id, std::string_view type, int declared_type_len = -1,
                              std::uint32_t timeout_ms = 0) {
  std::string s = frame_of({0xAE, version, 1, 0}) + le64(call_id);
  const int tl = declared_type_len < 0 ? static_cast<int>(type.size()) : declared_type_len;
  s += frame_of({tl & 0xFF, (tl >> 8) & 0xFF, 0, 0}) + le64(timeout_ms).substr(0, 4);
  s += type;
  return s;
}

// Reads frames until one is a REPLY for `call_id` or an ERROR; returns its header.
inline std::optional<std::string> read_answer(zmq::socket_t& s, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, left) <= 0) continue;
    std::vector<zmq::message_t> frames;
    zmq::message_t m;
    do {
      (void)s.recv(m);
      frames.emplace_back(m.size() == 0 ? zmq::message_t{} : zmq::message_t{m.data(), m.size()});
    } while (m.more());
    std::string header = frames[0].to_string();
    if (header.size() >= 3 && (header[2] == 2 || header[2] == 7 || header[2] == 8))
      return header;  // REPLY, ERROR, BATCH
  }
}

inline std::string le32(std::size_t v) { return le64(v).substr(0, 4); }

}  // namespace amsg::test
