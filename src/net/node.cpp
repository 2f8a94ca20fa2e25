// amsg::net::Node: a thin handle on a Session (src/net/session/session.hpp).

#include "amsg/net/node.hpp"

#include <asio/async_result.hpp>
#include <asio/use_awaitable.hpp>

#include "amsg/log.hpp"
#include "session/session.hpp"

namespace amsg::net {

const char* to_string(PeerState state) noexcept {
  switch (state) {
    case PeerState::connecting:
      return "connecting";
    case PeerState::ready:
      return "ready";
    case PeerState::closing:
      return "closing";
    case PeerState::incompatible:
      return "incompatible";
    case PeerState::local:
      return "local";
  }
  return "unknown";
}

namespace {

struct PromiseCompletion final : Completion {
  void complete(Notification&& n) override { promise.set_value(std::move(n)); }
  std::promise<Notification> promise;
};

OutItem make_item(std::string type, Payload payload, std::optional<std::string> notify_id,
                  std::chrono::milliseconds timeout) {
  OutItem item;
  item.type = std::move(type);
  item.payload = std::move(payload);
  if (notify_id) {
    item.notified = true;
    item.notify_id = std::move(*notify_id);
    if (timeout.count() > 0) item.deadline = Clock::now() + timeout;
  }
  return item;
}

asio::awaitable<Notification> call_on(std::shared_ptr<Session> session, PeerId peer, OutItem item) {
  session->validate(item);
  co_await session->wait_for_room(peer);
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(Notification)>(
      [&session, peer, &item](auto handler) {
        using H = decltype(handler);
        item.completion = std::make_unique<HandlerCompletion<H>>(std::move(handler), session->executor());
        session->start_call(peer, std::move(item));
      },
      asio::use_awaitable);
}

}  // namespace

Node::Node(NodeOptions options) : impl_{std::make_shared<Session>(std::move(options))} {}

Node::~Node() {
  try {
    impl_->shutdown(std::chrono::milliseconds{0});
  } catch (const std::exception& e) {
    logger(impl_->options.manager.logger_name)->error("node shutdown in destructor failed: {}", e.what());
  }
}

Manager& Node::manager() noexcept { return impl_->manager; }
void Node::start() { impl_->start(); }
ShutdownReport Node::shutdown(std::chrono::milliseconds drain) { return impl_->shutdown(drain); }
const std::string& Node::identity() const noexcept { return impl_->identity; }
std::vector<std::string> Node::endpoints() const { return impl_->endpoints; }
PeerId Node::connect(const std::string& address) { return impl_->connect(address); }
PeerId Node::self() const noexcept { return PeerId{0}; }
bool Node::wait_ready(PeerId peer, std::chrono::milliseconds timeout) { return impl_->wait_ready(peer, timeout); }
std::optional<PeerInfo> Node::peer_info(PeerId peer) const { return impl_->peer_info(peer); }
std::future<std::vector<std::string>> Node::query_handlers(PeerId peer) { return impl_->query_handlers(peer); }

SendStatus Node::send(PeerId peer, std::string type, Payload payload) {
  OutItem item = make_item(std::move(type), std::move(payload), std::nullopt, {});
  return impl_->enqueue(peer, item, true);
}
SendStatus Node::send(PeerId peer, std::string type, Payload payload, std::string notify_id,
                      std::chrono::milliseconds timeout) {
  OutItem item = make_item(std::move(type), std::move(payload), std::move(notify_id), timeout);
  return impl_->enqueue(peer, item, true);
}
SendStatus Node::try_send(PeerId peer, std::string type, Payload payload) {
  OutItem item = make_item(std::move(type), std::move(payload), std::nullopt, {});
  return impl_->enqueue(peer, item, false);
}
SendStatus Node::try_send(PeerId peer, std::string type, Payload payload, std::string notify_id,
                          std::chrono::milliseconds timeout) {
  OutItem item = make_item(std::move(type), std::move(payload), std::move(notify_id), timeout);
  return impl_->enqueue(peer, item, false);
}

asio::awaitable<SendStatus> Node::async_send(PeerId peer, std::string type, Payload payload) {
  return impl_->async_enqueue(peer, make_item(std::move(type), std::move(payload), std::nullopt, {}));
}
asio::awaitable<SendStatus> Node::async_send(PeerId peer, std::string type, Payload payload, std::string notify_id,
                                             std::chrono::milliseconds timeout) {
  return impl_->async_enqueue(peer, make_item(std::move(type), std::move(payload), std::move(notify_id), timeout));
}

asio::awaitable<Notification> Node::call(PeerId peer, std::string type, Payload payload, const CallOptions& options) {
  return call_on(impl_, peer,
                 make_item(std::move(type), std::move(payload),
                           options.notify_id.empty() ? impl_->next_call_name() : options.notify_id, options.timeout));
}

asio::awaitable<Notification> Node::call(PeerId peer, std::string type, Payload payload, std::string notify_id,
                                         std::chrono::milliseconds timeout) {
  return call_on(impl_, peer,
                 make_item(std::move(type), std::move(payload),
                           notify_id.empty() ? impl_->next_call_name() : std::move(notify_id), timeout));
}

std::future<Notification> Node::call_future(PeerId peer, std::string type, Payload payload,
                                            const CallOptions& options) {
  auto completion = std::make_unique<PromiseCompletion>();
  auto fut = completion->promise.get_future();
  OutItem item = make_item(std::move(type), std::move(payload),
                           options.notify_id.empty() ? impl_->next_call_name() : options.notify_id, options.timeout);
  item.completion = std::move(completion);
  const SendStatus s = impl_->enqueue(peer, item, true);
  if (s != SendStatus::ok) {
    Notification n = failure(errc::node_shutting_down, kNodeShuttingDown);
    n.id = std::move(item.notify_id);
    n.message_type = std::move(item.type);
    item.completion->complete(std::move(n));
  }
  return fut;
}

NodeStats Node::stats() const { return impl_->stats(); }
asio::any_io_executor Node::executor() const { return impl_->executor().get(); }

}  // namespace amsg::net
