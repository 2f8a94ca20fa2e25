// The amsg command.
//
// Conventions (tested in tests/cli_test.cpp): exit 0 on success, 1 on a runtime
// error or an outcome that was not ok, 2 on a bad command line, with one line
// on stderr naming the bad token; --help shows every default; --version and
// --log-level work on every subcommand.

#include <CLI/CLI.hpp>
#include <amsg/version.hpp>
#include <charconv>
#include <cstdio>
#include <cstdlib>

#include "bench.hpp"
#include "cli_support.hpp"
#include "demo.hpp"
#include "node_commands.hpp"

namespace {

constexpr const char* kLogLevels = "trace, debug, info, warning, error, critical, off";

std::optional<spdlog::level::level_enum> parse_level(const std::string& name) {
  for (const auto* known : {"trace", "debug", "info", "warning", "warn", "error", "err", "critical", "off"}) {
    if (name == known) return spdlog::level::from_str(name);
  }
  return std::nullopt;
}

// tcp://HOST:PORT (PORT 0-65535, or * to listen on any), ipc://PATH or ucx://HOST:PORT.
CLI::Validator address_check() {
  return {
      [](std::string& address) -> std::string {
        std::string hint = "'" + address + "' is not an address: use tcp://HOST:PORT, ipc://PATH or ucx://HOST:PORT";
        if (address.starts_with("ipc://")) return address.size() > 6 ? "" : hint;
        const bool ucx = address.starts_with("ucx://");
        if (!address.starts_with("tcp://") && !ucx) return hint;
        const auto colon = address.rfind(':');
        if (colon <= 6 || colon + 1 >= address.size()) return hint;
        const std::string port = address.substr(colon + 1);
        if (port == "*" && !ucx) return "";
        if (port.find_first_not_of("0123456789") != std::string::npos || port.size() > 5 || std::stoi(port) > 65535) {
          return hint;
        }
        return "";
      },
      "ADDRESS"};
}

// A cohort's address: a leader's node address, or etcd://HOST:PORT[,HOST:PORT...]/PREFIX.
CLI::Validator cohort_address_check() {
  return {[](std::string& address) -> std::string {
            if (!address.starts_with("etcd://")) return address_check()(address);
            std::string bad = "'" + address + "' is not an etcd address: use etcd://HOST:PORT[,HOST:PORT...]/PREFIX";
            const std::string hosts = address.substr(7, address.find('/', 7) - 7);
            // Every endpoint HOST:PORT, with a port of 1..65535 (so "a:1,,b:2" is refused here, not later).
            std::size_t from = 0;
            for (;;) {
              const std::size_t comma = hosts.find(',', from);
              const std::string endpoint = hosts.substr(from, comma == std::string::npos ? comma : comma - from);
              const std::size_t colon = endpoint.rfind(':');
              if (colon == std::string::npos || colon == 0) return bad;
              const std::string port = endpoint.substr(colon + 1);
              if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos ||
                  std::stoi(port) == 0 || std::stoi(port) > 65535) {
                return bad;
              }
              if (comma == std::string::npos) return "";
              from = comma + 1;
            }
          },
          "ADDRESS"};
}

// HOST:PORT, for the metrics endpoint.
CLI::Validator host_port_check() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        const auto colon = text.rfind(':');
        long port = -1;
        const char* end = text.data() + text.size();
        const auto parsed = colon == std::string::npos ? std::from_chars_result{nullptr, std::errc::invalid_argument}
                                                       : std::from_chars(text.data() + colon + 1, end, port);
        if (colon == std::string::npos || colon == 0 || parsed.ec != std::errc{} || parsed.ptr != end || port < 0 ||
            port > 65535) {
          return "'" + text + "' is not HOST:PORT";
        }
        return "";
      },
      "HOST:PORT");
}

// Whole numbers, with a message that says so (CLI11's numeric checks print
// their range as doubles).
CLI::Validator whole_number(long min, const char* what) {
  return CLI::Validator(
      [min, what](std::string& text) -> std::string {
        long value = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec != std::errc{} || end != text.data() + text.size() || value < min) {
          return "'" + text + "' is not " + what;
        }
        return "";
      },
      min > 0 ? "POSITIVE" : "NON-NEGATIVE");
}
CLI::Validator positive() { return whole_number(1, "a positive whole number"); }
CLI::Validator non_negative() { return whole_number(0, "a whole number >= 0"); }

}  // namespace

int main(int argc, char** argv) {
  using amsg::tool::kExitUsage;
  const std::string version_text =
      std::string{"amsg "} + amsg::version() + " (wire protocol " + std::to_string(AMSG_PROTOCOL_VERSION) + ")";
  CLI::App app{"amsg: active messages for C++20 services"};
  app.option_defaults()->always_capture_default();  // --help shows every default
  app.require_subcommand(1);
  app.footer(
      std::string{"Exit codes: 0 ok; 1 a runtime error, or an outcome that was not ok; 2 a bad command line.\n"} +
      "Logs go to stderr on the 'amsg' logger; --log-level LEVEL or AMSG_LOG_LEVEL (" + kLogLevels + ").\n");
  std::string log_level;
  auto common = [&](CLI::App* cmd) {
    cmd->set_version_flag("--version", version_text);
    cmd->add_option("--log-level", log_level,
                    std::string{"Log level: "} + kLogLevels + " (default: AMSG_LOG_LEVEL, else the command's own)");
  };
  common(&app);

  amsg::tool::BenchOptions bench;
  std::string transport = "inproc";
  auto* bench_cmd = app.add_subcommand("bench", "Measure throughput, latency and memory of the runtime");
  bench_cmd
      ->add_option("--scenario", bench.scenarios,
                   "thr, rate, pingpong; across processes thr, pingpong, reqresp, isolation, fanout (repeatable; "
                   "default: all but isolation and fanout)")
      ->check(CLI::IsMember({"thr", "rate", "pingpong", "reqresp", "isolation", "fanout"}));
  bench_cmd
      ->add_option("--workers", bench.workers,
                   "fanout: numbers of worker processes, one run each (default: 1,2,4,8,16,32)")
      ->delimiter(',')
      ->check(positive());
  bench_cmd->add_option("--broadcasts", bench.broadcasts, "fanout: broadcasts timed, then pipelined")
      ->check(positive());
  bench_cmd->add_option("--concurrency,-n", bench.concurrency, "Concurrency limit(s) for thr (default: 4 64)")
      ->check(positive());
  bench_cmd->add_option("--messages", bench.messages, "Messages in the thr scenario")->check(positive());
  bench_cmd->add_option("--pingpong-messages", bench.pingpong_messages, "Round trips in pingpong")->check(positive());
  bench_cmd->add_option("--gap-us", bench.gap_us, "Across processes: pause before each pingpong call, in microseconds")
      ->check(non_negative());
  bench_cmd->add_option("--rate", bench.rate, "Offered rate of the rate scenario (messages/s)")->check(positive());
  bench_cmd->add_option("--secs", bench.rate_secs, "Duration of the rate scenario (s)")->check(positive());
  bench_cmd->add_option("--payload", bench.payload, "Payload bytes");
  bench_cmd->add_option("--handler-ms", bench.handler_ms, "isolation: the handler sleeps this long (0: echo)")
      ->check(CLI::NonNegativeNumber);
  bench_cmd
      ->add_option("--isolation-calls", bench.isolation_calls, "isolation: round trips alone, then beside the flood")
      ->check(positive());
  bench_cmd->add_option("--threads", bench.threads,
                        "Pool threads of every node and manager in the run (0 = hardware threads)");
  bench_cmd->add_flag("--busy-poll", bench.busy_poll,
                      "--transport ucx: both sides poll UCX without sleeping (each holds one CPU at 100 %)");
  bench_cmd->add_option("--spin-us", bench.spin_us, "Idle spin before sleeping, in microseconds (default 0)")
      ->check(non_negative());
  bench_cmd
      ->add_option("--consumer", bench.consumer,
                   "Who reads notifications (and, in pingpong, sends): a coroutine on the pool or a plain thread; "
                   "-batch: thr and rate read in batches of up to 256")
      ->check(CLI::IsMember({"coroutine", "thread", "coroutine-batch", "thread-batch"}));
  bench_cmd->add_flag("--json", bench.json, "One JSON object per measurement on stdout");
  bench_cmd->add_flag("!--no-progress", bench.progress, "Never draw a progress bar");
  bench_cmd
      ->add_option(
          "--transport", transport,
          "Where messages travel: inproc (one process), ipc, tcp or ucx (to an `amsg serve` child on loopback)")
      ->check(CLI::IsMember({"inproc", "ipc", "tcp", "ucx"}));
  common(bench_cmd);

  amsg::tool::ServeOptions serve;
  auto* serve_cmd =
      app.add_subcommand("serve", "Run a node with built-in handlers: echo, sleep (ms), fail (message), sink");
  serve_cmd
      ->add_option("--listen,-l", serve.listen,
                   "Address to bind: tcp://127.0.0.1:5555, ipc:///tmp/amsg.ipc, ucx://127.0.0.1:5556 (repeatable)")
      ->required()
      ->check(address_check());
  serve_cmd->add_option("--concurrency,-n", serve.concurrency, "Handlers running at once")->check(positive());
  serve_cmd->add_option("--threads", serve.threads, "Handler pool threads (0 = hardware threads)");
  serve_cmd->add_option("--max-payload", serve.max_payload, "Largest payload accepted, in bytes");
  serve_cmd->add_option("--identity", serve.identity, "Node identity (default: host-pid-random)");
  serve_cmd->add_option("--spin-us", serve.spin_us, "I/O and worker idle spin, in microseconds")->check(non_negative());
  serve_cmd->add_flag("--busy-poll", serve.busy_poll,
                      "ucx:// only: poll UCX without ever sleeping (lowest latency; one thread at 100 % CPU)");
  serve_cmd->add_option("--drain-ms", serve.drain_ms, "On SIGINT/SIGTERM, how long running handlers may finish")
      ->check(non_negative());
  serve_cmd
      ->add_option("--metrics", serve.metrics,
                   "Serve Prometheus metrics on HOST:PORT (e.g. 127.0.0.1:9464; port 0: any), at /metrics")
      ->check(host_port_check());
  serve_cmd
      ->add_option("--curve-secret", serve.curve_secret,
                   "CURVE: this node's secret certificate (amsg keygen); clients must be on --allow")
      ->check(CLI::ExistingFile);
  serve_cmd
      ->add_option("--allow", serve.allow,
                   "CURVE: the clients accepted: a directory of public certificates, or a file of keys")
      ->check(CLI::ExistingPath);
  serve_cmd->add_option("--journal", serve.journal,
                        "Append the id of every message a handler starts to FILE, one per line, before it runs");
  auto* join_opt = serve_cmd
                       ->add_option("--join", serve.join,
                                    "Join a cohort: announce this node to the leader at ADDRESS, which then dials "
                                    "it and sends it fan-outs, or register it in etcd at etcd://HOST:PORT/PREFIX "
                                    "(docs/wire-protocol.md, Cohorts)")
                       ->check(cohort_address_check());
  serve_cmd->add_option("--rank", serve.rank, "With --join: the rank asked for (default: any free rank)")
      ->needs(join_opt);
  serve_cmd
      ->add_option("--advertise", serve.advertise,
                   "With --join: the address the leader dials (default: the first address listened on)")
      ->check(address_check())
      ->needs(join_opt);
  serve_cmd
      ->add_option("--lease-ttl", serve.lease_ttl_s,
                   "With --join etcd://...: the lease's time to live in seconds (a killed node leaves within it)")
      ->check(CLI::Range(2, 3600))
      ->needs(join_opt);
  serve_cmd->add_flag(
      "--insecure", serve.insecure,
      "Listen without CURVE (tcp://) or on ucx:// addresses other than loopback (anyone reaching them can run "
      "handlers)");
  common(serve_cmd);

  amsg::tool::SendOptions send;
  auto* send_cmd = app.add_subcommand("send", "Send one message and print its notification or response");
  send_cmd->add_option("--to", send.to, "The node's address: tcp://HOST:PORT, ipc://PATH or ucx://HOST:PORT")
      ->required()
      ->check(address_check());
  send_cmd->add_option("--type,-t", send.type, "Message type")->required();
  auto* data_opt = send_cmd->add_option("--data,-d", send.data, "Payload text");
  send_cmd->add_option("--file,-f", send.file, "Payload from a file")->excludes(data_opt)->check(CLI::ExistingFile);
  send_cmd->add_option("--notify", send.notify,
                       "Notification id: print the seed's '{id}:ok' / '{id}:err(...)' from the notification channel");
  send_cmd->add_option("--timeout", send.timeout_ms, "Deadline in milliseconds")->check(positive());
  send_cmd->add_flag("--json", send.json, "Print the outcome as one JSON object (fields: docs/cli.md)");
  send_cmd->add_option("--server-key", send.server_key,
                       "CURVE: the server's public key (40 characters of Z85) or its public certificate file");
  send_cmd
      ->add_option("--curve-secret", send.curve_secret,
                   "CURVE: this client's secret certificate (default: a new key pair for this run)")
      ->check(CLI::ExistingFile);
  common(send_cmd);

  std::string keygen_path;
  auto* keygen_cmd = app.add_subcommand("keygen", "Write a CURVE key pair: NAME (public) and NAME_secret");
  keygen_cmd->add_option("name", keygen_path, "Path of the public certificate; the secret one gets _secret appended")
      ->required();
  common(keygen_cmd);

  std::string cohort_address;
  bool cohort_json = false;
  auto* cohort_cmd = app.add_subcommand("cohort", "Look at a cohort's membership");
  cohort_cmd->require_subcommand(1);
  auto* status_cmd = cohort_cmd->add_subcommand("status", "List the members registered in etcd, by rank");
  status_cmd->add_option("address", cohort_address, "etcd://HOST:PORT[,HOST:PORT...]/PREFIX")
      ->required()
      ->check(cohort_address_check());
  status_cmd->add_flag("--json", cohort_json, "One JSON object per member (fields: docs/cli.md)");
  common(status_cmd);

  amsg::tool::DemoOptions demo;
  auto* demo_cmd =
      app.add_subcommand("demo", "KV-cache leader + worker processes on loopback (ipc by default): the main job");
  demo_cmd->add_option("--messages", demo.messages, "Commands to send")->check(positive());
  demo_cmd->add_option("--workers", demo.workers, "Worker processes: the cohort's ranks")->check(CLI::Range(1, 32));
  demo_cmd->add_option("--blocks", demo.blocks, "Blocks per pool")->check(CLI::Range(16, 1 << 20));
  demo_cmd->add_option("--block-kib", demo.block_kib, "Block size in KiB")->check(CLI::Range(1, 1024));
  demo_cmd->add_option("--fail-every", demo.fail_every, "Every n-th command fails on purpose (0: none)");
  demo_cmd
      ->add_option("--window", demo.window,
                   "Worker messages outstanding at once (commands in flight: window / workers, at least 1)")
      ->check(positive());
  demo_cmd
      ->add_option("--transport", demo.transport,
                   "How the leader reaches its workers on loopback: ipc, tcp (ZeroMQ) or ucx (UCX: shared memory)")
      ->check(CLI::IsMember({"ipc", "tcp", "ucx"}));
  demo_cmd->add_flag("!--no-progress", demo.progress, "Never draw a progress bar (drawn only on a terminal)");
  demo_cmd->add_flag("--json", demo.json, "Print the summary as one JSON object (fields: docs/cli.md)");
  common(demo_cmd);

  std::string worker_listen;
  auto* worker_cmd = app.add_subcommand("demo-worker", "One worker of `amsg demo` (started by it)");
  worker_cmd->group("");  // internal: not listed in --help
  worker_cmd->add_option("--listen", worker_listen)->required();
  worker_cmd->add_option("--blocks", demo.blocks);
  worker_cmd->add_option("--block-kib", demo.block_kib);

  try {
    app.parse(argc, argv);
    if (log_level.empty()) {
      // NOLINTNEXTLINE(concurrency-mt-unsafe): read before any thread starts
      if (const char* env = std::getenv("AMSG_LOG_LEVEL"); env != nullptr && *env != '\0') {
        log_level = env;
        if (!parse_level(log_level)) {
          throw CLI::ValidationError("AMSG_LOG_LEVEL", "'" + log_level + "' is not a log level (" + kLogLevels + ")");
        }
      }
    } else if (!parse_level(log_level)) {
      throw CLI::ValidationError("--log-level", "'" + log_level + "' is not a log level (" + kLogLevels + ")");
    }
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    // One line: what is wrong (CLI11 names the token) and where the usage is.
    std::string command = "amsg";
    std::vector<std::string> unexpected = app.remaining();
    // The deepest subcommand given ("amsg cohort status"), with what each level left.
    for (auto subs = app.get_subcommands(); !subs.empty();) {
      const CLI::App* sub = subs.front();
      command += " " + sub->get_name();
      for (auto& r : sub->remaining()) unexpected.push_back(r);
      subs = sub->get_subcommands();
    }
    // CLI11 checks required options before unknown ones: name the unknown token first.
    std::string what = unexpected.empty() ? std::string{e.what()} : "unexpected argument '" + unexpected.front() + "'";
    std::replace(what.begin(), what.end(), '\n', ' ');
    std::fprintf(stderr, "%s: %s (see '%s --help')\n", command.c_str(), what.c_str(), command.c_str());
    return kExitUsage;
  }
  amsg::tool::set_requested_log_level(log_level.empty() ? std::nullopt : parse_level(log_level));
  try {
    if (demo_cmd->parsed()) return amsg::tool::run_demo(demo);
    if (worker_cmd->parsed()) return amsg::tool::run_demo_worker(worker_listen, demo.blocks, demo.block_kib);
    if (bench_cmd->parsed()) {
      if (transport == "inproc") {
        std::erase(bench.scenarios, "reqresp");
        std::erase(bench.scenarios, "isolation");
        if (std::find(bench.scenarios.begin(), bench.scenarios.end(), "fanout") != bench.scenarios.end()) {
          std::fprintf(stderr, "amsg bench: --scenario fanout runs across processes: add --transport ipc or tcp\n");
          return kExitUsage;
        }
        return amsg::tool::run_bench(bench);
      }
      const bool defaults = bench.scenarios == std::vector<std::string>{"thr", "rate", "pingpong"};
      if (defaults) bench.scenarios = {"pingpong", "thr", "reqresp"};
      std::erase(bench.scenarios, "rate");
      if (bench.concurrency == std::vector<std::size_t>{4, 64}) bench.concurrency = {64};
      return amsg::tool::run_net_bench(bench, transport);
    }
    if (serve_cmd->parsed()) return amsg::tool::run_serve(serve);
    if (send_cmd->parsed()) return amsg::tool::run_send(send);
    if (keygen_cmd->parsed()) return amsg::tool::run_keygen(keygen_path);
    if (status_cmd->parsed()) return amsg::tool::run_cohort_status(cohort_address, cohort_json);
  } catch (const std::exception& e) {  // a subcommand that did not catch its own
    std::fprintf(stderr, "amsg: %s\n", e.what());
    return amsg::tool::kExitFailure;
  }
  return amsg::tool::kExitOk;
}
