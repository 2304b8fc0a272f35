#pragma once
// vguard native protocol v1 between the clients (fence_vguard, vguardctl, vguard-hook) and vguardd.
//
// Stream framing: every frame is
//   u32le length        number of bytes after this field (header + body + mac), at most kMaxFrame
//   u8    version       kVersion; the version fixes every algorithm, no field chooses one
//   u8    kind          1 request, 2 response
//   u8[8] key_id        which key signed the frame (KeyId of the key file; all zero = local root socket)
//   ...   body          kind-specific, explicit little-endian fields (never a packed struct)
//   u8[32] mac          HMAC-SHA256(key, every byte before it, length prefix included)
// Request body:  nonce[16], i64le timestamp_ms (Unix), u8 action, u8 flags, u32le budget_ms, str target
// Response body: nonce[16] (the request's), u8 status, u16le errc, str message, u32le count,
//                count × { uuid[16], str name, u8 state, str host, u64le epoch, u8 flags }, u8 flags,
//                u32le hosts, hosts × { u32le id, str name, u8 status, u32le losses, str confirmed_by, u8 libvirt_up }
// str = u16le length + bytes (at most kMaxString).
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "result.h"
#include "uuid.h"

namespace vguard::proto {

inline constexpr std::uint8_t kVersion = 1;
inline constexpr std::size_t kMaxFrame = 64 * 1024;   ///< bytes after the length prefix
inline constexpr std::size_t kMaxString = 1024;
inline constexpr std::size_t kMacLen = 32;
inline constexpr std::size_t kNonceLen = 16;
inline constexpr std::uint16_t kDefaultPort = 1231;   ///< vguardd's native TCP port

using KeyId = std::array<std::uint8_t, 8>;
using Nonce = std::array<std::uint8_t, kNonceLen>;

/// Actions of protocol v1. Numbers are wire values.
enum class Action : std::uint8_t {
  off = 1,
  reboot = 2,
  on = 3,
  status = 4,
  monitor = 5,
  list = 6,
  list_status = 7,
  hook_prepare = 16,  ///< vguard-hook: may this domain start here? (target = uuid)
  hook_release = 17,  ///< vguard-hook: the domain stopped here
  confirm_fenced = 18,  ///< vguardctl host confirm-fenced HOST (control socket only; target = host name or id)
  hosts = 19,           ///< vguardctl hosts: membership, quorum, lost and fenced hosts
  hook_migrate = 20,    ///< vguard-hook on a migration's target ("migrate begin"): may it come here?
  hook_reconnect = 21,  ///< vguard-hook at libvirtd restart ("reconnect begin"): may this copy keep running?
};
/// "off", "reboot", ... ; nullopt for an unknown name.
std::optional<Action> action_from_name(std::string_view name);
std::string_view action_name(Action a);
/// True for values defined above.
bool action_known(std::uint8_t v);

/// Response status, the fence agent's exit code semantics.
enum class Status : std::uint8_t { success = 0, failure = 1, off = 2, denied = 3 };

/// Domain power state as vguard reports it. "unknown" is never "off".
enum class PowerState : std::uint8_t { unknown = 0, running = 1, paused = 2, shutoff = 3, other = 4 };
std::string_view power_state_name(PowerState s);
/// Any state but shutoff counts as possibly active (safety-design.md §1).
inline bool maybe_active(PowerState s) { return s != PowerState::shutoff; }

inline constexpr std::uint8_t kFlagTargetIsUuid = 0x01;

struct Request {
  Nonce nonce{};
  std::int64_t timestamp_ms = 0;
  Action action = Action::status;
  std::uint8_t flags = 0;
  std::uint32_t budget_ms = 0;
  std::string target;
};

/// DomainEntry::flags
inline constexpr std::uint8_t kDomainOwnerLost = 0x01;   ///< its host is lost and not confirmed fenced
inline constexpr std::uint8_t kDomainDuplicate = 0x02;   ///< reported active on more than one host
inline constexpr std::uint8_t kDomainHostFenced = 0x04;  ///< its host was lost and confirmed fenced
inline constexpr std::uint8_t kDomainMigrating = 0x08;   ///< a migration hand-over is recorded

struct DomainEntry {
  Uuid uuid;
  std::string name;
  PowerState state = PowerState::unknown;
  std::string host;         ///< the host that runs (or last ran) it; empty in standalone mode
  std::uint64_t epoch = 0;  ///< ownership epoch (cluster mode)
  std::uint8_t flags = 0;
  friend bool operator==(const DomainEntry&, const DomainEntry&) = default;
};

/// One cluster host, for `vguardctl hosts`.
struct HostEntry {
  std::uint32_t id = 0;     ///< corosync node id
  std::string name;
  std::uint8_t status = 0;  ///< 0 member, 1 lost (not confirmed fenced), 2 lost and confirmed fenced, 3 this host
  std::uint32_t losses = 0;
  std::string confirmed_by;
  bool libvirt_up = false;
  friend bool operator==(const HostEntry&, const HostEntry&) = default;
};

/// Response::flags
inline constexpr std::uint8_t kResponseQuorate = 0x01;
inline constexpr std::uint8_t kResponseCluster = 0x02;

struct Response {
  Nonce nonce{};
  Status status = Status::failure;
  std::uint16_t error = 0;  ///< vguard::errc value, 0 when none
  std::string message;
  std::vector<DomainEntry> domains;
  std::uint8_t flags = 0;
  std::vector<HostEntry> hosts;
};

/// A decoded, MAC-verified frame.
struct Frame {
  KeyId key_id{};
  std::optional<Request> request;    ///< kind 1
  std::optional<Response> response;  ///< kind 2
};

/// Encodes a request frame (length prefix included) signed with key.
std::string encode_request(const KeyId& key_id, std::string_view key, const Request& r);
/// Encodes a response frame signed with key.
std::string encode_response(const KeyId& key_id, std::string_view key, const Response& r);

/// Reads the length prefix of a frame. Returns the number of bytes that follow it, or
/// errc::bad_frame when it is 0, too small or above kMaxFrame (the reader must stop then).
Result<std::size_t> frame_length(std::string_view prefix4);

/// Reads the key id of a whole frame (prefix included) without verifying it, so the caller can find the key.
Result<KeyId> peek_key_id(std::string_view frame);

/// Verifies the MAC with key (CRYPTO_memcmp), then decodes. Errors: bad_frame, bad_version, bad_mac,
/// unknown_action. Nothing in an unverified frame is trusted or returned.
Result<Frame> decode_frame(std::string_view frame, std::string_view key);

}  // namespace vguard::proto
