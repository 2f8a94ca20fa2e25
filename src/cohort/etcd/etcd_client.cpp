// etcd's v3 JSON gateway over libcurl (etcd_client.hpp). Every request runs on
// a private multi handle so that interrupt() can wake it (curl_multi_wakeup).

#include "cohort/etcd/etcd_client.hpp"

#include <curl/curl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <fmt/format.h>
#include <array>
#include <exception>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string_view>

namespace amsg::net::etcd {
namespace {

using nlohmann::json;

constexpr std::string_view kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    const auto n = (std::uint32_t{static_cast<unsigned char>(in[i])} << 16U) |
                   (std::uint32_t{static_cast<unsigned char>(in[i + 1])} << 8U) | static_cast<unsigned char>(in[i + 2]);
    for (int shift = 18; shift >= 0; shift -= 6) out += kAlphabet[(n >> static_cast<unsigned>(shift)) & 63U];
  }
  if (i < in.size()) {
    auto n = std::uint32_t{static_cast<unsigned char>(in[i])} << 16U;
    if (i + 1 < in.size()) n |= std::uint32_t{static_cast<unsigned char>(in[i + 1])} << 8U;
    out += kAlphabet[(n >> 18U) & 63U];
    out += kAlphabet[(n >> 12U) & 63U];
    out += i + 1 < in.size() ? kAlphabet[(n >> 6U) & 63U] : '=';
    out += '=';
  }
  return out;
}

std::string unbase64(std::string_view in) {
  std::string out;
  std::uint32_t bits = 0;
  int count = 0;
  for (const char c : in) {
    if (c == '=') break;
    const auto at = kAlphabet.find(c);
    if (at == std::string_view::npos) throw EtcdError{"etcd: not base64: " + std::string{in}};
    bits = (bits << 6U) | static_cast<std::uint32_t>(at);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out += static_cast<char>((bits >> static_cast<unsigned>(count)) & 0xFFU);
    }
  }
  return out;
}

// The gateway writes 64-bit numbers as strings and leaves out zero values.
std::int64_t number(const json& object, const char* name) {
  const auto it = object.find(name);
  if (it == object.end()) return 0;
  try {
    if (it->is_string()) return std::stoll(it->get<std::string>());
    return it->get<std::int64_t>();
  } catch (const std::exception&) {
    throw EtcdError{std::string{"etcd: not a number: "} + name};
  }
}

KeyValue key_value(const json& kv) {
  return {unbase64(kv.value("key", "")), unbase64(kv.value("value", "")), number(kv, "lease"),
          number(kv, "mod_revision")};
}

json parse(const std::string& body) {
  auto parsed = json::parse(body, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) throw EtcdError{"etcd: not a JSON object: " + body.substr(0, 200)};
  return parsed;
}

std::string range_end(const std::string& prefix) { return prefix + "0"; }  // '0' follows '/'

size_t on_bytes(char* data, size_t size, size_t count, void* user);

struct Transfer {
  std::string body;
  const std::function<void(std::string&)>* stream = nullptr;
  std::exception_ptr failure;
};

size_t on_bytes(char* data, size_t size, size_t count, void* user) {
  auto& t = *static_cast<Transfer*>(user);
  t.body.append(data, size * count);
  if (t.stream == nullptr) return size * count;
  try {
    (*t.stream)(t.body);
  } catch (...) {
    t.failure = std::current_exception();
    return 0;  // aborts the transfer
  }
  return size * count;
}

// A dead peer (a cut link, a paused host) ends an idle watch within ~5 s.
int on_socket(void* /*user*/, curl_socket_t fd, curlsocktype /*purpose*/) {
  const int count = 3;
  ::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  const unsigned int user_timeout_ms = 5000;
  ::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof user_timeout_ms);
  return CURL_SOCKOPT_OK;
}

}  // namespace

Address parse_address(const std::string& address) {
  constexpr std::string_view kScheme = "etcd://";
  if (address.rfind(kScheme, 0) != 0) throw std::invalid_argument("amsg: not an etcd address: " + address);
  const auto rest = address.substr(kScheme.size());
  const auto slash = rest.find('/');
  const auto hosts = rest.substr(0, slash);
  Address out;
  out.prefix = slash == std::string::npos ? "/amsg" : rest.substr(slash);
  while (out.prefix.size() > 1 && out.prefix.back() == '/') out.prefix.pop_back();
  if (out.prefix == "/") out.prefix = "/amsg";
  std::size_t start = 0;
  while (start <= hosts.size()) {
    const auto comma = hosts.find(',', start);
    const auto host = hosts.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (host.empty() || host.find(':') == std::string::npos)
      throw std::invalid_argument("amsg: an etcd address needs host:port: " + address);
    out.endpoints.push_back("http://" + host);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

Client::Client(std::vector<std::string> endpoints, std::chrono::milliseconds request_timeout)
    : endpoints_{std::move(endpoints)}, timeout_{request_timeout} {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  multi_ = curl_multi_init();
  if (multi_ == nullptr || endpoints_.empty()) throw std::runtime_error("amsg: cannot make an etcd client");
}

Client::~Client() { curl_multi_cleanup(static_cast<CURLM*>(multi_)); }

void Client::interrupt() {
  interrupted_ = true;
  curl_multi_wakeup(static_cast<CURLM*>(multi_));
}

std::string Client::perform(const std::string& path, const std::string& body, bool streaming,
                            const std::function<void(std::string&)>& stream) {
  auto* multi = static_cast<CURLM*>(multi_);
  std::string failures;
  for (std::size_t attempt = 0; attempt < endpoints_.size(); ++attempt) {
    if (interrupted_) throw EtcdInterrupted{};
    const std::string url = endpoints_[current_] + path;
    Transfer transfer;
    if (streaming) transfer.stream = &stream;
    CURL* easy = curl_easy_init();
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    // etcd's WithRequireLeader: a member cut off from its cluster's leader
    // ends the request (a watch there would otherwise stay open and silent).
    headers = curl_slist_append(headers, "Grpc-Metadata-hasleader: true");
    curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
    curl_easy_setopt(easy, CURLOPT_NOPROXY, "*");  // etcd is dialled directly, whatever http_proxy says
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body.c_str());
    curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_bytes);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, &transfer);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_.count()));
    if (!streaming) curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_.count()));
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPIDLE, 2L);
    curl_easy_setopt(easy, CURLOPT_TCP_KEEPINTVL, 1L);
    curl_easy_setopt(easy, CURLOPT_SOCKOPTFUNCTION, on_socket);
    curl_multi_add_handle(multi, easy);
    int running = 1;
    while (running > 0 && !interrupted_) {
      curl_multi_perform(multi, &running);
      if (running > 0) curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
    }
    CURLcode result = CURLE_OK;
    int left = 0;
    while (CURLMsg* message = curl_multi_info_read(multi, &left)) {
      if (message->msg == CURLMSG_DONE) result = message->data.result;
    }
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    curl_multi_remove_handle(multi, easy);
    curl_easy_cleanup(easy);
    curl_slist_free_all(headers);
    if (interrupted_) throw EtcdInterrupted{};
    if (transfer.failure) std::rethrow_exception(transfer.failure);
    if (result != CURLE_OK) {
      failures += (failures.empty() ? "" : "; ") + url + ": " + curl_easy_strerror(result);
      current_ = (current_ + 1) % endpoints_.size();
      continue;
    }
    if (status >= 500) {  // this member cannot serve now (no leader, shutting down): try the next
      failures += (failures.empty() ? "" : "; ") + fmt::format("{}: HTTP {}", url, status);
      current_ = (current_ + 1) % endpoints_.size();
      continue;
    }
    if (status != 200) {
      auto parsed = json::parse(transfer.body, nullptr, false);
      const std::string message = parsed.is_object() && parsed.contains("message")
                                      ? parsed["message"].get<std::string>()
                                      : transfer.body.substr(0, 200);
      throw EtcdError{fmt::format("etcd {}: HTTP {}: {}", url, status, message)};
    }
    return std::move(transfer.body);
  }
  throw EtcdError{"etcd unreachable: " + failures};
}

std::string Client::post(const std::string& path, const std::string& body) { return perform(path, body, false, {}); }

std::int64_t Client::grant(std::chrono::seconds ttl) {
  const auto answer = parse(post("/v3/lease/grant", json{{"TTL", std::to_string(ttl.count())}}.dump()));
  const auto id = number(answer, "ID");
  if (id == 0) throw EtcdError{"etcd: no lease granted: " + answer.value("error", answer.dump())};
  return id;
}

std::int64_t Client::keepalive(std::int64_t lease) {
  const auto answer = parse(post("/v3/lease/keepalive", json{{"ID", std::to_string(lease)}}.dump()));
  if (!answer.contains("result")) throw EtcdError{"etcd: lease keepalive failed: " + answer.dump()};
  return number(answer["result"], "TTL");
}

void Client::revoke(std::int64_t lease) { post("/v3/lease/revoke", json{{"ID", std::to_string(lease)}}.dump()); }

bool Client::put_if(const std::string& key, const std::string& value, std::int64_t lease,
                    std::int64_t expected_mod_revision) {
  const json compare =
      expected_mod_revision == 0
          ? json{{"key", base64(key)}, {"target", "CREATE"}, {"result", "EQUAL"}, {"create_revision", "0"}}
          : json{{"key", base64(key)},
                 {"target", "MOD"},
                 {"result", "EQUAL"},
                 {"mod_revision", std::to_string(expected_mod_revision)}};
  const json put{{"key", base64(key)}, {"value", base64(value)}, {"lease", std::to_string(lease)}};
  const json txn{{"compare", json::array({compare})}, {"success", json::array({json{{"request_put", put}}})}};
  return parse(post("/v3/kv/txn", txn.dump())).value("succeeded", false);
}

bool Client::erase_if(const std::string& key, std::int64_t mod_revision) {
  const json compare{
      {"key", base64(key)}, {"target", "MOD"}, {"result", "EQUAL"}, {"mod_revision", std::to_string(mod_revision)}};
  const json txn{{"compare", json::array({compare})},
                 {"success", json::array({json{{"request_delete_range", json{{"key", base64(key)}}}}})}};
  return parse(post("/v3/kv/txn", txn.dump())).value("succeeded", false);
}

std::optional<KeyValue> Client::get(const std::string& key) {
  const auto answer = parse(post("/v3/kv/range", json{{"key", base64(key)}}.dump()));
  if (!answer.contains("kvs") || answer["kvs"].empty()) return std::nullopt;
  return key_value(answer["kvs"][0]);
}

std::vector<KeyValue> Client::range(const std::string& prefix, std::int64_t& revision) {
  const auto answer =
      parse(post("/v3/kv/range", json{{"key", base64(prefix + "/")}, {"range_end", base64(range_end(prefix))}}.dump()));
  revision = answer.contains("header") ? number(answer["header"], "revision") : 0;
  std::vector<KeyValue> out;
  if (answer.contains("kvs")) {
    for (const auto& kv : answer["kvs"]) out.push_back(key_value(kv));
  }
  return out;
}

void Client::watch(const std::string& prefix, std::int64_t start_revision,
                   const std::function<void(const WatchEvent&)>& on_event) {
  const json create{{"key", base64(prefix + "/")},
                    {"range_end", base64(range_end(prefix))},
                    {"start_revision", std::to_string(start_revision)}};
  // The gateway writes one JSON object per line: take each complete one.
  const std::function<void(std::string&)> stream = [&](std::string& buffer) {
    std::size_t end = 0;
    while ((end = buffer.find('\n')) != std::string::npos) {
      const auto line = buffer.substr(0, end);
      buffer.erase(0, end + 1);
      if (line.empty()) continue;
      const auto message = parse(line);
      if (message.contains("error")) throw EtcdError{"etcd watch: " + message["error"].dump()};
      const auto& result = message.value("result", json::object());
      if (result.value("canceled", false))
        throw EtcdError{"etcd watch cancelled: " + result.value("cancel_reason", std::string{"compacted"})};
      if (!result.contains("events")) continue;
      for (const auto& event : result["events"]) {
        on_event(WatchEvent{event.value("type", "PUT") == "DELETE", key_value(event.value("kv", json::object()))});
      }
    }
  };
  perform("/v3/watch", json{{"create_request", create}}.dump(), true, stream);
  throw EtcdError{"etcd watch: the stream ended"};
}

}  // namespace amsg::net::etcd
