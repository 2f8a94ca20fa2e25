#pragma once
// ucx://HOST:PORT addresses: parsed, and resolved to a socket address for
// UCX's sockaddr connection manager.

#include <sys/socket.h>

#include <cstdint>
#include <string>

namespace amsg::net {

struct UcxAddress {
  std::string host;  // "*": every interface (listening only)
  std::uint16_t port = 0;
  [[nodiscard]] std::string host_for_display() const {
    if (host == "*") return "0.0.0.0";
    return host.find(':') != std::string::npos ? "[" + host + "]" : host;  // IPv6
  }
};

struct ResolvedAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  bool loopback = false;
};

// Throws NetworkError naming the address when it is not ucx://HOST:PORT (IPv6
// hosts in brackets), or PORT is not 0..65535.
UcxAddress parse_ucx_address(const std::string& address);
// Throws NetworkError when HOST does not resolve. `passive`: for listening ("*" allowed).
ResolvedAddress resolve_ucx_address(const UcxAddress& address, bool passive);
// The port of a socket address, host order.
std::uint16_t port_of(const sockaddr_storage& address);

}  // namespace amsg::net
