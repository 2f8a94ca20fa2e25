#pragma once
// amsg::HandlerRegistry: message type -> Handler, owned by a Manager.
//
// Copy-on-write: every change publishes a new immutable snapshot and bumps a
// version number. Workers read their own cached snapshot and only take the
// registry's mutex when the version moved, so lookups on the hot path take no
// lock. A handler removed while one of its coroutines runs stays alive (the
// worker's snapshot holds it) until that coroutine ends.
//
// Thread-safety: every member may be called from any thread at any time,
// including while messages flow.

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "amsg/export.hpp"
#include "amsg/handler.hpp"

namespace amsg {

struct TransparentStringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

using HandlerMap = std::unordered_map<std::string, std::shared_ptr<Handler>, TransparentStringHash, std::equal_to<>>;

class AMSG_EXPORT HandlerRegistry {
 public:
  struct Snapshot {
    std::uint64_t version = 0;
    HandlerMap handlers;
    [[nodiscard]] Handler* find(std::string_view type) const noexcept {
      auto it = handlers.find(type);
      return it == handlers.end() ? nullptr : it->second.get();
    }
  };

  HandlerRegistry();

  // Adds a handler. Throws HandlerExistsError if `type` has one, std::invalid_argument
  // for an empty type or a null handler.
  void add(std::string type, std::shared_ptr<Handler> handler);
  // Adds all of them, or none: throws HandlerExistsError naming the first clash.
  void add_all(HandlerMap handlers);
  // Adds or replaces; returns true when it replaced one.
  bool replace(std::string type, std::shared_ptr<Handler> handler);
  // Removes; returns false when there was none. Running coroutines finish normally.
  bool remove(std::string_view type);

  [[nodiscard]] bool contains(std::string_view type) const;
  [[nodiscard]] std::vector<std::string> types() const;  // sorted
  [[nodiscard]] std::uint64_t version() const noexcept { return version_.load(std::memory_order_acquire); }
  [[nodiscard]] std::shared_ptr<const Snapshot> snapshot() const;

 private:
  void publish(HandlerMap next);  // requires mutex_

  mutable std::mutex mutex_;
  std::shared_ptr<const Snapshot> current_;
  std::atomic<std::uint64_t> version_{0};
};

}  // namespace amsg
