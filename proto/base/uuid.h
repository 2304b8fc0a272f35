#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace vguard {

/// A domain UUID (RFC 4122 layout, 16 bytes). Value type, totally ordered.
struct Uuid {
  std::array<std::uint8_t, 16> bytes{};

  /// Parses the canonical 8-4-4-4-12 form (case-insensitive). Anything else gives nullopt.
  static std::optional<Uuid> parse(std::string_view text);
  /// Lower-case canonical form.
  [[nodiscard]] std::string str() const;

  friend auto operator<=>(const Uuid&, const Uuid&) = default;
};

/// Lower-case hex of a byte string.
std::string to_hex(std::string_view bytes);
/// Decodes hex (even length, [0-9a-fA-F]); nullopt otherwise.
std::optional<std::string> from_hex(std::string_view hex);

/// Shell-style glob: '*' any run, '?' one char, no classes. Case-sensitive.
bool glob_match(std::string_view pattern, std::string_view text);

}  // namespace vguard
