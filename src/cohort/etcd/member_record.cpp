// A cohort member's etcd key and value (member_record.hpp).

#include "cohort/etcd/member_record.hpp"

#include <charconv>
#include <nlohmann/json.hpp>

namespace amsg::net::etcd {

std::string member_key(const std::string& prefix, std::uint32_t rank) { return prefix + "/" + std::to_string(rank); }

std::string member_value(const EtcdMember& m) {
  return nlohmann::json{{"rank", m.rank}, {"address", m.address}, {"identity", m.identity}, {"handlers", m.handlers}}
      .dump();
}

// The rank a key names; nullopt for a key that is not PREFIX/DECIMAL.
std::optional<std::uint32_t> rank_of(const std::string& prefix, const std::string& key) {
  if (key.size() <= prefix.size() + 1 || key.compare(0, prefix.size() + 1, prefix + "/") != 0) return std::nullopt;
  const char* first = key.data() + prefix.size() + 1;
  const char* last = key.data() + key.size();
  std::uint32_t rank = 0;
  const auto [end, ec] = std::from_chars(first, last, rank);
  if (ec != std::errc{} || end != last) return std::nullopt;
  return rank;
}

// The member a key-value names; nullopt for one that is not a member's (it is ignored).
std::optional<EtcdMember> parse_member(const std::string& prefix, const KeyValue& kv) {
  const auto rank = rank_of(prefix, kv.key);
  if (!rank) return std::nullopt;
  const auto value = nlohmann::json::parse(kv.value, nullptr, false);
  if (!value.is_object() || !value.contains("address") || !value["address"].is_string()) return std::nullopt;
  EtcdMember m;
  m.rank = *rank;
  m.address = value["address"].get<std::string>();
  if (value.contains("identity") && value["identity"].is_string()) m.identity = value["identity"].get<std::string>();
  if (value.contains("handlers") && value["handlers"].is_array()) {
    for (const auto& h : value["handlers"]) {
      if (h.is_string()) m.handlers.push_back(h.get<std::string>());
    }
  }
  m.lease = kv.lease;
  return m;
}

}  // namespace amsg::net::etcd
