#include "crypto.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <memory>

namespace vguard::proto {
namespace {

// One-time library set-up, before the first crypto call of the process:
// - vguard needs nothing from the system openssl.cnf, OpenSSL's error strings or its legacy algorithm
//   tables (it never prints OpenSSL errors and fetches its two algorithms explicitly); loading them costs every
//   short-lived client (fence_vguard, vguard-hook) about 1 ms per run;
// - the CSPRNG is NIST SP 800-90A Hash_DRBG over SHA-256, the digest vguard already loads for HMAC, instead
//   of the default CTR-DRBG, whose AES fetch costs ~0.6 ms per process start (bench/fence_rtt.sh).
void init_once() {
  static const bool done = [] {
    VG_ASSERT(OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS |
                                      OPENSSL_INIT_NO_ADD_ALL_CIPHERS | OPENSSL_INIT_NO_ADD_ALL_DIGESTS |
                                      OPENSSL_INIT_NO_ATEXIT,
                                  nullptr) == 1, "OPENSSL_init_crypto");
    VG_ASSERT(RAND_set_DRBG_type(nullptr, "HASH-DRBG", nullptr, nullptr, "SHA256") == 1, "RAND_set_DRBG_type");
    return true;
  }();
  (void)done;
}

template <auto F>
struct CDeleter {
  template <class T>
  void operator()(T* p) const noexcept {
    if (p) F(p);
  }
};
using MacPtr = std::unique_ptr<EVP_MAC, CDeleter<EVP_MAC_free>>;
using MacCtxPtr = std::unique_ptr<EVP_MAC_CTX, CDeleter<EVP_MAC_CTX_free>>;
}  // namespace

Digest hmac_sha256(std::string_view key, std::string_view data) {
  init_once();
  MacPtr mac(EVP_MAC_fetch(nullptr, "HMAC", nullptr));
  VG_ASSERT(mac, "EVP_MAC_fetch(HMAC)");
  MacCtxPtr ctx(EVP_MAC_CTX_new(mac.get()));
  VG_ASSERT(ctx, "EVP_MAC_CTX_new");
  char digest_name[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
                         OSSL_PARAM_construct_end()};
  // OpenSSL refuses a NULL key pointer even with length 0; point at a dummy byte instead.
  static const unsigned char kEmpty = 0;
  const auto* k = key.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(key.data());
  VG_ASSERT(EVP_MAC_init(ctx.get(), k, key.size(), params) == 1, "EVP_MAC_init");
  VG_ASSERT(EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1,
            "EVP_MAC_update");
  Digest out{};
  std::size_t len = 0;
  VG_ASSERT(EVP_MAC_final(ctx.get(), out.data(), &len, out.size()) == 1 && len == out.size(), "EVP_MAC_final");
  return out;
}

Digest sha256(std::string_view data) {
  init_once();
  Digest out{};
  unsigned int len = 0;
  VG_ASSERT(EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr) == 1 && len == 32,
            "EVP_Digest(sha256)");
  return out;
}

bool ct_equal(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string random_bytes(std::size_t n) {
  init_once();
  std::string out(n, '\0');
  VG_ASSERT(RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) == 1, "RAND_bytes");
  return out;
}

}  // namespace vguard::proto
