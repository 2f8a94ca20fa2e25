#include "link/link.hpp"

#include <cstring>

namespace amsg::net {

Payload join_frame(std::span<const std::byte> head, std::span<const std::byte> body) {
  Payload out{head.size() + body.size()};
  if (!head.empty()) std::memcpy(out.data(), head.data(), head.size());
  if (!body.empty()) std::memcpy(out.data() + head.size(), body.data(), body.size());
  return out;
}

Payload Frame::joined() && {
  if (body.empty()) return std::move(head);
  Payload out = join_frame(head.bytes(), body.bytes());
  head = Payload{};
  body = Payload{};
  return out;
}

}  // namespace amsg::net
