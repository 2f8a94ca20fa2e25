// The `amsg` command's conventions: exit codes (0 ok, 1 runtime error or an
// outcome that was not ok, 2 bad command line), one-line usage errors naming the
// bad token, --help and --version on every subcommand, --log-level and
// AMSG_LOG_LEVEL, --json, and `serve`'s stats on SIGUSR1.

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <string>
#include <vector>

#include "amsg/net/node.hpp"
#include "amsg/version.hpp"
#include "process.hpp"

namespace amsg::test {
namespace {

using namespace std::chrono_literals;

struct CliRun {
  int exit_code = -1;
  std::string output;  // stdout and stderr, interleaved
  std::chrono::steady_clock::duration took{};
};

// Runs the command to its end (bounded) and returns everything it printed.
CliRun run(std::vector<std::string> args, std::vector<std::string> env = {}) {
  std::vector<std::string> argv;
  if (!env.empty()) {
    argv.emplace_back("/usr/bin/env");
    argv.insert(argv.end(), env.begin(), env.end());
  }
  argv.emplace_back(AMSG_CLI_PATH);
  argv.insert(argv.end(), args.begin(), args.end());
  const auto t0 = std::chrono::steady_clock::now();
  Process p{argv, Process::Capture::stdout_and_stderr};
  (void)p.wait_for_line("\x01never", 60s);  // reads until the command closes its output
  const auto status = p.wait_exit(30s);
  CliRun r;
  r.output = p.output();
  r.took = std::chrono::steady_clock::now() - t0;
  if (status && WIFEXITED(*status)) r.exit_code = WEXITSTATUS(*status);
  return r;
}

std::size_t lines(const std::string& text) {
  return static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n'));
}

TEST(Cli, UsageErrorsExitTwoWithOneLineNamingTheBadTokenAndPointingToHelp) {
  struct Case {
    std::vector<std::string> args;
    std::vector<std::string> env;
    std::string names;      // the bad token, quoted in the message
    std::string help_from;  // the command whose --help it points to
  };
  const std::vector<Case> cases{
      {{"frobnicate"}, {}, "'frobnicate'", "'amsg --help'"},
      {{"send", "--bogus"}, {}, "'--bogus'", "'amsg send --help'"},
      {{"send", "--to", "foo://bar", "--type", "echo"}, {}, "'foo://bar'", "'amsg send --help'"},
      {{"send", "--to", "127.0.0.1:5555", "--type", "echo"}, {}, "'127.0.0.1:5555'", "'amsg send --help'"},
      {{"send", "--to", "tcp://127.0.0.1:99999", "--type", "echo"},
       {},
       "'tcp://127.0.0.1:99999'",
       "'amsg send --help'"},
      {{"send", "--to", "ipc:///tmp/x", "--type", "echo", "--timeout", "soon"}, {}, "'soon'", "'amsg send --help'"},
      {{"serve", "--listen", "ipc:///tmp/x", "--concurrency", "0"}, {}, "'0'", "'amsg serve --help'"},
      {{"bench", "--scenario", "fastest"}, {}, "fastest", "'amsg bench --help'"},
      {{"demo", "--log-level", "loud"}, {}, "'loud'", "'amsg demo --help'"},
      {{"demo"}, {"AMSG_LOG_LEVEL=noisy"}, "'noisy'", "'amsg demo --help'"},
      {{"cohort", "status", "etcd://127.0.0.1:2379,,127.0.0.1:2380/kv"},
       {},
       "'etcd://127.0.0.1:2379,,127.0.0.1:2380/kv'",
       "'amsg cohort status --help'"},
      {{"cohort", "status", "etcd://127.0.0.1:0/kv"}, {}, "'etcd://127.0.0.1:0/kv'", "'amsg cohort status --help'"},
      {{"cohort", "status", "etcd://127.0.0.1:2379/kv", "--bogus"}, {}, "'--bogus'", "'amsg cohort status --help'"},
      {{"serve", "--listen", "ipc:///tmp/x", "--join", "etcd://:2379/kv"},
       {},
       "'etcd://:2379/kv'",
       "'amsg serve --help'"},
  };
  for (const auto& c : cases) {
    const CliRun r = run(c.args, c.env);
    const std::string what = c.args.front() + " ... " + c.names;
    EXPECT_EQ(r.exit_code, 2) << what << "\n" << r.output;
    EXPECT_EQ(lines(r.output), 1U) << what << "\n" << r.output;
    EXPECT_NE(r.output.find(c.names), std::string::npos) << what << "\n" << r.output;
    EXPECT_NE(r.output.find(c.help_from), std::string::npos) << what << "\n" << r.output;
    EXPECT_LT(r.took, 10s) << what;  // at once, never a wait for a peer
  }
}

TEST(Cli, VersionAndHelpWorkOnEverySubcommandAndHelpShowsDefaults) {
  const std::string version =
      std::string{"amsg "} + AMSG_VERSION_STRING + " (wire protocol " + std::to_string(AMSG_PROTOCOL_VERSION) + ")";
  for (const std::vector<std::string>& prefix :
       {std::vector<std::string>{}, {"send"}, {"serve"}, {"demo"}, {"bench"}}) {
    auto args = prefix;
    args.emplace_back("--version");
    const CliRun v = run(args);
    EXPECT_EQ(v.exit_code, 0) << v.output;
    EXPECT_EQ(v.output, version + "\n");
    args.back() = "--help";
    const CliRun h = run(args);
    EXPECT_EQ(h.exit_code, 0) << h.output;
    EXPECT_NE(h.output.find("Exit codes: 0 ok; 1"), std::string::npos) << h.output;
  }
  const CliRun send_help = run({"send", "--help"});
  EXPECT_NE(send_help.output.find("--timeout INT:POSITIVE=5000"), std::string::npos) << send_help.output;
  const CliRun serve_help = run({"serve", "--help"});
  EXPECT_NE(serve_help.output.find("=4"), std::string::npos) << serve_help.output;  // --concurrency
}

TEST(Cli, RuntimeErrorsExitOne) {
  // The port is taken by a node of this process: binding it is a runtime error, not a usage one.
  net::NodeOptions options;
  options.listen = {"tcp://127.0.0.1:0"};
  net::Node holder{options};
  holder.start();
  const std::string taken = holder.endpoints().at(0);
  const CliRun r = run({"serve", "--listen", taken});
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(taken), std::string::npos) << r.output;
  holder.shutdown(0ms);
}

TEST(Cli, SendJsonPrintsOneObjectWithTheOutcome) {
  IpcPath path;
  Server server{path.address()};
  const CliRun ok = run({"send", "--to", path.address(), "--type", "echo", "--data", "say \"hi\"", "--json"});
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_EQ(ok.output, "{\"to\":\"" + path.address() +
                           "\",\"type\":\"echo\",\"id\":\"send\",\"outcome\":\"ok\",\"code\":\"\",\"error\":\"\","
                           "\"text\":\"send:ok\",\"response\":\"say \\\"hi\\\"\"}\n");
  const CliRun err =
      run({"send", "--to", path.address(), "--type", "fail", "--data", "bad", "--notify", "r1", "--json"});
  EXPECT_EQ(err.exit_code, 1) << err.output;
  EXPECT_EQ(lines(err.output), 1U) << err.output;
  EXPECT_NE(err.output.find(R"("outcome":"err")"), std::string::npos) << err.output;
  EXPECT_NE(err.output.find(R"("error":"bad")"), std::string::npos) << err.output;
  EXPECT_NE(err.output.find(R"x("text":"r1:err(bad)")x"), std::string::npos) << err.output;
}

TEST(Cli, LogLevelFlagAndEnvironmentVariableChooseWhatIsLogged) {
  IpcPath path;
  Server server{path.address()};
  const std::vector<std::string> send{"send", "--to", path.address(), "--type", "echo", "--data", "x"};
  const CliRun quiet = run(send);
  EXPECT_EQ(quiet.exit_code, 0);
  EXPECT_EQ(quiet.output, "x\n");  // send logs errors only, by default
  auto with_flag = send;
  with_flag.insert(with_flag.end(), {"--log-level", "info"});
  const CliRun flag = run(with_flag);
  EXPECT_EQ(flag.exit_code, 0);
  EXPECT_NE(flag.output.find("[amsg] [info]"), std::string::npos) << flag.output;
  const CliRun env = run(send, {"AMSG_LOG_LEVEL=info"});
  EXPECT_NE(env.output.find("[amsg] [info]"), std::string::npos) << env.output;
  auto both = with_flag;
  both.back() = "off";  // the flag wins over the variable
  const CliRun off = run(both, {"AMSG_LOG_LEVEL=info"});
  EXPECT_EQ(off.output, "x\n");
}

TEST(Cli, ServePrintsItsStatsOnSigusr1AndKeepsServing) {
  IpcPath path;
  Server server{path.address()};
  ASSERT_EQ(run({"send", "--to", path.address(), "--type", "echo", "--data", "one"}).exit_code, 0);
  server.process().signal(SIGUSR1);
  const auto stats = server.process().wait_for_line("amsg serve: stats:", 10s);
  ASSERT_TRUE(stats) << server.process().output();
  EXPECT_NE(stats->find("received 1,"), std::string::npos) << *stats;
  EXPECT_EQ(run({"send", "--to", path.address(), "--type", "echo", "--data", "two"}).exit_code, 0);
  EXPECT_TRUE(server.process().stop(10s));
}

TEST(Cli, DemoJsonPrintsOnlyItsSummaryObject) {
  const CliRun r = run({"demo", "--messages", "300", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(lines(r.output), 1U) << r.output;
  EXPECT_TRUE(r.output.starts_with(R"({"messages":300,"worker_messages":600,"workers":2,)")) << r.output;
  EXPECT_NE(r.output.find(R"("exactly_once":true,"workers_ok":true})"), std::string::npos) << r.output;
}

// CURVE from the command line: keygen, a server that allows one client, a
// client with and without its keys, and the refusal to listen in the clear.
TEST(Cli, KeygenServeAndSendWithCurve) {
  const auto dir = std::filesystem::temp_directory_path() / ("amsg-cli-curve-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir / "clients");
  const std::string server_cert = (dir / "server").string();
  const std::string client_cert = (dir / "clients" / "worker").string();
  for (const auto& path : {server_cert, client_cert}) {
    const CliRun k = run({"keygen", path});
    ASSERT_EQ(k.exit_code, 0) << k.output;
    EXPECT_NE(k.output.find(net::read_curve_public_file(path) + "\n"), std::string::npos)
        << "it prints the public key it wrote: " << k.output;
  }
  std::filesystem::copy_file(client_cert + "_secret", dir / "worker_secret");
  std::filesystem::remove(client_cert + "_secret");  // the allowlist directory holds public certificates

  const CliRun clear = run({"serve", "--listen", "tcp://0.0.0.0:0"});
  EXPECT_EQ(clear.exit_code, 1) << clear.output;
  EXPECT_NE(clear.output.find("--insecure"), std::string::npos) << clear.output;

  Process server{{AMSG_CLI_PATH, "serve", "--listen", "tcp://127.0.0.1:0", "--curve-secret", server_cert + "_secret",
                  "--allow", (dir / "clients").string()}};
  const auto line = server.wait_for_line("listening on", 30s);
  ASSERT_TRUE(line) << server.output();
  const std::string address = line->substr(line->find("tcp://"));
  const CliRun ok = run({"send", "--to", address, "-t", "echo", "-d", "secret", "--server-key", server_cert,
                         "--curve-secret", (dir / "worker_secret").string()});
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  EXPECT_EQ(ok.output, "secret\n");
  const CliRun refused = run({"send", "--to", address, "-t", "echo", "-d", "secret", "--timeout", "3000"});
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_NE(refused.output.find("peer unreachable"), std::string::npos) << refused.output;
  server.signal(SIGTERM);
  EXPECT_TRUE(server.wait_exit(20s));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace amsg::test
