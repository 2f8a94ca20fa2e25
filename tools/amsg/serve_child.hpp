#pragma once
// `amsg serve` in a child process (this executable), for the benchmarks across
// processes; stopped with SIGTERM.

#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <string>

#include "child_process.hpp"

namespace amsg::tool {

/// `amsg serve` in a child process; stopped with SIGTERM.
class ServeChild {
 public:
  ServeChild(const std::string& listen, std::size_t concurrency, std::size_t threads, long spin_us,
             bool busy_poll = false)
      : child_{this_executable({"serve", "--listen", listen, "--concurrency", std::to_string(concurrency), "--threads",
                                std::to_string(threads), "--spin-us", std::to_string(spin_us), "--drain-ms=0",
                                busy_poll ? "--busy-poll" : "--busy-poll=false"})} {
    // Its first "listening on" line names the address (with a tcp port resolved).
    const auto line = child_.wait_for_line("listening on ", std::chrono::seconds{20});
    if (!line) throw std::runtime_error("amsg serve did not start");
    address_ = line->substr(13);
  }
  ~ServeChild() {
    child_.stop(std::chrono::seconds{10});
    if (address_.starts_with("ipc://")) ::unlink(address_.substr(6).c_str());
  }
  ServeChild(const ServeChild&) = delete;
  ServeChild& operator=(const ServeChild&) = delete;
  [[nodiscard]] const std::string& address() const { return address_; }

 private:
  ChildProcess child_;
  std::string address_;
};

}  // namespace amsg::tool
