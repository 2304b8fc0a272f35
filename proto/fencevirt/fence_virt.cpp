#include "fence_virt.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>

#include "crypto.h"

namespace vguard::fencevirt {
namespace {

// fence_req_t offsets (fence-virt-protocol.md §1.1).
constexpr std::size_t kOffOp = 0, kOffHash = 1, kOffAddrlen = 2, kOffFlags = 3, kOffDomain = 4,
                      kOffAddress = 68, kOffPort = 96, kOffRandom = 98, kOffSeqno = 104, kOffFamily = 108;
constexpr std::size_t kDomainField = 64, kAddressField = 28;
// host_state_t offsets.
constexpr std::size_t kHostUuid = 64, kHostState = 128;
// serial_req_t offsets.
constexpr std::size_t kSerOp = 4, kSerFlags = 5, kSerDomain = 6, kSerSeqno = 70;

void put_le(std::string& out, std::size_t off, std::uint64_t v, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) out[off + i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
std::uint64_t get_le(std::string_view in, std::size_t off, std::size_t n) {
  std::uint64_t v = 0;
  for (std::size_t i = 0; i < n; ++i)
    v |= static_cast<std::uint64_t>(static_cast<unsigned char>(in[off + i])) << (8 * i);
  return v;
}
std::uint8_t byte_at(std::string_view in, std::size_t off) { return static_cast<unsigned char>(in[off]); }

// A NUL-padded string field: at most `field - 1` bytes are written, so the field always ends in NUL (the
// client does strncpy(size - 1); longer names are refused by the callers that take user input).
void put_str(std::string& out, std::size_t off, std::string_view s, std::size_t field) {
  const std::size_t n = std::min(s.size(), field - 1);
  std::memcpy(out.data() + off, s.data(), n);
}
// Reads up to the first NUL, at most kMaxDomain bytes (fence_virtd leaves garbage after the NUL, and in byte
// 63).
std::string get_str(std::string_view in, std::size_t off, std::size_t field) {
  if (off >= in.size()) return {};
  const std::string_view f = in.substr(off, std::min(field - 1, kMaxDomain));
  return std::string(f.substr(0, f.find('\0')));
}

const EVP_MD* md_of(Hash h) {
  switch (h) {
    case Hash::sha1:
      return EVP_sha1();
    case Hash::sha256:
      return EVP_sha256();
    case Hash::sha512:
      return EVP_sha512();
    case Hash::none:
      break;
  }
  return nullptr;
}

// Same library set-up as proto/wire (no openssl.cnf, no error strings), so whichever runs first the process
// initialises OpenSSL the same way.
void init_once() {
  static const bool done = [] {
    VG_ASSERT(OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS |
                                      OPENSSL_INIT_NO_ADD_ALL_CIPHERS | OPENSSL_INIT_NO_ADD_ALL_DIGESTS |
                                      OPENSSL_INIT_NO_ATEXIT,
                                  nullptr) == 1,
              "OPENSSL_init_crypto");
    return true;
  }();
  (void)done;
}

// H(key ‖ data), left-aligned in a zeroed 64-byte field: the legacy prefix construction of fence_xvm
// (not HMAC; allowed only here, STYLE.md §6).
std::array<std::uint8_t, kHashFieldSize> prefix_hash(Hash h, std::string_view key, std::string_view data) {
  init_once();
  const EVP_MD* md = md_of(h);
  VG_ASSERT(md != nullptr, "prefix_hash with hash none");
  std::unique_ptr<EVP_MD_CTX, void (*)(EVP_MD_CTX*)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  VG_ASSERT(ctx != nullptr, "EVP_MD_CTX_new");
  std::array<std::uint8_t, kHashFieldSize> out{};
  unsigned int len = 0;
  VG_ASSERT(EVP_DigestInit_ex(ctx.get(), md, nullptr) == 1 &&
                EVP_DigestUpdate(ctx.get(), key.data(), key.size()) == 1 &&
                EVP_DigestUpdate(ctx.get(), data.data(), data.size()) == 1 &&
                EVP_DigestFinal_ex(ctx.get(), out.data(), &len) == 1 && len == digest_length(h),
            "EVP_Digest");
  return out;
}

}  // namespace

std::optional<Hash> hash_from_name(std::string_view n) {
  if (n == "none") return Hash::none;
  if (n == "sha1") return Hash::sha1;
  if (n == "sha256") return Hash::sha256;
  if (n == "sha512") return Hash::sha512;
  return std::nullopt;
}

std::string_view hash_name(Hash h) {
  switch (h) {
    case Hash::none:
      return "none";
    case Hash::sha1:
      return "sha1";
    case Hash::sha256:
      return "sha256";
    case Hash::sha512:
      return "sha512";
  }
  return "?";
}

std::size_t digest_length(Hash h) {
  switch (h) {
    case Hash::sha1:
      return 20;
    case Hash::sha256:
      return 32;
    case Hash::sha512:
      return 64;
    case Hash::none:
      break;
  }
  return 0;
}

std::string encode(const Request& r) {
  std::string out(kRequestSize, '\0');
  out[kOffOp] = static_cast<char>(r.op);
  out[kOffHash] = static_cast<char>(r.hash);
  out[kOffAddrlen] = static_cast<char>(r.addrlen);
  out[kOffFlags] = static_cast<char>(r.flags);
  put_str(out, kOffDomain, r.domain, kDomainField);
  std::memcpy(out.data() + kOffAddress, r.address.data(), r.address.size());  // the rest of the 28 stays zero
  put_le(out, kOffPort, r.port, 2);
  std::memcpy(out.data() + kOffRandom, r.random.data(), r.random.size());
  put_le(out, kOffSeqno, r.seqno, 4);
  put_le(out, kOffFamily, r.family, 4);
  std::memcpy(out.data() + kDigestOffset, r.digest.data(), r.digest.size());
  return out;
}

Result<Request> decode(std::string_view b) {
  if (b.size() != kRequestSize)
    return make_error(errc::bad_frame, "fence_xvm request of " + std::to_string(b.size()) +
                                           " bytes (expected " + std::to_string(kRequestSize) + ")");
  Request r;
  const std::uint8_t op = byte_at(b, kOffOp);
  if (op > static_cast<std::uint8_t>(Op::hostlist))
    return make_error(errc::bad_frame, "unknown fence_xvm request code " + std::to_string(op));
  const std::uint8_t h = byte_at(b, kOffHash);
  if (h > static_cast<std::uint8_t>(Hash::sha512))
    return make_error(errc::bad_frame, "unknown fence_xvm hash type " + std::to_string(h));
  r.op = static_cast<Op>(op);
  r.hash = static_cast<Hash>(h);
  r.addrlen = byte_at(b, kOffAddrlen);
  r.flags = byte_at(b, kOffFlags);
  r.domain = get_str(b, kOffDomain, kDomainField);
  std::memcpy(r.address.data(), b.data() + kOffAddress, r.address.size());
  static_assert(sizeof(Request::address) <= kAddressField);
  r.port = static_cast<std::uint16_t>(get_le(b, kOffPort, 2));
  std::memcpy(r.random.data(), b.data() + kOffRandom, r.random.size());
  r.seqno = static_cast<std::uint32_t>(get_le(b, kOffSeqno, 4));
  r.family = static_cast<std::uint32_t>(get_le(b, kOffFamily, 4));
  std::memcpy(r.digest.data(), b.data() + kDigestOffset, r.digest.size());
  return r;
}

void sign(Request& r, std::string_view key) {
  r.digest.fill(0);
  if (r.hash == Hash::none) {
    r.random.fill(0);
    return;
  }
  const std::string rnd = proto::random_bytes(r.random.size());
  std::memcpy(r.random.data(), rnd.data(), r.random.size());
  r.digest = prefix_hash(r.hash, key, encode(r));
}

Result<void> verify(std::string_view packet, std::string_view key, Hash minimum) {
  if (packet.size() != kRequestSize)
    return make_error(errc::bad_frame, "fence_xvm request of " + std::to_string(packet.size()) +
                                           " bytes (expected " + std::to_string(kRequestSize) + ")");
  const std::uint8_t h = byte_at(packet, kOffHash);
  if (h > static_cast<std::uint8_t>(Hash::sha512))
    return make_error(errc::bad_frame, "unknown fence_xvm hash type " + std::to_string(h));
  const Hash hash = static_cast<Hash>(h);
  if (hash < minimum)
    return make_error(errc::permission_denied, "hash " + std::string(hash_name(hash)) +
                                                   " is weaker than the configured minimum " +
                                                   std::string(hash_name(minimum)));
  if (hash == Hash::none) return {};  // minimum none: explicitly configured, nothing to check
  if (key.empty()) return make_error(errc::bad_mac, "no key to verify a signed fence_xvm request");
  std::string zeroed(packet);
  std::memset(zeroed.data() + kDigestOffset, 0, kHashFieldSize);
  const auto want = prefix_hash(hash, key, zeroed);
  // All 64 bytes, so a digest with non-zero padding is refused too; constant time (unlike fence_virtd's
  // memcmp).
  if (CRYPTO_memcmp(want.data(), packet.data() + kDigestOffset, kHashFieldSize) != 0)
    return make_error(errc::bad_mac, "fence_xvm digest does not verify with this key");
  return {};
}

std::array<std::uint8_t, kChallengeSize> challenge_response(Hash auth, std::string_view key,
                                                            std::string_view challenge) {
  VG_ASSERT(auth != Hash::none, "challenge_response with auth none");
  return prefix_hash(auth, key, challenge);
}

std::array<std::uint8_t, kChallengeSize> new_challenge() {
  std::array<std::uint8_t, kChallengeSize> c{};
  const std::string rnd = proto::random_bytes(c.size());
  std::memcpy(c.data(), rnd.data(), c.size());
  return c;
}

bool check_response(Hash auth, std::string_view key, std::string_view challenge, std::string_view response) {
  if (auth == Hash::none || response.size() != kChallengeSize) return false;
  const auto want = challenge_response(auth, key, challenge);
  return CRYPTO_memcmp(want.data(), response.data(), kChallengeSize) == 0;
}

std::string encode_host(const HostRecord& h) {
  std::string out(kHostRecordSize, '\0');
  put_str(out, 0, h.domain, kHostUuid);
  put_str(out, kHostUuid, h.uuid, kHostState - kHostUuid);
  out[kHostState] = static_cast<char>(h.state);
  return out;
}

HostRecord decode_host(std::string_view rec) {
  HostRecord h;
  h.domain = get_str(rec, 0, kHostUuid);
  h.uuid = get_str(rec, kHostUuid, kHostState - kHostUuid);
  h.state = rec.size() > kHostState ? byte_at(rec, kHostState) : 0;
  return h;
}

std::string host_terminator() { return std::string(kHostRecordSize, '\0'); }

std::string encode_serial(const SerialRequest& r) {
  std::string out(kSerialRequestSize, '\0');
  put_le(out, 0, kSerialMagic, 4);
  out[kSerOp] = static_cast<char>(r.op);
  out[kSerFlags] = static_cast<char>(r.flags);
  put_str(out, kSerDomain, r.domain, kDomainField);
  put_le(out, kSerSeqno, r.seqno, 4);
  return out;
}

Result<SerialRequest> decode_serial(std::string_view b) {
  if (b.size() != kSerialRequestSize)
    return make_error(errc::bad_frame, "serial request of " + std::to_string(b.size()) + " bytes (expected " +
                                           std::to_string(kSerialRequestSize) + ")");
  // fence_virtd does not check the magic; vguardd does, so a desynchronised stream is refused, not executed.
  if (get_le(b, 0, 4) != kSerialMagic) return make_error(errc::bad_frame, "serial request without the magic");
  const std::uint8_t op = byte_at(b, kSerOp);
  if (op > static_cast<std::uint8_t>(Op::hostlist))
    return make_error(errc::bad_frame, "unknown serial request code " + std::to_string(op));
  SerialRequest r;
  r.op = static_cast<Op>(op);
  r.flags = byte_at(b, kSerFlags);
  r.domain = get_str(b, kSerDomain, kDomainField);
  r.seqno = static_cast<std::uint32_t>(get_le(b, kSerSeqno, 4));
  return r;
}

std::string encode_serial_response(std::uint8_t response) {
  std::string out(kSerialResponseSize, '\0');
  put_le(out, 0, kSerialMagic, 4);
  out[4] = static_cast<char>(response);
  return out;
}

Result<std::string> read_key_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(errc::bad_key, "cannot read key file " + path + ": " + std::strerror(errno));
  std::string bytes;
  char buf[1024];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    bytes.append(buf, static_cast<std::size_t>(in.gcount()));
    // fence_xvm silently uses only the first 4096 bytes; a longer file is refused, so both ends never
    // disagree about which bytes are the key without anyone noticing.
    if (bytes.size() > kMaxKey)
      return make_error(errc::bad_key,
                        "key file " + path + " is longer than " + std::to_string(kMaxKey) + " bytes");
  }
  if (in.bad()) return make_error(errc::bad_key, "cannot read key file " + path);
  if (bytes.empty()) return make_error(errc::bad_key, "key file " + path + " is empty");
  return bytes;
}

}  // namespace vguard::fencevirt
