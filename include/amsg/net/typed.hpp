#pragma once
/// @file
/// Typed messages over msgpack-cxx: structs on both sides instead of bytes.
///
/// @code
///   struct Offload { std::uint32_t first; std::uint32_t count; MSGPACK_DEFINE(first, count) };
///   struct Copied { std::uint64_t bytes; MSGPACK_DEFINE(bytes) };
///   node.manager().register_handler("offload", net::make_typed_handler<Offload, Copied>(
///       [&pools](Offload req) -> asio::awaitable<Copied> { co_return Copied{pools.copy(req)}; }));
///   auto r = co_await net::call_typed<Copied>(client, peer, "offload", Offload{0, 8});
///   if (r.value) use(r.value->bytes); else log(r.notification.text());
/// @endcode
///
/// A payload that does not decode as the handler's request type fails the message
/// with err(cannot decode payload as a <type>: ...), like any handler exception.

#ifndef MSGPACK_NO_BOOST
#define MSGPACK_NO_BOOST  // Debian's msgpack-cxx would otherwise want Boost headers
#endif

#include <chrono>
#include <msgpack.hpp>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <typeinfo>
#include <utility>

#include "amsg/handler.hpp"
#include "amsg/net/node.hpp"
#include "amsg/payload.hpp"

namespace amsg::net {

template <typename T>
/// `value` as msgpack bytes.
[[nodiscard]] Payload encode(const T& value) {
  msgpack::sbuffer buffer;
  msgpack::pack(buffer, value);
  return Payload::copy_of(std::span<const std::byte>{reinterpret_cast<const std::byte*>(buffer.data()), buffer.size()});
}

/// Throws std::invalid_argument when the bytes are not a msgpack-encoded T.
template <typename T>
[[nodiscard]] T decode(const Payload& payload) {
  try {
    const msgpack::object_handle handle =
        msgpack::unpack(reinterpret_cast<const char*>(payload.data()), payload.size());
    return handle.get().as<T>();
  } catch (const std::exception& e) {
    throw std::invalid_argument(std::string{"cannot decode payload as a "} + typeid(T).name() + ": " + e.what());
  }
}

/// F: a callable `asio::awaitable<Resp>(Req)`. Its result becomes the response bytes.
template <typename Req, typename Resp, typename F>
[[nodiscard]] std::shared_ptr<Handler> make_typed_handler(F fn) {
  return make_handler([fn = std::move(fn)](Message& msg) -> asio::awaitable<void> {
    Req request = decode<Req>(msg.payload);
    Resp response = co_await fn(std::move(request));
    msg.response = encode(response);
  });
}

template <typename Resp>
/// A typed call's outcome: the notification, and the decoded response when it was ok.
struct TypedReply {
  Notification notification;    ///< the outcome, as for any call
  std::optional<Resp> value{};  ///< set when the call succeeded and the answer decoded
};

template <typename Resp, typename Req>
/// Calls `type` at `peer` with `request` encoded as msgpack, and decodes the response as `Resp`.
[[nodiscard]] asio::awaitable<TypedReply<Resp>> call_typed(Node& node, PeerId peer, std::string type,
                                                           const Req& request, std::string notify_id = {},
                                                           std::chrono::milliseconds timeout = {}) {
  TypedReply<Resp> reply;
  reply.notification = co_await node.call(peer, std::move(type), encode(request), {std::move(notify_id), timeout});
  if (reply.notification.is_success()) {
    try {
      reply.value = decode<Resp>(reply.notification.payload);
    } catch (const std::invalid_argument& e) {
      reply.notification.outcome = Outcome::error;
      reply.notification.error = e.what();
    }
  }
  co_return reply;
}

}  // namespace amsg::net
