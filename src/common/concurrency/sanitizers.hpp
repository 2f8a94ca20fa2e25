#pragma once
// Which sanitizer this translation unit is built with, for gcc and clang alike
// (gcc defines __SANITIZE_*__, clang answers __has_feature): code that must
// behave differently under one (a pool that would hide use-after-free, a memory
// bound that a sanitizer's own memory breaks) tests these, never the compiler's macros.

#if defined(__SANITIZE_ADDRESS__)
#define AMSG_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AMSG_UNDER_ASAN 1
#endif
#endif
#ifndef AMSG_UNDER_ASAN
#define AMSG_UNDER_ASAN 0
#endif

#if defined(__SANITIZE_THREAD__)
#define AMSG_UNDER_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define AMSG_UNDER_TSAN 1
#endif
#endif
#ifndef AMSG_UNDER_TSAN
#define AMSG_UNDER_TSAN 0
#endif

// A hand-over TSan cannot see (another library's lock-free queue, not built
// with TSan, passes an object between threads): release where the object is
// handed over, acquire where it is taken, so that TSan orders the two sides.
#if AMSG_UNDER_TSAN
#include <sanitizer/tsan_interface.h>
#define AMSG_TSAN_RELEASE(addr) __tsan_release(addr)
#define AMSG_TSAN_ACQUIRE(addr) __tsan_acquire(addr)
#else
#define AMSG_TSAN_RELEASE(addr) static_cast<void>(addr)
#define AMSG_TSAN_ACQUIRE(addr) static_cast<void>(addr)
#endif
