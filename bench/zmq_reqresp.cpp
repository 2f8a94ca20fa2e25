// Raw libzmq request/response with W requests outstanding: what ZeroMQ itself does
// for the pattern `amsg bench --scenario reqresp` measures (64 calls outstanding,
// 64-byte payloads), with no active-message layer on top.
//
// A forked child binds a ROUTER that echoes every frame; the parent's DEALER
// keeps W frames in flight and sends the next one as each echo comes back. With
// B > 1 each frame stands for B requests (B * 64 bytes), the way a layer that
// batches requests into one frame per burst uses the transport: W frames of B
// requests = W * B requests outstanding.
//
//   zmq_reqresp ENDPOINT WINDOW REQUESTS [BATCH]
//   zmq_reqresp ipc:///tmp/x.ipc 64 1000000        # 64 outstanding, one frame each
//   zmq_reqresp ipc:///tmp/x.ipc 1 1000000 64      # 64 outstanding, one frame per burst
//
// Prints one line of key=value pairs; requests_per_s counts requests (frames * B).

#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <zmq.hpp>

namespace {

constexpr std::size_t kPayload = 64;

void serve(const std::string& endpoint, long frames) {
  zmq::context_t ctx;
  zmq::socket_t router{ctx, zmq::socket_type::router};
  router.set(zmq::sockopt::sndhwm, 0);
  router.set(zmq::sockopt::rcvhwm, 0);
  router.bind(endpoint);
  for (long i = 0; i < frames; ++i) {
    zmq::message_t id;
    zmq::message_t body;
    (void)router.recv(id);
    (void)router.recv(body);
    router.send(id, zmq::send_flags::sndmore);
    router.send(body, zmq::send_flags::none);
  }
  // The client closes first; linger lets the last echoes go out.
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: zmq_reqresp ENDPOINT WINDOW REQUESTS [BATCH]\n");
    return 2;
  }
  const std::string endpoint = argv[1];
  const long window = std::atol(argv[2]);
  const long batch = argc > 4 ? std::atol(argv[4]) : 1;
  const long frames = std::atol(argv[3]) / batch;
  if (window < 1 || batch < 1 || frames < window) {
    std::fprintf(stderr, "zmq_reqresp: need WINDOW >= 1, BATCH >= 1, REQUESTS >= WINDOW * BATCH\n");
    return 2;
  }
  const pid_t child = ::fork();
  if (child == 0) {
    serve(endpoint, frames + 1);  // + the warm-up frame
    ::_exit(0);
  }
  int status = 1;
  {
    zmq::context_t ctx;
    zmq::socket_t dealer{ctx, zmq::socket_type::dealer};
    dealer.set(zmq::sockopt::sndhwm, 0);
    dealer.set(zmq::sockopt::rcvhwm, 0);
    dealer.set(zmq::sockopt::linger, 1000);
    dealer.connect(endpoint);
    const std::string body(kPayload * static_cast<std::size_t>(batch), 'x');
    zmq::message_t reply;
    dealer.send(zmq::buffer(body), zmq::send_flags::none);  // warm-up: the connection is up
    (void)dealer.recv(reply);

    const auto t0 = std::chrono::steady_clock::now();
    long sent = 0;
    long received = 0;
    for (; sent < window; ++sent) dealer.send(zmq::buffer(body), zmq::send_flags::none);
    while (received < frames) {
      (void)dealer.recv(reply);
      ++received;
      if (sent < frames) {
        dealer.send(zmq::buffer(body), zmq::send_flags::none);
        ++sent;
      }
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double requests = static_cast<double>(frames * batch);
    std::printf("test=reqresp endpoint=%s window=%ld batch=%ld outstanding=%ld requests=%.0f requests_per_s=%.0f\n",
                endpoint.c_str(), window, batch, window * batch, requests, requests / secs);
  }
  if (::waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
  return 0;
}
