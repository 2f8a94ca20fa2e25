// The HELLO / HELLO_ACK parser on any bytes: what decodes re-encodes to a frame
// that decodes to the same limit, identity and handler list.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_support.hpp"
#include "wire/codec.hpp"

namespace wire = amsg::net::wire;

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto frame = amsg::fuzz::bytes(data, size);
  wire::Hello h;
  if (wire::decode_hello(frame, h) != wire::DecodeError::none) return 0;
  amsg::fuzz::require(frame.size() <= wire::kMaxHelloBytes, "a HELLO is at most kMaxHelloBytes");
  wire::Prefix prefix;
  (void)wire::read_prefix(frame, prefix);
  const std::vector<std::string> handlers{h.handlers.begin(), h.handlers.end()};
  const std::string out = wire::encode_hello(prefix.kind, h.max_payload, h.identity, handlers);
  wire::Hello again;
  amsg::fuzz::require(wire::decode_hello(amsg::fuzz::bytes(out), again) == wire::DecodeError::none,
                      "a re-encoded HELLO decodes");
  amsg::fuzz::require(
      again.max_payload == h.max_payload && again.identity == h.identity && again.handlers == h.handlers,
      "a re-encoded HELLO keeps its fields");
  return 0;
}
