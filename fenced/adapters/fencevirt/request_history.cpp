#include "request_history.h"

#include <algorithm>

namespace vguard::fenced {

RequestHistory::Key RequestHistory::key_of(std::uint8_t op, std::uint32_t seqno, std::string_view domain) {
  std::string d(domain);
  std::transform(d.begin(), d.end(), d.begin(),
                 [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; });
  return {op, seqno, std::move(d)};
}

void RequestHistory::purge(std::int64_t now_ms) {
  for (auto it = entries_.begin(); it != entries_.end();)
    it = now_ms - it->second >= expiry_ms_ ? entries_.erase(it) : std::next(it);
}

bool RequestHistory::seen(std::uint8_t op, std::uint32_t seqno, std::string_view domain,
                          std::int64_t now_ms) {
  purge(now_ms);
  return entries_.count(key_of(op, seqno, domain)) > 0;
}

void RequestHistory::record(std::uint8_t op, std::uint32_t seqno, std::string_view domain,
                            std::int64_t now_ms) {
  if (entries_.size() >= kMaxEntries && !entries_.count(key_of(op, seqno, domain))) {
    auto oldest = std::min_element(entries_.begin(), entries_.end(),
                                   [](const auto& a, const auto& b) { return a.second < b.second; });
    entries_.erase(oldest);
  }
  entries_[key_of(op, seqno, domain)] = now_ms;
}

void RequestHistory::forget(std::uint8_t op, std::uint32_t seqno, std::string_view domain) {
  entries_.erase(key_of(op, seqno, domain));
}

}  // namespace vguard::fenced
