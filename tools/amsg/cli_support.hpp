#pragma once
// What every subcommand shares: exit codes, the log level, JSON text.

#include <spdlog/spdlog.h>

#include <optional>
#include <string>
#include <string_view>

namespace amsg::tool {

// Exit codes of every subcommand (documented in `amsg --help`).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // a runtime error, or an outcome that was not ok
inline constexpr int kExitUsage = 2;    // a bad command line: unknown subcommand or flag, bad value

// The level that --log-level / AMSG_LOG_LEVEL asked for, if any. Subcommands
// choose their own quiet default through default_log_level(); an explicit
// level always wins.
void set_requested_log_level(std::optional<spdlog::level::level_enum> level);
// Applies `fallback` to amsg's loggers unless a level was requested.
void default_log_level(spdlog::level::level_enum fallback);
// The requested level, else `fallback`.
spdlog::level::level_enum log_level_or(spdlog::level::level_enum fallback);

// `text` as a JSON string literal (quotes included). Bytes that are not
// printable ASCII are written as \u00XX, so any payload survives as Latin-1.
std::string json_string(std::string_view text);

}  // namespace amsg::tool
