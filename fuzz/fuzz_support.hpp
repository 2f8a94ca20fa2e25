#pragma once
// What the fuzz targets share: views of the input, and a property check that
// stops the run with a message (libFuzzer then saves the input).

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>

namespace amsg::fuzz {

inline std::span<const std::byte> bytes(const std::uint8_t* data, std::size_t size) noexcept {
  return {reinterpret_cast<const std::byte*>(data), size};  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
}

inline std::span<const std::byte> bytes(std::string_view s) noexcept {
  return {reinterpret_cast<const std::byte*>(s.data()),
          s.size()};  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
}

inline void require(bool holds, const char* property, std::string_view detail = {}) {
  if (holds) return;
  std::fprintf(stderr, "property violated: %s%s%.*s\n", property, detail.empty() ? "" : ": ",
               static_cast<int>(detail.size()), detail.data());
  std::abort();
}

}  // namespace amsg::fuzz
