#include "replay.h"

#include <string>

namespace vguard::proto {

void ReplayGuard::expire(Table& t, std::int64_t now_mono_ms) {
  while (!t.by_expiry.empty() && t.by_expiry.begin()->first < now_mono_ms) {
    t.seen.erase(t.by_expiry.begin()->second);
    t.by_expiry.erase(t.by_expiry.begin());
  }
}

std::size_t ReplayGuard::size() const {
  std::size_t n = 0;
  for (const auto& [k, t] : tables_) n += t.seen.size();
  return n;
}

Result<void> ReplayGuard::check(const KeyId& key, const Nonce& nonce, std::int64_t timestamp_ms,
                                std::int64_t now_wall_ms, std::int64_t now_mono_ms) {
  Table& t = tables_[key];
  expire(t, now_mono_ms);
  const std::int64_t skew = now_wall_ms - timestamp_ms;
  if (skew > window_ms_ || -skew > window_ms_)
    return make_error(errc::stale_timestamp, "request timestamp is " + std::to_string(skew / 1000) +
                                                 " s off this host's clock, window is " +
                                                 std::to_string(window_ms_ / 1000) + " s");
  if (t.seen.count(nonce) != 0) return make_error(errc::replayed_nonce, "nonce already used");
  if (t.seen.size() >= capacity_) return make_error(errc::busy, "replay cache of this key is full");
  t.seen.insert(nonce);
  // A timestamp accepted now is accepted for at most 2 × window more (it may be up to one window in the
  // future): keep the nonce that long on the monotonic clock.
  t.by_expiry.emplace(now_mono_ms + 2 * window_ms_, nonce);
  return {};
}

}  // namespace vguard::proto
