#include "amsg/payload.hpp"

#include "concurrency/sanitizers.hpp"
#include "detail/pool.hpp"

#include <array>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

// Blocks (payload buffers, message envelopes) up to kMaxPooled bytes come from size classes (powers of two
// from 64 B). Each thread keeps a free list per class; a thread that frees more
// than it allocates (a worker) hands whole chains to a global pool, and a thread
// that allocates more than it frees (a sender) takes whole chains back. So the
// usual cross-thread pattern costs one mutex operation per kChain buffers
// instead of contended malloc/free on every message. Under AddressSanitizer the
// pool is bypassed so that use-after-free stays detectable.

#if AMSG_UNDER_ASAN
#define AMSG_PAYLOAD_POOL 0
#else
#define AMSG_PAYLOAD_POOL 1
#endif

namespace amsg {
namespace {

constexpr std::size_t kMinClassBytes = 64;
constexpr std::size_t kClasses = 7;  // 64 B .. 4 KiB
constexpr std::size_t kMaxPooled = kMinClassBytes << (kClasses - 1);
constexpr std::size_t kChain = 128;  // buffers moved per global-pool operation
constexpr std::size_t kLocalMax = 2 * kChain;
constexpr std::size_t kGlobalMaxChains = 64;  // per class; beyond that chains go back to malloc

struct FreeBlock {
  FreeBlock* next;
};

struct Chain {
  FreeBlock* head = nullptr;
  std::size_t length = 0;
};

std::size_t class_of(std::size_t size) noexcept {
  const std::size_t rounded = std::bit_ceil(size < kMinClassBytes ? kMinClassBytes : size);
  return static_cast<std::size_t>(std::countr_zero(rounded) - std::countr_zero(kMinClassBytes));
}
std::size_t class_bytes(std::size_t cls) noexcept { return kMinClassBytes << cls; }

void free_chain(Chain chain) noexcept {
  while (chain.head != nullptr) {
    FreeBlock* next = chain.head->next;
    std::free(chain.head);
    chain.head = next;
  }
}

class GlobalPool {
 public:
  bool take(std::size_t cls, Chain& out) {
    std::lock_guard lock{mutex_};
    auto& chains = chains_[cls];
    if (chains.empty()) return false;
    out = chains.back();
    chains.pop_back();
    return true;
  }
  void give(std::size_t cls, Chain chain) {
    {
      std::lock_guard lock{mutex_};
      auto& chains = chains_[cls];
      if (chains.size() < kGlobalMaxChains) {
        chains.push_back(chain);
        return;
      }
    }
    free_chain(chain);
  }

 private:
  std::mutex mutex_;
  std::array<std::vector<Chain>, kClasses> chains_;
};

// Never destroyed: thread caches may flush into it during program exit.
GlobalPool& global_pool() {
  static auto* pool = new GlobalPool;
  return *pool;
}

class ThreadCache {
 public:
  ThreadCache(const ThreadCache&) = delete;
  ThreadCache& operator=(const ThreadCache&) = delete;
  ThreadCache() = default;
  ~ThreadCache() {
    for (std::size_t cls = 0; cls < kClasses; ++cls) {
      if (lists_[cls].head != nullptr) global_pool().give(cls, lists_[cls]);
      lists_[cls] = {};
    }
  }

  void* allocate(std::size_t cls) {
    Chain& list = lists_[cls];
    if (list.head == nullptr && !global_pool().take(cls, list)) {
      void* p = std::malloc(class_bytes(cls));
      if (p == nullptr) throw std::bad_alloc{};
      return p;
    }
    FreeBlock* block = list.head;
    list.head = block->next;
    --list.length;
    return block;
  }

  void deallocate(std::size_t cls, void* p) noexcept {
    Chain& list = lists_[cls];
    auto* block = static_cast<FreeBlock*>(p);
    block->next = list.head;
    list.head = block;
    if (++list.length < kLocalMax) return;
    // Keep kChain here, hand the older kChain to the pool.
    FreeBlock* cut = list.head;
    for (std::size_t i = 1; i < kChain; ++i) cut = cut->next;
    Chain spill{cut->next, list.length - kChain};
    cut->next = nullptr;
    list.length = kChain;
    global_pool().give(cls, spill);
  }

 private:
  std::array<Chain, kClasses> lists_{};
};

ThreadCache& thread_cache() {
  thread_local ThreadCache cache;
  return cache;
}

// Large buffers (kLargeFrom to kLargeMost bytes): memory fresh from the kernel costs a
// page fault per 4 KiB page on first touch (measured: 1 MiB payloads over UCX
// spent a quarter of the sender's time there), and glibc gives large freed
// blocks back to the kernel. So a few blocks freed last are kept for the next
// allocation of the same size (payloads of one application are usually of a
// few sizes: KV-cache blocks, tensors' shards): at most kLargeBlocks blocks and
// kLargeBytes in all per process, the oldest going back to malloc first.
constexpr std::size_t kLargeFrom = std::size_t{64} * 1024;
constexpr std::size_t kLargeMost = std::size_t{8} << 20;  // larger blocks are not kept
constexpr std::size_t kLargeBlocks = 64;
constexpr std::size_t kLargeBytes = std::size_t{64} << 20;

class LargeBlocks {
 public:
  void* take(std::size_t size) noexcept {
    if (size > kLargeMost) return nullptr;  // never kept: no lock to take
    std::lock_guard lock{mutex_};
    for (auto it = blocks_.rbegin(); it != blocks_.rend(); ++it) {
      if (it->size == size) {
        void* p = it->block;
        bytes_ -= size;
        blocks_.erase(std::next(it).base());
        return p;
      }
    }
    return nullptr;
  }
  // False: not kept (the caller frees it).
  bool give(std::size_t size, void* block) noexcept {
    if (size > kLargeMost) return false;
    std::array<void*, kLargeBlocks> evicted{};
    std::size_t n = 0;
    {
      std::lock_guard lock{mutex_};
      while (!blocks_.empty() && (blocks_.size() >= kLargeBlocks || bytes_ + size > kLargeBytes)) {
        evicted[n++] = blocks_.front().block;
        bytes_ -= blocks_.front().size;
        blocks_.erase(blocks_.begin());
      }
      blocks_.push_back(Block{size, block});  // capacity reserved: no allocation here
      bytes_ += size;
    }
    for (std::size_t i = 0; i < n; ++i) std::free(evicted[i]);  // outside the lock: may unmap
    return true;
  }

 private:
  struct Block {
    std::size_t size;
    void* block;
  };
  std::mutex mutex_;
  std::vector<Block> blocks_ = [] {
    std::vector<Block> v;
    v.reserve(kLargeBlocks);
    return v;
  }();
  std::size_t bytes_ = 0;
};

// Never destroyed, like the global pool.
LargeBlocks& large_blocks() {
  static auto* blocks = new LargeBlocks;
  return *blocks;
}

}  // namespace

namespace detail {

void* pool_allocate(std::size_t size) {
  if (AMSG_PAYLOAD_POOL && size <= kMaxPooled) return thread_cache().allocate(class_of(size));
  if (AMSG_PAYLOAD_POOL && size >= kLargeFrom) {
    if (void* p = large_blocks().take(size); p != nullptr) return p;
  }
  void* p = std::malloc(size);
  if (p == nullptr) throw std::bad_alloc{};
  return p;
}

void pool_deallocate(void* block, std::size_t size) noexcept {
  if (AMSG_PAYLOAD_POOL && size <= kMaxPooled) {
    thread_cache().deallocate(class_of(size), block);
  } else if (!AMSG_PAYLOAD_POOL || size < kLargeFrom || !large_blocks().give(size, block)) {
    std::free(block);
  }
}

}  // namespace detail

namespace {
std::byte* allocate_bytes(std::size_t size) {
  return size == 0 ? nullptr : static_cast<std::byte*>(detail::pool_allocate(size));
}
}  // namespace

Payload::Payload(std::size_t size) : data_{allocate_bytes(size)}, size_{size} {}

Payload Payload::copy_of(std::span<const std::byte> bytes) {
  Payload p{bytes.size()};
  if (!bytes.empty()) std::memcpy(p.data_, bytes.data(), bytes.size());
  return p;
}

Payload Payload::copy_of(std::string_view text) { return copy_of(std::as_bytes(std::span{text.data(), text.size()})); }

void Payload::release() noexcept {
  if (data_ == nullptr) return;
  detail::pool_deallocate(data_, size_);
  data_ = nullptr;
  size_ = 0;
}

}  // namespace amsg
