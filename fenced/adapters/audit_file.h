#pragma once
// The forensic log file: an append-only, hash-chained file of audit records (proto/audit format).
#include <boost/json/object.hpp>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "audit.h"
#include "result.h"

namespace vguard::fenced {

/// Append-only writer of the forensic log. Single-threaded: use one instance from one thread. Holds an
/// exclusive flock(2) on the file for its lifetime, so a second vguardd cannot interleave records.
class AuditFile {
 public:
  /// Opens (creating it 0600, and missing parent directories 0700) the log at path and verifies its chain.
  /// - A broken chain (edited, removed, inserted, reordered record, garbage line) fails with errc::io_error
  ///   naming the first bad line: the daemon must not write onto a broken chain; the admin moves the file
  ///   away.
  /// - A torn last line (crash during a write) is cut off and a "recovery" record with fields
  ///   {"torn_bytes": N, "torn_hex": "<hex of the first 4096 bytes at most>"} is appended and synced, so
  ///   nothing is silently lost and the chain stays valid.
  /// - A verified last line that lost only its newline gets the newline.
  /// now_unix_ms stamps a recovery record. Other errors (errc::io_error): path is a symlink or not a regular
  /// file, the file is locked by another process, or any system call fails.
  static Result<std::unique_ptr<AuditFile>> open(const std::string& path, std::int64_t now_unix_ms);
  /// Same, stamping a recovery record with the system clock.
  static Result<std::unique_ptr<AuditFile>> open(const std::string& path);

  ~AuditFile();
  AuditFile(const AuditFile&) = delete;
  AuditFile& operator=(const AuditFile&) = delete;
  AuditFile(AuditFile&&) = delete;
  AuditFile& operator=(AuditFile&&) = delete;

  /// Appends one record (make_record() rules: type not empty, no reserved field names, else abort) in a
  /// single write(2) (looping on partial writes), then fdatasync()s when sync. On a failed write the file is
  /// truncated back to its previous length and the head does not move; if even that fails the writer refuses
  /// every later append (the chain would break). A failed fdatasync returns errc::io_error but the record was
  /// written and the head has moved (its durability is unknown). Errors: errc::io_error.
  Result<void> append(std::string_view type, const boost::json::object& fields, bool sync,
                      std::int64_t now_unix_ms);

  /// The chain head after the last record written or found on open.
  [[nodiscard]] const audit::ChainHead& head() const { return head_; }
  /// The path given to open().
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  AuditFile(std::string path, int fd);
  Result<void> write_all(std::string_view bytes);

  std::string path_;
  int fd_ = -1;  // owned; closed by the destructor
  audit::ChainHead head_;
  std::uint64_t size_ = 0;  // bytes of the file that hold complete records
  bool broken_ = false;
};

}  // namespace vguard::fenced
