#pragma once
// Nodes over the in-memory link for the cohort and etcd tests.

#include <memory>
#include <string>

#include "amsg/net/node.hpp"
#include "link/memory_link.hpp"
#include "test_support.hpp"

namespace amsg::test {

// A one-thread node on `net`, listening on `listen` (none when empty). Loss is
// seen within 1 s: short enough for the tests that cut a link, long enough
// that a sanitizer's stall does not make a healthy peer look lost.
inline net::NodeOptions mem_node(const std::shared_ptr<net::MemoryNetwork>& net, const std::string& name,
                                 const std::string& listen) {
  net::NodeOptions o;
  o.links = {std::make_shared<net::MemoryLink>(net)};
  o.manager.logger_name = quiet_logger(name);
  o.manager.threads = 1;
  o.heartbeat_interval = std::chrono::milliseconds{100};
  o.heartbeat_timeout = std::chrono::seconds{1};
  if (!listen.empty()) o.listen = {listen};
  return o;
}

}  // namespace amsg::test
