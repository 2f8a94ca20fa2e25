#pragma once
// A cohort member's etcd key and value (docs/wire-protocol.md, "Cohorts
// through etcd"): the key PREFIX/RANK in decimal, the value a JSON object
// {"rank", "address", "identity", "handlers"}.

#include <cstdint>
#include <optional>
#include <string>

#include "amsg/net/etcd_membership.hpp"
#include "cohort/etcd/etcd_client.hpp"

namespace amsg::net::etcd {

std::string member_key(const std::string& prefix, std::uint32_t rank);
std::string member_value(const EtcdMember& m);
// The rank a key names; nullopt for a key that is not PREFIX/DECIMAL.
std::optional<std::uint32_t> rank_of(const std::string& prefix, const std::string& key);
// The member a key-value names; nullopt for one that is not a member's (it is ignored).
std::optional<EtcdMember> parse_member(const std::string& prefix, const KeyValue& kv);

}  // namespace amsg::net::etcd
