#pragma once
/// @file
/// amsg::Handler: what runs for each message of one type.
///
/// For every message the handler produces a coroutine (asio::awaitable<void>) that
/// runs on the manager's thread pool. The handler object is where resources are
/// captured (shared state, pools, connections); the runtime keeps the handler
/// object alive until every coroutine it produced has finished, even if it is
/// removed from the registry meanwhile. So a coroutine may use the handler's
/// members (or a capturing coroutine lambda's captures) for its whole run.
///
/// The Message passed by reference lives until the coroutine ends; move the
/// payload out if you need it longer. Throwing ends the message with an error
/// notification carrying what(). Cancellation (shutdown past its deadline)
/// arrives as asio's per-coroutine cancellation: the next co_await on an asio
/// operation throws operation_aborted.
///
/// Thread-safety: handle() may be called concurrently from several threads (up to
/// the concurrency limit); shared state in a handler needs its own synchronisation.

#include <concepts>
#include <memory>
#include <type_traits>
#include <utility>

#include <asio/awaitable.hpp>

#include "amsg/export.hpp"
#include "amsg/message.hpp"

namespace amsg {

/// Runs messages of one type: one coroutine per message, under the manager's concurrency limit.
class AMSG_EXPORT Handler {
 public:
  virtual ~Handler() = default;
  /// Handles one message; throw to fail it (the exception's what() becomes the error), set message.response to answer a
  /// call.
  virtual asio::awaitable<void> handle(Message& message) = 0;
};

/// Wraps a callable `asio::awaitable<void>(Message&)` (a coroutine lambda with
/// captures is fine: the lambda object lives inside the returned handler).
template <typename F>
requires std::invocable<F&, Message&> && std::same_as<std::invoke_result_t<F&, Message&>, asio::awaitable<void>>
    std::shared_ptr<Handler> make_handler(F&& fn) {
  struct FunctionHandler final : Handler {
    explicit FunctionHandler(F&& f) : fn{std::forward<F>(f)} {}
    asio::awaitable<void> handle(Message& message) override { return fn(message); }
    std::decay_t<F> fn;
  };
  return std::make_shared<FunctionHandler>(std::forward<F>(fn));
}

}  // namespace amsg
