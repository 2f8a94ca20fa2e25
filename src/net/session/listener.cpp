#include "session/listener.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <thread>

#include <asio/co_spawn.hpp>
#include <asio/defer.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>

#include "session/codes.hpp"

namespace amsg::net {
namespace {

// A reply whose payload goes in a frame of its own, apart from its header (kBodyApartFrom).
bool reply_goes_apart(const Notification& n) noexcept { return n.payload.size() >= wire::kBodyApartFrom; }

}  // namespace

class Listener::Layer final : public CommunicationLayer {
 public:
  explicit Layer(Listener* listener) : listener_{listener} {}
  void on_attach(Ingress ingress) override { listener_->ingress_ = std::move(ingress); }
  void deliver(std::uint64_t slot, Notification&& n) override { listener_->deliver(slot, std::move(n)); }
  void released(std::uint64_t slot) noexcept override { listener_->release(slot); }
  void on_drained() override {
    if (listener_->on_drained) listener_->on_drained();
  }

 private:
  Listener* listener_;  // the session outlives its manager's shutdown, after which nothing calls in
};

// One link's view of the listener: prefixes the link's client names with the
// link's index, so clients of different links never share a key.
struct Listener::Port final : ListenerEvents {
  Port(Listener& l, std::size_t i) : listener{l}, index{static_cast<char>(i)} {}
  bool accepting_frames() override { return listener.accepting(); }
  void on_client_frame(std::string_view client, std::span<const std::byte> frame, std::size_t parts) override {
    listener.key_.assign(1, index);
    listener.key_.append(client);
    listener.on_frame(listener.key_, frame, parts);
  }
  void on_client_frame_in_parts(std::string_view client, std::span<const std::byte> head, Payload& body) override {
    listener.key_.assign(1, index);
    listener.key_.append(client);
    listener.on_frame(listener.key_, head, 1, &body);
  }
  bool on_clients_writable() override { return listener.drain_backlog(); }
  Listener& listener;
  char index;
};

Listener::Listener(const SessionExecutor& executor, ListenerOptions options, const Links& links,
                   SessionCounters& counters, std::shared_ptr<spdlog::logger> log, const std::atomic<Lifecycle>& state)
    : executor_{executor},
      options_{options},
      links_{links},
      counters_{counters},
      log_{std::move(log)},
      state_{state},
      replies_{std::max<std::size_t>(options.max_inflight * 2, 1024)},
      idempotency_{options.idempotency} {
  slab_.resize(options_.max_inflight);
  free_slots_.reserve(options_.max_inflight);
  for (std::size_t i = options_.max_inflight; i > 0; --i) free_slots_.push_back(static_cast<std::uint32_t>(i - 1));
  for (std::size_t i = 0; i < links_.all().size(); ++i) ports_.push_back(std::make_unique<Port>(*this, i));
}

Listener::~Listener() = default;

std::shared_ptr<CommunicationLayer> Listener::layer() {
  if (!layer_) layer_ = std::make_shared<Layer>(this);
  return layer_;
}

ListenerEvents& Listener::events_for(std::size_t index) { return *ports_.at(index); }

// A frame may hold a BATCH: read only with room for a whole one in the slab.
bool Listener::accepting() const noexcept {
  return !stopped_ && !pump_running_ && over_budget_ == 0 && free_slots_.size() >= wire::kMaxBatch &&
         inflight_bytes_ < options_.max_inflight_bytes;
}

void Listener::resume_reading() {
  for (const auto& link : links_.all()) link->resume_reading();
}

// ---------------------------------------------------------------- receiving

void Listener::on_frame(std::string_view key, std::span<const std::byte> frame, std::size_t parts, Payload* body) {
  Payload joined;
  if (body != nullptr && !wire::is_bare_header(frame)) {  // not split at a payload: read as one
    joined = join_frame(frame, body->bytes());
    frame = joined.bytes();
    body = nullptr;
  }
  // No reference to the client is kept: send() forgets a client that has gone.
  auto [entry, is_new] = clients_.try_emplace(std::string{key});
  now_ = Clock::now();
  entry->second.last_rx = now_;
  const std::uint32_t max_response = entry->second.max_payload;
  wire::Prefix prefix;
  const wire::DecodeError prefix_error = wire::read_prefix(frame, prefix);
  if (entry->second.cut_off && (prefix_error != wire::DecodeError::none || prefix.kind != wire::Kind::hello)) {
    counters_.frames_ignored.add();  // it has not read what we sent: nothing more until it says HELLO
    return;
  }
  if (auto e = prefix_error; e != wire::DecodeError::none) {
    malformed(wire::to_string(e));
    send_error(key, wire::ErrorCode::malformed, wire::malformed_text(e));
    return;
  }
  if (prefix.kind == wire::Kind::error) {  // of any version: never answered, so no error loops
    malformed("ERROR frame sent to a listening node");
    return;
  }
  if (is_new && prefix.kind != wire::Kind::hello && prefix.version == wire::kVersion) {
    // A connection that starts without a HELLO: the client's link reconnected
    // by itself (ZeroMQ does), perhaps to a restarted node. Tell it, so that it
    // ends the calls the connection it had was carrying.
    Payload ack = make_hello_ack();
    ack.data()[3] = std::byte{wire::kFlagNewConnection};
    send(key, Frame{std::move(ack)}, true);
  }
  if (parts != 1) {
    malformed(wire::to_string(wire::DecodeError::bad_frames));
    refuse(key, frame, wire::ErrorCode::malformed, wire::malformed_text(wire::DecodeError::bad_frames));
    return;
  }
  if (prefix.version != wire::kVersion) {
    malformed(wire::incompatible_text(prefix.version));
    refuse(key, frame, wire::ErrorCode::version_mismatch, wire::incompatible_text(prefix.version));
    return;
  }
  switch (prefix.kind) {
    case wire::Kind::msg:
      on_msg(key, frame, max_response, body);
      return;
    case wire::Kind::batch:
      on_batch(key, frame, max_response);
      return;
    case wire::Kind::hello:
      on_hello(key, frame);
      return;
    case wire::Kind::ping: {
      std::uint64_t nonce = 0;
      if (auto e = wire::decode_ping(frame, nonce); e != wire::DecodeError::none) {
        malformed(wire::to_string(e));
        send_error(key, wire::ErrorCode::malformed, wire::malformed_text(e));
      }
      return;
    }
    case wire::Kind::bye:
      if (auto e = wire::decode_bye(frame); e != wire::DecodeError::none) {
        malformed(wire::to_string(e));
        send_error(key, wire::ErrorCode::malformed, wire::malformed_text(e));
        return;
      }
      if (auto it = clients_.find(std::string{key}); it != clients_.end()) {
        it->second.hello = false;  // no more PINGs to it; replies still go out
      }
      return;
    case wire::Kind::cancel: {
      std::uint64_t call_id = 0;
      if (auto e = wire::decode_cancel(frame, call_id); e != wire::DecodeError::none) {
        malformed(wire::to_string(e));
        send_error(key, wire::ErrorCode::malformed, wire::malformed_text(e));
        return;
      }
      counters_.cancels_received.add();
      on_cancel(key, call_id);
      return;
    }
    case wire::Kind::reply:
    case wire::Kind::hello_ack:
      malformed(wire::to_string(wire::DecodeError::wrong_way));
      send_error(key, wire::ErrorCode::malformed, wire::malformed_text(wire::DecodeError::wrong_way));
      return;
    default:
      malformed(wire::to_string(wire::DecodeError::bad_kind));
      send_error(key, wire::ErrorCode::malformed, wire::malformed_text(wire::DecodeError::bad_kind));
      return;
  }
}

// A frame refused as a whole: a REPLY when it is a MSG whose call id can be
// read and is not 0, else an ERROR.
void Listener::refuse(std::string_view key, std::span<const std::byte> frame, wire::ErrorCode code,
                      std::string_view text) {
  wire::Prefix prefix;
  const bool msg = wire::read_prefix(frame, prefix) == wire::DecodeError::none && prefix.kind == wire::Kind::msg;
  const std::uint64_t call_id = msg ? wire::stable_call_id(frame) : 0;
  if (call_id != 0) {
    reply_error(key, call_id, code, text);
  } else {
    send_error(key, code, text);
  }
}

void Listener::on_batch(std::string_view key, std::span<const std::byte> frame, std::uint32_t max_response) {
  if (auto e = wire::decode_batch(frame, batch_entries_); e != wire::DecodeError::none) {
    malformed(wire::to_string(e));
    send_error(key, wire::ErrorCode::malformed, wire::malformed_text(e));
    return;
  }
  // Each entry as if it had arrived alone; only MSGs may be entries here. An
  // entry's error reply may get the client cut off: the rest are then ignored.
  const std::uint64_t cut_offs = cut_offs_;
  for (const auto entry : batch_entries_) {
    if (cut_offs_ != cut_offs && is_cut_off(key)) {
      counters_.frames_ignored.add();
      return;
    }
    wire::Prefix prefix;
    if (auto e = wire::read_prefix(entry, prefix); e != wire::DecodeError::none) {
      malformed(wire::to_string(e));
      send_error(key, wire::ErrorCode::malformed, wire::malformed_text(e));
    } else if (prefix.version != wire::kVersion) {
      malformed(wire::incompatible_text(prefix.version));
      refuse(key, entry, wire::ErrorCode::version_mismatch, wire::incompatible_text(prefix.version));
    } else if (prefix.kind != wire::Kind::msg) {
      malformed(wire::to_string(wire::DecodeError::bad_entry));
      send_error(key, wire::ErrorCode::malformed, wire::malformed_text(wire::DecodeError::bad_entry));
    } else {
      on_msg(key, entry, max_response);
    }
  }
}

void Listener::on_hello(std::string_view key, std::span<const std::byte> frame) {
  wire::Hello h;
  if (auto e = wire::decode_hello(frame, h); e != wire::DecodeError::none) {
    malformed(wire::to_string(e));
    send_error(key, wire::ErrorCode::malformed, wire::malformed_text(e));
    return;
  }
  auto& c = clients_[std::string{key}];
  c.hello = true;
  c.cut_off = false;
  c.first_refusal = Clock::time_point{};
  c.late_refusals = 0;
  c.last_rx = Clock::now();
  c.max_payload = h.max_payload;
  log_->debug("hello from {}", h.identity);
  send(key, Frame{make_hello_ack()}, true);
  if (intake_closed(state_)) send(key, Frame{Payload::copy_of(wire::encode_bye())}, true);
}

// One MSG (alone or from a BATCH).
void Listener::on_msg(std::string_view key, std::span<const std::byte> frame, std::uint32_t max_response,
                      Payload* body) {
  wire::MsgHeader h;
  if (auto e = wire::decode_msg(frame, h); e != wire::DecodeError::none) {
    malformed(wire::to_string(e));
    refuse(key, frame, wire::ErrorCode::malformed, wire::malformed_text(e));
    return;
  }
  counters_.messages_received.add();
  if (intake_closed(state_)) {
    counters_.refused_shutting_down.add();
    if (h.call_id != 0) reply_error(key, h.call_id, wire::ErrorCode::shutting_down, kRemoteShuttingDown);
    return;
  }
  if (body != nullptr) h.body = body->bytes();  // received apart
  if (h.body.size() > options_.max_payload) {
    counters_.refused_too_large.add();
    if (h.call_id != 0) {
      reply_error(
          key, h.call_id, wire::ErrorCode::payload_too_large,
          fmt::format("payload of {} bytes exceeds the limit of {} bytes", h.body.size(), options_.max_payload));
    }
    return;
  }
  std::string idem_key;
  if (h.idempotent && h.call_id != 0 && !h.id.empty() && !first_of_key(key, h, max_response, idem_key)) return;
  Message m{std::string{h.type}, body != nullptr ? std::move(*body) : Payload::copy_of(h.body)};
  if (h.timeout_ms != 0) m.deadline = now_ + std::chrono::milliseconds{h.timeout_ms};
  if (h.call_id != 0) m.notify_id = h.id.empty() ? std::to_string(h.call_id) : std::string{h.id};
  admit(key, std::move(m), h.call_id, max_response, std::move(idem_key));
}

void Listener::malformed(std::string_view why) {
  counters_.malformed_frames.add();
  malformed_log_.warn(*log_, "malformed frame from a client: {}", why);
}

// ---------------------------------------------------------------- sending

void Listener::reply_error(std::string_view key, std::uint64_t call_id, wire::ErrorCode code, std::string_view text) {
  Frame frame{Payload{wire::reply_size(text)}, Payload{}};
  wire::write_reply(frame.head.data(), call_id, wire::Status::error, code, text, {});
  send(key, std::move(frame), true, 1);
  counters_.replies_sent.add();
}

void Listener::send_error(std::string_view key, wire::ErrorCode code, std::string_view text) {
  send(key, Frame{Payload::copy_of(wire::encode_error(code, text))}, false);
}

LinkSend Listener::try_send(std::string_view key, Frame& frame) {
  const auto index = static_cast<std::size_t>(static_cast<unsigned char>(key.front()));
  return links_.all()[index]->send_to_client(key.substr(1), frame);
}

void Listener::send(std::string_view key, Frame&& frame, bool must, std::size_t replies) {
  Client& c = clients_[std::string{key}];
  if (c.cut_off) {
    counters_.replies_dropped.add(replies);
    return;
  }
  LinkSend r = LinkSend::again;
  if (c.backlog_bytes == 0) r = try_send(key, frame);  // else behind its backlog
  if (r == LinkSend::sent) return;
  if (r == LinkSend::gone) {
    counters_.replies_dropped.add(replies);
    drop_log_.warn(*log_, "dropping frames for a client that has gone");
    forget(std::string{key});  // `c` may be gone from here on
    return;
  }
  if (!must) return;  // a PING or an ERROR: the next one will do
  c.backlog_bytes += frame.size();
  auto& q = backlog_[std::string{key}];
  q.push_back(Backlogged{std::move(frame), replies});
  // One frame may exceed the bound alone (a large reply to a client that reads).
  if (c.backlog_bytes > options_.max_backlog_bytes_per_client && q.size() > 1) {
    cut_off(std::string{key}, c,
            fmt::format("{} bytes waiting for it to read (limit {})", c.backlog_bytes,
                        options_.max_backlog_bytes_per_client));
  }
}

bool Listener::is_cut_off(std::string_view key) const {
  auto it = clients_.find(std::string{key});
  return it != clients_.end() && it->second.cut_off;
}

// A client that does not read what it is sent, or keeps sending after its
// refusals, is cut off: its backlog goes, and so does everything it sends until
// it says HELLO again. ZeroMQ's ROUTER cannot close one peer's connection;
// ignoring it has the same effect on this node.
void Listener::cut_off(const std::string& key, Client& client, std::string_view why) {
  std::size_t dropped = 0;
  if (auto it = backlog_.find(key); it != backlog_.end()) {
    for (const auto& b : it->second) dropped += b.replies;
    backlog_.erase(it);
  }
  counters_.replies_dropped.add(dropped);
  counters_.clients_cut_off.add();
  ++cut_offs_;
  cut_off_log_.warn(*log_, "client cut off: {}; {} replies dropped; its frames are ignored until it says HELLO again",
                    why, dropped);
  client.backlog_bytes = 0;
  client.cut_off = true;
  client.hello = false;
}

bool Listener::drain_backlog() {
  bool progress = false;
  for (auto it = backlog_.begin(); it != backlog_.end();) {
    auto& q = it->second;
    Client& c = clients_[it->first];
    LinkSend r = LinkSend::sent;
    while (!q.empty()) {
      Backlogged& b = q.front();
      const std::size_t size = b.frame.size();
      r = try_send(it->first, b.frame);
      if (r != LinkSend::sent) break;
      c.backlog_bytes -= size;
      q.pop_front();
      progress = true;
    }
    if (r == LinkSend::gone) {
      for (auto& b : q) counters_.replies_dropped.add(b.replies);
      c.backlog_bytes = 0;
      if (erasable(it->first)) clients_.erase(it->first);
      it = backlog_.erase(it);
      progress = true;
      continue;
    }
    it = q.empty() ? backlog_.erase(it) : std::next(it);
  }
  return progress;
}

// The link says the client has gone. Its messages still here keep its entry
// (they account to it) until they end.
void Listener::forget(const std::string& key) {
  if (auto it = backlog_.find(key); it != backlog_.end()) {
    for (auto& b : it->second) counters_.replies_dropped.add(b.replies);
    backlog_.erase(it);
  }
  if (erasable(key)) {
    clients_.erase(key);
  } else {
    Client& c = clients_[key];
    c.backlog_bytes = 0;
    c.hello = false;
  }
}

// ---------------------------------------------------------------- replies

void Listener::deliver(std::uint64_t slot, Notification&& n) { queue_item(ReplyItem{slot, std::move(n), true}); }

void Listener::release(std::uint64_t slot) { queue_item(ReplyItem{slot, {}, false}); }

// From a worker: one item per slot, so the queue (as long as the slab) never fills for long.
void Listener::queue_item(ReplyItem&& item) {
  while (replies_.try_push(item) != amsg::detail::PushResult::ok) {
    std::this_thread::yield();  // cannot stay full: it holds more than every inflight slot
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);  // see Connector::schedule_flush()
  if (!replies_posted_.load(std::memory_order_relaxed) && !replies_posted_.exchange(true, std::memory_order_acq_rel)) {
    if (deliver_may_defer()) {
      asio::defer(executor_.get(), [this] { flush_replies(); });  // the worker's thread is ours next
    } else {
      asio::post(executor_.get(), [this] { flush_replies(); });
    }
  }
}

// Sends what the workers delivered. Replies to the same client that arrive
// together go out as one frame (a BATCH), like requests do.
void Listener::flush_replies() {
  replies_posted_.store(false, std::memory_order_seq_cst);
  for (;;) {
    reply_batch_.clear();
    ReplyItem item;
    while (reply_batch_.size() < wire::kMaxBatch && replies_.try_pop(item)) {
      if (item.reply) {
        reply_batch_.push_back(std::move(item));
      } else {
        end(static_cast<std::uint32_t>(item.slot));  // a fire-and-forget message ended
      }
    }
    if (reply_batch_.empty()) break;
    std::size_t first = 0;
    while (first < reply_batch_.size()) {
      const std::string& key = slab_[reply_batch_[first].slot].client;
      std::size_t last = first + 1;
      std::size_t bytes = reply_batch_[first].notification.payload.size();  // a BATCH stops at kMaxBatchBytes
      // A large payload goes in a frame of its own (kBodyApartFrom).
      while (last < reply_batch_.size() && bytes < wire::kMaxBatchBytes &&
             !reply_goes_apart(reply_batch_[last - 1].notification) &&
             !reply_goes_apart(reply_batch_[last].notification) && slab_[reply_batch_[last].slot].client == key) {
        bytes += reply_batch_[last].notification.payload.size() + reply_batch_[last].notification.error.size();
        ++last;
      }
      send_replies(first, last);
      first = last;
    }
  }
}

// reply_batch_[first, last), all for one client, in one frame.
void Listener::send_replies(std::size_t first, std::size_t last) {
  const bool single = last - first == 1;
  std::size_t total = single ? 0 : wire::kBatchFixed;
  bool split = false;  // a lone large payload: sent after its header, from its own buffer
  for (std::size_t i = first; i < last; ++i) {
    Notification& n = reply_batch_[i].notification;
    const std::uint32_t limit = slab_[reply_batch_[i].slot].max_response;
    if (n.outcome == Outcome::ok && limit != 0 && n.payload.size() > limit) {
      // The caller announced it takes no more: it gets the error it would give.
      n = failure(errc::payload_too_large,
                  fmt::format("payload of {} bytes exceeds the limit of {} bytes", n.payload.size(), limit));
    }
    split = single && reply_goes_apart(n);
    total += wire::reply_size(n.error) + (split ? 0 : n.payload.size()) + (single ? 0 : wire::batch_entry_overhead());
  }
  Frame frame{Payload{total}, Payload{}};
  auto* at = frame.head.data();
  if (!single) {
    wire::write_batch_prefix(at, static_cast<std::uint32_t>(last - first));
    at += wire::kBatchFixed;
  }
  for (std::size_t i = first; i < last; ++i) {
    const auto slot = static_cast<std::uint32_t>(reply_batch_[i].slot);
    Notification& n = reply_batch_[i].notification;
    const wire::Status status = n.outcome == Outcome::ok          ? wire::Status::ok
                                : n.outcome == Outcome::cancelled ? wire::Status::cancelled
                                                                  : wire::Status::error;
    const wire::ErrorCode code = n.outcome == Outcome::ok ? wire::ErrorCode::none : to_wire(n.code);
    if (!slab_[slot].idem_key.empty()) {  // its retries that waited get the same outcome; later ones from memory
      end_of_key(slab_[slot].idem_key, status, code, n.error, n.payload.bytes(), true);
    }
    const std::span<const std::byte> body = split ? std::span<const std::byte>{} : n.payload.bytes();
    const std::size_t size = wire::reply_size(n.error) + body.size();
    if (!single) at = wire::write_batch_entry(at, static_cast<std::uint32_t>(size));
    wire::write_reply(at, slab_[slot].call_id, status, code, n.error, body);
    at += size;
    if (split) frame.body = std::move(n.payload);
  }
  counters_.replies_sent.add(last - first);
  send(slab_[reply_batch_[first].slot].client, std::move(frame), true, last - first);
  // Sent, waiting in the client's backlog (bounded there in bytes) or dropped:
  // either way the slots are free, so a client that stops reading holds none.
  for (std::size_t i = first; i < last; ++i) end(static_cast<std::uint32_t>(reply_batch_[i].slot));
}

// ---------------------------------------------------------------- lifecycle

void Listener::tick(Clock::time_point now) {
  drain_backlog();
  const bool reading = accepting();
  const std::string ping = wire::encode_ping(0);
  for (auto it = clients_.begin(); it != clients_.end();) {
    if (reading && now - it->second.last_rx > options_.heartbeat_timeout * 10 && !backlog_.contains(it->first) &&
        it->second.inflight == 0) {
      it = clients_.erase(it);  // long gone; its replies would be dropped anyway
      continue;
    }
    it->second.calls.compact();  // here, not per call: bursts that come and go keep their table
    const std::string key = it->first;
    const bool hello = it->second.hello;
    ++it;
    if (hello) send(key, Frame{Payload::copy_of(ping)}, false);
  }
}

void Listener::say_bye() {
  std::vector<std::string> told;  // send() forgets clients that have gone: no iterating meanwhile
  for (const auto& [key, client] : clients_) {
    if (client.hello) told.push_back(key);
  }
  for (const auto& key : told) send(key, Frame{Payload::copy_of(wire::encode_bye())}, true);
}

void Listener::stop() {
  stopped_ = true;
  flush_replies();
}

void Listener::final_flush(std::chrono::milliseconds linger) {
  stopped_ = true;
  flush_replies();
  const auto until = Clock::now() + linger;
  while (!backlog_.empty() && Clock::now() < until) {
    for (const auto& link : links_.all()) (void)link->wait_clients_writable(std::chrono::milliseconds{10});
    drain_backlog();
  }
  if (!backlog_.empty()) log_->warn("replies still unsent after {} ms", linger.count());
}

}  // namespace amsg::net
