#pragma once
// A child process (another amsg command, or any executable): started with its
// stdout piped to us, read line by line with a bounded wait, signalled, and
// reaped with a bounded wait; killed if it is still there when this object goes
// away. Used by the tool (demo workers, bench servers) and by the tests.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace amsg::tool {

// Blocks until process `pid` (our child) has exited or `timeout` passes: a pidfd
// becomes readable when the process exits (Linux 5.3+). True when it exited.
inline bool wait_for_exit(pid_t pid, std::chrono::milliseconds timeout) {
  const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) return false;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int ready = 0;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{pidfd, POLLIN, 0};
    ready = ::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(left.count(), 0)));
    if (ready >= 0 || errno != EINTR) break;
  }
  ::close(pidfd);
  return ready > 0;
}

// The argv that runs this executable again with `args`.
inline std::vector<std::string> this_executable(const std::vector<std::string>& args) {
  std::vector<std::string> argv{"/proc/self/exe"};
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

class ChildProcess {
 public:
  enum class Capture { stdout_only, stdout_and_stderr };
  // Runs argv[0] (a path; PATH is not searched) with `argv`; its stdout (and,
  // when asked, its stderr) is read through wait_for_line().
  explicit ChildProcess(std::vector<std::string> argv, Capture capture = Capture::stdout_only) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe() failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    if (capture == Capture::stdout_and_stderr) posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    const int rc = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    out_ = fds[0];
    if (rc != 0) {
      ::close(out_);
      throw std::runtime_error(std::string{"cannot start a child process: "} + std::strerror(rc));
    }
  }
  ~ChildProcess() {
    if (pid_ > 0 && !exit_status_) {
      ::kill(pid_, SIGKILL);
      (void)wait_exit(std::chrono::seconds{10});
    }
    if (out_ >= 0) ::close(out_);
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // The first line of its stdout that starts with `prefix` (earlier lines are
  // kept in output()); nullopt when the child exits or `timeout` passes first.
  std::optional<std::string> wait_for_line(const std::string& prefix, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      for (auto pos = buffer_.find('\n'); pos != std::string::npos; pos = buffer_.find('\n')) {
        std::string line = buffer_.substr(0, pos);
        buffer_.erase(0, pos + 1);
        output_ += line + "\n";
        if (line.starts_with(prefix)) return line;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      std::array<char, 4096> chunk{};
      const ssize_t n = ::read(out_, chunk.data(), chunk.size());
      if (n <= 0) return std::nullopt;  // the child closed stdout (exited)
      buffer_.append(chunk.data(), static_cast<std::size_t>(n));
    }
  }

  void signal(int sig) const { ::kill(pid_, sig); }
  // The exit status (as from waitpid), or nullopt if it has not exited in time.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    if (!exit_status_ && wait_for_exit(pid_, timeout)) {
      int status = 0;
      if (::waitpid(pid_, &status, 0) == pid_) exit_status_ = status;
    }
    return exit_status_;
  }
  // SIGTERM, then waits: true when it exited with status 0 within `timeout`.
  bool stop(std::chrono::milliseconds timeout) {
    if (!exit_status_) signal(SIGTERM);
    const auto status = wait_exit(timeout);
    return status && WIFEXITED(*status) && WEXITSTATUS(*status) == 0;
  }

  [[nodiscard]] const std::string& output() const { return output_; }
  [[nodiscard]] pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  std::string buffer_;
  std::string output_;
  std::optional<int> exit_status_;
};

}  // namespace amsg::tool
