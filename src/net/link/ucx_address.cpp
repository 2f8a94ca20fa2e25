#include "link/ucx_address.hpp"

#include <netdb.h>
#include <netinet/in.h>

#include <fmt/format.h>

#include <charconv>
#include <cstring>
#include <memory>
#include <string_view>

#include "amsg/errors.hpp"

namespace amsg::net {

UcxAddress parse_ucx_address(const std::string& address) {
  auto bad = [&](std::string_view why) {
    return NetworkError(fmt::format("amsg: bad address '{}': {}", address, why));
  };
  if (!address.starts_with("ucx://")) throw bad("expected ucx://HOST:PORT");
  const std::string_view rest = std::string_view{address}.substr(6);
  const auto colon = rest.rfind(':');
  if (colon == std::string_view::npos || colon == 0)
    throw bad("expected ucx://HOST:PORT (HOST * to listen on every interface)");
  std::string_view host = rest.substr(0, colon);
  if (host.starts_with('[')) {
    if (!host.ends_with(']') || host.size() < 3) throw bad("an IPv6 host goes in brackets: ucx://[::1]:PORT");
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string_view::npos) {
    throw bad("an IPv6 host goes in brackets: ucx://[::1]:PORT");
  }
  const std::string_view port = rest.substr(colon + 1);
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (port.empty() || ec != std::errc{} || end != port.data() + port.size() || value > 65535) {
    throw bad("the port is not a number from 0 to 65535");
  }
  return UcxAddress{std::string{host}, static_cast<std::uint16_t>(value)};
}

ResolvedAddress resolve_ucx_address(const UcxAddress& address, bool passive) {
  ResolvedAddress out;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  const bool any = address.host == "*";
  if (any && !passive) {
    throw NetworkError(
        fmt::format("amsg: bad address 'ucx://{}:{}': a host to connect to is needed", address.host, address.port));
  }
  const std::string port = std::to_string(address.port);
  addrinfo* found = nullptr;
  if (const int e = getaddrinfo(any ? nullptr : address.host.c_str(), port.c_str(), &hints, &found); e != 0) {
    throw NetworkError(fmt::format("amsg: bad address 'ucx://{}:{}': {}", address.host, address.port, gai_strerror(e)));
  }
  const std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> list{found, &freeaddrinfo};
  // Listening on "*": the IPv4 wildcard, as ZeroMQ's tcp://*:PORT.
  const addrinfo* pick = found;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    if (a->ai_family == AF_INET) {
      pick = a;
      break;
    }
  }
  std::memcpy(&out.storage, pick->ai_addr, pick->ai_addrlen);
  out.length = pick->ai_addrlen;
  if (pick->ai_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(pick->ai_addr);
    out.loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  } else if (pick->ai_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(pick->ai_addr);
    out.loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) != 0;
  }
  return out;
}

std::uint16_t port_of(const sockaddr_storage& address) {
  if (address.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&address)->sin_port);
  if (address.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&address)->sin6_port);
  return 0;
}

}  // namespace amsg::net
