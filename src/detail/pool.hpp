#pragma once
// The size-classed block pool behind Payload (and the runtime's message
// envelopes): per-thread free lists, whole chains exchanged with a global pool.
// Blocks are malloc-aligned. Under AddressSanitizer it is plain malloc/free.

#include <cstddef>

namespace amsg::detail {

// Throws std::bad_alloc. `size` must be > 0.
void* pool_allocate(std::size_t size);
// `size` must be the size given to pool_allocate.
void pool_deallocate(void* block, std::size_t size) noexcept;

}  // namespace amsg::detail
