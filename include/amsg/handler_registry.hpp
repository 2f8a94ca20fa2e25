#pragma once
/// @file
/// amsg::HandlerRegistry: message type -> Handler, owned by a Manager.
///
/// Copy-on-write: every change publishes a new immutable snapshot and bumps a
/// version number. Workers read their own cached snapshot and only take the
/// registry's mutex when the version moved, so lookups on the hot path take no
/// lock. A handler removed while one of its coroutines runs stays alive (the
/// worker's snapshot holds it) until that coroutine ends.
///
/// Thread-safety: every member may be called from any thread at any time,
/// including while messages flow.

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

/// A string hash that also takes string_views (heterogeneous lookup).
struct TransparentStringHash {
  /// Enables heterogeneous lookup.
  using is_transparent = void;
  /// The hash of `s`.
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

/// Message type -> handler.
using HandlerMap = std::unordered_map<std::string, std::shared_ptr<Handler>, TransparentStringHash, std::equal_to<>>;

/// The handlers a manager runs, by message type; changes publish a new immutable snapshot.
class AMSG_EXPORT HandlerRegistry {
 public:
  /// An immutable view of the handlers at one version.
  struct Snapshot {
    std::uint64_t version = 0;  ///< increases with every change
    HandlerMap handlers;        ///< type -> handler
    /// The handler of `type`, or null.
    [[nodiscard]] Handler* find(std::string_view type) const noexcept {
      auto it = handlers.find(type);
      return it == handlers.end() ? nullptr : it->second.get();
    }
  };

  HandlerRegistry();

  /// Adds a handler. Throws HandlerExistsError if `type` has one, std::invalid_argument
  /// for an empty type or a null handler.
  void add(std::string type, std::shared_ptr<Handler> handler);
  /// Adds all of them, or none: throws HandlerExistsError naming the first clash.
  void add_all(HandlerMap handlers);
  /// Adds or replaces; returns true when it replaced one.
  bool replace(std::string type, std::shared_ptr<Handler> handler);
  /// Removes; returns false when there was none. Running coroutines finish normally.
  bool remove(std::string_view type);

  /// Whether `type` has a handler.
  [[nodiscard]] bool contains(std::string_view type) const;
  [[nodiscard]] std::vector<std::string> types() const;  ///< sorted
  /// The current version (changes with every add, replace or remove).
  [[nodiscard]] std::uint64_t version() const noexcept { return version_.load(std::memory_order_acquire); }
  /// The current handlers.
  [[nodiscard]] std::shared_ptr<const Snapshot> snapshot() const;

 private:
  void publish(HandlerMap next);  ///< requires mutex_

  mutable std::mutex mutex_;
  std::shared_ptr<const Snapshot> current_;
  std::atomic<std::uint64_t> version_{0};
};

}  // namespace amsg
