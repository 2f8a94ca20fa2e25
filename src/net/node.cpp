// amsg::net::Node: a thin handle on a Session (src/net/session/session.hpp).

#include "amsg/net/node.hpp"

#include "amsg/log.hpp"
#include "session/session.hpp"

#include <stdexcept>

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
    case PeerState::disconnected:
      return "disconnected";
  }
  return "unknown";
}

namespace {

OutItem make_item(std::string type, Payload payload, std::optional<std::string> notify_id,
                  std::chrono::milliseconds timeout, bool idempotent) {
  if (idempotent && (!notify_id || notify_id->empty())) {
    throw std::invalid_argument("amsg: an idempotent message needs its id (the idempotency key)");
  }
  OutItem item;
  item.idempotent = idempotent;
  item.type = std::move(type);
  item.payload = std::move(payload);
  if (notify_id) {
    item.notified = true;
    item.notify_id = std::move(*notify_id);
    if (timeout.count() > 0) item.deadline = Clock::now() + timeout;
  }
  return item;
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
void Node::disconnect(PeerId peer) { impl_->disconnect(peer); }
PeerId Node::self() const noexcept { return PeerId{0}; }
bool Node::wait_ready(PeerId peer, std::chrono::milliseconds timeout) { return impl_->wait_ready(peer, timeout); }
std::optional<PeerInfo> Node::peer_info(PeerId peer) const { return impl_->peer_info(peer); }
std::future<std::vector<std::string>> Node::query_handlers(PeerId peer) { return impl_->query_handlers(peer); }

SendStatus Node::send(PeerId peer, std::string type, Payload payload, SendOptions options) {
  OutItem item =
      make_item(std::move(type), std::move(payload), std::move(options.notify_id), options.timeout, options.idempotent);
  return impl_->enqueue(peer, item, true);
}

SendStatus Node::try_send(PeerId peer, std::string type, Payload payload, SendOptions options) {
  OutItem item =
      make_item(std::move(type), std::move(payload), std::move(options.notify_id), options.timeout, options.idempotent);
  return impl_->enqueue(peer, item, false);
}

void Node::check(PeerId peer, std::string_view type, std::string_view notify_id, bool idempotent) const {
  if (idempotent && notify_id.empty()) {
    throw std::invalid_argument("amsg: an idempotent message needs its id (the idempotency key)");
  }
  impl_->check(peer, type, notify_id);
}

bool Node::on_node_thread(const void* session) { return static_cast<const Session*>(session)->on_executor_thread(); }

void Node::start_send(PeerId peer, std::string type, Payload payload, SendOptions options,
                      std::unique_ptr<detail::Completion<SendStatus>> done) {
  impl_->async_enqueue(
      peer,
      make_item(std::move(type), std::move(payload), std::move(options.notify_id), options.timeout, options.idempotent),
      std::move(done));
}

asio::awaitable<SendStatus> Node::async_send_awaitable(PeerId peer, std::string type, Payload payload,
                                                       SendOptions options) {
  auto session = impl_;  // we may suspend: keep the session alive
  OutItem item =
      make_item(std::move(type), std::move(payload), std::move(options.notify_id), options.timeout, options.idempotent);
  const SendStatus s = session->enqueue(peer, item, false);
  if (s != SendStatus::full) co_return s;
  co_return co_await asio::async_initiate<const asio::use_awaitable_t<>&, void(SendStatus)>(
      [this, &session, peer, &item](auto handler) {
        session->async_enqueue(peer, std::move(item), completion<SendStatus>(std::move(handler)));
      },
      asio::use_awaitable);
}

void Node::start_call(PeerId peer, std::string type, Payload payload, CallOptions options,
                      std::unique_ptr<detail::Completion<Notification>> done,
                      std::shared_ptr<detail::CallCancellation> cancellation) {
  OutItem item = make_item(std::move(type), std::move(payload),
                           options.notify_id.empty() ? impl_->next_call_name() : std::move(options.notify_id),
                           options.timeout, options.idempotent);
  item.completion = std::move(done);
  item.cancel = std::static_pointer_cast<CallCancel>(std::move(cancellation));
  impl_->call(peer, std::move(item));
}

std::shared_ptr<detail::CallCancellation> Node::make_cancellation() const {
  return std::make_shared<CallCancel>(impl_);
}

NodeStats Node::stats() const { return impl_->stats(); }
std::vector<PeerStats> Node::peer_stats() const { return impl_->peer_stats(); }
asio::any_io_executor Node::executor() const { return impl_->executor().get(); }

}  // namespace amsg::net
