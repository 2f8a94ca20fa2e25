#pragma once
// UcxLink's inner records, shared by ucx_link.cpp and ucx_progress.cpp.

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>

#include <asio/steady_timer.hpp>

#include "link/ucx_link.hpp"

namespace amsg::net {

// AM ids (docs/wire-protocol.md, "UCX").
inline constexpr unsigned kToListener = 0xA500;  // a frame from a dialing node to a listening one
inline constexpr unsigned kToDialer = 0xA501;    // a frame from a listening node to one that dialed it
inline constexpr unsigned kProbe = 0xA502;       // no data: a dialing node learns that its connection is up
inline constexpr unsigned kClosing = 0xA503;     // no data: a listening node closes, behind its last frames
inline constexpr unsigned kClosed = 0xA504;      // no data: ... and the dialing node has taken them all

inline constexpr unsigned kProgressBatch = 64;                 // events taken per turn before letting others run
inline constexpr unsigned kTurnsBeforeYield = 8;               // loops without sleeping before letting others run
inline constexpr std::chrono::microseconds kLongestTurn{500};  // ... or this long (large frames take long)
inline constexpr std::chrono::milliseconds kRedialFirst{100};
inline constexpr std::chrono::milliseconds kRedialMost{1000};
inline constexpr std::chrono::milliseconds kCloseBound{500};

// Lives in the request UCX returns for a send that did not finish at once
// (ucp_params_t::request_size): no allocation of ours per send.
struct SendRequest {
  Frame frame;
  std::uint64_t key = 0;
  bool probe = false;
  bool control = false;  // kClosing or kClosed: no connection counts them
};

struct UcxLink::Worker {
  ucp_worker_h handle = nullptr;
  std::unique_ptr<asio::posix::stream_descriptor> efd;
  std::unique_ptr<asio::steady_timer> rest;  // the listening worker rests on it while paused
  bool listening = false;
  bool waiting = false;  // its progress loop is parked on efd
  bool resting = false;  // ... or on rest
};

struct UcxLink::Inbound {
  std::uint64_t key = 0;
  std::uint64_t sequence = 0;  // its place among its connection's frames
  bool to_listener = false;
  bool skip = false;      // a rendezvous that failed: only its place counts
  bool oversize = false;  // over the frame limit, unread: its connection closes when its turn comes
  bool closing = false;   // the listener's kClosing: answered when its turn comes
  ucp_worker_h worker = nullptr;
  void* descriptor = nullptr;       // UCX's, released after delivery
  Payload head;                     // the AM's header (copied): the frame's head when not empty
  const std::byte* data = nullptr;  // the AM's data: the frame, or its body after head
  std::size_t size = 0;
  Payload owned;  // the AM's data received by rendezvous (or copied)
};

struct UcxLink::Conn {
  std::uint64_t key = 0;  // one per endpoint made: callbacks for a closed one find nothing
  Worker* worker = nullptr;
  ucp_ep_h ep = nullptr;
  bool dialed = false;
  std::size_t sending = 0;                 // sends UCX has not finished
  std::size_t sending_bytes = 0;           // ... and their bytes
  bool want_out = false;                   // a send said again: say when there is room
  std::uint64_t arrived = 0;               // frames that began to arrive
  std::uint64_t ready = 0;                 // frames passed on, in order
  std::map<std::uint64_t, Inbound> early;  // complete, behind one still arriving
  bool close_sent = false;                 // a client told that this node closes ...
  bool close_done = false;                 // ... has answered, or its endpoint failed
};

struct UcxLink::ChannelState : Conn, std::enable_shared_from_this<ChannelState> {
  enum class Up : std::uint8_t { connecting, up, down };
  std::string address;
  sockaddr_storage peer{};
  socklen_t peer_length = 0;
  ChannelEvents* events = nullptr;
  Up up = Up::down;
  std::deque<Frame> waiting;  // frames sent while the connection was not up
  std::size_t waiting_bytes = 0;
  std::unique_ptr<asio::steady_timer> redial;
  std::chrono::milliseconds backoff = kRedialFirst;
  bool closed = false;
};

struct UcxLink::Client : Conn {
  std::string name;
};

// A frame arriving by rendezvous, until its bytes are in.
struct UcxLink::Rendezvous {
  UcxLink* link;
  Inbound in;
};

}  // namespace amsg::net
