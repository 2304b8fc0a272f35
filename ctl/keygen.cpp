#include "keygen.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "crypto.h"
#include "fs_util.h"
#include "key.h"

namespace vguard::ctl {
namespace {

Error io_error(std::string_view what, const std::string& path, int err) {
  return make_error(errc::io_error, fmt::format("{} {}: {}", what, path, std::strerror(err)));
}

// Writes, restricts to 0600 whatever the umask did, and syncs; the caller closes and cleans up.
Result<void> write_key(int fd, const std::string& path, std::string_view bytes) {
  if (::fchmod(fd, 0600) != 0) return io_error("cannot chmod", path, errno);
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("cannot write", path, errno);
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  if (::fsync(fd) != 0) return io_error("cannot fsync", path, errno);
  return {};
}

Result<void> write_new(const std::string& path, std::string_view key) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST)
      return make_error(errc::io_error, "key file " + path + " already exists; use --force to replace it");
    return io_error("cannot create key file", path, errno);
  }
  auto r = write_key(fd, path, key);
  if (::close(fd) != 0 && r) r = io_error("cannot close", path, errno);
  if (!r) ::unlink(path.c_str());
  return r;
}

Result<void> replace(const std::string& path, std::string_view key) {
  std::string tmpl = path + ".tmp.XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  const int fd = ::mkostemp(buf.data(), O_CLOEXEC);  // O_CREAT|O_EXCL, mode 0600
  if (fd < 0) return io_error("cannot create temporary file next to", path, errno);
  const std::string tmp(buf.data());
  auto r = write_key(fd, tmp, key);
  if (::close(fd) != 0 && r) r = io_error("cannot close", tmp, errno);
  if (r && ::rename(tmp.c_str(), path.c_str()) != 0)
    r = io_error("cannot rename " + tmp + " to", path, errno);
  if (!r) ::unlink(tmp.c_str());
  return r;
}

}  // namespace

Result<KeygenResult> keygen(const KeygenOptions& opts) {
  if (opts.bytes < proto::kMinKeyLen || opts.bytes > proto::kMaxKeyLen)
    return make_error(errc::bad_key, fmt::format("key size {} is out of range {}..{} bytes", opts.bytes,
                                                 proto::kMinKeyLen, proto::kMaxKeyLen));
  if (opts.out.empty()) return make_error(errc::io_error, "key file path is empty");
  const std::string dir = parent_dir(opts.out);
  if (auto r = make_dirs(dir); !r) return r.error();

  const std::string key = proto::random_bytes(opts.bytes);
  auto w = opts.force ? replace(opts.out, key) : write_new(opts.out, key);
  if (!w) return w.error();
  // The new directory entry must survive a crash as well as the key bytes.
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  KeygenResult res;
  res.key_id_hex = proto::key_id_hex(proto::key_id_of(key));
  res.snippet = key_report(opts.out, res.key_id_hex);
  return res;
}

std::string key_report(std::string_view file, std::string_view key_id_hex) {
  return fmt::format(
      "key id: {}\n"
      "# vguard.conf: rename NAME, and replace ... by the domain names or globs this key may act on\n"
      "[key.NAME]\n"
      "file = {}\n"
      "allow = ...\n",
      key_id_hex, file);
}

}  // namespace vguard::ctl
