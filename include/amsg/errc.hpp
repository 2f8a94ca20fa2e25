#pragma once
/// @file
/// amsg::errc: why a message did not end ok, as a code programs can test.
///
/// Every error or cancelled Notification carries one in Notification::code
/// (a std::error_code in amsg's category); the text form ("{id}:err(...)") is
/// unchanged. Compare codes, not strings:
///
/// @code
///   if (n.code == amsg::errc::timeout) retry();
/// @endcode
///
/// Whether the handler may have run depends on the code; docs/wire-protocol.md
/// ("Outcomes a sender sees") says which, for each.

#include <system_error>

#include "amsg/export.hpp"

namespace amsg {

/// Why a message or call did not end ok: the value of Notification::code, in amsg's std::error_category.
enum class errc : int {
  handler_error = 1,     ///< the handler threw (or the runtime failed the message); the text says how
  unknown_type,          ///< no handler for the message type at the receiver
  payload_too_large,     ///< the payload exceeds the receiver's (or the peer's announced) limit
  cancelled,             ///< shutdown cancelled the message (Outcome::cancelled)
  timeout,               ///< the message's deadline passed
  peer_lost,             ///< the peer went silent while the call was outstanding
  peer_unreachable,      ///< the connection to the peer never completed its hello in time
  remote_shutting_down,  ///< the receiving node is shutting down and took no new messages
  node_shutting_down,    ///< this node shut down before the call ended
  version_mismatch,      ///< the peer speaks another protocol version
  malformed,             ///< a frame could not be decoded
  bad_address,           ///< the peer's address is malformed or names no supported link
  overloaded,            ///< the receiver refused the message: its sender was over its budget there (not run)
  abandoned,             ///< a cohort fan-out completed by its policy before this worker's outcome came (may have run)
  disconnected,          ///< Node::disconnect() came before the message was sent (not run)
};

/// amsg's error category (name "amsg"); its messages are the texts of the outcomes.
[[nodiscard]] AMSG_EXPORT const std::error_category& error_category() noexcept;
/// An error code in amsg's category, so that `code == amsg::errc::timeout` compares.
[[nodiscard]] AMSG_EXPORT std::error_code make_error_code(errc e) noexcept;

}  // namespace amsg

/// @cond
template <>
struct std::is_error_code_enum<amsg::errc> : std::true_type {};
/// @endcond
