#pragma once
// BusyLoop: a queue of work for threads that never sleep, and its executor.
//
// Work posted to an io_context waits for the scheduler's next pass, and every
// pass begins with the reactor's epoll_wait(…, 0), a system call (about 1 us in
// the VMs this runs on): a chain of N posts costs N system calls. A busy loop
// thread instead runs what its executor queued back to back, without a system
// call between handlers, and lets the io_context (timers, sockets, work posted
// to the io_context itself) run every kReactorEvery, or whenever nothing is
// queued. Queued work counts as the io_context's work, so the io_context does
// not run out of work (and stop) while some is queued or running here.
//
//   BusyLoop loop{io};
//   asio::any_io_executor ex = loop.executor();   // post, defer, dispatch, co_spawn, timers
//   std::thread t{[&] { loop.run(); }};            // until io.stop() or io runs out of work

#include <atomic>
#include <chrono>
#include <cstddef>
#include <mutex>
#include <new>
#include <optional>
#include <type_traits>
#include <utility>

#include <asio/execution.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

namespace amsg::detail {

class BusyLoop {
 public:
  // How often the io_context gets its turn while work keeps coming.
  static constexpr std::chrono::microseconds kReactorEvery{50};

  template <bool Possibly>
  class Executor;

  explicit BusyLoop(asio::io_context& io) : io_{io} {}
  BusyLoop(const BusyLoop&) = delete;
  BusyLoop& operator=(const BusyLoop&) = delete;
  ~BusyLoop() { discard(take()); }

  [[nodiscard]] Executor<false> executor() noexcept;
  [[nodiscard]] asio::io_context& context() const noexcept { return io_; }
  [[nodiscard]] bool running_in_this_thread() const noexcept { return current() == this; }

  // Runs queued work and the io_context until the io_context stops (io.stop(), or
  // no work left anywhere). Exceptions from work propagate (call run() again).
  void run() {
    current() = this;
    struct Leave {
      ~Leave() { current() = nullptr; }
    } leave;
    using Clock = std::chrono::steady_clock;
    auto last_poll = Clock::now();
    while (!io_.stopped()) {
      Op* batch = take();
      if (batch != nullptr) {
        run_batch(batch);
        const auto now = Clock::now();
        if (now - last_poll < kReactorEvery) continue;
        last_poll = now;
      }
      io_.poll();
    }
  }

  template <class F>
  void push(F&& f) {
    using Fn = std::decay_t<F>;
    struct Impl final : Op {
      explicit Impl(F&& fn) : f{std::forward<F>(fn)} {}
      Fn f;
    };
    void* memory = allocate(sizeof(Impl));
    auto* op = new (memory) Impl{std::forward<F>(f)};
    op->call = [](Op* base, bool invoke) {
      auto* self = static_cast<Impl*>(base);
      Fn fn{std::move(self->f)};
      self->~Impl();
      deallocate(self, sizeof(Impl));
      if (invoke) std::move(fn)();
    };
    std::lock_guard lock{mutex_};
    if (tail_ == nullptr) {
      head_ = op;
    } else {
      tail_->next = op;
    }
    tail_ = op;
    if (outstanding_++ == 0) work_.emplace(io_.get_executor());
  }

 private:
  struct Op {
    Op* next = nullptr;
    void (*call)(Op*, bool invoke) = nullptr;  // frees the op, then runs it if `invoke`
  };

  static BusyLoop*& current() noexcept {
    thread_local BusyLoop* loop = nullptr;
    return loop;
  }

  Op* take() {
    std::lock_guard lock{mutex_};
    Op* batch = head_;
    head_ = tail_ = nullptr;
    return batch;
  }

  void run_batch(Op* op) {
    std::size_t ran = 0;
    struct Account {  // also when a handler throws: what it left is still queued work
      BusyLoop& loop;
      Op*& rest;
      std::size_t& ran;
      ~Account() {
        if (rest != nullptr) {  // put the rest back in front, in order
          Op* last = rest;
          while (last->next != nullptr) last = last->next;
          std::lock_guard lock{loop.mutex_};
          last->next = loop.head_;
          loop.head_ = rest;
          if (loop.tail_ == nullptr) loop.tail_ = last;
        }
        std::lock_guard lock{loop.mutex_};
        loop.outstanding_ -= ran;
        if (loop.outstanding_ == 0) loop.work_.reset();
      }
    } account{*this, op, ran};
    while (op != nullptr) {
      Op* next = op->next;
      Op* current_op = op;
      op = next;
      ++ran;
      current_op->call(current_op, true);
    }
  }

  void discard(Op* op) {
    while (op != nullptr) {
      Op* next = op->next;
      op->call(op, false);
      op = next;
    }
  }

  // Ops are recycled through a small per-thread cache (a post from the loop's own
  // thread, the common case, then allocates nothing).
  static constexpr std::size_t kCachedSize = 256;
  static constexpr std::size_t kCacheSlots = 32;
  struct Cache {
    std::size_t count = 0;
    void* blocks[kCacheSlots] = {};  // NOLINT(cppcoreguidelines-avoid-c-arrays,modernize-avoid-c-arrays)
    Cache() = default;
    Cache(const Cache&) = delete;
    Cache& operator=(const Cache&) = delete;
    ~Cache() {
      while (count > 0) ::operator delete(blocks[--count]);
    }
  };
  static Cache& cache() noexcept {
    thread_local Cache c;
    return c;
  }
  static void* allocate(std::size_t size) {
    if (size > kCachedSize) return ::operator new(size);
    Cache& c = cache();
    if (c.count > 0) return c.blocks[--c.count];
    return ::operator new(kCachedSize);
  }
  static void deallocate(void* p, std::size_t size) noexcept {
    if (size <= kCachedSize) {
      Cache& c = cache();
      if (c.count < kCacheSlots) {
        c.blocks[c.count++] = p;
        return;
      }
    }
    ::operator delete(p);
  }

  asio::io_context& io_;
  std::mutex mutex_;
  Op* head_ = nullptr;  // guarded by mutex_
  Op* tail_ = nullptr;
  std::size_t outstanding_ = 0;  // queued or running; while > 0 the io_context has work
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
};

// The executor of a BusyLoop: never runs work inside execute() unless it was asked
// for blocking.possibly (asio::dispatch) and is on one of the loop's threads.
template <bool Possibly>
class BusyLoop::Executor {
 public:
  explicit Executor(BusyLoop& loop) noexcept : loop_{&loop} {}

  [[nodiscard]] asio::execution_context& query(asio::execution::context_t /*unused*/) const noexcept {
    return loop_->context();
  }
  static constexpr asio::execution::blocking_t query(asio::execution::blocking_t /*unused*/) noexcept {
    if constexpr (Possibly) {
      return asio::execution::blocking.possibly;
    } else {
      return asio::execution::blocking.never;
    }
  }
  [[nodiscard]] Executor<false> require(asio::execution::blocking_t::never_t /*unused*/) const noexcept {
    return Executor<false>{*loop_};
  }
  [[nodiscard]] Executor<true> require(asio::execution::blocking_t::possibly_t /*unused*/) const noexcept {
    return Executor<true>{*loop_};
  }

  template <class F>
  void execute(F&& f) const {
    if constexpr (Possibly) {
      if (loop_->running_in_this_thread()) {
        std::decay_t<F> fn{std::forward<F>(f)};
        std::move(fn)();
        return;
      }
    }
    loop_->push(std::forward<F>(f));
  }

  [[nodiscard]] bool running_in_this_thread() const noexcept { return loop_->running_in_this_thread(); }
  [[nodiscard]] BusyLoop& loop() const noexcept { return *loop_; }

  friend bool operator==(const Executor& a, const Executor& b) noexcept { return a.loop_ == b.loop_; }
  friend bool operator!=(const Executor& a, const Executor& b) noexcept { return a.loop_ != b.loop_; }

 private:
  BusyLoop* loop_;
};

inline BusyLoop::Executor<false> BusyLoop::executor() noexcept { return Executor<false>{*this}; }

}  // namespace amsg::detail
