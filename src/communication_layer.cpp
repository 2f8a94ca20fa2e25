#include "amsg/communication_layer.hpp"

#include "core.hpp"

namespace amsg {

bool Ingress::route(Message& message, std::uint64_t peer) const {
  auto layer = layer_.lock();
  if (!core_ || !layer) return false;
  detail::MessageAccess::route(message) = ReplyRoute{std::move(layer), peer};
  return true;
}

SendStatus Ingress::submit(Message&& message, std::uint64_t peer) const {
  if (!route(message, peer)) return SendStatus::closed;
  const SendStatus s = core_->send(std::move(message));
  if (s != SendStatus::ok) detail::MessageAccess::route(message) = {};
  return s;
}

SendStatus Ingress::try_submit(Message&& message, std::uint64_t peer) const {
  if (!route(message, peer)) return SendStatus::closed;
  const SendStatus s = core_->try_send(std::move(message));
  if (s != SendStatus::ok) detail::MessageAccess::route(message) = {};
  return s;
}

asio::awaitable<SendStatus> Ingress::async_submit(Message message, std::uint64_t peer) const {
  if (!route(message, peer)) co_return SendStatus::closed;
  co_return co_await core_->async_send(std::move(message));
}

}  // namespace amsg
