#pragma once
// A cheap monotonic timestamp for the per-message latency stamps. On x86-64 it is
// the invariant TSC (a few ns, against ~20 ns for clock_gettime on the reference
// VM, and taken twice per message); elsewhere steady_clock. ns_per_tick() converts.

#include <chrono>
#include <cstdint>

#if defined(__x86_64__)
#include <x86intrin.h>
#endif

namespace amsg::detail {

inline std::uint64_t ticks() noexcept {
#if defined(__x86_64__)
  return __rdtsc();
#else
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
#endif
}

// Nanoseconds per tick, measured against steady_clock since the first call
// (that call spends ~2 ms measuring; later ones refine the ratio for free).
double ns_per_tick() noexcept;

}  // namespace amsg::detail
