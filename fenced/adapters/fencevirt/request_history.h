#pragma once
// fence_virtd's duplicate suppression (fence-virt-protocol.md §1.7): fence_xvm sends one copy of a request
// per local address and re-sends it every `retrans`, each copy re-signed with fresh random bytes but with the
// same (op, seqno, domain). Once one copy is being handled, the others are dropped silently for 10 s.
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <tuple>

namespace vguard::fenced {

/// Pure, single-threaded; the caller passes monotonic milliseconds.
class RequestHistory {
 public:
  static constexpr std::int64_t kDefaultExpiryMs = 10000;
  static constexpr std::size_t kMaxEntries = 4096;  ///< beyond it the oldest entries go first

  explicit RequestHistory(std::int64_t expiry_ms = kDefaultExpiryMs) : expiry_ms_(expiry_ms) {}

  /// Whether (op, seqno, domain ignoring ASCII case) was recorded less than the expiry ago. Purges expired
  /// entries first.
  bool seen(std::uint8_t op, std::uint32_t seqno, std::string_view domain, std::int64_t now_ms);
  /// Records it as handled (or in progress) at now_ms.
  void record(std::uint8_t op, std::uint32_t seqno, std::string_view domain, std::int64_t now_ms);
  /// Forgets it (the callback could not be made: the client's retransmissions must be served).
  void forget(std::uint8_t op, std::uint32_t seqno, std::string_view domain);
  [[nodiscard]] std::size_t size() const { return entries_.size(); }

 private:
  using Key = std::tuple<std::uint8_t, std::uint32_t, std::string>;
  static Key key_of(std::uint8_t op, std::uint32_t seqno, std::string_view domain);
  void purge(std::int64_t now_ms);

  std::int64_t expiry_ms_;
  std::map<Key, std::int64_t> entries_;
};

}  // namespace vguard::fenced
