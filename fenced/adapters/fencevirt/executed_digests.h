#pragma once
// The persistent replay memory of vguardd's fence_xvm / fence_virt listeners. fence_virtd forgets a signed
// request after 10 s, so a captured packet can be replayed forever (fence-virt-protocol.md §7.1). vguardd
// remembers the digest field of every signed request it went on to execute, across restarts, and refuses a
// packet whose digest it has seen. The packet's digest covers the key, 6 random bytes and every other field,
// so a legitimate client's retransmissions (re-signed with fresh random bytes) never collide with it.
#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>

#include "result.h"

namespace vguard::fenced {

/// A bounded set of 64-byte digests, the newest `capacity` kept, persisted in one file of fixed size.
/// Single-threaded (the io thread), except sync_and_close().
///
/// File format: a 64-byte header ("vguard-xvm-rp-2\n", then u32le slot count, zeros), then `capacity` slots
/// of 128 bytes: digest[64], u64le seq, u64le check (the first 8 bytes of SHA-256(seq ‖ digest)), zeros. The
/// digest with sequence number s is written in slot s mod capacity, over the oldest one, so the file never
/// grows and a flush writes one data block and no metadata. An all-zero or inconsistent slot (a write cut
/// short) is empty. The file is created at full size (8 MiB for 65536 slots).
class ExecutedDigests {
 public:
  static constexpr std::size_t kDigestSize = 64;
  static constexpr std::size_t kHeaderSize = 64;
  static constexpr std::size_t kSlotSize = 128;
  static constexpr std::string_view kMagic = "vguard-xvm-rp-2\n";

  /// Opens (creating it 0600, and missing parent directories 0700) the file and loads its digests. A file
  /// made for another capacity is rewritten (newest digests first) through a temporary file and a rename.
  /// Holds an exclusive flock(2) for the object's lifetime. Errors (errc::io_error): not a regular file, a
  /// symlink, a foreign header, locked by another process, any system call failing. capacity must be > 0.
  static Result<std::unique_ptr<ExecutedDigests>> open(const std::string& path, std::size_t capacity);
  ~ExecutedDigests();
  ExecutedDigests(const ExecutedDigests&) = delete;
  ExecutedDigests& operator=(const ExecutedDigests&) = delete;

  /// Whether the digest (exactly kDigestSize bytes) is remembered.
  [[nodiscard]] bool contains(std::string_view digest) const;
  /// Writes the digest and fdatasync()s before returning, so a reply sent after it can never be followed by a
  /// restart that forgot it. Idempotent. Errors (errc::io_error): the write or the sync failed; the caller
  /// must then not execute the request.
  Result<void> remember(std::string_view digest);
  /// remember() without the flush, for a request that changes nothing (status, list): written with pwrite(2),
  /// so a restart of vguardd keeps it (the page cache outlives the process); only a crash of the kernel can
  /// lose it, and a read replayed after that still changes nothing. Errors: errc::io_error (not remembered).
  Result<void> remember_written(std::string_view digest);
  /// remember() in two halves, so the flush can overlap other work: writes the digest (pwrite(2), no flush),
  /// counts it as remembered at once, and returns a duplicate of the file descriptor for sync_and_close().
  /// The caller must not act on the request before sync_and_close() succeeded. Errors: errc::io_error (the
  /// digest is then not remembered in memory either).
  Result<int> append_unsynced(std::string_view digest);
  /// fdatasync(fd), then close(fd). Thread-safe (any thread). Errors: errc::io_error.
  static Result<void> sync_and_close(int fd);
  [[nodiscard]] std::size_t size() const { return order_.size(); }
  [[nodiscard]] std::size_t capacity() const { return capacity_; }
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  ExecutedDigests(std::string path, int fd, std::size_t capacity);
  void insert(std::string_view d);
  Result<void> write_slot(std::string_view d);

  std::string path_;
  int fd_ = -1;
  std::size_t capacity_;
  std::uint64_t next_seq_ = 1;
  std::deque<std::array<char, kDigestSize>> order_;  // oldest first; references stay valid at both ends
  std::unordered_set<std::string_view> set_;         // views into order_
};

}  // namespace vguard::fenced
