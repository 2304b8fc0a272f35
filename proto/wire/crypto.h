#pragma once
// The only crypto entry points of proto/wire. OpenSSL stays inside crypto.cpp.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "result.h"

namespace vguard::proto {

using Digest = std::array<std::uint8_t, 32>;

/// HMAC-SHA256 (OpenSSL EVP_MAC). An empty key is allowed (used only for the local root socket).
Digest hmac_sha256(std::string_view key, std::string_view data);
/// SHA-256 of data.
Digest sha256(std::string_view data);
/// Constant-time comparison (CRYPTO_memcmp) of equal-length buffers; false when lengths differ.
bool ct_equal(std::string_view a, std::string_view b) noexcept;
/// n bytes from the OpenSSL CSPRNG (RAND_bytes). Aborts if the CSPRNG fails: no fallback to weak randomness.
std::string random_bytes(std::size_t n);

inline std::string_view as_view(const Digest& d) {
  return {reinterpret_cast<const char*>(d.data()), d.size()};
}

}  // namespace vguard::proto
