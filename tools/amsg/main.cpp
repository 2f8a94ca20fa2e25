// The amsg command.

#include <CLI/CLI.hpp>
#include <cstdio>

#include "bench.hpp"
#include "demo.hpp"
#include "node_commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"amsg: active messages for C++20 services"};
  app.option_defaults()->always_capture_default();  // --help shows every default
  app.require_subcommand(1);

  amsg::tool::BenchOptions bench;
  std::string transport = "inproc";
  auto* bench_cmd = app.add_subcommand("bench", "Measure throughput, latency and memory of the runtime");
  bench_cmd
      ->add_option("--scenario", bench.scenarios,
                   "thr, rate, pingpong; across processes thr, pingpong, reqresp (repeatable; default: all)")
      ->check(CLI::IsMember({"thr", "rate", "pingpong", "reqresp"}));
  bench_cmd->add_option("--concurrency,-n", bench.concurrency, "Concurrency limit(s) for thr (default: 4 64)");
  bench_cmd->add_option("--messages", bench.messages, "Messages in the thr scenario")->check(CLI::PositiveNumber);
  bench_cmd->add_option("--pingpong-messages", bench.pingpong_messages, "Round trips in pingpong")
      ->check(CLI::PositiveNumber);
  bench_cmd->add_option("--rate", bench.rate, "Offered rate of the rate scenario (messages/s)")
      ->check(CLI::PositiveNumber);
  bench_cmd->add_option("--secs", bench.rate_secs, "Duration of the rate scenario (s)")->check(CLI::PositiveNumber);
  bench_cmd->add_option("--payload", bench.payload, "Payload bytes");
  bench_cmd->add_option("--threads", bench.threads,
                        "Pool threads of every node and manager in the run (0 = hardware threads)");
  bench_cmd->add_option("--spin-us", bench.spin_us, "Idle spin before sleeping, in microseconds (default 0)")
      ->check(CLI::NonNegativeNumber);
  bench_cmd
      ->add_option("--consumer", bench.consumer,
                   "Who reads notifications (and, in pingpong, sends): a coroutine on the pool or a plain thread; "
                   "-batch: thr and rate read in batches of up to 256")
      ->check(CLI::IsMember({"coroutine", "thread", "coroutine-batch", "thread-batch"}));
  bench_cmd->add_flag("--json", bench.json, "One JSON object per measurement on stdout");
  bench_cmd->add_flag("!--no-progress", bench.progress, "Never draw a progress bar");
  bench_cmd
      ->add_option("--transport", transport,
                   "Where messages travel: inproc (one process), ipc or tcp (to an `amsg serve` child on loopback)")
      ->check(CLI::IsMember({"inproc", "ipc", "tcp"}));

  amsg::tool::ServeOptions serve;
  auto* serve_cmd =
      app.add_subcommand("serve", "Run a node with built-in handlers: echo, sleep (ms), fail (message), sink");
  serve_cmd
      ->add_option("--listen,-l", serve.listen,
                   "Address to bind: tcp://127.0.0.1:5555, ipc:///tmp/amsg.ipc (repeatable)")
      ->required();
  serve_cmd->add_option("--concurrency,-n", serve.concurrency, "Handlers running at once")->check(CLI::PositiveNumber);
  serve_cmd->add_option("--threads", serve.threads, "Handler pool threads (0 = hardware threads)");
  serve_cmd->add_option("--max-payload", serve.max_payload, "Largest payload accepted, in bytes");
  serve_cmd->add_option("--identity", serve.identity, "Node identity (default: host-pid-random)");
  serve_cmd->add_option("--spin-us", serve.spin_us, "I/O and worker idle spin, in microseconds")
      ->check(CLI::NonNegativeNumber);
  serve_cmd->add_option("--drain-ms", serve.drain_ms, "On SIGINT/SIGTERM, how long running handlers may finish")
      ->check(CLI::NonNegativeNumber);

  amsg::tool::SendOptions send;
  auto* send_cmd = app.add_subcommand("send", "Send one message and print its notification or response");
  send_cmd->add_option("--to", send.to, "The node's address")->required();
  send_cmd->add_option("--type,-t", send.type, "Message type")->required();
  auto* data_opt = send_cmd->add_option("--data,-d", send.data, "Payload text");
  send_cmd->add_option("--file,-f", send.file, "Payload from a file")->excludes(data_opt);
  send_cmd->add_option("--notify", send.notify,
                       "Notification id: print the seed's '{id}:ok' / '{id}:err(...)' from the notification channel");
  send_cmd->add_option("--timeout", send.timeout_ms, "Deadline in milliseconds")->check(CLI::PositiveNumber);

  amsg::tool::DemoOptions demo;
  auto* demo_cmd = app.add_subcommand("demo", "KV-cache leader + worker processes over ipc: the main job");
  demo_cmd->add_option("--messages", demo.messages, "Commands to send")->check(CLI::PositiveNumber);
  demo_cmd->add_option("--workers", demo.workers, "Worker processes")->check(CLI::Range(1, 16));
  demo_cmd->add_option("--blocks", demo.blocks, "Blocks per pool")->check(CLI::Range(16, 1 << 20));
  demo_cmd->add_option("--block-kib", demo.block_kib, "Block size in KiB")->check(CLI::Range(1, 1024));
  demo_cmd->add_option("--fail-every", demo.fail_every, "Every n-th command fails on purpose (0: none)");
  demo_cmd->add_option("--window", demo.window, "Commands outstanding at once")->check(CLI::PositiveNumber);
  demo_cmd->add_flag("!--no-progress", demo.progress, "Never draw a progress bar");

  std::string worker_listen;
  auto* worker_cmd = app.add_subcommand("demo-worker", "One worker of `amsg demo` (started by it)");
  worker_cmd->group("");  // internal: not listed in --help
  worker_cmd->add_option("--listen", worker_listen)->required();
  worker_cmd->add_option("--blocks", demo.blocks);
  worker_cmd->add_option("--block-kib", demo.block_kib);

  CLI11_PARSE(app, argc, argv);
  if (demo_cmd->parsed()) return amsg::tool::run_demo(demo);
  if (worker_cmd->parsed()) return amsg::tool::run_demo_worker(worker_listen, demo.blocks, demo.block_kib);
  if (bench_cmd->parsed()) {
    if (transport == "inproc") {
      std::erase(bench.scenarios, "reqresp");
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
  return 0;
}
