#pragma once
// Child processes for the multi-process tests: spawns `amsg serve`, reads its
// stdout until it says where it listens, signals it and reaps it, all with
// bounded waits. Also unique loopback ipc paths that are removed afterwards.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace amsg::test {

// A unique ipc:// address under /tmp; the file is removed when this goes away.
class IpcPath {
 public:
  IpcPath() {
    static std::atomic<int> counter{0};
    path_ = "/tmp/amsg-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++) + ".ipc";
    ::unlink(path_.c_str());
  }
  ~IpcPath() { ::unlink(path_.c_str()); }
  IpcPath(const IpcPath&) = delete;
  IpcPath& operator=(const IpcPath&) = delete;
  [[nodiscard]] std::string address() const { return "ipc://" + path_; }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

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

class Process {
 public:
  explicit Process(const std::vector<std::string>& argv) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int rc = posix_spawn(&pid_, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    out_ = fds[0];
    if (rc != 0) {
      ::close(out_);
      throw std::runtime_error(std::string{"posix_spawn failed: "} + std::strerror(rc));
    }
  }
  ~Process() {
    if (pid_ > 0 && !exit_status_) {
      ::kill(pid_, SIGKILL);
      (void)wait_exit(std::chrono::seconds{10});
    }
    if (out_ >= 0) ::close(out_);
  }
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  // Reads stdout until a line starting with `prefix` arrives; returns the line.
  std::optional<std::string> wait_for_line(const std::string& prefix, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      for (auto pos = buffer_.find('\n'); pos != std::string::npos; pos = buffer_.find('\n')) {
        std::string line = buffer_.substr(0, pos);
        buffer_.erase(0, pos + 1);
        output_ += line + "\n";
        if (line.rfind(prefix, 0) == 0) return line;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char chunk[4096];
      const ssize_t n = ::read(out_, chunk, sizeof chunk);
      if (n <= 0) return std::nullopt;  // the child closed stdout (exited)
      buffer_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  void signal(int sig) const { ::kill(pid_, sig); }
  // The exit status (as from waitpid) or nullopt if it has not exited in time.
  std::optional<int> wait_exit(std::chrono::milliseconds timeout) {
    if (!exit_status_ && wait_for_exit(pid_, timeout)) {
      int status = 0;
      if (::waitpid(pid_, &status, 0) == pid_) exit_status_ = status;
    }
    return exit_status_;
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

#ifdef AMSG_CLI_PATH
// `amsg serve` listening on `address`, ready once it has printed where it listens.
class Server {
 public:
  explicit Server(const std::string& address, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{AMSG_CLI_PATH, "serve", "--listen", address};
    argv.insert(argv.end(), extra.begin(), extra.end());
    process_.emplace(argv);
    if (!process_->wait_for_line("listening on", std::chrono::seconds{30})) {
      throw std::runtime_error("amsg serve did not start: " + process_->output());
    }
  }
  Process& process() { return *process_; }

 private:
  std::optional<Process> process_;
};
#endif  // AMSG_CLI_PATH

}  // namespace amsg::test
