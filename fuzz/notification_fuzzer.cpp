// The notification text parser ("{id}:ok", "{id}:err(<message>)") on any text:
// what parses prints back to a text that parses to the same notification.

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "amsg/notification.hpp"
#include "fuzz_support.hpp"

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text{reinterpret_cast<const char*>(data),
                              size};  // NOLINT(cppcoreguidelines-pro-type-reinterpret-cast)
  const auto n = amsg::parse_notification(text);
  if (!n) return 0;
  const auto again = amsg::parse_notification(n->text());
  amsg::fuzz::require(again.has_value(), "a printed notification parses");
  amsg::fuzz::require(
      again->id == n->id && again->outcome == n->outcome && again->error == n->error && again->code == n->code,
      "a printed notification keeps its id, outcome, error and code");
  amsg::fuzz::require(again->text() == n->text(), "printing is stable");
  return 0;
}
