#pragma once
// Explicit little-endian field codec shared by proto/wire's message families (never packed structs).
// Internal to proto/wire.
#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "message.h"

namespace vguard::proto {

class Writer {
 public:
  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(std::uint16_t v) { le(v, 2); }
  void u32(std::uint32_t v) { le(v, 4); }
  void i64(std::int64_t v) { le(static_cast<std::uint64_t>(v), 8); }
  template <std::size_t N>
  void bytes(const std::array<std::uint8_t, N>& a) {
    out_.append(reinterpret_cast<const char*>(a.data()), N);
  }
  void str(std::string_view s) {
    // Callers bound strings; an oversize one is a bug in the caller, truncating silently would change a target.
    VG_ASSERT(s.size() <= kMaxString, "string field too long");  // callers clip or bound strings
    u16(static_cast<std::uint16_t>(s.size()));
    out_.append(s);
  }
  std::string& out() { return out_; }

 private:
  void le(std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool u8(std::uint8_t& v) {
    std::uint64_t x;
    if (!le(x, 1)) return false;
    v = static_cast<std::uint8_t>(x);
    return true;
  }
  bool u16(std::uint16_t& v) {
    std::uint64_t x;
    if (!le(x, 2)) return false;
    v = static_cast<std::uint16_t>(x);
    return true;
  }
  bool u32(std::uint32_t& v) {
    std::uint64_t x;
    if (!le(x, 4)) return false;
    v = static_cast<std::uint32_t>(x);
    return true;
  }
  bool i64(std::int64_t& v) {
    std::uint64_t x;
    if (!le(x, 8)) return false;
    v = static_cast<std::int64_t>(x);
    return true;
  }
  template <std::size_t N>
  bool bytes(std::array<std::uint8_t, N>& a) {
    if (in_.size() - pos_ < N) return false;
    std::memcpy(a.data(), in_.data() + pos_, N);
    pos_ += N;
    return true;
  }
  bool str(std::string& s) {
    std::uint16_t n;
    if (!u16(n) || n > kMaxString || in_.size() - pos_ < n) return false;
    s.assign(in_.substr(pos_, n));
    pos_ += n;
    return true;
  }
  [[nodiscard]] bool done() const { return pos_ == in_.size(); }

 private:
  bool le(std::uint64_t& v, std::size_t n) {
    if (in_.size() - pos_ < n) return false;
    v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in_[pos_ + i])) << (8 * i);
    pos_ += n;
    return true;
  }
  std::string_view in_;
  std::size_t pos_ = 0;
};


}  // namespace vguard::proto
