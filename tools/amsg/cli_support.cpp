#include "cli_support.hpp"

#include <fmt/format.h>

#include <amsg/log.hpp>

namespace amsg::tool {
namespace {

std::optional<spdlog::level::level_enum> requested;

void apply(spdlog::level::level_enum level) {
  spdlog::set_level(level);  // every registered logger (amsg, amsg.bench...) and later ones
  logger()->set_level(level);
}

}  // namespace

void set_requested_log_level(std::optional<spdlog::level::level_enum> level) {
  requested = level;
  if (level) apply(*level);
}

void default_log_level(spdlog::level::level_enum fallback) { apply(requested.value_or(fallback)); }

spdlog::level::level_enum log_level_or(spdlog::level::level_enum fallback) { return requested.value_or(fallback); }

std::string json_string(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c >= 0x7F) {
          out += fmt::format("\\u{:04x}", c);
        } else {
          out += ch;
        }
    }
  }
  out += '"';
  return out;
}

}  // namespace amsg::tool
