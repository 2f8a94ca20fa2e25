#pragma once
// Links: the links a session uses, each serving the addresses of its schemes.

#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "amsg/errors.hpp"
#include "link/link.hpp"

namespace amsg::net {

class Links {
 public:
  void add(std::shared_ptr<Link> link) { links_.push_back(std::move(link)); }
  // The link that serves `address` (checked). Throws NetworkError naming it.
  [[nodiscard]] Link& for_address(const std::string& address) const {
    for (const auto& link : links_) {
      if (link->serves(address)) {
        link->check_address(address);
        return *link;
      }
    }
    throw NetworkError(
        fmt::format("amsg: bad address '{}': no link serves it (expected tcp://HOST:PORT, "
                    "ipc://PATH{})",
                    address, links_.size() > 1 ? " or an address of an added link" : ""));
  }
  [[nodiscard]] const std::vector<std::shared_ptr<Link>>& all() const noexcept { return links_; }

 private:
  std::vector<std::shared_ptr<Link>> links_;
};

}  // namespace amsg::net
