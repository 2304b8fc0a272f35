#pragma once
#include <string>
#include <string_view>

#include "message.h"
#include "result.h"

namespace vguard::proto {

inline constexpr std::size_t kMinKeyLen = 16;
inline constexpr std::size_t kMaxKeyLen = 4096;  ///< same limit as fence_xvm.key

/// A shared key: raw bytes of a key file (like /etc/cluster/fence_xvm.key: no format, no trimming).
struct Key {
  std::string bytes;
  KeyId id{};
};

/// The key id: the first 8 bytes of SHA-256("vguard-key-id-v1" ‖ key). It names the key on the wire
/// without revealing it, so clients need no extra option to say which key they hold.
KeyId key_id_of(std::string_view key_bytes);
/// Hex form of a key id (16 chars), as printed by `vguardctl keygen` and logged.
std::string key_id_hex(const KeyId& id);

/// Reads a key file. Errors (errc::bad_key, naming the path): unreadable, shorter than kMinKeyLen,
/// longer than kMaxKeyLen.
Result<Key> load_key_file(const std::string& path);

/// The key id of the local root socket (all zero); its frames carry an HMAC with the empty key.
inline constexpr KeyId kLocalKeyId{};

}  // namespace vguard::proto
