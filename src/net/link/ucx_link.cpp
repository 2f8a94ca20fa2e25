#include "link/ucx_link.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "amsg/errors.hpp"
#include "link/ucx_address.hpp"
#include "link/ucx_link_state.hpp"

namespace amsg::net {
namespace {

[[noreturn]] void fail(std::string_view what, ucs_status_t status) {
  throw NetworkError(fmt::format("amsg: UCX: {}: {}", what, ucs_status_string(status)));
}

}  // namespace

class UcxLink::UcxChannel final : public Channel {
 public:
  UcxChannel(UcxLink& link, std::shared_ptr<ChannelState> state) : link_{link}, state_{std::move(state)} {}
  ~UcxChannel() override { link_.close_channel(*state_); }
  UcxChannel(const UcxChannel&) = delete;
  UcxChannel& operator=(const UcxChannel&) = delete;

  LinkSend send(Frame& frame) override {
    ChannelState& c = *state_;
    if (c.closed) return LinkSend::gone;
    // What the connection holds, waiting or in UCX's hands, stays under the mark.
    if (link_.channel_full(c)) {
      c.want_out = true;
      return LinkSend::again;
    }
    if (c.up != ChannelState::Up::up || !c.waiting.empty()) {
      c.waiting_bytes += frame.size();
      c.waiting.push_back(std::move(frame));
      return LinkSend::sent;
    }
    if (link_.send_on(c, kToListener, frame) == LinkSend::gone) {
      // The endpoint failed under us: the frame waits for the next connection.
      c.waiting_bytes += frame.size();
      c.waiting.push_back(std::move(frame));
      link_.fail_channel(c, "send failed");
    }
    return LinkSend::sent;
  }

 private:
  UcxLink& link_;
  std::shared_ptr<ChannelState> state_;
};

// ---------------------------------------------------------------- link

UcxLink::UcxLink(UcxOptions options, std::size_t max_frame_bytes, std::size_t channel_hwm, std::size_t client_hwm,
                 std::size_t channel_bytes)
    : options_{std::move(options)},
      max_frame_bytes_{max_frame_bytes},
      channel_hwm_{std::max<std::size_t>(channel_hwm, 1)},
      channel_bytes_{std::max<std::size_t>(channel_bytes, 1)},
      client_hwm_{std::max<std::size_t>(client_hwm, 1)} {}

UcxLink::~UcxLink() { close(std::chrono::milliseconds{0}); }

bool UcxLink::serves(std::string_view address) const { return address.starts_with("ucx://"); }

void UcxLink::check_address(const std::string& address) const { (void)parse_ucx_address(address); }

void UcxLink::open(const asio::any_io_executor& executor, ListenerEvents& listener) {
  executor_ = executor;
  listener_events_ = &listener;
}

void UcxLink::start_worker() {
  if (context_ != nullptr) return;
  // Two settings UCX 1.13 takes from the environment only (ucp_config_modify
  // does not pass them on to the transports), set there once unless the user
  // has: with peer-failure handling UCX leaves its shared-memory transports out
  // unless told they may be used with it, and would silently carry the AMs of
  // two processes on one host over tcp (17x slower); and a node restarted on
  // its port binds it again at once (sockets of the last run may be in
  // TIME_WAIT), as over ZeroMQ.
  // (Only where shared memory may be used: UCX warns of a setting no transport reads.)
  static std::once_flag environment;
  // The environment is read and written once, before this process's first UCX
  // context; nothing else of ours touches it (hence the NOLINTs below).
  std::call_once(environment, [this] {
    const char* env = std::getenv("UCX_TLS");  // NOLINT(concurrency-mt-unsafe)
    const std::string tls = !options_.transports.empty() ? options_.transports : env != nullptr ? env : "";
    const bool shared_memory = tls.empty() || tls.find("all") != std::string::npos ||
                               tls.find("sm") != std::string::npos || tls.find("posix") != std::string::npos ||
                               tls.find("sysv") != std::string::npos || tls.find("mm") != std::string::npos;
    if (shared_memory) (void)::setenv("UCX_MM_ERROR_HANDLING", "y", /*overwrite=*/0);  // NOLINT(concurrency-mt-unsafe)
    (void)::setenv("UCX_TCP_CM_REUSEADDR", "y", /*overwrite=*/0);                      // NOLINT(concurrency-mt-unsafe)
    // tcp (always there: the connection manager needs it) offers an emulated
    // put that UCX then picks for rendezvous even between processes sharing
    // memory: 1 MiB calls ran at 550-700/s with it, 1,000-1,050/s without.
    (void)::setenv("UCX_TCP_PUT_ENABLE", "n", /*overwrite=*/0);  // NOLINT(concurrency-mt-unsafe)
  });

  ucp_config_t* config = nullptr;
  if (const ucs_status_t s = ucp_config_read(nullptr, nullptr, &config); s != UCS_OK) fail("reading its settings", s);
  auto set = [&](const char* name, const std::string& value) {
    if (value.empty()) return;
    if (const ucs_status_t s = ucp_config_modify(config, name, value.c_str()); s != UCS_OK) {
      ucp_config_release(config);
      fail(fmt::format("setting {}={}", name, value), s);
    }
  };
  set("TLS", options_.transports);
  set("NET_DEVICES", options_.net_devices);
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_REQUEST_SIZE;
  params.features = UCP_FEATURE_AM | UCP_FEATURE_WAKEUP;
  params.request_size = sizeof(SendRequest);
  const ucs_status_t s = ucp_init(&params, config, &context_);
  ucp_config_release(config);
  if (s != UCS_OK) {
    context_ = nullptr;
    fail("initialising", s);
  }
  try {
    dial_worker_ = std::make_unique<Worker>();
    make_worker(*dial_worker_);
    listen_worker_ = std::make_unique<Worker>();
    listen_worker_->listening = true;
    make_worker(*listen_worker_);
  } catch (...) {
    if (dial_worker_) destroy_worker(*dial_worker_);
    if (listen_worker_) destroy_worker(*listen_worker_);
    ucp_cleanup(context_);
    context_ = nullptr;
    throw;
  }
  asio::co_spawn(executor_, progress_loop(*dial_worker_), asio::detached);
  asio::co_spawn(executor_, progress_loop(*listen_worker_), asio::detached);
}

void UcxLink::make_worker(Worker& w) {
  ucp_worker_params_t wp{};
  wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE | UCP_WORKER_PARAM_FIELD_EVENTS;
  wp.thread_mode = UCS_THREAD_MODE_SERIALIZED;  // the session's strand: one thread at a time, not always the same
  wp.events = UCP_WAKEUP_RX | UCP_WAKEUP_TX;
  if (const ucs_status_t s = ucp_worker_create(context_, &wp, &w.handle); s != UCS_OK) {
    w.handle = nullptr;
    fail("creating a worker", s);
  }
  auto handler = [&](unsigned id, ucp_am_recv_callback_t cb) {
    ucp_am_handler_param_t hp{};
    hp.field_mask = UCP_AM_HANDLER_PARAM_FIELD_ID | UCP_AM_HANDLER_PARAM_FIELD_CB | UCP_AM_HANDLER_PARAM_FIELD_ARG |
                    UCP_AM_HANDLER_PARAM_FIELD_FLAGS;
    hp.id = id;
    hp.cb = cb;
    hp.arg = this;
    hp.flags = UCP_AM_FLAG_WHOLE_MSG | UCP_AM_FLAG_PERSISTENT_DATA;  // kept without a copy until delivered
    if (const ucs_status_t h = ucp_worker_set_am_recv_handler(w.handle, &hp); h != UCS_OK) fail("AM handler", h);
  };
  handler(kToListener, &on_am_to_listener);
  handler(kToDialer, &on_am_to_dialer);
  handler(kProbe, &on_probe);
  handler(kClosing, &on_closing);
  handler(kClosed, &on_closed);
  int fd = -1;
  if (const ucs_status_t e = ucp_worker_get_efd(w.handle, &fd); e != UCS_OK) fail("its event fd", e);
  w.efd = std::make_unique<asio::posix::stream_descriptor>(executor_, fd);
  w.rest = std::make_unique<asio::steady_timer>(executor_);
  ucp_worker_attr_t attr{};
  attr.field_mask = UCP_WORKER_ATTR_FIELD_MAX_AM_HEADER;
  if (const ucs_status_t q = ucp_worker_query(w.handle, &attr); q != UCS_OK) fail("its attributes", q);
  max_am_header_ = std::min(max_am_header_, attr.max_am_header);
}

void UcxLink::destroy_worker(Worker& w) {
  if (w.efd) {
    (void)w.efd->release();  // UCX owns the descriptor
    w.efd.reset();
  }
  w.rest.reset();
  if (w.handle != nullptr) ucp_worker_destroy(w.handle);
  w.handle = nullptr;
}

std::string UcxLink::listen(const std::string& address) {
  const UcxAddress a = parse_ucx_address(address);
  const ResolvedAddress where = resolve_ucx_address(a, /*passive=*/true);
  if (!options_.allow_insecure && !where.loopback) {
    throw NetworkError(fmt::format(
        "amsg: refusing to listen on '{}': UCX has no authentication, so anyone who can reach it could run this "
        "node's handlers. Listen on loopback, or accept the risk (--insecure; UcxOptions::allow_insecure)",
        address));
  }
  if (listener_ != nullptr)
    throw NetworkError(fmt::format("amsg: cannot listen on '{}': one ucx:// listener per node", address));
  start_worker();
  ucp_listener_params_t lp{};
  lp.field_mask = UCP_LISTENER_PARAM_FIELD_SOCK_ADDR | UCP_LISTENER_PARAM_FIELD_CONN_HANDLER;
  lp.sockaddr.addr = reinterpret_cast<const sockaddr*>(&where.storage);
  lp.sockaddr.addrlen = where.length;
  lp.conn_handler.cb = &on_connection_request;
  lp.conn_handler.arg = this;
  if (const ucs_status_t s = ucp_listener_create(listen_worker_->handle, &lp, &listener_); s != UCS_OK) {
    throw NetworkError(fmt::format("amsg: cannot listen on '{}': {}", address, ucs_status_string(s)));
  }
  ucp_listener_attr_t attr{};
  attr.field_mask = UCP_LISTENER_ATTR_FIELD_SOCKADDR;
  if (const ucs_status_t s = ucp_listener_query(listener_, &attr); s != UCS_OK) fail("the listener's address", s);
  return fmt::format("ucx://{}:{}", a.host_for_display(), port_of(attr.sockaddr));
}

std::unique_ptr<Channel> UcxLink::dial(const std::string& address, ChannelEvents& events) {
  const ResolvedAddress where = resolve_ucx_address(parse_ucx_address(address), /*passive=*/false);
  start_worker();
  auto state = std::make_shared<ChannelState>();
  state->dialed = true;
  state->address = address;
  state->peer = where.storage;
  state->peer_length = where.length;
  state->events = &events;
  state->redial = std::make_unique<asio::steady_timer>(executor_);
  std::erase_if(channels_, [](const auto& w) { return w.expired(); });
  channels_.push_back(state);
  connect_channel(*state);
  return std::make_unique<UcxChannel>(*this, std::move(state));
}

// A new endpoint (and key) for the channel, and a probe on it: frames wait
// until the probe has gone through.
void UcxLink::connect_channel(ChannelState& channel) {
  ucp_ep_params_t ep{};
  ep.field_mask = UCP_EP_PARAM_FIELD_FLAGS | UCP_EP_PARAM_FIELD_SOCK_ADDR | UCP_EP_PARAM_FIELD_ERR_HANDLER |
                  UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE;
  ep.flags = UCP_EP_PARAMS_FLAGS_CLIENT_SERVER;
  ep.sockaddr.addr = reinterpret_cast<const sockaddr*>(&channel.peer);
  ep.sockaddr.addrlen = channel.peer_length;
  ep.err_mode = UCP_ERR_HANDLING_MODE_PEER;
  ep.err_handler.cb = &on_endpoint_error;
  ep.err_handler.arg = this;
  channel.up = ChannelState::Up::connecting;
  channel.sending = 0;
  channel.sending_bytes = 0;
  channel.key = next_key_++;
  channel.worker = dial_worker_.get();
  if (ucp_ep_create(dial_worker_->handle, &ep, &channel.ep) != UCS_OK) {
    channel.ep = nullptr;
    fail_channel(channel, "cannot create an endpoint");
    return;
  }
  conns_[channel.key] = &channel;
  by_endpoint_[channel.ep] = &channel;
  ucp_request_param_t p{};
  p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_FLAGS;
  p.flags = UCP_AM_SEND_FLAG_REPLY;
  p.cb.send = &on_sent;
  p.user_data = this;
  void* r = ucp_am_send_nbx(channel.ep, kProbe, nullptr, 0, nullptr, 0, &p);
  if (r == nullptr) {
    channel_up(channel);
  } else if (UCS_PTR_IS_ERR(r)) {
    fail_channel(channel, "probe refused");
  } else {
    auto* req = new (r) SendRequest{};
    req->key = channel.key;
    req->probe = true;
  }
  poke(*dial_worker_);
}

void UcxLink::channel_up(ChannelState& channel) {
  channel.up = ChannelState::Up::up;
  channel.backoff = kRedialFirst;
  if (FILE* f = nullptr; channel.ep != nullptr) {
    char* text = nullptr;
    std::size_t size = 0;
    f = open_memstream(&text, &size);
    if (f != nullptr) {
      ucp_ep_print_info(channel.ep, f);
      std::fclose(f);
      std::lock_guard lock{info_mutex_};
      connection_info_[channel.key] = std::string{text, size};
      std::free(text);  // NOLINT(cppcoreguidelines-no-malloc): open_memstream's buffer
    }
  }
  flush_waiting(channel);
  if (channel.want_out) writable_.push_back(channel.key);
}

void UcxLink::flush_waiting(ChannelState& channel) {
  while (!channel.waiting.empty() && channel.up == ChannelState::Up::up && channel.sending < channel_hwm_ &&
         channel.sending_bytes < channel_bytes_) {
    const std::size_t bytes = channel.waiting.front().size();
    if (send_on(channel, kToListener, channel.waiting.front()) == LinkSend::gone) {
      fail_channel(channel, "send failed");
      return;
    }
    channel.waiting.pop_front();
    channel.waiting_bytes -= bytes;
  }
}

// Frames (UCX counts what waits, not its bytes) or bytes: a small frame does not
// wait behind a bound that large ones need.
bool UcxLink::channel_full(const ChannelState& channel) const {
  return channel.waiting.size() + channel.sending >= channel_hwm_ ||
         channel.waiting_bytes + channel.sending_bytes >= channel_bytes_;
}

// The endpoint is gone (peer failure, refused, too-large frame): close it and
// dial again later. Frames not yet sent wait; frames UCX had are lost, as over
// any broken connection (the session's heartbeats and deadlines account for them).
void UcxLink::fail_channel(ChannelState& channel, const char* /*why*/) {
  if (channel.closed || channel.up == ChannelState::Up::down) return;
  forget(channel);
  channel.up = ChannelState::Up::down;
  if (stopping_) return;
  channel.redial->expires_after(channel.backoff);
  channel.backoff = std::min(channel.backoff * 2, kRedialMost);
  // A wait that expired already is not cancelled by close_channel(): hold the channel weakly.
  channel.redial->async_wait([this, weak = channel.weak_from_this()](const asio::error_code& e) {
    const auto c = weak.lock();
    if (e || stopping_ || !c || c->closed) return;
    connect_channel(*c);
  });
}

void UcxLink::close_channel(ChannelState& channel) {
  if (channel.closed) return;
  channel.closed = true;
  channel.waiting.clear();
  channel.waiting_bytes = 0;
  if (channel.redial) channel.redial->cancel();
  if (context_ != nullptr) forget(channel);
}

// Drops the endpoint from the tables and closes it; its pending sends end with
// an error (their frames are lost), and later callbacks naming its key are ignored.
void UcxLink::forget(Conn& conn) {
  for (auto& [sequence, in] : conn.early) release(in);
  conn.early.clear();
  conn.arrived = conn.ready = 0;  // a new endpoint counts afresh (late completions of this one carry its old key)
  if (conn.ep == nullptr) return;
  conns_.erase(conn.key);
  by_endpoint_.erase(conn.ep);
  {
    std::lock_guard lock{info_mutex_};
    connection_info_.erase(conn.key);
  }
  close_endpoint(*conn.worker, conn.ep);
  conn.ep = nullptr;
  conn.sending = 0;
  conn.sending_bytes = 0;
}

void UcxLink::close_endpoint(Worker& w, ucp_ep_h ep) {
  ucp_request_param_t p{};
  p.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
  p.flags = UCP_EP_CLOSE_FLAG_FORCE;
  void* r = ucp_ep_close_nbx(ep, &p);
  if (r != nullptr && !UCS_PTR_IS_ERR(r)) closing_.push_back(r);
  poke(w);
}

void UcxLink::drop_client(const std::string& name) {
  auto it = clients_.find(name);
  if (it == clients_.end()) return;
  forget(*it->second);
  clients_.erase(it);
}

LinkSend UcxLink::send_to_client(std::string_view client, Frame& frame) {
  auto it = clients_.find(client);
  if (it == clients_.end() || it->second->ep == nullptr) return LinkSend::gone;
  Client& c = *it->second;
  if (c.sending >= client_hwm_) {
    c.want_out = true;
    return LinkSend::again;
  }
  if (send_on(c, kToDialer, frame) == LinkSend::gone) {
    drop_client(std::string{client});
    return LinkSend::gone;
  }
  return LinkSend::sent;
}

// A frame in two parts goes as an AM's header (its head) and data (its body,
// read from the caller's buffer, by rendezvous when large); a frame in one part,
// or whose head is over UCX's header limit, as the data of an AM without header.
LinkSend UcxLink::send_on(Conn& conn, unsigned am_id, Frame& frame) {
  if (!frame.body.empty() && frame.head.size() > max_am_header_) frame.head = std::move(frame).joined();
  const bool apart = !frame.body.empty();
  ucp_request_param_t p{};
  p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_FLAGS;
  p.flags = UCP_AM_SEND_FLAG_REPLY;
  p.cb.send = &on_sent;
  p.user_data = this;
  void* r = apart ? ucp_am_send_nbx(conn.ep, am_id, frame.head.data(), frame.head.size(), frame.body.data(),
                                    frame.body.size(), &p)
                  : ucp_am_send_nbx(conn.ep, am_id, nullptr, 0, frame.head.data(), frame.head.size(), &p);
  if (r == nullptr) {
    frame = Frame{};
    return LinkSend::sent;
  }
  if (UCS_PTR_IS_ERR(r)) return LinkSend::gone;
  // UCX still reads the bytes (the header too, in UCX 1.13): they stay in the
  // request until it is done.
  auto* req = new (r) SendRequest{};
  ++conn.sending;
  conn.sending_bytes += frame.size();
  req->frame = std::move(frame);
  req->key = conn.key;
  poke(*conn.worker);  // it needs progress, which a parked loop would not make
  return LinkSend::sent;
}

// An AM without data that no connection counts (kClosing, kClosed). False when
// UCX refused it (the endpoint has failed).
bool UcxLink::send_control(Conn& conn, unsigned am_id) {
  if (conn.ep == nullptr) return false;
  ucp_request_param_t p{};
  p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_FLAGS;
  p.flags = UCP_AM_SEND_FLAG_REPLY;
  p.cb.send = &on_sent;
  p.user_data = this;
  void* r = ucp_am_send_nbx(conn.ep, am_id, nullptr, 0, nullptr, 0, &p);
  if (UCS_PTR_IS_ERR(r)) return false;
  if (r != nullptr) {
    auto* req = new (r) SendRequest{};
    req->key = conn.key;
    req->control = true;
  }
  poke(*conn.worker);
  return true;
}

void UcxLink::resume_reading() {
  if (listen_worker_ && listen_worker_->resting) listen_worker_->rest->cancel();
}

void UcxLink::poke(Worker& w) {
  if (w.waiting && w.efd) w.efd->cancel();
}

std::vector<std::string> UcxLink::connection_info() const {
  std::lock_guard lock{info_mutex_};
  std::vector<std::string> out;
  out.reserve(connection_info_.size());
  for (const auto& [key, text] : connection_info_) out.push_back(text);
  return out;
}

}  // namespace amsg::net
