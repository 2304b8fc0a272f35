#pragma once
// Replay refusal for signed requests: a timestamp window plus the set of nonces seen inside it.
// A captured request is refused while its timestamp is inside the window (its nonce is remembered
// that long) and after (its timestamp is stale), so it can never be executed twice.
#include <cstdint>
#include <map>
#include <set>
#include <utility>

#include "message.h"
#include "result.h"

namespace vguard::proto {

class ReplayGuard {
 public:
  /// window_ms: accepted |now - timestamp|. capacity: most nonces remembered; when full, new requests are
  /// refused with errc::busy (fail closed) rather than forgetting a nonce still inside the window.
  ReplayGuard(std::int64_t window_ms, std::size_t capacity) : window_ms_(window_ms), capacity_(capacity) {}

  /// Checks and, on success, records the nonce. Errors: stale_timestamp, replayed_nonce, busy.
  /// Pure apart from its own table; now_ms is the caller's wall clock.
  Result<void> check(const Nonce& nonce, std::int64_t timestamp_ms, std::int64_t now_ms);

  [[nodiscard]] std::size_t size() const { return seen_.size(); }

 private:
  void expire(std::int64_t now_ms);

  std::int64_t window_ms_;
  std::size_t capacity_;
  std::set<Nonce> seen_;
  std::multimap<std::int64_t, Nonce> by_expiry_;  // forget time -> nonce
};

}  // namespace vguard::proto
