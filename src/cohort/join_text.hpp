#pragma once
// The text of a cohort announcement (docs/wire-protocol.md, "Cohorts"): the
// payload "<rank or *> <address>", and the rank in decimal as the answer.

#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace amsg::net::cohort_text {

inline constexpr std::string_view kJoinType = "amsg.cohort.join";

inline std::string join_payload(std::optional<std::uint32_t> rank, const std::string& address) {
  return (rank ? std::to_string(*rank) : std::string{"*"}) + " " + address;
}

inline std::optional<std::uint32_t> parse_rank(std::string_view text) {
  std::uint32_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
  return value;
}

}  // namespace amsg::net::cohort_text
