#pragma once
// The fence_xvm / fence_virt wire protocol (Debian fence-virt 4.12.1), for compatibility in both directions:
// vguardd's listeners for unmodified fence_xvm/fence_virt clients, and fence_vguard's client mode for an
// unmodified fence_virtd. Facts: ../shared/docs/fence-virt-protocol.md. Encoded and decoded field by field,
// little-endian (never a packed struct). Pure: no sockets here; the transports live with their users.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "result.h"

namespace vguard::fencevirt {

inline constexpr std::size_t kRequestSize = 176;     // fence_req_t
inline constexpr std::size_t kHashFieldSize = 64;    // digest field, zero-padded
inline constexpr std::size_t kChallengeSize = 64;    // C1 / C2 of the TCP exchange
inline constexpr std::size_t kHostRecordSize = 130;  // host_state_t
inline constexpr std::size_t kMaxKey = 4096;         // MAX_KEY_LEN
inline constexpr std::size_t kMaxDomain = 63;        // domain/uuid strings: 64 bytes, NUL-terminated
inline constexpr std::uint16_t kDefaultPort = 1229;
inline constexpr std::string_view kDefaultGroup4 = "225.0.0.12";
inline constexpr std::string_view kDefaultGroup6 = "ff05::3:1";

enum class Op : std::uint8_t { null = 0, off = 1, reboot = 2, on = 3, status = 4, devstatus = 5, hostlist = 6 };
/// Hash (in the packet) and auth (challenge-response, configured on both ends, not on the wire) types.
enum class Hash : std::uint8_t { none = 0, sha1 = 1, sha256 = 2, sha512 = 3 };
/// Response bytes.
inline constexpr std::uint8_t kRespSuccess = 0, kRespFail = 1, kRespOff = 2, kRespPerm = 3, kRespHostList = 253;
inline constexpr std::uint8_t kFlagUuid = 0x01;  // RF_UUID (no server reads it)

/// "none", "sha1", "sha256", "sha512" <-> Hash.
std::optional<Hash> hash_from_name(std::string_view n);
std::string_view hash_name(Hash h);

struct Request {
  Op op = Op::null;
  Hash hash = Hash::sha256;
  std::uint8_t flags = 0;
  std::string domain;                   ///< name or UUID, at most 63 bytes on the wire
  std::array<std::uint8_t, 16> address{};  ///< callback address, network order (4 bytes for IPv4, 16 for IPv6)
  std::uint8_t addrlen = 0;             ///< 4, 16, or 0 (TCP/vsock mode)
  std::uint16_t port = 0;               ///< callback port (LE on the wire)
  std::array<std::uint8_t, 6> random{};
  std::uint32_t seqno = 0;
  std::uint32_t family = 0;             ///< AF_INET=2, AF_INET6=10, 0 in TCP/vsock mode
  std::array<std::uint8_t, kHashFieldSize> digest{};
};

/// The 176 bytes of a request exactly as they are on the wire (digest field as in `r`).
std::string encode(const Request& r);
/// Exactly kRequestSize bytes, else errc::bad_frame; unknown op or hash type: errc::bad_frame with the value.
/// The domain string stops at the first NUL (at most 63 bytes).
Result<Request> decode(std::string_view bytes);

/// Signs like fence_xvm: zero the digest, fill `random` from the CSPRNG (unless hash = none), then
/// digest = H(key ‖ 176 bytes with a zero digest field), left-aligned in the 64-byte field.
void sign(Request& r, std::string_view key);
/// Verifies a received packet. Errors (errc::bad_mac / errc::bad_frame / errc::permission_denied) name the reason:
/// hash type weaker than `minimum`, hash none while a minimum is configured, no key, unknown hash type, digest
/// mismatch (compared over all 64 bytes in constant time).
Result<void> verify(std::string_view packet, std::string_view key, Hash minimum);

/// H(key ‖ challenge), zero-padded to 64 bytes (the TCP exchange). auth = none is a bug (abort).
std::array<std::uint8_t, kChallengeSize> challenge_response(Hash auth, std::string_view key,
                                                            std::string_view challenge);
/// 64 random bytes from the CSPRNG.
std::array<std::uint8_t, kChallengeSize> new_challenge();
/// Constant-time check of a 64-byte response to `challenge`.
bool check_response(Hash auth, std::string_view key, std::string_view challenge, std::string_view response);

/// One host-list record: strings stop at the first NUL, capped at 63 bytes. state = libvirt virDomainState
/// (1 running, 3 paused, 5 shut off, ...).
struct HostRecord {
  std::string domain;
  std::string uuid;
  std::uint8_t state = 0;
};
/// 130 bytes, zero-filled (never stack garbage like fence_virtd).
std::string encode_host(const HostRecord& h);
/// Parses one 130-byte record (tolerates garbage after the NULs, as fence_virtd sends it).
HostRecord decode_host(std::string_view record130);
/// The terminator record: 130 zero bytes.
std::string host_terminator();

/// The serial / vmchannel request of fence_virt's default mode (74 bytes, magic "abba", no authentication).
struct SerialRequest {
  Op op = Op::null;
  std::uint8_t flags = 0;
  std::string domain;
  std::uint32_t seqno = 0;
};
inline constexpr std::size_t kSerialRequestSize = 74;
std::string encode_serial(const SerialRequest& r);
Result<SerialRequest> decode_serial(std::string_view bytes);

/// Reads a fence_xvm key file (/etc/cluster/fence_xvm.key): the whole file, 1..4096 bytes, used as is.
Result<std::string> read_key_file(const std::string& path);

// ---- additions (vguardd's listeners) ----
/// Offset of the 64-byte digest field in a request (the digest identifies one signed packet: it covers the
/// key, the 6 random bytes and every other field).
inline constexpr std::size_t kDigestOffset = 112;
/// Bytes of the digest for a hash type (0 for none): 20, 32, 64.
std::size_t digest_length(Hash h);
/// The serial magic 0x61626261 ("abba" on the wire) and the 5-byte serial response (magic + response byte).
inline constexpr std::uint32_t kSerialMagic = 0x61626261;
inline constexpr std::size_t kSerialResponseSize = 5;
std::string encode_serial_response(std::uint8_t response);

}  // namespace vguard::fencevirt
