// UcxLink: UCX's callbacks. They run inside ucp_worker_progress(), where UCX
// must not be re-entered: they record what happened (frames in their
// connection's order, completed sends, failures), and the progress loop acts
// on it afterwards (ucx_progress.cpp).

#include <algorithm>
#include <mutex>

#include "link/ucx_link.hpp"
#include "link/ucx_link_state.hpp"

namespace amsg::net {

ucs_status_t UcxLink::on_am_to_listener(void* arg, const void* header, std::size_t header_length, void* data,
                                        std::size_t length, const ucp_am_recv_param_t* param) {
  return static_cast<UcxLink*>(arg)->on_am(true, header, header_length, data, length, param);
}

ucs_status_t UcxLink::on_am_to_dialer(void* arg, const void* header, std::size_t header_length, void* data,
                                      std::size_t length, const ucp_am_recv_param_t* param) {
  return static_cast<UcxLink*>(arg)->on_am(false, header, header_length, data, length, param);
}

ucs_status_t UcxLink::on_probe(void* /*arg*/, const void* /*header*/, std::size_t /*header_length*/, void* /*data*/,
                               std::size_t /*length*/, const ucp_am_recv_param_t* /*param*/) {
  return UCS_OK;
}

// On a dialing node: the listener closes. Answered in its turn among the
// connection's frames (deliver()), so the answer says that all before it were taken.
ucs_status_t UcxLink::on_closing(void* arg, const void* /*header*/, std::size_t /*header_length*/, void* /*data*/,
                                 std::size_t /*length*/, const ucp_am_recv_param_t* param) {
  auto* self = static_cast<UcxLink*>(arg);
  if ((param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP) == 0) return UCS_OK;
  auto found = self->by_endpoint_.find(param->reply_ep);
  if (found == self->by_endpoint_.end() || !found->second->dialed) return UCS_OK;
  Conn& conn = *found->second;
  if (self->stopping_) {
    // This node closes too and takes no more frames: answered at once (close()).
    self->closings_.push_back(conn.key);
    return UCS_OK;
  }
  Inbound in;
  in.key = conn.key;
  in.sequence = conn.arrived++;
  in.worker = conn.worker->handle;
  in.closing = true;
  self->in_order(std::move(in));
  return UCS_OK;
}

// On a listening node that closes: a client has taken every frame sent to it.
ucs_status_t UcxLink::on_closed(void* arg, const void* /*header*/, std::size_t /*header_length*/, void* /*data*/,
                                std::size_t /*length*/, const ucp_am_recv_param_t* param) {
  auto* self = static_cast<UcxLink*>(arg);
  if ((param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP) == 0) return UCS_OK;
  auto found = self->by_endpoint_.find(param->reply_ep);
  if (found != self->by_endpoint_.end() && !found->second->dialed) found->second->close_done = true;
  return UCS_OK;
}

// The frame is the AM's header followed by its data (either may be empty).
ucs_status_t UcxLink::on_am(bool to_listener, const void* header, std::size_t header_length, void* data,
                            std::size_t length, const ucp_am_recv_param_t* param) {
  if ((param->recv_attr & UCP_AM_RECV_ATTR_FIELD_REPLY_EP) == 0) return UCS_OK;  // not from a peer of ours
  auto found = by_endpoint_.find(param->reply_ep);
  if (found == by_endpoint_.end() || found->second->dialed == to_listener) return UCS_OK;
  Conn& conn = *found->second;
  Inbound in;
  in.key = conn.key;
  in.sequence = conn.arrived++;
  in.to_listener = to_listener;
  in.worker = conn.worker->handle;
  if (length > max_frame_bytes_ || header_length > max_frame_bytes_ - length) {
    // Never read: in its place among the connection's frames (those before it
    // are delivered), the connection closes.
    in.oversize = true;
    in_order(std::move(in));
    return UCS_OK;
  }
  if (header_length != 0) {  // valid only during this call
    in.head = Payload::copy_of(std::span<const std::byte>{static_cast<const std::byte*>(header), header_length});
  }
  if ((param->recv_attr & UCP_AM_RECV_ATTR_FLAG_RNDV) != 0) {
    // Rendezvous: the bytes come straight into the buffer the session reads
    // (or, after a head, keeps as the message's payload).
    auto* pending = new Rendezvous{this, std::move(in)};
    pending->in.owned = Payload{length};
    pending->in.data = pending->in.owned.data();
    pending->in.size = length;
    ucp_request_param_t p{};
    p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
    p.cb.recv_am = &on_received;
    p.user_data = pending;
    void* r = ucp_am_recv_data_nbx(conn.worker->handle, data, pending->in.owned.data(), length, &p);
    if (r == nullptr || UCS_PTR_IS_ERR(r)) {
      pending->in.skip = UCS_PTR_IS_ERR(r);
      in_order(std::move(pending->in));
      delete pending;
    }
    return UCS_OK;
  }
  in.data = static_cast<const std::byte*>(data);
  in.size = length;
  if ((param->recv_attr & UCP_AM_RECV_ATTR_FLAG_DATA) != 0 && length > 0 && in.head.empty()) {
    in.descriptor = data;
    in_order(std::move(in));
    return UCS_INPROGRESS;  // kept until delivered
  }
  // Copied now (after a head: the payload, which the session keeps).
  in.owned = Payload::copy_of(std::span<const std::byte>{in.data, length});
  in.data = in.owned.data();
  in_order(std::move(in));
  return UCS_OK;
}

// Frames reach the session in the order they arrived on their connection: one
// whose bytes are still coming by rendezvous holds back those behind it.
void UcxLink::in_order(Inbound in) {
  auto it = conns_.find(in.key);
  if (it == conns_.end()) {
    release(in);
    return;
  }
  Conn& conn = *it->second;
  if (in.sequence != conn.ready) {
    conn.early.emplace(in.sequence, std::move(in));
    return;
  }
  ++conn.ready;
  if (!in.skip) inbound_.push_back(std::move(in));
  for (auto next = conn.early.begin(); next != conn.early.end() && next->first == conn.ready;
       next = conn.early.erase(next)) {
    ++conn.ready;
    if (!next->second.skip) inbound_.push_back(std::move(next->second));
  }
}

void UcxLink::on_received(void* request, ucs_status_t status, std::size_t /*length*/, void* user_data) {
  auto* pending = static_cast<Rendezvous*>(user_data);
  if (status != UCS_OK) pending->in.skip = true;  // lost with its connection, or cancelled
  pending->link->in_order(std::move(pending->in));
  delete pending;
  ucp_request_free(request);
}

void UcxLink::on_sent(void* request, ucs_status_t status, void* user_data) {
  auto* req = static_cast<SendRequest*>(request);
  static_cast<UcxLink*>(user_data)->on_send_done(*req, status);
  req->~SendRequest();
  ucp_request_free(request);
}

// Only our own tables are touched here: no call back into UCX or the session.
void UcxLink::on_send_done(const SendRequest& request, ucs_status_t status) {
  const std::uint64_t key = request.key;
  auto it = conns_.find(key);
  if (it == conns_.end()) return;  // an endpoint closed since
  Conn& c = *it->second;
  if (request.control) {
    // A kClosing that cannot arrive will not be answered: the listener need not wait for it.
    if (status != UCS_OK && !c.dialed) c.close_done = true;
    return;
  }
  if (request.probe) {
    if (status == UCS_OK) {
      probes_done_.push_back(key);
    } else {
      failed_keys_.push_back(key);
    }
    return;
  }
  if (c.sending > 0) --c.sending;
  c.sending_bytes -= std::min(request.frame.size(), c.sending_bytes);
  // dispatch() sends what waits, or says there is room
  if (c.dialed) {
    const auto& channel = static_cast<ChannelState&>(c);
    if (!channel.waiting.empty() || (c.want_out && !channel_full(channel))) writable_.push_back(key);
  } else if (c.want_out && c.sending < client_hwm_) {
    writable_.push_back(key);
  }
}

void UcxLink::on_connection_request(ucp_conn_request_h request, void* arg) {
  auto* self = static_cast<UcxLink*>(arg);
  std::lock_guard lock{self->callbacks_mutex_};
  self->connection_requests_.push_back(request);
}

void UcxLink::on_endpoint_error(void* arg, ucp_ep_h ep, ucs_status_t status) {
  auto* self = static_cast<UcxLink*>(arg);
  std::lock_guard lock{self->callbacks_mutex_};
  self->endpoint_errors_.emplace_back(ep, status);
}

}  // namespace amsg::net
