#include "node_commands.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <amsg/amsg.hpp>
#include <amsg/net/cohort_membership.hpp>
#include <amsg/net/etcd_membership.hpp>
#include <amsg/net/node.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <stdexcept>
#include <system_error>

#include <fcntl.h>
#include <unistd.h>

#include "cli_support.hpp"

#ifdef AMSG_WITH_METRICS
#include <prometheus/exposer.h>

#include <amsg/metrics.hpp>
#endif

namespace amsg::tool {
namespace {

void print_stats(const char* when, const net::NodeStats& s) {
  std::printf(
      "amsg serve: %s: received %llu, replies %llu, replies dropped %llu, clients cut off %llu, refused (shutting "
      "down %llu, too large "
      "%llu, overloaded %llu), malformed %llu; handlers running %llu, queued %llu, ok %llu, failed %llu, cancelled "
      "%llu\n",
      when, static_cast<unsigned long long>(s.messages_received), static_cast<unsigned long long>(s.replies_sent),
      static_cast<unsigned long long>(s.replies_dropped), static_cast<unsigned long long>(s.clients_cut_off),
      static_cast<unsigned long long>(s.refused_shutting_down), static_cast<unsigned long long>(s.refused_too_large),
      static_cast<unsigned long long>(s.refused_overloaded), static_cast<unsigned long long>(s.malformed_frames),
      static_cast<unsigned long long>(s.manager.in_flight), static_cast<unsigned long long>(s.manager.queue_depth),
      static_cast<unsigned long long>(s.manager.ok), static_cast<unsigned long long>(s.manager.failed),
      static_cast<unsigned long long>(s.manager.cancelled));
  std::fflush(stdout);
}

// --journal: the id of every message a handler starts, one line each, written
// (one write(2), O_APPEND) before the handler does anything, so that a SIGKILL
// loses no line of what ran. "-" for a message without an id.
class Journal {
 public:
  explicit Journal(const std::string& path) {
    if (path.empty()) return;
    fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd_ < 0) {
      throw std::runtime_error(
          fmt::format("--journal {}: {}", path, std::error_code{errno, std::generic_category()}.message()));
    }
  }
  ~Journal() {
    if (fd_ >= 0) ::close(fd_);
  }
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;
  void note(const Message& m) const {
    if (fd_ < 0) return;
    const std::string line = m.notify_id.value_or("-") + "\n";
    if (::write(fd_, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      throw std::runtime_error(
          fmt::format("journal write failed: {}", std::error_code{errno, std::generic_category()}.message()));
    }
  }

 private:
  int fd_ = -1;
};

// The handlers `amsg serve` offers for trying things out.
void register_builtin_handlers(Manager& m, const Journal& journal) {
  // Answers with the payload it got.
  m.register_handler("echo", make_handler([&journal](Message& msg) -> asio::awaitable<void> {
                       journal.note(msg);
                       msg.response = std::move(msg.payload);
                       co_return;
                     }));
  // Waits the number of milliseconds in its payload (text), without holding a thread.
  m.register_handler("sleep", make_handler([&journal](Message& msg) -> asio::awaitable<void> {
                       journal.note(msg);
                       const std::string_view text = msg.payload.as_string_view();
                       long ms = 0;
                       auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), ms);
                       if (ec != std::errc{} || end != text.data() + text.size() || ms < 0) {
                         throw std::invalid_argument(fmt::format("sleep wants milliseconds, got '{}'", text));
                       }
                       asio::steady_timer timer{co_await asio::this_coro::executor, std::chrono::milliseconds{ms}};
                       co_await timer.async_wait(asio::use_awaitable);
                     }));
  // Fails with the message in its payload.
  m.register_handler("fail", make_handler([&journal](Message& msg) -> asio::awaitable<void> {
                       journal.note(msg);
                       throw std::runtime_error(msg.payload.empty() ? std::string{"failed on purpose"}
                                                                    : std::string{msg.payload.as_string_view()});
                       co_return;
                     }));
  // Takes anything and does nothing (for throughput).
  m.register_handler("sink", make_handler([&journal](Message& msg) -> asio::awaitable<void> {
                       journal.note(msg);
                       co_return;
                     }));
}

}  // namespace

int run_serve(const ServeOptions& o) {
  // Signals are taken by sigwait() below; every thread started later inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGUSR1);  // prints the stats and goes on
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  net::NodeOptions opts;
  opts.listen = o.listen;
  opts.identity = o.identity;
  opts.manager.concurrency = o.concurrency;
  opts.manager.threads = o.threads;
  opts.manager.max_payload_bytes = o.max_payload;
  opts.manager.idle_spin = std::chrono::microseconds{o.spin_us};
  opts.ucx.busy_poll = o.busy_poll;
  // Errors are the clients' business: by default the server logs only its own.
  default_log_level(spdlog::level::err);
  try {
    if (!o.curve_secret.empty()) {
      opts.curve.keys = net::read_curve_secret_file(o.curve_secret);
      if (o.allow.empty()) throw std::runtime_error("--curve-secret needs --allow FILE|DIR: the clients it accepts");
      opts.curve.allowed_clients = net::read_curve_allowlist(o.allow);
    } else if (!o.allow.empty()) {
      throw std::runtime_error("--allow needs --curve-secret: without keys nobody is authenticated");
    }
    opts.curve.allow_insecure = o.insecure;
    opts.ucx.allow_insecure = o.insecure;
    const Journal journal{o.journal};  // outlives the node and its handlers
    net::Node node{opts};
    register_builtin_handlers(node.manager(), journal);
    node.start();
    std::printf("amsg serve: identity %s\n", node.identity().c_str());
    for (const auto& ep : node.endpoints()) std::printf("listening on %s\n", ep.c_str());
    std::printf("handlers: echo sleep fail sink; concurrency %zu\n", o.concurrency);
    if (opts.curve.keys) {
      std::printf("CURVE: public key %s, %zu allowed clients\n", opts.curve.keys->public_key.c_str(),
                  opts.curve.allowed_clients.size());
    }
    // A standing membership: announced again whenever the leader restarts or comes back.
    std::optional<net::CohortMembership> membership;
    std::optional<net::EtcdRegistration> registration;
    if (!o.join.empty()) {
      const std::string own = o.advertise.empty() ? node.endpoints().front() : o.advertise;
      if (own.find("://*") != std::string::npos || own.find("://0.0.0.0") != std::string::npos) {
        throw std::runtime_error(fmt::format("--join: the leader cannot dial '{}': give --advertise ADDRESS", own));
      }
      std::optional<std::uint32_t> rank;
      std::string why;
      if (o.join.starts_with("etcd://")) {
        net::EtcdOptions etcd;
        etcd.lease_ttl = std::chrono::seconds{o.lease_ttl_s};
        registration.emplace(node, o.join, own, o.rank, etcd);
        if (registration->wait_registered(std::chrono::seconds{10})) rank = registration->rank();
        why = registration->last_error();
      } else {
        membership.emplace(node, o.join, own, o.rank);
        if (membership->wait_joined(std::chrono::seconds{10})) rank = membership->rank();
        why = membership->last_error();
      }
      if (!rank) {
        throw std::runtime_error(
            fmt::format("joining the cohort at '{}' failed: {}", o.join, why.empty() ? "no answer within 10 s" : why));
      }
      std::printf("joined the cohort at %s as rank %u (the leader dials %s)\n", o.join.c_str(), *rank, own.c_str());
    }
#ifdef AMSG_WITH_METRICS
    std::optional<prometheus::Exposer> exposer;
    std::shared_ptr<metrics::NodeCollector> collector;
    if (!o.metrics.empty()) {
      try {
        exposer.emplace(o.metrics);
      } catch (const std::exception& e) {
        throw std::runtime_error(fmt::format("cannot serve metrics on {}: {}", o.metrics, e.what()));
      }
      collector = std::make_shared<metrics::NodeCollector>(node);
      exposer->RegisterCollectable(collector);
      const auto ports = exposer->GetListeningPorts();
      const std::string host = o.metrics.substr(0, o.metrics.rfind(':'));
      std::printf("metrics on http://%s:%d/metrics\n", host.c_str(), ports.empty() ? 0 : ports.front());
    }
#else
    if (!o.metrics.empty()) throw std::runtime_error("this amsg was built without prometheus-cpp: no --metrics");
#endif
    std::fflush(stdout);
    int sig = 0;
    while (sigwait(&signals, &sig) == 0 && sig == SIGUSR1) print_stats("stats", node.stats());
    std::printf("amsg serve: %s, draining\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
    std::fflush(stdout);
    registration.reset();  // leaves the cohort first (its lease revoked): no fan-out reaches a draining node
    membership.reset();
    const ShutdownReport r = node.shutdown(std::chrono::milliseconds{o.drain_ms});
    std::printf("amsg serve: stopped after %.1f ms (%s)\n", static_cast<double>(r.took.count()) / 1e6,
                r.drained ? "drained" : "cancelled the rest");
    print_stats("at exit", node.stats());
    return kExitOk;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "amsg serve: %s\n", e.what());
    return kExitFailure;
  }
}

int run_send(const SendOptions& o) {
  default_log_level(spdlog::level::err);
  Payload payload;
  if (!o.file.empty()) {
    std::ifstream in{o.file, std::ios::binary};
    if (!in) {
      std::fprintf(stderr, "amsg send: cannot read '%s'\n", o.file.c_str());
      return kExitFailure;
    }
    const std::string bytes{std::istreambuf_iterator<char>{in}, std::istreambuf_iterator<char>{}};
    payload = Payload::copy_of(bytes);
  } else {
    payload = Payload::copy_of(o.data);
  }
  try {
    net::NodeOptions opts;
    opts.manager.concurrency = 1;
    opts.manager.threads = 1;
    if (!o.curve_secret.empty()) opts.curve.keys = net::read_curve_secret_file(o.curve_secret);
    if (!o.server_key.empty()) {
      opts.curve.server_key =
          net::is_curve_key(o.server_key) ? o.server_key : net::read_curve_public_file(o.server_key);
    } else if (!o.curve_secret.empty()) {
      throw std::runtime_error("--curve-secret needs --server-key KEY|FILE: the server's public key");
    }
    net::Node node{opts};
    node.start();
    const net::PeerId peer = node.connect(o.to);
    const auto timeout = std::chrono::milliseconds{o.timeout_ms};
    std::optional<Notification> n;
    if (!o.notify.empty()) {
      // Notified: the outcome arrives on the node's notification channel, as in the seed.
      if (node.send(peer, o.type, std::move(payload), {o.notify, timeout}) != SendStatus::ok) {
        std::fprintf(stderr, "amsg send: node closed\n");
        return kExitFailure;
      }
      n = node.manager().receive_for(timeout + std::chrono::seconds{5});
    } else {
      // Request/response: the outcome and the response bytes come back to us.
      auto fut = node.call(peer, o.type, std::move(payload), {"send", timeout}, asio::use_future);
      if (fut.wait_for(timeout + std::chrono::seconds{5}) == std::future_status::ready) n = fut.get();
    }
    node.shutdown(std::chrono::milliseconds{0});
    if (!n) {
      std::fprintf(stderr, "amsg send: no outcome arrived\n");
      return kExitFailure;
    }
    if (o.json) {
      std::printf(R"({"to":%s,"type":%s,"id":%s,"outcome":"%s","code":%s,"error":%s,"text":%s,"response":%s})"
                  "\n",
                  json_string(o.to).c_str(), json_string(o.type).c_str(), json_string(n->id).c_str(),
                  n->is_success() ? "ok" : "err", json_string(n->code ? n->code.message() : "").c_str(),
                  json_string(n->error).c_str(), json_string(n->text()).c_str(),
                  json_string(n->payload.as_string_view()).c_str());
    } else if (o.notify.empty() && n->is_success() && !n->payload.empty()) {
      std::fwrite(n->payload.data(), 1, n->payload.size(), stdout);
      std::fputc('\n', stdout);
    } else {
      std::printf("%s\n", n->text().c_str());
    }
    return n->is_success() ? kExitOk : kExitFailure;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "amsg send: %s\n", e.what());
    return kExitFailure;
  }
}

int run_keygen(const std::string& path) {
  try {
    const net::CurveKeyPair keys = net::generate_curve_key_pair();
    net::write_curve_key_files(keys, path);
    std::printf("%s\n", keys.public_key.c_str());
    std::fprintf(stderr, "amsg keygen: wrote %s (public) and %s_secret (secret, mode 0600)\n", path.c_str(),
                 path.c_str());
    return kExitOk;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "amsg keygen: %s\n", e.what());
    return kExitFailure;
  }
}

}  // namespace amsg::tool

namespace amsg::tool {

int run_cohort_status(const std::string& address, bool json) {
  default_log_level(spdlog::level::warn);
  try {
    const auto members = net::etcd_members(address);
    for (const auto& m : members) {
      std::string handlers;
      for (const auto& h : m.handlers) {
        // (Appended in two steps: GCC 12 warns of an overlap, -Wrestrict, in
        // `const char* + std::string&&` at -O2, a false positive.)
        if (!handlers.empty()) handlers += json ? ',' : ' ';
        handlers += json ? json_string(h) : h;
      }
      if (json) {
        std::printf("{\"rank\":%u,\"address\":%s,\"identity\":%s,\"handlers\":[%s],\"lease\":%lld}\n", m.rank,
                    json_string(m.address).c_str(), json_string(m.identity).c_str(), handlers.c_str(),
                    static_cast<long long>(m.lease));
      } else {
        std::printf("rank %u  %s  %s  handlers: %s\n", m.rank, m.address.c_str(), m.identity.c_str(), handlers.c_str());
      }
    }
    if (!json) std::printf("%zu member%s\n", members.size(), members.size() == 1 ? "" : "s");
    return kExitOk;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "amsg cohort status: %s\n", e.what());
    return kExitFailure;
  }
}

}  // namespace amsg::tool
