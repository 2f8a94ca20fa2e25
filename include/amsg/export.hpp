#pragma once
/// @file
/// AMSG_EXPORT marks the public API. Shared builds of libamsg and libamsg_net
/// compile with hidden visibility, so only names marked here are exported; in
/// static builds (the default) the mark changes nothing.

#if defined(__GNUC__) || defined(__clang__)
#define AMSG_EXPORT __attribute__((visibility("default")))
#else
#define AMSG_EXPORT
#endif
