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

#include <algorithm>
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

  template <bool Possibly, bool Tracked>
  class Executor;
  using BasicExecutor = Executor<false, false>;  // what executor() gives

  // `threads`: how many threads will call run(). With more than one, each takes
  // one piece of work at a time (as an io_context hands them out), so that one
  // long handler does not hold back what was queued behind it.
  explicit BusyLoop(asio::io_context& io, std::size_t threads = 1)
      : io_{io}, max_batch_{threads == 1 ? ~std::size_t{0} : 1} {}
  BusyLoop(const BusyLoop&) = delete;
  BusyLoop& operator=(const BusyLoop&) = delete;
  ~BusyLoop() { close(); }

  // Once no thread runs the loop: destroys what is queued, unrun (and what that
  // posts meanwhile), and from now on destroys whatever is posted at once (the
  // io_context's own shutdown may still post here). Lets go of the io_context's
  // work, so it must come before the io_context is destroyed.
  void close() {
    {
      std::lock_guard lock{mutex_};
      closed_ = true;
    }
    while (Op* op = take()) discard(op);
    std::lock_guard lock{mutex_};
    outstanding_ = 0;
    work_.reset();
  }

  [[nodiscard]] BasicExecutor executor() noexcept;
  [[nodiscard]] asio::io_context& context() const noexcept { return io_; }
  [[nodiscard]] bool running_in_this_thread() const noexcept { return current() == this; }

  // Runs queued work and the io_context until the io_context stops (io.stop(), or
  // no work left anywhere). Exceptions from work propagate (call run() again).
  void run() {
    struct Enter {
      BusyLoop* previous = current();
      explicit Enter(BusyLoop* loop) { current() = loop; }
      Enter(const Enter&) = delete;
      Enter& operator=(const Enter&) = delete;
      ~Enter() { current() = previous; }
    } enter{this};
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
    void* memory = allocate<alignof(Impl)>(sizeof(Impl));
    Impl* op = nullptr;
    try {
      op = new (memory) Impl{std::forward<F>(f)};
    } catch (...) {
      deallocate<alignof(Impl)>(memory, sizeof(Impl));
      throw;
    }
    op->call = [](Op* base, bool invoke) {
      auto* self = static_cast<Impl*>(base);
      Fn fn{std::move(self->f)};
      self->~Impl();
      deallocate<alignof(Impl)>(self, sizeof(Impl));
      if (invoke) std::move(fn)();
    };
    {
      std::lock_guard lock{mutex_};
      if (!closed_) {
        if (tail_ == nullptr) {
          head_ = op;
        } else {
          tail_->next = op;
        }
        tail_ = op;
        if (outstanding_++ == 0) work_.emplace(io_.get_executor());
        return;
      }
    }
    op->call(op, false);  // closed: nothing will run it
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

  // Up to max_batch_ ops, in order, as a list.
  Op* take() {
    std::lock_guard lock{mutex_};
    Op* batch = head_;
    if (batch == nullptr) return nullptr;
    if (max_batch_ == ~std::size_t{0}) {  // one thread: all of it
      head_ = tail_ = nullptr;
      return batch;
    }
    Op* last = batch;
    for (std::size_t n = 1; n < max_batch_ && last->next != nullptr; ++n) last = last->next;
    head_ = last->next;
    if (head_ == nullptr) tail_ = nullptr;
    last->next = nullptr;
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
        loop.outstanding_ -= std::min(ran, loop.outstanding_);  // (close() may have zeroed it)
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
      gone() = true;  // work destroyed later on this thread (static destructors) frees directly
      while (count > 0) ::operator delete(blocks[--count]);
    }
    static bool& gone() noexcept {
      thread_local bool g = false;  // trivially destructible: valid until the thread ends
      return g;
    }
  };
  static Cache* cache() noexcept {
    if (Cache::gone()) return nullptr;
    thread_local Cache c;
    return &c;
  }
  template <std::size_t Align>
  static constexpr bool kCachable = Align <= __STDCPP_DEFAULT_NEW_ALIGNMENT__;
  template <std::size_t Align>
  static void* allocate(std::size_t size) {
    if constexpr (!kCachable<Align>) {
      return ::operator new (size, std::align_val_t{Align});
    } else {
      if (size > kCachedSize) return ::operator new(size);
      Cache* c = cache();
      if (c != nullptr && c->count > 0) return c->blocks[--c->count];
      return ::operator new(kCachedSize);
    }
  }
  template <std::size_t Align>
  static void deallocate(void* p, std::size_t size) noexcept {
    if constexpr (!kCachable<Align>) {
      ::operator delete (p, std::align_val_t{Align});
    } else {
      if (size <= kCachedSize) {
        Cache* c = cache();
        if (c != nullptr && c->count < kCacheSlots) {
          c->blocks[c->count++] = p;
          return;
        }
      }
      ::operator delete(p);
    }
  }

  asio::io_context& io_;
  const std::size_t max_batch_;
  std::mutex mutex_;
  bool closed_ = false;  // guarded by mutex_
  Op* head_ = nullptr;   // guarded by mutex_
  Op* tail_ = nullptr;
  std::size_t outstanding_ = 0;  // queued or running; while > 0 the io_context has work
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
};

// The executor of a BusyLoop: never runs work inside execute() unless it was asked
// for blocking.possibly (asio::dispatch) and is on one of the loop's threads.
// Tracked (outstanding_work.tracked, as co_spawn and work guards ask for) keeps
// the loop's io_context from running out of work while it exists.
template <bool Possibly, bool Tracked>
class BusyLoop::Executor {
  using TrackedIo = std::decay_t<decltype(asio::prefer(std::declval<asio::io_context::executor_type>(),
                                                       asio::execution::outstanding_work.tracked))>;
  struct Untracked {};

 public:
  explicit Executor(BusyLoop& loop) noexcept : loop_{&loop}, work_{make_work(loop)} {}

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
  static constexpr asio::execution::outstanding_work_t query(asio::execution::outstanding_work_t /*unused*/) noexcept {
    if constexpr (Tracked) {
      return asio::execution::outstanding_work.tracked;
    } else {
      return asio::execution::outstanding_work.untracked;
    }
  }
  [[nodiscard]] Executor<false, Tracked> require(asio::execution::blocking_t::never_t /*unused*/) const noexcept {
    return Executor<false, Tracked>{*loop_};
  }
  [[nodiscard]] Executor<true, Tracked> require(asio::execution::blocking_t::possibly_t /*unused*/) const noexcept {
    return Executor<true, Tracked>{*loop_};
  }
  [[nodiscard]] Executor<Possibly, true> require(
      asio::execution::outstanding_work_t::tracked_t /*unused*/) const noexcept {
    return Executor<Possibly, true>{*loop_};
  }
  [[nodiscard]] Executor<Possibly, false> require(
      asio::execution::outstanding_work_t::untracked_t /*unused*/) const noexcept {
    return Executor<Possibly, false>{*loop_};
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

  friend bool operator==(const Executor& a, const Executor& b) noexcept { return a.loop_ == b.loop_; }
  friend bool operator!=(const Executor& a, const Executor& b) noexcept { return a.loop_ != b.loop_; }

 private:
  static auto make_work(BusyLoop& loop) noexcept {
    if constexpr (Tracked) {
      return asio::prefer(loop.context().get_executor(), asio::execution::outstanding_work.tracked);
    } else {
      return Untracked{};
    }
  }

  BusyLoop* loop_;
  [[no_unique_address]] std::conditional_t<Tracked, TrackedIo, Untracked> work_;
};

inline BusyLoop::BasicExecutor BusyLoop::executor() noexcept { return BasicExecutor{*this}; }

}  // namespace amsg::detail
