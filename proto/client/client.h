#pragma once
// Blocking client of the vguard native protocol (fence_vguard, vguardctl, vguard-hook).
// One request per connection; every step has a deadline.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "key.h"
#include "message.h"
#include "result.h"

namespace vguard::proto {

/// Where vguardd listens.
struct Endpoint {
  enum class Kind { tcp, unix_socket, vsock };
  Kind kind = Kind::tcp;
  std::string host = "127.0.0.1";  ///< tcp: numeric IPv4/IPv6 address or host name
  std::uint16_t port = kDefaultPort;  ///< tcp and vsock
  std::string path;                ///< unix_socket
  std::uint32_t cid = 2;           ///< vsock (2 = the host)
  [[nodiscard]] std::string describe() const;
};

struct CallOptions {
  Endpoint endpoint;
  /// The key to sign with; nullopt = the local root socket's empty key (only vguardd's Unix socket accepts it).
  std::optional<Key> key;
  /// Whole-call deadline: connect, send, and wait for the answer.
  std::chrono::milliseconds timeout{30000};
};

/// Sends one request and returns vguardd's verified answer. The answer must carry the request's nonce and
/// verify with the same key; an answer the daemon could not sign (it did not accept our key) comes back as
/// an Error naming the daemon's reason, never as a Response. Errors: not_running (connect failed),
/// timed_out, bad_frame, bad_mac, and the daemon's own refusal codes.
Result<Response> call(const CallOptions& opts, Action action, const std::string& target, std::uint8_t flags = 0);

}  // namespace vguard::proto
