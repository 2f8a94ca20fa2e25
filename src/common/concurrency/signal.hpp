#pragma once
// Signal: both kinds of waiter for one condition, plain threads (EventCount) and
// coroutines (AsyncWaitList). Used by the core and by transports.

#include <atomic>

#include "async_wait_list.hpp"
#include "event_count.hpp"

namespace amsg::detail {

// Both kinds of waiter for one condition: plain threads and coroutines.
struct Signal {
  EventCount threads;
  AsyncWaitList coroutines;
  // After making the condition true for one waiter: wakes every parked thread
  // (they re-check) and one coroutine. One fence and two loads when nobody waits.
  void notify_one(AsyncWaitList::Resume how = AsyncWaitList::Resume::post) {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (threads.has_waiters()) threads.notify_all();
    if (coroutines.waiting() != 0) coroutines.notify_one(how);
  }
  void notify_all() {
    threads.notify_all();
    coroutines.notify_all();
  }
  // As notify_one(), for a condition several waiters may now meet (every
  // coroutine too). One fence and two loads when nobody waits.
  void notify_waiting() {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (threads.has_waiters()) threads.notify_all();
    if (coroutines.waiting() != 0) coroutines.notify_all();
  }
};

}  // namespace amsg::detail
