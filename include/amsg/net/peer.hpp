#pragma once
/// @file
/// A node's view of one peer: its handle (PeerId), its state and what it announced.

#include <cstdint>
#include <string>
#include <vector>

#include "amsg/export.hpp"

namespace amsg::net {

/// A connection to a peer, as returned by Node::connect() (or Node::self()).
///
/// A node holds up to 4,095 peers at once. Once Node::disconnect() has ended a
/// peer's last use and its calls have ended, its slot may go to a later
/// connect() to another address; the old PeerId then names no peer (sending
/// to it throws `std::invalid_argument`, peer_info() is empty), and what a
/// sender was queueing with it just then ends `disconnected`, never sent. A
/// slot is reused at most 2^20 - 1 times, so a PeerId never names a later peer.
struct PeerId {
  std::uint32_t value = 0;  ///< opaque: the peer's slot and the slot's generation (0: the node itself)
  /// Whether both name the same peer.
  friend bool operator==(PeerId, PeerId) = default;
};

/// Where a connection to a peer stands.
enum class PeerState : std::uint8_t {
  connecting,    ///< hello sent, no answer yet
  ready,         ///< hello exchanged
  closing,       ///< the peer said it is shutting down
  incompatible,  ///< the peer speaks another protocol version
  local,         ///< this node itself: sends skip the link
  disconnected,  ///< Node::disconnect() ended its last use: sends end err(disconnected) until connect() reopens it
};
/// The state's name ("connecting", "ready", ...).
[[nodiscard]] AMSG_EXPORT const char* to_string(PeerState state) noexcept;

/// What a node knows of one peer.
struct PeerInfo {
  std::string address;                      ///< as given to Node::connect()
  PeerState state = PeerState::connecting;  ///< the connection's state now
  std::string identity;                     ///< empty until the hello exchange
  std::vector<std::string> handlers;        ///< the types the peer serves (as of its last hello)
  std::uint32_t max_payload = 0;            ///< the largest body the peer accepts
  std::uint64_t connections = 0;            ///< completed hello exchanges (reconnects count)
};

}  // namespace amsg::net
