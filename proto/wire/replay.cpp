#include "replay.h"

#include <string>

namespace vguard::proto {

void ReplayGuard::expire(std::int64_t now_ms) {
  while (!by_expiry_.empty() && by_expiry_.begin()->first < now_ms) {
    seen_.erase(by_expiry_.begin()->second);
    by_expiry_.erase(by_expiry_.begin());
  }
}

Result<void> ReplayGuard::check(const Nonce& nonce, std::int64_t timestamp_ms, std::int64_t now_ms) {
  expire(now_ms);
  const std::int64_t skew = now_ms - timestamp_ms;
  if (skew > window_ms_ || -skew > window_ms_)
    return make_error(errc::stale_timestamp, "request timestamp is " + std::to_string(skew / 1000) +
                                                 " s off this host's clock, window is " +
                                                 std::to_string(window_ms_ / 1000) + " s");
  if (seen_.count(nonce) != 0) return make_error(errc::replayed_nonce, "nonce already used");
  if (seen_.size() >= capacity_) return make_error(errc::busy, "replay cache full");
  seen_.insert(nonce);
  // Keep the nonce until its timestamp leaves the window: after that, the timestamp check refuses it.
  by_expiry_.emplace(timestamp_ms + window_ms_, nonce);
  return {};
}

}  // namespace vguard::proto
