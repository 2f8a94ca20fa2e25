#include "amsg/handler_registry.hpp"

#include <algorithm>
#include <stdexcept>

#include "amsg/errors.hpp"

namespace amsg {
namespace {
void check(const std::string& type, const std::shared_ptr<Handler>& handler) {
  if (type.empty()) throw std::invalid_argument("amsg: a message type must not be empty");
  if (!handler) throw std::invalid_argument("amsg: null handler for message type '" + type + "'");
}
}  // namespace

HandlerRegistry::HandlerRegistry() : current_{std::make_shared<const Snapshot>()} {}

void HandlerRegistry::publish(HandlerMap next) {
  auto snap = std::make_shared<Snapshot>();
  snap->version = version_.load(std::memory_order_relaxed) + 1;
  snap->handlers = std::move(next);
  current_ = std::move(snap);
  version_.store(current_->version, std::memory_order_release);
}

void HandlerRegistry::add(std::string type, std::shared_ptr<Handler> handler) {
  check(type, handler);
  std::lock_guard lock{mutex_};
  if (current_->handlers.contains(type)) throw HandlerExistsError(type);
  HandlerMap next = current_->handlers;
  next.emplace(std::move(type), std::move(handler));
  publish(std::move(next));
}

void HandlerRegistry::add_all(HandlerMap handlers) {
  for (const auto& [type, handler] : handlers) check(type, handler);
  std::lock_guard lock{mutex_};
  for (const auto& [type, handler] : handlers) {
    if (current_->handlers.contains(type)) throw HandlerExistsError(type);
  }
  HandlerMap next = current_->handlers;
  next.merge(handlers);
  publish(std::move(next));
}

bool HandlerRegistry::replace(std::string type, std::shared_ptr<Handler> handler) {
  check(type, handler);
  std::lock_guard lock{mutex_};
  HandlerMap next = current_->handlers;
  auto [it, inserted] = next.insert_or_assign(std::move(type), std::move(handler));
  publish(std::move(next));
  return !inserted;
}

bool HandlerRegistry::remove(std::string_view type) {
  std::lock_guard lock{mutex_};
  auto it = current_->handlers.find(type);
  if (it == current_->handlers.end()) return false;
  HandlerMap next = current_->handlers;
  next.erase(next.find(type));
  publish(std::move(next));
  return true;
}

bool HandlerRegistry::contains(std::string_view type) const {
  std::lock_guard lock{mutex_};
  return current_->handlers.find(type) != current_->handlers.end();
}

std::vector<std::string> HandlerRegistry::types() const {
  std::vector<std::string> out;
  {
    std::lock_guard lock{mutex_};
    out.reserve(current_->handlers.size());
    for (const auto& entry : current_->handlers) out.push_back(entry.first);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::shared_ptr<const HandlerRegistry::Snapshot> HandlerRegistry::snapshot() const {
  std::lock_guard lock{mutex_};
  return current_;
}

}  // namespace amsg
