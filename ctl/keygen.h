#pragma once
// vguardctl keygen: creates a shared key file.
#include <cstddef>
#include <string>
#include <string_view>

#include "result.h"

namespace vguard::ctl {

inline constexpr std::string_view kDefaultKeyFile = "/etc/vguard/vguard.key";
inline constexpr std::size_t kDefaultKeyBytes = 4096;

struct KeygenOptions {
  std::string out = std::string(kDefaultKeyFile);
  std::size_t bytes = kDefaultKeyBytes;  ///< proto::kMinKeyLen .. proto::kMaxKeyLen
  bool force = false;                    ///< replace an existing file (atomically, by rename)
};

struct KeygenResult {
  std::string key_id_hex;  ///< 16 hex characters
  std::string snippet;     ///< config text for vguard.conf
};

/// Writes opts.bytes CSPRNG bytes to opts.out with mode 0600, creating missing parent directories 0700.
/// Without force the file is created with O_CREAT|O_EXCL and an existing file is an error; with force the
/// key is written to a temporary file in the same directory and renamed over the old one, so the path
/// never holds a partial key. Errors: errc::bad_key (size out of range), errc::io_error (exists, I/O).
Result<KeygenResult> keygen(const KeygenOptions& opts);

/// The text printed after a key is made: "key id: <hex>" and a [key.NAME] section to paste into vguard.conf.
std::string key_report(std::string_view file, std::string_view key_id_hex);

}  // namespace vguard::ctl
