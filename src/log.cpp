#include "amsg/log.hpp"

#include <mutex>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace amsg {

std::shared_ptr<spdlog::logger> logger(const std::string& name) {
  static std::mutex mutex;
  std::lock_guard lock{mutex};
  if (auto existing = spdlog::get(name)) return existing;
  try {
    return spdlog::stderr_color_mt(name);
  } catch (const spdlog::spdlog_ex&) {
    // Registered by another thread between get() and create() (outside our mutex).
    return spdlog::get(name);
  }
}

}  // namespace amsg
