#include "executed_digests.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>
#include <vector>

#include "crypto.h"

namespace vguard::fenced {
namespace {

Error sys_error(const std::string& what, const std::string& path, int err) {
  return make_error(errc::io_error, what + " " + path + ": " + std::strerror(err));
}

void put_u64(char* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (8 * i)) & 0xff);
}
std::uint64_t get_u64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<std::uint64_t>(static_cast<unsigned char>(p[i])) << (8 * i);
  return v;
}

std::uint64_t check_of(std::uint64_t seq, std::string_view digest) {
  std::string in(8, '\0');
  put_u64(in.data(), seq);
  in.append(digest);
  const auto h = proto::sha256(in);
  return get_u64(reinterpret_cast<const char*>(h.data()));
}

std::string slot_bytes(std::uint64_t seq, std::string_view digest) {
  std::string s(ExecutedDigests::kSlotSize, '\0');
  std::memcpy(s.data(), digest.data(), ExecutedDigests::kDigestSize);
  put_u64(s.data() + 64, seq);
  put_u64(s.data() + 72, check_of(seq, digest));
  return s;
}

std::string header_bytes(std::size_t slots) {
  std::string h(ExecutedDigests::kHeaderSize, '\0');
  std::memcpy(h.data(), ExecutedDigests::kMagic.data(), ExecutedDigests::kMagic.size());
  for (int i = 0; i < 4; ++i) h[16 + i] = static_cast<char>((slots >> (8 * i)) & 0xff);
  return h;
}

Result<void> pwrite_all(int fd, std::string_view bytes, off_t off, const std::string& path) {
  while (!bytes.empty()) {
    const ssize_t n = ::pwrite(fd, bytes.data(), bytes.size(), off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return sys_error("cannot write", path, errno);
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
    off += n;
  }
  return {};
}

Result<void> fsync_dir(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  const int d = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (d < 0) return sys_error("cannot open directory", dir, errno);
  const int rc = ::fsync(d);
  const int err = errno;
  ::close(d);
  if (rc != 0) return sys_error("cannot fsync directory", dir, err);
  return {};
}

// Writes a complete file of `slots` slots holding `digests` (oldest first, renumbered 1..n) and syncs it.
// Every slot is written (zeros where empty), so later slot writes replace data in place and need no metadata
// flush.
Result<void> write_file(int fd, std::size_t slots, const std::vector<std::string>& digests,
                        const std::string& path) {
  if (::ftruncate(fd, 0) != 0) return sys_error("cannot truncate", path, errno);
  std::string all = header_bytes(slots);
  all.resize(ExecutedDigests::kHeaderSize + slots * ExecutedDigests::kSlotSize, '\0');
  std::uint64_t seq = 1;
  for (const auto& d : digests) {
    const std::string s = slot_bytes(seq, d);
    std::memcpy(all.data() + ExecutedDigests::kHeaderSize + (seq % slots) * ExecutedDigests::kSlotSize,
                s.data(), s.size());
    ++seq;
  }
  if (auto r = pwrite_all(fd, all, 0, path); !r) return r;
  if (::fdatasync(fd) != 0) return sys_error("cannot sync", path, errno);
  return {};
}

int open_locked(const std::string& path, bool create, bool& created, Error& err) {
  constexpr int kFlags = O_RDWR | O_CLOEXEC | O_NOFOLLOW;
  created = false;
  int fd = -1;
  if (create) {
    fd = ::open(path.c_str(), kFlags | O_CREAT | O_EXCL, 0600);
    if (fd >= 0) created = true;
    if (fd < 0 && errno != EEXIST) {
      err = sys_error("cannot create replay memory", path, errno);
      return -1;
    }
  }
  if (fd < 0) fd = ::open(path.c_str(), kFlags);
  if (fd < 0) {
    err = sys_error("cannot open replay memory", path, errno);
    return -1;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    err = make_error(errc::io_error, "replay memory " + path + " is not a regular file");
    ::close(fd);
    return -1;
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    err = sys_error("replay memory is locked by another process (another vguardd?):", path, errno);
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

ExecutedDigests::ExecutedDigests(std::string path, int fd, std::size_t capacity)
    : path_(std::move(path)), fd_(fd), capacity_(capacity) {}

ExecutedDigests::~ExecutedDigests() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<ExecutedDigests>> ExecutedDigests::open(const std::string& path,
                                                               std::size_t capacity) {
  VG_ASSERT(capacity > 0 && capacity < (std::size_t{1} << 32), "ExecutedDigests capacity");
  std::error_code ec;
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty() && !std::filesystem::exists(parent, ec)) {
    std::filesystem::create_directories(parent, ec);
    if (ec)
      return make_error(errc::io_error, "cannot create directory " + parent.string() + ": " + ec.message());
    std::filesystem::permissions(parent, std::filesystem::perms::owner_all, ec);
  }
  bool created = false;
  Error err;
  const int fd = open_locked(path, true, created, err);
  if (fd < 0) return err;
  std::unique_ptr<ExecutedDigests> m(new ExecutedDigests(path, fd, capacity));

  struct stat st {};
  if (::fstat(fd, &st) != 0) return sys_error("cannot stat", path, errno);
  if (created || st.st_size == 0) {
    if (auto r = write_file(fd, capacity, {}, path); !r) return r.error();
    if (auto r = fsync_dir(path); !r) return r.error();
    return m;
  }

  std::string data(static_cast<std::size_t>(st.st_size), '\0');
  std::size_t got = 0;
  while (got < data.size()) {
    const ssize_t n = ::pread(fd, data.data() + got, data.size() - got, static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return sys_error("cannot read", path, n < 0 ? errno : EIO);
    got += static_cast<std::size_t>(n);
  }
  if (data.size() < kHeaderSize || std::string_view(data).substr(0, kMagic.size()) != kMagic)
    return make_error(errc::io_error, "replay memory " + path + " has no vguard header; move it away");
  std::size_t slots = 0;
  for (int i = 0; i < 4; ++i)
    slots |= static_cast<std::size_t>(static_cast<unsigned char>(data[16 + i])) << (8 * i);

  // Every consistent slot, wherever it is: a file cut short or made for another capacity still yields its
  // digests.
  std::vector<std::pair<std::uint64_t, std::string>> found;
  for (std::size_t off = kHeaderSize; off + kSlotSize <= data.size(); off += kSlotSize) {
    const std::string_view d(data.data() + off, kDigestSize);
    const std::uint64_t seq = get_u64(data.data() + off + 64);
    if (seq == 0 || get_u64(data.data() + off + 72) != check_of(seq, d)) continue;
    found.emplace_back(seq, std::string(d));
  }
  std::sort(found.begin(), found.end());
  if (found.size() > capacity)
    found.erase(found.begin(), found.end() - static_cast<std::ptrdiff_t>(capacity));

  const bool exact = slots == capacity && data.size() == kHeaderSize + capacity * kSlotSize;
  if (!exact) {
    // Rewrite at the configured capacity: a temporary file, synced, renamed over the old one.
    std::vector<std::string> keep;
    for (auto& [seq, d] : found) keep.push_back(std::move(d));
    const std::string tmp = path + ".tmp";
    ::unlink(tmp.c_str());
    bool tmp_created = false;
    const int tfd = open_locked(tmp, true, tmp_created, err);
    if (tfd < 0) return err;
    if (auto r = write_file(tfd, capacity, keep, tmp); !r) {
      ::close(tfd);
      ::unlink(tmp.c_str());
      return r.error();
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      const int e = errno;
      ::close(tfd);
      ::unlink(tmp.c_str());
      return sys_error("cannot rename onto", path, e);
    }
    if (auto r = fsync_dir(path); !r) {
      ::close(tfd);
      return r.error();
    }
    ::close(m->fd_);
    m->fd_ = tfd;
    for (const auto& d : keep) m->insert(d);
    m->next_seq_ = keep.size() + 1;
    return m;
  }
  for (const auto& [seq, d] : found) m->insert(d);
  m->next_seq_ = found.empty() ? 1 : found.back().first + 1;
  return m;
}

bool ExecutedDigests::contains(std::string_view d) const {
  return d.size() == kDigestSize && set_.count(d) > 0;
}

void ExecutedDigests::insert(std::string_view d) {
  if (set_.count(d)) return;
  auto& slot = order_.emplace_back();
  std::memcpy(slot.data(), d.data(), kDigestSize);
  set_.insert(std::string_view(slot.data(), kDigestSize));
  while (order_.size() > capacity_) {
    set_.erase(std::string_view(order_.front().data(), kDigestSize));
    order_.pop_front();
  }
}

// The slot of sequence number s holds the digest written capacity_ numbers earlier, which is exactly the one
// insert() evicts from memory: the file and the memory forget the same digest.
Result<void> ExecutedDigests::write_slot(std::string_view d) {
  const std::uint64_t seq = next_seq_;
  const auto off = static_cast<off_t>(kHeaderSize + (seq % capacity_) * kSlotSize);
  if (auto r = pwrite_all(fd_, slot_bytes(seq, d), off, path_); !r) return r;
  ++next_seq_;
  insert(d);
  return {};
}

Result<void> ExecutedDigests::remember(std::string_view d) {
  VG_ASSERT(d.size() == kDigestSize, "digest of the wrong size");
  if (contains(d)) return {};
  if (auto r = write_slot(d); !r) return r;
  if (::fdatasync(fd_) != 0) return sys_error("cannot sync", path_, errno);
  return {};
}

Result<void> ExecutedDigests::remember_written(std::string_view d) {
  VG_ASSERT(d.size() == kDigestSize, "digest of the wrong size");
  if (contains(d)) return {};
  return write_slot(d);
}

Result<int> ExecutedDigests::append_unsynced(std::string_view d) {
  VG_ASSERT(d.size() == kDigestSize, "digest of the wrong size");
  const int fd = ::fcntl(fd_, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return sys_error("cannot duplicate the descriptor of", path_, errno);
  if (contains(d)) return fd;
  if (auto r = write_slot(d); !r) {
    ::close(fd);
    return r.error();
  }
  return fd;
}

Result<void> ExecutedDigests::sync_and_close(int fd) {
  const int rc = ::fdatasync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0)
    return make_error(errc::io_error, std::string("cannot sync the replay memory: ") + std::strerror(err));
  return {};
}

}  // namespace vguard::fenced
