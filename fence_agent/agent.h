#pragma once
// fence_vguard's decisions, without I/O: what to print and which exit code to return for a parse result, a
// key file failure, and vguardd's answer. Exit codes are fence_xvm's (fence-virt-protocol.md §6.3): 0 success
// or "on", 1 failure (timeouts and transport errors included), 2 "off" (only when vguardd's verified answer
// says so, and only for status), 3 permission denied.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "message.h"
#include "options.h"
#include "result.h"

namespace vguard::agent {

inline constexpr int kExitSuccess = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitOff = 2;
inline constexpr int kExitDenied = 3;

/// What the agent prints (stdout, stderr; each line ends with '\n') and how it exits.
struct Outcome {
  int exit_code = kExitSuccess;
  std::string out;
  std::string err;
  friend bool operator==(const Outcome&, const Outcome&) = default;
};

/// The steps of fence_xvm's main() that need no I/O, in its order: -h, -V, "No domain specified!" (every op
/// but monitor, list, list-status and metadata needs a target, null and validate-all included), parse errors
/// (usage on stdout, except for validate-all; exit 1), metadata, and null (answered locally with exit 1: no
/// vguardd action exists for it, and fence_virtd answers it with 1 too).
/// nullopt means: go on (check the key, then validate-all or the request). r.diagnostics are not part of the
/// returned Outcome; the caller prints them first.
std::optional<Outcome> preflight(const ParseResult& r);

/// The Outcome when the key file cannot be used: exit 1, "Invalid key file: '<path>' (<reason>)".
Outcome key_failure(const Options& o, const Error& e);

/// True when -w/delay applies: before on, off and reboot, never before status, monitor, list, list-status,
/// metadata or validate-all (null never reaches the network).
bool needs_delay(Op op);

/// The protocol action of an op; nullopt for null, metadata and validate-all.
std::optional<proto::Action> to_action(Op op);

/// The request's target: the plug for on/off/reboot/status, empty for monitor/list/list-status.
std::string request_target(const Options& o);
/// The request's flags: kFlagTargetIsUuid with -u/use_uuid when there is a target.
std::uint8_t request_flags(const Options& o);

/// "tcp:127.0.0.1:1231", "vsock:2:1231", "unix:/run/vguard.sock", "multicast:225.0.0.12:1229",
/// "vmchannel:10.0.2.179:1229", "serial:/dev/ttyS1": how messages name the endpoint.
std::string endpoint_text(const Options& o);

/// The list column for a power state: running and paused are "on" (fence_xvm says "off" for paused, which its
/// own status contradicts), shutoff is "off", and unknown/other states are "unknown": never "off" for a
/// domain that may be active. Pacemaker's list parser keeps "unknown" as a token, which only matters for a
/// host called "unknown".
std::string_view list_state(proto::PowerState s);
/// One list line: printf("%-32s %s %s\n", name, uuid, state).
std::string list_line(const proto::DomainEntry& d);

/// Maps vguardd's answer (or the client error) to the agent's output and exit code.
/// - success: status prints "Status: ON"; list and list-status print list_line() for every domain; exit 0.
/// - off: status prints "Status: OFF", exit 2. For any other op an "off" answer is unexpected: exit 1.
/// - failure: the daemon's message and "Operation failed" on stderr, exit 1.
/// - denied, or a client error with errc::permission_denied: the message and "Permission denied", exit 3.
/// - any other client error (refused, unreachable, timed out, wrong key): one line naming the endpoint and
/// the
///   reason, then "Operation failed", exit 1.
Outcome interpret(const Options& o, const Result<proto::Response>& answer);

// ---- protocol xvm / virt (fence_virtd) ----

/// One record of fence_virtd's host list (fence-virt-protocol.md §2.3).
struct XvmHost {
  std::string domain;
  std::string uuid;
  std::uint8_t state =
      0;  ///< libvirt virDomainState: 1 running, 2 blocked, 3 paused, 4 shutdown, 5 shut off, ...
  friend bool operator==(const XvmHost&, const XvmHost&) = default;
};

/// fence_virtd's answer: one response byte (0 success/on, 1 failure, 2 off, 3 permission denied), or 253
/// followed by the host list.
struct XvmAnswer {
  std::uint8_t response = 1;
  std::vector<XvmHost> hosts;  ///< only with response 253
};

/// True when the request needs the key file: signed transports (multicast, TCP, vsock) unless both hash and
/// auth are "none", given explicitly. serial and vmchannel carry no authentication at all (fence_virt's
/// design: the channel itself identifies the guest).
bool xvm_needs_key(const Options& o);

/// The list column for a libvirt state. fence_xvm prints "on" only for running (1) and "off" for everything
/// else, paused included; fence_vguard prints "off" only for shut off (5), "on" for the states of a domain
/// that has a live process (running, blocked, paused, shutdown in progress, pmsuspended) and "unknown" for
/// the rest (nostate, crashed, anything else): never "off" for a domain that may be active.
std::string_view xvm_list_state(std::uint8_t state);
/// printf("%-32s %s %s\n", domain, uuid, xvm_list_state(state)).
std::string xvm_list_line(const XvmHost& h);

/// Maps fence_virtd's answer (or the transport's error) to output and exit code, as fence_xvm (§6.3):
/// - 0: status prints "Status: ON"; exit 0;
/// - 2: status prints "Status: OFF", exit 2; for any other op "off" is unexpected: exit 1 (fence_xvm exits
/// 2);
/// - 1: "Operation failed", exit 1;
/// - 3: "Permission denied", exit 3;
/// - 253 for list/list-status: one xvm_list_line per host, exit 0;
/// - anything else: "Unknown response (N)", "Operation failed", exit 1 (fence_xvm exits N);
/// - a transport error: a line naming the endpoint and the reason (or fence_xvm's "Timed out waiting for
///   response" when no fence_virtd called back), then "Operation failed", exit 1 (fence_xvm exits 1 or 255).
Outcome interpret_xvm(const Options& o, const Result<XvmAnswer>& answer);

}  // namespace vguard::agent
