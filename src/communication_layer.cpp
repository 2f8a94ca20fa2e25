#include "amsg/communication_layer.hpp"

#include "core.hpp"

namespace amsg {
namespace {
thread_local bool deliver_defers = false;
}  // namespace

bool deliver_may_defer() noexcept { return deliver_defers; }

namespace detail {
DeliverScope::DeliverScope(bool may_defer) noexcept : previous_{deliver_defers} { deliver_defers = may_defer; }
DeliverScope::~DeliverScope() { deliver_defers = previous_; }
}  // namespace detail

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
  const SendStatus s = core_->try_send(std::move(message), detail::AsyncWaitList::Resume::defer);
  if (s != SendStatus::ok) detail::MessageAccess::route(message) = {};
  return s;
}

asio::awaitable<SendStatus> Ingress::async_submit(Message message, std::uint64_t peer) const {
  if (!route(message, peer)) co_return SendStatus::closed;
  co_return co_await core_->async_send(std::move(message));
}

void Ingress::cancel(std::uint64_t peer) const {
  if (auto layer = layer_.lock(); core_ && layer) core_->cancel(layer.get(), peer);
}

void Ingress::forget_cancel(std::uint64_t peer) const {
  if (auto layer = layer_.lock(); core_ && layer) core_->forget_cancel(layer.get(), peer);
}

SendStatus Ingress::try_publish(Notification&& notification) const {
  if (!core_) return SendStatus::closed;
  return core_->publish(notification, false, detail::AsyncWaitList::Resume::defer);
}

asio::awaitable<SendStatus> Ingress::async_publish(Notification notification) const {
  if (!core_) co_return SendStatus::closed;
  co_return co_await core_->async_publish(std::move(notification));
}

SendStatus Ingress::force_publish(Notification&& notification) const {
  if (!core_) return SendStatus::closed;
  return core_->publish(notification, true);
}

}  // namespace amsg
