#pragma once
// AsyncWaitList: the coroutine counterpart of EventCount. A coroutine parks its
// completion handler here until another thread makes a condition true. The
// notifying side pays one fence and one load when the list is empty; the mutex
// is only taken when somebody is parked (the slow path by definition).

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/defer.hpp>
#include <asio/post.hpp>
#include <asio/recycling_allocator.hpp>
#include <asio/use_awaitable.hpp>

namespace amsg::detail {

class AsyncWaitList {
 public:
  AsyncWaitList() = default;
  AsyncWaitList(const AsyncWaitList&) = delete;
  AsyncWaitList& operator=(const AsyncWaitList&) = delete;

  // co_await list.async_wait(ready): resumes (on the coroutine's own executor) after
  // a notify, or at once if ready() is already true once the waiter is registered.
  // Any completion token works (a callback bound to an executor, say).
  template <typename Ready, typename CompletionToken = const asio::use_awaitable_t<>&>
  auto async_wait(Ready ready, CompletionToken&& token = asio::use_awaitable) {
    return asio::async_initiate<CompletionToken, void()>(
        [this, ready = std::move(ready)](auto handler) mutable { this->park(std::move(handler), ready); }, token);
  }

  // How a woken coroutine is handed to its executor.
  enum class Resume : bool {
    post,   // any idle pool thread may take it at once
    defer,  // a continuation of the caller: when the caller is a thread of the
            // waiter's pool, it runs there once the caller returns to the pool
            // (no other thread is woken); from any other thread, as post
  };

  // Wakes one parked coroutine (the most recent: its memory is the warmest).
  bool notify_one(Resume how = Resume::post) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (count_.load(std::memory_order_relaxed) == 0) return false;
    WaiterPtr waiter;
    {
      std::lock_guard lock{mutex_};
      if (waiters_.empty()) return false;
      waiter = std::move(waiters_.back());
      waiters_.pop_back();
      count_.fetch_sub(1, std::memory_order_relaxed);
    }
    waiter.release()->resume(how);
    return true;
  }

  void notify_all() {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (count_.load(std::memory_order_relaxed) == 0) return;
    std::vector<WaiterPtr> woken;
    {
      std::lock_guard lock{mutex_};
      woken.swap(waiters_);
      count_.store(0, std::memory_order_relaxed);
    }
    for (auto& waiter : woken) waiter.release()->resume(Resume::post);
  }

  [[nodiscard]] std::size_t waiting() const noexcept { return count_.load(std::memory_order_relaxed); }

 private:
  struct Waiter {
    virtual void resume(Resume how) = 0;  // hands the handler to its executor, then frees this
    virtual void destroy() = 0;           // frees this without resuming (list destroyed)
   protected:
    ~Waiter() = default;
  };
  struct WaiterDeleter {
    void operator()(Waiter* w) const noexcept { w->destroy(); }
  };
  using WaiterPtr = std::unique_ptr<Waiter, WaiterDeleter>;

  // Allocated with Asio's per-thread recycling allocator: a park is not a malloc.
  template <typename Handler>
  struct HandlerWaiter final : Waiter {
    using Allocator = asio::recycling_allocator<HandlerWaiter>;
    explicit HandlerWaiter(Handler&& h) : handler{std::move(h)} {}
    static WaiterPtr make(Handler&& h) {
      Allocator alloc;
      HandlerWaiter* w = alloc.allocate(1);
      ::new (static_cast<void*>(w)) HandlerWaiter{std::move(h)};
      return WaiterPtr{w};
    }
    void resume(Resume how) override {
      Handler h{std::move(handler)};
      destroy();
      // Through the handler's own executor (no work_dispatcher wrapper). Posted,
      // any idle pool thread may run it: a woken lane must not wait for a waker
      // that may block its thread. Deferred only by wakers that return to the
      // pool at once, so the work stays on their thread.
      if (how == Resume::defer) {
        asio::defer(std::move(h));
      } else {
        asio::post(std::move(h));
      }
    }
    void destroy() override {
      Allocator alloc;
      this->~HandlerWaiter();
      alloc.deallocate(this, 1);
    }
    Handler handler;
  };

  template <typename Handler, typename Ready>
  void park(Handler handler, Ready& ready) {
    WaiterPtr owned = HandlerWaiter<Handler>::make(std::move(handler));
    Waiter* self = owned.get();
    {
      std::lock_guard lock{mutex_};
      waiters_.push_back(std::move(owned));
      count_.fetch_add(1, std::memory_order_seq_cst);
    }
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (!ready()) return;
    // The condition came true while we registered: take ourselves back, unless a
    // notifier already did (then it resumes us).
    WaiterPtr mine;
    {
      std::lock_guard lock{mutex_};
      for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
        if (it->get() == self) {
          mine = std::move(*it);
          waiters_.erase(it);
          count_.fetch_sub(1, std::memory_order_relaxed);
          break;
        }
      }
    }
    if (mine) mine.release()->resume(Resume::post);
  }

  std::mutex mutex_;
  std::vector<WaiterPtr> waiters_;
  std::atomic<std::size_t> count_{0};
};

}  // namespace amsg::detail
