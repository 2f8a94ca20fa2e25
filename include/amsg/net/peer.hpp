#pragma once
// A node's view of one peer: its handle (PeerId), its state and what it announced.

#include <cstdint>
#include <string>
#include <vector>

#include "amsg/export.hpp"

namespace amsg::net {

// A connection to a peer, as returned by Node::connect() (or Node::self()).
struct PeerId {
  std::uint32_t value = 0;
  friend bool operator==(PeerId, PeerId) = default;
};

enum class PeerState : std::uint8_t {
  connecting,    // hello sent, no answer yet
  ready,         // hello exchanged
  closing,       // the peer said it is shutting down
  incompatible,  // the peer speaks another protocol version
  local,         // this node itself: sends skip the link
};
[[nodiscard]] AMSG_EXPORT const char* to_string(PeerState state) noexcept;

struct PeerInfo {
  std::string address;
  PeerState state = PeerState::connecting;
  std::string identity;               // empty until the hello exchange
  std::vector<std::string> handlers;  // the types the peer serves (as of its last hello)
  std::uint32_t max_payload = 0;      // the largest body the peer accepts
  std::uint64_t connections = 0;      // completed hello exchanges (reconnects count)
};

}  // namespace amsg::net
