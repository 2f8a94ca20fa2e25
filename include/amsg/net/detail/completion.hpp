#pragma once
/// @file
/// The type-erased end of an asynchronous Node operation: where its result goes
/// once the operation completes (the completion handler a token produced). Used
/// by Node's templates; not part of the API.

#include <memory>
#include <type_traits>
#include <utility>

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/dispatch.hpp>
#include <asio/post.hpp>

namespace amsg::net::detail {

template <typename Result>
struct Completion {
  virtual ~Completion() = default;
  /// The operation has ended (called from outside its initiating function).
  virtual void complete(Result&& result) = 0;
  /// The operation ended within its initiating function: the handler runs later,
  /// through its executor, never inline (Asio's rule for immediate completions).
  virtual void complete_later(Result&& result) = 0;
};

/// Calls the handler on its associated executor (the node's executor when it has
/// none). When that is the node's executor and we are on it already, calls it at
/// once: a coroutine on Node::executor() resumes without a hand-off.
template <typename Result, typename Handler>
class HandlerCompletion final : public Completion<Result> {
 public:
  using OnNodeThread = bool (*)(const void* node);
  HandlerCompletion(Handler&& handler, asio::any_io_executor node_executor, OnNodeThread on_node_thread,
                    const void* node)
      : handler_{std::move(handler)},
        node_executor_{std::move(node_executor)},
        on_node_thread_{on_node_thread},
        node_{node} {}

  void complete(Result&& result) override {
    auto ex = asio::get_associated_executor(handler_, node_executor_);
    if constexpr (std::is_same_v<decltype(ex), asio::any_io_executor>) {
      if (ex == node_executor_ && on_node_thread_(node_)) {
        std::move(handler_)(std::move(result));
        return;
      }
    }
    asio::dispatch(ex, [h = std::move(handler_), r = std::move(result)]() mutable { std::move(h)(std::move(r)); });
  }

  void complete_later(Result&& result) override {
    auto ex = asio::get_associated_executor(handler_, node_executor_);
    asio::post(ex, [h = std::move(handler_), r = std::move(result)]() mutable { std::move(h)(std::move(r)); });
  }

 private:
  Handler handler_;
  asio::any_io_executor node_executor_;
  OnNodeThread on_node_thread_;
  const void* node_;
};

/// A call whose caller may cancel it (its handler had a connected cancellation
/// slot): the slot's handler calls request().
struct CallCancellation {
  virtual ~CallCancellation() = default;
  /// Any thread, any number of times: asks the node to cancel the call (when
  /// `unsent_only`, only if it has not been sent yet: asio's total cancellation).
  virtual void request(bool unsent_only) noexcept = 0;
};

}  // namespace amsg::net::detail
