#pragma once
// UcxLink: the UCX link (ucx://HOST:PORT addresses), on UCP's active-message API.
//
// Two UCP workers per node, made when the first ucx:// address is used: one for
// the connections this node dials, one for those it accepts, each progressed on
// the session's executor. By default the node sleeps on a worker's event fd
// (ucp_worker_arm, then an Asio wait), so an idle node uses no CPU;
// UcxOptions::spin and busy_poll trade CPU for latency. The listening worker is
// not progressed while the session takes no frames, so its clients' frames stay
// in their senders and the transport (backpressure, as ZeroMQ's high-water
// marks give), while the connections this node dialed go on: a handler that
// calls another node gets its answer even while this node is saturated. Connections are
// UCP endpoints made through UCX's sockaddr connection manager (a listener and
// sockaddr endpoints); UCX picks the transport (shared memory, tcp, RDMA) per
// connection. Every endpoint is in UCP_ERR_HANDLING_MODE_PEER, so a peer that
// dies is noticed by UCX (and by the session's heartbeats).
//
// A frame travels as one AM (ids in docs/wire-protocol.md, "UCX"), sent with
// UCP_AM_SEND_FLAG_REPLY so the receiver knows the endpoint it came on: a
// frame the session split (a large MSG or REPLY) as the AM's header (the
// frame's header) and data (its payload, sent from the caller's buffer),
// any other as the data of an AM without header. Large data arrives by
// rendezvous straight into the buffer the session keeps (a payload: the
// handler's or caller's, with no copy); a frame over the limit is never read
// and its connection is closed.
//
// UCX calls back from inside ucp_worker_progress(), where it must not be
// re-entered: the callbacks only record what happened, and the progress loop
// tells the session afterwards.
//
// A listening node that closes tells each client so (an AM behind its last
// frames) and closes the client's endpoint once the client has answered, when
// it has taken every frame before (or after the linger): closing an endpoint at
// once could lose frames UCX has sent but the peer has not yet taken.
//
// A dialed connection keeps the frames sent before it is up (and while it is
// re-dialed after a failure, every 100 ms doubling to 1 s) and sends them once a
// probe AM has gone through: what a ZeroMQ DEALER does. UCX queues sends without
// bound, so the link counts the sends UCX has not finished per connection and
// says `again` at the high-water mark.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <ucp/api/ucp.h>
#include <asio/awaitable.hpp>
#include <asio/posix/stream_descriptor.hpp>

#include "amsg/net/ucx_options.hpp"
#include "link/link.hpp"

namespace amsg::net {

struct SendRequest;

class UcxLink final : public Link {
 public:
  // `max_frame_bytes`: larger inbound frames are refused unread and close their
  // connection. `channel_hwm` and `channel_bytes`: frames, and their bytes, a
  // dialed connection may hold unsent; `client_hwm`: frames to one client that
  // UCX may hold unsent.
  UcxLink(UcxOptions options, std::size_t max_frame_bytes, std::size_t channel_hwm, std::size_t client_hwm,
          std::size_t channel_bytes);
  ~UcxLink() override;
  UcxLink(const UcxLink&) = delete;
  UcxLink& operator=(const UcxLink&) = delete;

  [[nodiscard]] bool serves(std::string_view address) const override;
  void check_address(const std::string& address) const override;
  void open(const asio::any_io_executor& executor, ListenerEvents& listener) override;
  std::string listen(const std::string& address) override;
  std::unique_ptr<Channel> dial(const std::string& address, ChannelEvents& events) override;
  LinkSend send_to_client(std::string_view client, Frame& frame) override;
  void resume_reading() override;
  void stop_waiting() override;
  bool wait_clients_writable(std::chrono::milliseconds timeout) override;
  void close(std::chrono::milliseconds linger) override;

  // What UCX says of each dialed connection that is up (ucp_ep_print_info):
  // which transport carries its AMs. Any thread; for tests that a silent
  // fallback from shared memory to tcp must fail.
  [[nodiscard]] std::vector<std::string> connection_info() const;

  struct Worker;
  struct Conn;
  struct ChannelState;
  struct Client;
  struct Inbound;
  struct Rendezvous;

 private:
  class UcxChannel;

  void start_worker();
  void make_worker(Worker& w);
  void destroy_worker(Worker& w);
  asio::awaitable<void> progress_loop(Worker& w);
  // After ucp_worker_progress(): acts on what the callbacks recorded. True when
  // anything happened.
  bool dispatch();
  void accept(ucp_conn_request_h request);
  void fail_key(std::uint64_t key);
  // Progresses the worker until `until` or done() (the executor has stopped).
  template <class Done>
  bool progress_until(std::chrono::steady_clock::time_point until, Done done);
  void poke(Worker& w);
  // Whether the listening worker must rest: the session takes no frames and some wait already.
  [[nodiscard]] bool listen_paused();

  LinkSend send_on(Conn& conn, unsigned am_id, Frame& frame);
  bool send_control(Conn& conn, unsigned am_id);
  void connect_channel(ChannelState& channel);
  void channel_up(ChannelState& channel);
  void flush_waiting(ChannelState& channel);
  [[nodiscard]] bool channel_full(const ChannelState& channel) const;
  void fail_channel(ChannelState& channel, const char* why);
  void close_channel(ChannelState& channel);
  void drop_client(const std::string& name);
  void close_endpoint(Worker& w, ucp_ep_h ep);
  void forget(Conn& conn);
  void in_order(Inbound in);
  void deliver(Inbound& in);
  void release(Inbound& in);

  // UCX callbacks (they record, nothing more).
  static ucs_status_t on_am_to_listener(void* arg, const void* header, std::size_t header_length, void* data,
                                        std::size_t length, const ucp_am_recv_param_t* param);
  static ucs_status_t on_am_to_dialer(void* arg, const void* header, std::size_t header_length, void* data,
                                      std::size_t length, const ucp_am_recv_param_t* param);
  static ucs_status_t on_probe(void* arg, const void* header, std::size_t header_length, void* data, std::size_t length,
                               const ucp_am_recv_param_t* param);
  static ucs_status_t on_closing(void* arg, const void* header, std::size_t header_length, void* data,
                                 std::size_t length, const ucp_am_recv_param_t* param);
  static ucs_status_t on_closed(void* arg, const void* header, std::size_t header_length, void* data,
                                std::size_t length, const ucp_am_recv_param_t* param);
  static void on_sent(void* request, ucs_status_t status, void* user_data);
  static void on_received(void* request, ucs_status_t status, std::size_t length, void* user_data);
  static void on_connection_request(ucp_conn_request_h request, void* arg);
  static void on_endpoint_error(void* arg, ucp_ep_h ep, ucs_status_t status);
  ucs_status_t on_am(bool to_listener, const void* header, std::size_t header_length, void* data, std::size_t length,
                     const ucp_am_recv_param_t* param);
  void on_send_done(const SendRequest& request, ucs_status_t status);

  UcxOptions options_;
  std::size_t max_frame_bytes_;
  std::size_t channel_hwm_;
  std::size_t channel_bytes_;
  std::size_t client_hwm_;
  asio::any_io_executor executor_;
  ListenerEvents* listener_events_ = nullptr;

  ucp_context_h context_ = nullptr;
  std::size_t max_am_header_ =
      std::numeric_limits<std::size_t>::max();  // UCX's limit on an AM's header (ucp_worker_query)
  std::unique_ptr<Worker> dial_worker_;
  std::unique_ptr<Worker> listen_worker_;
  ucp_listener_h listener_ = nullptr;
  bool stopping_ = false;

  std::uint64_t next_key_ = 1;
  std::unordered_map<std::uint64_t, Conn*> conns_;  // by key: every endpoint's (one key per endpoint made)
  std::unordered_map<ucp_ep_h, Conn*> by_endpoint_;
  std::map<std::string, std::unique_ptr<Client>, std::less<>> clients_;
  std::vector<std::weak_ptr<ChannelState>> channels_;

  // Recorded by the callbacks, acted on by dispatch().
  std::vector<Inbound> inbound_;
  std::deque<Inbound> held_;                // clients' frames the session could not take yet
  std::vector<std::uint64_t> probes_done_;  // channels whose probe went through
  std::vector<std::uint64_t> writable_;
  std::vector<std::uint64_t> failed_keys_;  // frames too large, probes that failed
  std::mutex callbacks_mutex_;              // UCX may call these two from its own thread
  std::vector<ucp_conn_request_h> connection_requests_;
  std::vector<std::pair<ucp_ep_h, ucs_status_t>> endpoint_errors_;
  std::vector<void*> closing_;  // endpoint-close requests not yet complete
  // Closing: the connections whose listener said kClosing, to be answered at once.
  std::vector<std::uint64_t> closings_;

  mutable std::mutex info_mutex_;
  std::map<std::uint64_t, std::string> connection_info_;
};

}  // namespace amsg::net
