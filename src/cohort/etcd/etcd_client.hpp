#pragma once
// A client of etcd's v3 API through its JSON gateway (etcd 3.4: POST /v3/...,
// keys and values in base64, 64-bit numbers as strings), over libcurl. Just
// what cohort membership needs: leases, a claim by transaction, a range, and
// a watch. One thread uses a client at a time; interrupt() may be called from
// any thread and makes the request in progress, and every later one, throw
// EtcdInterrupted.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace amsg::net::etcd {

// etcd did not answer, or answered with an error.
class EtcdError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// The client was interrupted (its owner is stopping).
class EtcdInterrupted : public EtcdError {
 public:
  EtcdInterrupted() : EtcdError{"interrupted"} {}
};

struct KeyValue {
  std::string key;
  std::string value;
  std::int64_t lease = 0;
  std::int64_t mod_revision = 0;
};

struct WatchEvent {
  bool deleted = false;  // a DELETE (or a lease's expiry); otherwise a PUT
  KeyValue kv;
};

// "etcd://host:port[,host:port...]/prefix" -> the endpoints' base URLs and
// the key prefix (no trailing '/'; "/amsg" when the address has none).
struct Address {
  std::vector<std::string> endpoints;  // http://host:port
  std::string prefix;
};
// Throws std::invalid_argument for an address that is not of that form.
Address parse_address(const std::string& address);

class Client {
 public:
  Client(std::vector<std::string> endpoints, std::chrono::milliseconds request_timeout);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  void interrupt();

  std::int64_t grant(std::chrono::seconds ttl);  // a new lease's id
  std::int64_t keepalive(std::int64_t lease);    // its remaining TTL in seconds; <= 0: it expired
  void revoke(std::int64_t lease);
  // Puts `key` only if it does not exist (expected_mod_revision 0) or was last
  // modified at `expected_mod_revision`; false if it changed meanwhile.
  bool put_if(const std::string& key, const std::string& value, std::int64_t lease, std::int64_t expected_mod_revision);
  std::optional<KeyValue> get(const std::string& key);
  // Deletes `key` if it was last modified at `mod_revision`; false if it changed.
  bool erase_if(const std::string& key, std::int64_t mod_revision);
  // Every key under `prefix` + "/", and the store's revision at that moment.
  std::vector<KeyValue> range(const std::string& prefix, std::int64_t& revision);
  // Streams the changes under `prefix` + "/" from `start_revision` into
  // `on_event` until the stream breaks (throws EtcdError) or the client is
  // interrupted. Dead connections are noticed by TCP keepalive within ~5 s.
  void watch(const std::string& prefix, std::int64_t start_revision,
             const std::function<void(const WatchEvent&)>& on_event);

 private:
  // POSTs `body` to `path` and returns the answer's body (throws EtcdError).
  std::string post(const std::string& path, const std::string& body);
  // Runs one transfer; `stream` (for a watch) gets the bytes as they come.
  std::string perform(const std::string& path, const std::string& body, bool streaming,
                      const std::function<void(std::string&)>& stream);

  std::vector<std::string> endpoints_;
  std::size_t current_ = 0;  // the endpoint in use; the next one after a failure
  std::chrono::milliseconds timeout_;
  void* multi_;  // CURLM*
  std::atomic<bool> interrupted_{false};
};

}  // namespace amsg::net::etcd
