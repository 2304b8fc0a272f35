#pragma once
// fence_vguard's client side of fence_xvm's wire protocol (protocol xvm / virt), to an unmodified fence_virtd
// (fence-virt-protocol.md §0-§3). The packet, signature and challenge-response come from the shared codec
// (proto/fencevirt/fence_virt.h); this file only does the transports:
// - multicast: a TCP listener on *:ipport bound before anything is sent, then one signed 176-byte packet per
//   local address of the group's family (callback address = that address), from a fresh UDP socket with
//   IP_MULTICAST_IF and TTL 2, re-signed with fresh random bytes for every copy, one random seqno per
//   invocation, re-sent every `retrans` tenths of a second until `timeout`; the first fence_virtd that calls
//   back is accepted (one connection) and the listener closed;
// - tcp / vsock: connect to ipaddr:ipport or cid:ipport and send the same signed packet (no callback
// address);
// - then, on that stream: the client side of the challenge-response (C1 first) unless auth is none, and one
//   response byte or 253 + host records until the all-empty record (the trailing byte after it is not read);
// - vmchannel / serial (protocol virt): the 74-byte unauthenticated request, then scan for the magic and read
//   the response byte (or the host list).
// Every step has one deadline: `timeout` seconds for the whole call (fence_xvm gives each step the full
// timeout, and its multicast loop never ends when timeout*10 < retrans; here it ends at the deadline).
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "agent.h"
#include "fence_virt.h"
#include "options.h"
#include "result.h"

namespace vguard::agent {

using XvmClock = std::chrono::steady_clock;

/// The wire op of an agent op (monitor = DEVSTATUS, list and list-status = HOSTLIST); nullopt for null,
/// metadata and validate-all, which never reach the network.
std::optional<fencevirt::Op> xvm_op(Op op);

/// The 176-byte signed request of an agent op for TCP/vsock (callback fields zero). Exposed for tests.
/// `hash` must be a valid hash name (checked by the option parser).
std::string xvm_stream_request(const Options& o, std::string_view key, std::uint32_t seqno);

/// Runs one request with the options' transport (not unix_socket) and returns fence_virtd's answer.
/// `key` is the key file's content, empty when xvm_needs_key() is false.
/// Errors: timed_out ("no callback ..." when no fence_virtd called back in multicast mode), not_running
/// (connect failed), io_error, bad_mac (fence_virtd's answer to our challenge is wrong: wrong key or auth),
/// bad_frame (malformed answer), bad_config (bad serial_params, no local address).
Result<XvmAnswer> xvm_call(const Options& o, const std::string& key);

/// The exchange on a connected stream (tcp, vsock, or the multicast callback), after the request was sent:
/// the challenge-response unless auth is none, then the answer. Exposed for tests (socketpair).
Result<XvmAnswer> xvm_exchange(int fd, fencevirt::Hash auth, std::string_view key,
                               XvmClock::time_point deadline);

/// The serial / vmchannel exchange on a connected fd: writes the 74-byte request, skips bytes up to the
/// magic, reads the response byte or the host list. Exposed for tests (socketpair, pty).
Result<XvmAnswer> xvm_serial_exchange(int fd, const fencevirt::SerialRequest& req,
                                      XvmClock::time_point deadline);

}  // namespace vguard::agent
