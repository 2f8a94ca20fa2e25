// The amsg command.

#include <CLI/CLI.hpp>
#include <cstdio>

#include "bench.hpp"

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

  CLI11_PARSE(app, argc, argv);
  if (bench_cmd->parsed()) return amsg::tool::run_bench(bench);
  return 0;
}
