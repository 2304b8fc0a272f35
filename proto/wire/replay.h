#pragma once
// Replay refusal for signed requests: a timestamp window plus, per key, the set of nonces seen inside it.
// A captured request is refused while its timestamp is inside the window (its nonce is remembered longer
// than that) and after (its timestamp is stale), so it can never be executed twice.
#include <cstdint>
#include <map>
#include <set>
#include <utility>

#include "message.h"
#include "result.h"

namespace vguard::proto {

class ReplayGuard {
 public:
  /// window_ms: accepted |wall clock - timestamp|. capacity_per_key: most nonces remembered for one key; when a
  /// key's table is full, that key's new requests are refused with errc::busy (fail closed) rather than
  /// forgetting a nonce still inside the window. One guest cluster cannot exhaust another's table.
  ReplayGuard(std::int64_t window_ms, std::size_t capacity_per_key)
      : window_ms_(window_ms), capacity_(capacity_per_key) {}

  /// Checks and, on success, records the nonce for key. Errors: stale_timestamp, replayed_nonce, busy.
  /// now_wall_ms judges the timestamp; now_mono_ms (a monotonic clock) times how long a nonce is kept:
  /// 2 × window after it was seen, so a wall-clock step cannot make the guard forget a nonce early.
  Result<void> check(const KeyId& key, const Nonce& nonce, std::int64_t timestamp_ms, std::int64_t now_wall_ms,
                     std::int64_t now_mono_ms);

  /// Nonces remembered, over all keys.
  [[nodiscard]] std::size_t size() const;

 private:
  struct Table {
    std::set<Nonce> seen;
    std::multimap<std::int64_t, Nonce> by_expiry;  // monotonic forget time -> nonce
  };
  void expire(Table& t, std::int64_t now_mono_ms);

  std::int64_t window_ms_;
  std::size_t capacity_;
  std::map<KeyId, Table> tables_;
};

}  // namespace vguard::proto
