// Prometheus metrics: a node's collector exposed through prometheus-cpp's
// Exposer, scraped over real HTTP, checked by `promtool check metrics` (Debian's
// prometheus package) and by a parser of the text format.

#include <gtest/gtest.h>

#include <prometheus/exposer.h>

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/use_future.hpp>
#include <asio/write.hpp>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "amsg/metrics.hpp"
#include "amsg/net/node.hpp"
#include "net_test_support.hpp"
#include "process.hpp"
#include "test_support.hpp"

namespace amsg::test {
namespace {

using net::CallOptions;

struct Nodes {
  Nodes() : server{server_options()}, client{client_options("amsg.test.metrics-c")} {
    add_handlers(server.manager());
    server.start();
    client.start();
    address = server.endpoints().at(0);
    peer = client.connect(address);
  }
  net::NodeOptions server_options() {
    net::NodeOptions o = client_options("amsg.test.metrics-s");
    o.listen = {path.address()};
    return o;
  }
  IpcPath path;
  net::Node server;
  net::Node client;
  std::string address;
  net::PeerId peer{};
};

// GET /metrics over a plain TCP connection; returns the body.
std::string scrape(int port) {
  asio::io_context io;
  asio::ip::tcp::socket socket{io};
  socket.connect({asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)});
  const std::string request = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  asio::write(socket, asio::buffer(request));
  std::string response;
  asio::error_code ec;
  asio::read(socket, asio::dynamic_buffer(response), ec);  // HTTP/1.0: until the server closes
  EXPECT_TRUE(ec == asio::error::eof || !ec) << ec.message();
  EXPECT_TRUE(response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200")) << response.substr(0, 80);
  const auto body = response.find("\r\n\r\n");
  return body == std::string::npos ? std::string{} : response.substr(body + 4);
}

// Whether `line` is a sample in the text exposition format:
// name{label="value",...} number   (a hand-written check: GCC 12 warns inside std::regex under -O2.)
bool valid_sample_line(const std::string& line) {
  auto name_char = [](char c, bool first) {
    return std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_' || c == ':' ||
           (!first && std::isdigit(static_cast<unsigned char>(c)) != 0);
  };
  std::size_t i = 0;
  if (line.empty() || !name_char(line[0], true)) return false;
  while (i < line.size() && name_char(line[i], i == 0)) ++i;
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      const std::size_t start = i;
      while (i < line.size() && (std::isalnum(static_cast<unsigned char>(line[i])) != 0 || line[i] == '_')) ++i;
      if (i == start || line.compare(i, 2, "=\"") != 0) return false;
      i += 2;
      while (i < line.size() && line[i] != '"') i += line[i] == '\\' ? 2 : 1;
      if (i >= line.size()) return false;
      ++i;  // the closing quote
      if (i < line.size() && line[i] == ',') ++i;
    }
    if (i >= line.size()) return false;
    ++i;  // '}'
  }
  if (i >= line.size() || line[i] != ' ') return false;
  const std::string value = line.substr(i + 1);
  if (value == "+Inf" || value == "-Inf" || value == "NaN" || value == "Nan") return true;
  char* end = nullptr;
  (void)std::strtod(value.c_str(), &end);
  return !value.empty() && end == value.c_str() + value.size();
}

// The value of the sample `name{labels}` (labels as printed), or -1.
double sample(const std::string& text, const std::string& series) {
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with(series + " ")) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

TEST(Metrics, ANodesMetricsAreScrapedOverHttpAndPassTheExpositionCheck) {
  Nodes nodes;
  net::Node& client = nodes.client;
  for (int i = 0; i < 3; ++i) {
    auto f = client.call(nodes.peer, "echo", bytes("x"), CallOptions{"e"}, asio::use_future);
    ASSERT_TRUE(get(f).is_success());
  }
  auto bad = client.call(nodes.peer, "fail", bytes("no"), CallOptions{"f"}, asio::use_future);
  ASSERT_FALSE(get(bad).is_success());
  auto slow = client.call(nodes.peer, "sleep", bytes("5000"), CallOptions{"s", 30ms}, asio::use_future);
  ASSERT_EQ(get(slow).code, errc::timeout);

  prometheus::Exposer exposer{"127.0.0.1:0"};
  // Two nodes of one process in one collector: each family is named once.
  auto collector = std::make_shared<metrics::NodeCollector>(nodes.server, metrics::Labels{{"role", "server"}});
  collector->add(client, {{"role", "client"}});
  exposer.RegisterCollectable(collector);
  ASSERT_FALSE(exposer.GetListeningPorts().empty());
  const int port = exposer.GetListeningPorts().front();

  // The server's handler for the timed-out call is cancelled by the deadline on the wire.
  ASSERT_TRUE(eventually([&] {
    const auto body = scrape(port);
    return sample(body, R"(amsg_handler_runs_total{outcome="timeout",role="server",type="sleep"})") == 1;
  }));
  const std::string body = scrape(port);

  // Server side: messages and outcomes by code, per handler type.
  EXPECT_EQ(sample(body, R"(amsg_messages_received_total{role="server"})"), 5);
  EXPECT_EQ(sample(body, R"(amsg_messages_ended_total{code="ok",role="server"})"), 3);
  EXPECT_EQ(sample(body, R"(amsg_messages_ended_total{code="handler_error",role="server"})"), 1);
  EXPECT_EQ(sample(body, R"(amsg_messages_ended_total{code="timeout",role="server"})"), 1);
  EXPECT_EQ(sample(body, R"(amsg_handler_runs_total{outcome="ok",role="server",type="echo"})"), 3);
  EXPECT_EQ(sample(body, R"(amsg_handler_runs_total{outcome="error",role="server",type="fail"})"), 1);
  EXPECT_EQ(sample(body, R"(amsg_handler_duration_seconds_count{role="server",type="echo"})"), 3);
  EXPECT_EQ(sample(body, R"(amsg_handler_duration_seconds_bucket{role="server",type="echo",le="+Inf"})"), 3);
  EXPECT_EQ(sample(body, R"(amsg_node_replies_sent_total{role="server"})"), 5);
  EXPECT_EQ(sample(body, R"(amsg_notification_channel_messages{role="server"})"), 0);
  EXPECT_EQ(sample(body, R"(amsg_inbox_messages{role="server"})"), 0);
  // Client side: per peer, by outcome, with the round trips.
  const std::string peer = "peer=\"" + nodes.address + "\"";
  EXPECT_EQ(sample(body, "amsg_peer_up{" + peer + ",role=\"client\"}"), 1);
  EXPECT_EQ(sample(body, "amsg_peer_calls_sent_total{" + peer + ",role=\"client\"}"), 5);
  EXPECT_EQ(sample(body, "amsg_peer_calls_ended_total{outcome=\"ok\"," + peer + ",role=\"client\"}"), 3);
  EXPECT_EQ(sample(body, "amsg_peer_calls_ended_total{outcome=\"timeout\"," + peer + ",role=\"client\"}"), 1);
  EXPECT_EQ(sample(body, "amsg_peer_round_trip_seconds_count{" + peer + ",role=\"client\"}"), 4);
  EXPECT_EQ(sample(body, R"(amsg_node_call_timeouts_total{role="client"})"), 1);
  EXPECT_EQ(body.find("\"e\""), std::string::npos);  // never a notification id as a label

  // Every sample line is `name{labels} value` in the text format.
  std::istringstream in{body};
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line.starts_with("# HELP ") || line.starts_with("# TYPE ")) continue;
    EXPECT_TRUE(valid_sample_line(line)) << line;
  }
  EXPECT_FALSE(valid_sample_line("bad name 1"));
  EXPECT_FALSE(valid_sample_line("m{l=\"x} 1"));
  EXPECT_FALSE(valid_sample_line("m 1x"));

  // Prometheus's own checker, when installed (scripts/install-deps.sh installs it).
  if (std::ifstream{"/usr/bin/promtool"}.good()) {
    const std::string file = "/tmp/amsg-metrics-" + std::to_string(::getpid()) + ".txt";
    std::ofstream{file} << body;
    const std::string command = "/usr/bin/promtool check metrics < " + file + " 2>&1";
    FILE* pipe = ::popen(command.c_str(), "r");
    ASSERT_NE(pipe, nullptr);
    std::string out;
    char chunk[512];
    while (std::fgets(chunk, sizeof chunk, pipe) != nullptr) out += chunk;
    const int status = ::pclose(pipe);
    std::remove(file.c_str());
    EXPECT_EQ(status, 0) << out;
    EXPECT_EQ(out, "") << out;  // no lint findings either
  } else {
    GTEST_LOG_(WARNING) << "promtool not installed: only the format parser checked the exposition";
  }

  // A node taken out of the collector is no longer read (it may then be destroyed).
  collector->remove(client);
  const std::string after = scrape(port);
  EXPECT_EQ(after.find("role=\"client\""), std::string::npos);
  EXPECT_EQ(sample(after, R"(amsg_messages_received_total{role="server"})"), 5);
}

}  // namespace
}  // namespace amsg::test
