#pragma once
/// @file
/// CURVE security for the ZeroMQ link (tcp:// and ipc://): key pairs, key
/// files, and the options that make a node authenticate and encrypt.
///
/// A node with keys is a CURVE server on every address it listens on and
/// accepts only the clients whose public keys are on its allowlist (checked by
/// a ZAP handler); its connections are CURVE clients of the servers whose keys
/// it was given. Keys are 40-character Z85 text (ZeroMQ's form of 32 bytes).
///
/// @code
///   NodeOptions server;                         NodeOptions client;
///   server.listen = {"tcp://10.0.0.1:5555"};    client.curve.keys = read_curve_secret_file("worker_secret");
///   server.curve.keys = read_curve_secret_file("leader_secret");
///   server.curve.allowed_clients = read_curve_allowlist("clients/");
///                                               client.curve.server_keys["tcp://10.0.0.1:5555"] =
///                                                   read_curve_public_file("leader");
/// @endcode
///
/// Key files are the ZeroMQ certificate text format (czmq's zcert): `amsg keygen NAME`
/// writes NAME (public) and NAME_secret (secret, mode 0600).

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "amsg/export.hpp"

namespace amsg::net {

/// A CURVE key pair, each key 40 characters of Z85.
struct CurveKeyPair {
  /// The public key: given to peers (a client's to the server's allowlist,
  /// a server's to its clients as their server key).
  std::string public_key;
  /// The secret key: never leaves this node.
  std::string secret_key;
};

/// Who this node is and whom it trusts (NodeOptions::curve).
struct CurveOptions {
  /// This node's key pair. Set: every tcp/ipc address it listens on is a CURVE
  /// server, and its connections to addresses with a server key are CURVE clients.
  std::optional<CurveKeyPair> keys{};
  /// Public keys of the clients allowed to connect when listening with keys.
  /// Any other client is refused during the handshake (counted in
  /// NodeStats::handshakes_failed, logged) and gets nothing run.
  std::vector<std::string> allowed_clients{};
  /// The server key of each address this node connects to with CURVE.
  std::map<std::string, std::string> server_keys{};
  /// The server key for addresses not in server_keys (empty: those are plain).
  std::string server_key{};
  /// Listening on a tcp address other than loopback without keys is refused
  /// (anyone who can reach it could run handlers) unless this is set.
  bool allow_insecure = false;
};

/// A new key pair. Throws NetworkError when libzmq was built without CURVE.
[[nodiscard]] AMSG_EXPORT CurveKeyPair generate_curve_key_pair();
/// The public key that belongs to `secret_key`. Throws NetworkError for a bad key.
[[nodiscard]] AMSG_EXPORT std::string curve_public_key(const std::string& secret_key);
/// Whether `key` is 40 characters of Z85 that decode to 32 bytes.
[[nodiscard]] AMSG_EXPORT bool is_curve_key(const std::string& key);

/// Writes `path` (the public certificate) and `path`_secret (the secret one,
/// readable by its owner only). Throws NetworkError when a file cannot be written.
AMSG_EXPORT void write_curve_key_files(const CurveKeyPair& keys, const std::string& path);
/// The key pair of a secret certificate (its public key is checked against the
/// secret one). Throws NetworkError naming the file and what is wrong.
[[nodiscard]] AMSG_EXPORT CurveKeyPair read_curve_secret_file(const std::string& path);
/// The public key of a certificate (public or secret), or of a file that holds
/// just the key. Throws NetworkError naming the file and what is wrong.
[[nodiscard]] AMSG_EXPORT std::string read_curve_public_file(const std::string& path);
/// An allowlist: a directory of public certificates (every regular file in it),
/// or one file: a certificate, or one key per line (lines starting with `#` are comments).
/// Throws NetworkError naming the file and what is wrong.
[[nodiscard]] AMSG_EXPORT std::vector<std::string> read_curve_allowlist(const std::string& file_or_dir);

}  // namespace amsg::net
