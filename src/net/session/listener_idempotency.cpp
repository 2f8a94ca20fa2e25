// The listener's side of idempotent calls (MSG flag 0x02): the first message
// with a key runs; a retry waits for its outcome or gets it from memory. See
// session/idempotency.hpp and docs/wire-protocol.md, "Idempotent calls".

#include <fmt/format.h>

#include "session/listener.hpp"

namespace amsg::net {

// True when the message is the first with its key (run it); otherwise it has
// been answered from memory, made to wait for the first, or refused.
bool Listener::first_of_key(std::string_view key, const wire::MsgHeader& h, std::uint32_t max_response,
                            std::string& idem_key) {
  idem_key.assign(h.type);
  idem_key.push_back('\0');
  idem_key.append(h.id);
  const StoredOutcome* done = nullptr;
  switch (idempotency_.arrive(idem_key, now_, IdempotentWaiter{std::string{key}, h.call_id, max_response}, done)) {
    case IdempotencyCache::Seen::first:
      return true;
    case IdempotencyCache::Seen::waiting:
      return false;
    case IdempotencyCache::Seen::done:
      counters_.replies_replayed.add();
      send_outcome(key, h.call_id, max_response, done->status, done->code, done->error, done->body.bytes());
      return false;
    case IdempotencyCache::Seen::too_many:
      break;
  }
  const auto it = clients_.find(std::string{key});
  if (it != clients_.end()) refuse_overloaded(key, h.call_id, it->second);
  return false;
}

// The first message with `idem_key` ended so: remembered when `keep`, and every
// retry that waited gets the same outcome.
void Listener::end_of_key(const std::string& idem_key, wire::Status status, wire::ErrorCode code,
                          std::string_view error, std::span<const std::byte> body, bool keep) {
  for (const auto& w : idempotency_.finish(idem_key, status, code, error, body, keep, Clock::now())) {
    counters_.replies_replayed.add();
    send_outcome(w.client, w.call_id, w.max_response, status, code, error, body);
  }
}

// A REPLY made from a stored outcome, checked against this caller's announced limit.
void Listener::send_outcome(std::string_view key, std::uint64_t call_id, std::uint32_t max_response,
                            wire::Status status, wire::ErrorCode code, std::string_view error,
                            std::span<const std::byte> body) {
  if (status == wire::Status::ok && max_response != 0 && body.size() > max_response) {
    reply_error(key, call_id, wire::ErrorCode::payload_too_large,
                fmt::format("payload of {} bytes exceeds the limit of {} bytes", body.size(), max_response));
    return;
  }
  Frame frame{Payload{wire::reply_size(error) + body.size()}, Payload{}};  // a stored outcome: copied
  wire::write_reply(frame.head.data(), call_id, status, code, error, body);
  counters_.replies_sent.add();
  send(key, std::move(frame), true, 1);
}

}  // namespace amsg::net
