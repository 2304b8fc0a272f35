#include "key.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

#include "crypto.h"

namespace vguard::proto {

KeyId key_id_of(std::string_view key_bytes) {
  std::string in = "vguard-key-id-v1";
  in.append(key_bytes);
  const Digest d = sha256(in);
  KeyId id{};
  std::copy_n(d.begin(), id.size(), id.begin());
  return id;
}

std::string key_id_hex(const KeyId& id) {
  return to_hex(std::string_view(reinterpret_cast<const char*>(id.data()), id.size()));
}

Result<Key> load_key_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error(errc::bad_key, "cannot read key file " + path + ": " + std::strerror(errno));
  std::string bytes;
  char buf[1024];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    bytes.append(buf, static_cast<std::size_t>(in.gcount()));
    if (bytes.size() > kMaxKeyLen)
      return make_error(errc::bad_key, "key file " + path + " is longer than " + std::to_string(kMaxKeyLen) + " bytes");
  }
  if (bytes.size() < kMinKeyLen)
    return make_error(errc::bad_key, "key file " + path + " has " + std::to_string(bytes.size()) +
                                         " bytes, at least " + std::to_string(kMinKeyLen) + " are needed");
  Key k;
  k.id = key_id_of(bytes);
  k.bytes = std::move(bytes);
  return k;
}

}  // namespace vguard::proto
