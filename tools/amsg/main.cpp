// The amsg command.

#include <CLI/CLI.hpp>
#include <cstdio>

#include "bench.hpp"
#include "node_commands.hpp"

int main(int argc, char** argv) {
  CLI::App app{"amsg: active messages for C++20 services"};
  app.require_subcommand(1);

  amsg::tool::BenchOptions bench;
  std::string transport = "inproc";
  auto* bench_cmd = app.add_subcommand("bench", "Measure throughput, latency and memory of the runtime");
  bench_cmd->add_option("--scenario", bench.scenarios, "thr, rate, pingpong (repeatable; default: all)")
      ->check(CLI::IsMember({"thr", "rate", "pingpong"}));
  bench_cmd->add_option("--concurrency,-n", bench.concurrency, "Concurrency limit(s) for thr (default: 4 64)");
  bench_cmd->add_option("--messages", bench.messages, "Messages in the thr scenario")->check(CLI::PositiveNumber);
  bench_cmd->add_option("--pingpong-messages", bench.pingpong_messages, "Round trips in pingpong")
      ->check(CLI::PositiveNumber);
  bench_cmd->add_option("--rate", bench.rate, "Offered rate of the rate scenario (messages/s)")
      ->check(CLI::PositiveNumber);
  bench_cmd->add_option("--secs", bench.rate_secs, "Duration of the rate scenario (s)")->check(CLI::PositiveNumber);
  bench_cmd->add_option("--payload", bench.payload, "Payload bytes");
  bench_cmd->add_option("--threads", bench.threads, "Pool threads (0 = hardware threads)");
  bench_cmd->add_option("--spin-us", bench.spin_us, "Idle spin before sleeping, in microseconds (default 0)")
      ->check(CLI::NonNegativeNumber);
  bench_cmd
      ->add_option("--consumer", bench.consumer,
                   "Who reads notifications (and, in pingpong, sends): a coroutine on the pool or a plain thread; "
                   "-batch: thr and rate read in batches of up to 256")
      ->check(CLI::IsMember({"coroutine", "thread", "coroutine-batch", "thread-batch"}));
  bench_cmd->add_flag("--json", bench.json, "One JSON object per measurement on stdout");
  bench_cmd->add_flag("!--no-progress", bench.progress, "Never draw a progress bar");
  bench_cmd->add_option("--transport", transport, "Where messages travel (inproc)")->check(CLI::IsMember({"inproc"}));

  amsg::tool::ServeOptions serve;
  auto* serve_cmd = app.add_subcommand("serve", "Run a node with built-in handlers: echo, sleep (ms), fail (message), sink");
  serve_cmd->add_option("--listen,-l", serve.listen, "Address to bind: tcp://127.0.0.1:5555, ipc:///tmp/amsg.ipc (repeatable)")
      ->required();
  serve_cmd->add_option("--concurrency,-n", serve.concurrency, "Handlers running at once")->check(CLI::PositiveNumber);
  serve_cmd->add_option("--threads", serve.threads, "Handler pool threads (0 = hardware threads)");
  serve_cmd->add_option("--max-payload", serve.max_payload, "Largest payload accepted, in bytes");
  serve_cmd->add_option("--identity", serve.identity, "Node identity (default: host-pid-random)");
  serve_cmd->add_option("--spin-us", serve.spin_us, "I/O and worker idle spin, in microseconds")->check(CLI::NonNegativeNumber);
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

  CLI11_PARSE(app, argc, argv);
  if (bench_cmd->parsed()) return amsg::tool::run_bench(bench);
  if (serve_cmd->parsed()) return amsg::tool::run_serve(serve);
  if (send_cmd->parsed()) return amsg::tool::run_send(send);
  return 0;
}
