// The BATCH walker on any bytes: every entry lies inside the frame, the entries
// and their length fields account for the whole frame, and each entry decodes
// (or is refused) as a frame of its own.

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "fuzz_support.hpp"
#include "wire/codec.hpp"

namespace wire = amsg::net::wire;

// NOLINTNEXTLINE(readability-identifier-naming): the name libFuzzer calls
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto frame = amsg::fuzz::bytes(data, size);
  std::vector<std::span<const std::byte>> entries;
  if (wire::decode_batch(frame, entries) != wire::DecodeError::none) return 0;
  amsg::fuzz::require(!entries.empty() && entries.size() <= wire::kMaxBatch, "a BATCH holds 1..kMaxBatch entries");
  std::size_t total = wire::kBatchFixed;
  for (const auto entry : entries) {
    amsg::fuzz::require(entry.data() >= frame.data() && entry.data() + entry.size() <= frame.data() + frame.size(),
                        "an entry lies inside its BATCH");
    total += wire::batch_entry_overhead() + entry.size();
    wire::Prefix prefix;
    if (wire::read_prefix(entry, prefix) != wire::DecodeError::none) continue;
    wire::MsgHeader m;
    (void)wire::decode_msg(entry, m);
    wire::ReplyHeader r;
    (void)wire::decode_reply(entry, r);
  }
  amsg::fuzz::require(total == frame.size(), "the entries account for the whole BATCH");
  return 0;
}
