// UcxLink: progressing the worker on the session's executor, acting on what
// UCX's callbacks recorded, and closing.

#include <poll.h>

#include <array>

#include <fmt/format.h>

#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include "link/ucx_link.hpp"
#include "link/ucx_link_state.hpp"

namespace amsg::net {

// Event-driven by default: progress until UCX has nothing, arm the worker's
// event fd (busy: there is more, progress again) and wait on it through Asio.
asio::awaitable<void> UcxLink::progress_loop(Worker& w) {
  using Clock = std::chrono::steady_clock;
  auto last_event = Clock::now();
  unsigned turns = 0;  // since the loop last let other work on the executor run
  auto turn_began = Clock::now();
  for (;;) {
    if (stopping_ || w.handle == nullptr) co_return;
    if (++turns > kTurnsBeforeYield || Clock::now() - turn_began > kLongestTurn) {
      // UCX can keep saying busy (a rendezvous under way): the session's own
      // work (heartbeats, handlers' replies) shares this executor and must run.
      turns = 0;
      co_await asio::post(executor_, asio::use_awaitable);
      turn_began = Clock::now();
      continue;
    }
    if (w.listening && listen_paused()) {
      // The session takes no frames and some already wait: leave the rest to
      // the transport until resume_reading().
      asio::error_code ec;
      w.rest->expires_at(asio::steady_timer::time_point::max());
      w.resting = true;
      co_await w.rest->async_wait(asio::redirect_error(asio::use_awaitable, ec));
      w.resting = false;
      turns = 0;
      turn_began = Clock::now();
      continue;
    }
    unsigned n = 0;
    while (n < kProgressBatch && ucp_worker_progress(w.handle) != 0) {
      ++n;
      if (w.listening && !inbound_.empty() && !listener_events_->accepting_frames()) break;
    }
    const bool acted = dispatch();
    if (stopping_ || w.handle == nullptr) co_return;
    if (n == kProgressBatch) {
      turns = 0;
      co_await asio::post(executor_, asio::use_awaitable);  // more to do: let others run first
      turn_began = Clock::now();
      continue;
    }
    const auto now = Clock::now();
    if (n > 0 || acted) last_event = now;
    if (options_.busy_poll || (options_.spin.count() > 0 && now - last_event < options_.spin)) {
      turns = 0;
      co_await asio::post(executor_, asio::use_awaitable);
      turn_began = Clock::now();
      continue;
    }
    if (w.listening && listen_paused()) continue;
    if (acted) continue;  // dispatch() may have given UCX work: progress until there is none, then arm
    const ucs_status_t armed = ucp_worker_arm(w.handle);
    if (armed == UCS_ERR_BUSY) continue;  // events came in since: about once per message on shared memory
    asio::error_code ec;
    w.waiting = true;
    co_await w.efd->async_wait(asio::posix::stream_descriptor::wait_read,
                               asio::redirect_error(asio::use_awaitable, ec));
    w.waiting = false;
    turns = 0;
    turn_began = Clock::now();
  }
}

bool UcxLink::listen_paused() { return !held_.empty() && !listener_events_->accepting_frames(); }

bool UcxLink::dispatch() {
  bool acted = false;
  std::vector<ucp_conn_request_h> requests;
  std::vector<std::pair<ucp_ep_h, ucs_status_t>> errors;
  {
    std::lock_guard lock{callbacks_mutex_};
    requests.swap(connection_requests_);
    errors.swap(endpoint_errors_);
  }
  for (ucp_conn_request_h r : requests) accept(r);
  acted = !requests.empty() || !errors.empty();

  std::vector<std::uint64_t> probes;
  probes.swap(probes_done_);
  for (const std::uint64_t key : probes) {
    auto it = conns_.find(key);
    if (it == conns_.end()) continue;
    auto& channel = static_cast<ChannelState&>(*it->second);
    if (channel.up == ChannelState::Up::connecting) channel_up(channel);
    acted = true;
  }

  // Frames: first those held while the session could not take them.
  while (!held_.empty() && listener_events_->accepting_frames()) {
    Inbound in = std::move(held_.front());
    held_.pop_front();
    deliver(in);
    acted = true;
  }
  std::vector<Inbound> arrived;
  arrived.swap(inbound_);
  for (Inbound& in : arrived) {
    acted = true;
    if (in.to_listener && (!held_.empty() || !listener_events_->accepting_frames())) {
      held_.push_back(std::move(in));  // at most what one turn of progress brought
    } else {
      deliver(in);
    }
  }
  // Failures last: what came in before them has been delivered (a peer's last
  // replies, its BYE), as over ZeroMQ.
  for (const auto& [ep, status] : errors) {
    if (auto it = by_endpoint_.find(ep); it != by_endpoint_.end()) fail_key(it->second->key);
  }
  std::vector<std::uint64_t> failed;
  failed.swap(failed_keys_);
  for (const std::uint64_t key : failed) fail_key(key);

  std::vector<std::uint64_t> writable;
  writable.swap(writable_);
  bool clients_writable = false;
  for (const std::uint64_t key : writable) {
    auto it = conns_.find(key);
    if (it == conns_.end()) continue;
    Conn& c = *it->second;
    if (!c.dialed) {
      if (c.want_out && c.sending < client_hwm_) {
        c.want_out = false;
        clients_writable = true;
      }
      continue;
    }
    auto& channel = static_cast<ChannelState&>(c);
    flush_waiting(channel);
    if (channel.want_out && channel.ep != nullptr && !channel_full(channel)) {
      channel.want_out = false;
      channel.events->on_writable();  // may close the channel: nothing of it is touched after
    }
  }
  if (clients_writable) (void)listener_events_->on_clients_writable();

  std::erase_if(closing_, [](void* r) {
    if (ucp_request_check_status(r) == UCS_INPROGRESS) return false;
    ucp_request_free(r);
    return true;
  });
  return acted;
}

void UcxLink::accept(ucp_conn_request_h request) {
  if (stopping_ || listener_ == nullptr) {
    if (listener_ != nullptr) (void)ucp_listener_reject(listener_, request);
    return;
  }
  ucp_ep_params_t ep{};
  ep.field_mask =
      UCP_EP_PARAM_FIELD_CONN_REQUEST | UCP_EP_PARAM_FIELD_ERR_HANDLER | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE;
  ep.conn_request = request;
  ep.err_mode = UCP_ERR_HANDLING_MODE_PEER;
  ep.err_handler.cb = &on_endpoint_error;
  ep.err_handler.arg = this;
  ucp_ep_h handle = nullptr;
  if (ucp_ep_create(listen_worker_->handle, &ep, &handle) != UCS_OK) return;  // the client sees its connection fail
  auto client = std::make_unique<Client>();
  client->key = next_key_++;
  client->worker = listen_worker_.get();
  client->ep = handle;
  client->name = fmt::format("ucx-{}", client->key);
  conns_[client->key] = client.get();
  by_endpoint_[handle] = client.get();
  std::string name = client->name;
  clients_.emplace(std::move(name), std::move(client));
}

void UcxLink::fail_key(std::uint64_t key) {
  auto it = conns_.find(key);
  if (it == conns_.end()) return;
  Conn& c = *it->second;
  if (c.dialed) {
    fail_channel(static_cast<ChannelState&>(c), "endpoint failed");
  } else {
    drop_client(static_cast<Client&>(c).name);
  }
}

void UcxLink::deliver(Inbound& in) {
  if (in.closing) {
    // Every frame before it has reached the session: the listener may close.
    if (auto it = conns_.find(in.key); it != conns_.end()) (void)send_control(*it->second, kClosed);
    return;
  }
  if (in.oversize) {
    fail_key(in.key);  // the frames before it have been delivered
    release(in);
    return;
  }
  auto it = conns_.find(in.key);
  if (it != conns_.end()) {
    // In two parts (a head, then the payload, which the session may keep) or in one.
    const bool parts = !in.head.empty() && in.size != 0;
    const std::span<const std::byte> frame =
        in.head.empty() ? std::span<const std::byte>{in.data, in.size} : in.head.bytes();
    if (in.to_listener) {
      const std::string client = static_cast<Client&>(*it->second).name;  // the session may drop it meanwhile
      if (parts) {
        listener_events_->on_client_frame_in_parts(client, frame, in.owned);
      } else {
        listener_events_->on_client_frame(client, frame, 1);
      }
    } else if (parts) {
      static_cast<ChannelState&>(*it->second).events->on_frame_in_parts(frame, in.owned);
    } else {
      static_cast<ChannelState&>(*it->second).events->on_frame(frame, 1);
    }
  }
  release(in);
}

void UcxLink::release(Inbound& in) {
  if (in.descriptor != nullptr && context_ != nullptr) ucp_am_data_release(in.worker, in.descriptor);
  in.descriptor = nullptr;
  in.owned = Payload{};
}

template <class Done>
bool UcxLink::progress_until(std::chrono::steady_clock::time_point until, Done done) {
  for (;;) {
    for (Worker* w : {dial_worker_.get(), listen_worker_.get()}) {
      for (unsigned n = 0; n < kProgressBatch && ucp_worker_progress(w->handle) != 0; ++n) {
      }
    }
    if (done()) return true;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    if (ucp_worker_arm(dial_worker_->handle) != UCS_OK || ucp_worker_arm(listen_worker_->handle) != UCS_OK) continue;
    std::array<pollfd, 2> fds{pollfd{dial_worker_->efd->native_handle(), POLLIN, 0},
                              pollfd{listen_worker_->efd->native_handle(), POLLIN, 0}};
    (void)::poll(fds.data(), fds.size(), static_cast<int>(std::min<std::int64_t>(left.count(), 10)));
  }
}

void UcxLink::stop_waiting() {
  stopping_ = true;
  for (const auto& w : channels_) {
    if (auto c = w.lock(); c && c->redial) c->redial->cancel();
  }
  for (Worker* w : {dial_worker_.get(), listen_worker_.get()}) {
    if (w == nullptr) continue;
    if (w->efd) w->efd->cancel();
    if (w->rest) w->rest->cancel();
  }
}

bool UcxLink::wait_clients_writable(std::chrono::milliseconds timeout) {
  if (context_ == nullptr) return false;
  return progress_until(std::chrono::steady_clock::now() + timeout, [this] {
    for (const auto& [name, c] : clients_) {
      if (c->want_out && c->sending < client_hwm_) return true;
    }
    return false;
  });
}

void UcxLink::close(std::chrono::milliseconds linger) {
  stopping_ = true;
  if (context_ == nullptr) {
    executor_ = asio::any_io_executor{};
    return;
  }
  // Each client is told that this node closes, behind the frames sent to it,
  // and answers once it has taken them all; its endpoint is closed then (or
  // after `linger`, or when it fails). UCX reporting a send complete is not
  // enough: closing the endpoint at once could still lose what the client's
  // UCX holds but the client has not yet taken.
  for (auto& [name, c] : clients_) {
    if (linger.count() > 0) c->close_sent = send_control(*c, kClosing);
  }
  // kClosings that came before this node began closing, not yet answered.
  for (const Inbound& in : inbound_) {
    if (in.closing) closings_.push_back(in.key);
  }
  for (const auto& [key, conn] : conns_) {
    for (const auto& [sequence, in] : conn->early) {
      if (in.closing) closings_.push_back(key);
    }
  }
  (void)progress_until(std::chrono::steady_clock::now() + linger, [this] {
    // Listeners this node dialed close too: answered at once (this node takes
    // no more frames), so that neither side waits out its linger for the other.
    std::vector<std::uint64_t> closings;
    closings.swap(closings_);
    for (const std::uint64_t key : closings) {
      if (auto it = conns_.find(key); it != conns_.end()) (void)send_control(*it->second, kClosed);
    }
    {
      std::lock_guard lock{callbacks_mutex_};
      for (const auto& [ep, status] : endpoint_errors_) {
        if (auto it = by_endpoint_.find(ep); it != by_endpoint_.end()) it->second->close_done = true;
      }
    }
    for (const auto& [name, c] : clients_) {
      if (c->close_sent && !c->close_done) return false;
    }
    return true;
  });
  for (const auto& w : channels_) {
    if (auto c = w.lock()) {
      c->closed = true;
      c->waiting.clear();
      c->waiting_bytes = 0;
      if (c->redial) c->redial->cancel();
      forget(*c);
    }
  }
  channels_.clear();
  for (auto& [name, c] : clients_) forget(*c);
  clients_.clear();
  if (listener_ != nullptr) {
    // Connections asked for since the last dispatch: refused, not left waiting.
    std::vector<ucp_conn_request_h> requests;
    {
      std::lock_guard lock{callbacks_mutex_};
      requests.swap(connection_requests_);
    }
    for (ucp_conn_request_h r : requests) (void)ucp_listener_reject(listener_, r);
    ucp_listener_destroy(listener_);
    listener_ = nullptr;
  }
  auto release_all = [this] {
    for (Inbound& in : held_) release(in);
    held_.clear();
    for (Inbound& in : inbound_) release(in);
    inbound_.clear();
  };
  release_all();
  (void)progress_until(std::chrono::steady_clock::now() + kCloseBound, [this] {
    std::erase_if(closing_, [](void* r) {
      if (ucp_request_check_status(r) == UCS_INPROGRESS) return false;
      ucp_request_free(r);
      return true;
    });
    return closing_.empty();
  });
  for (void* r : closing_) ucp_request_free(r);  // UCX frees them when they end
  closing_.clear();
  release_all();  // what came in meanwhile
  destroy_worker(*dial_worker_);
  destroy_worker(*listen_worker_);
  ucp_cleanup(context_);
  context_ = nullptr;
  conns_.clear();
  by_endpoint_.clear();
  executor_ = asio::any_io_executor{};
}

}  // namespace amsg::net
