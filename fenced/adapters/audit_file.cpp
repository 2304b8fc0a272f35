#include "audit_file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "uuid.h"

namespace vguard::fenced {
namespace {

constexpr std::size_t kMaxTornHex = 4096;  // bytes of a torn tail kept (hex-encoded) in the recovery record

Error sys_error(std::string_view what, const std::string& path, int err) {
  return make_error(errc::io_error, fmt::format("{} {}: {}", what, path, std::strerror(err)));
}

// Closes a descriptor on scope exit (only the directory fd here; the log fd belongs to AuditFile).
class UniqueFd {
 public:
  explicit UniqueFd(int fd) noexcept : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  [[nodiscard]] int get() const noexcept { return fd_; }

 private:
  int fd_;
};

std::string parent_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// mkdir -p with mode 0700 for the directories it creates; existing directories are left as they are.
Result<void> make_dirs(const std::string& dir) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return make_error(errc::io_error, dir + " exists and is not a directory");
    return {};
  }
  if (errno != ENOENT) return sys_error("cannot access", dir, errno);
  const std::string parent = parent_of(dir);
  if (parent != dir) {
    auto r = make_dirs(parent);
    if (!r) return r;
  }
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    return sys_error("cannot create directory", dir, errno);
  return {};
}

// A new directory entry is only durable once its directory is synced.
Result<void> sync_dir(const std::string& dir) {
  UniqueFd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.get() < 0) return sys_error("cannot open directory", dir, errno);
  if (::fsync(d.get()) != 0) return sys_error("cannot fsync directory", dir, errno);
  return {};
}

Result<std::string> read_all(int fd, const std::string& path) {
  std::string out;
  char buf[65536];
  off_t off = 0;
  for (;;) {
    const ssize_t n = ::pread(fd, buf, sizeof buf, off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return sys_error("cannot read", path, errno);
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    off += n;
  }
  return out;
}

}  // namespace

AuditFile::AuditFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}

AuditFile::~AuditFile() {
  if (fd_ >= 0) ::close(fd_);
}

Result<std::unique_ptr<AuditFile>> AuditFile::open(const std::string& path) {
  const auto now = std::chrono::system_clock::now().time_since_epoch();
  return open(path, std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
}

Result<std::unique_ptr<AuditFile>> AuditFile::open(const std::string& path, std::int64_t now_unix_ms) {
  if (path.empty()) return make_error(errc::io_error, "forensic log path is empty");
  const std::string dir = parent_of(path);
  if (auto r = make_dirs(dir); !r) return r.error();

  // O_NOFOLLOW: the daemon runs as root; never follow a symlink planted in place of its log.
  constexpr int kFlags = O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW;
  bool created = true;
  int fd = ::open(path.c_str(), kFlags | O_CREAT | O_EXCL, 0600);
  if (fd < 0 && errno == EEXIST) {
    created = false;
    fd = ::open(path.c_str(), kFlags);
  }
  if (fd < 0) {
    if (errno == ELOOP)
      return make_error(errc::io_error, "forensic log " + path + " is a symbolic link; refusing it");
    return sys_error("cannot open forensic log", path, errno);
  }
  std::unique_ptr<AuditFile> f(new AuditFile(path, fd));

  struct stat st {};
  if (::fstat(fd, &st) != 0) return sys_error("cannot stat", path, errno);
  if (!S_ISREG(st.st_mode))
    return make_error(errc::io_error, "forensic log " + path + " is not a regular file");
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK)
      return make_error(errc::io_error, "forensic log " + path + " is in use by another process (locked)");
    return sys_error("cannot lock", path, errno);
  }
  if (created) {
    if (auto r = sync_dir(dir); !r) return r.error();
  }

  auto content = read_all(fd, path);
  if (!content) return content.error();
  const audit::VerifyReport rep = audit::verify_log(*content);
  if (!rep.ok) {
    return make_error(errc::io_error,
                      fmt::format("forensic log {} is not intact: {}; refusing to append to a broken chain "
                                  "(inspect it with 'vguardctl log verify --file {}', then move it away)",
                                  path, rep.problem, path));
  }
  f->head_ = rep.head;
  f->size_ = rep.good_bytes;

  if (rep.missing_final_newline) {
    if (auto r = f->write_all("\n"); !r) return r.error();
    f->size_ += 1;
  }
  if (rep.torn_tail) {
    const std::string_view torn = std::string_view(*content).substr(rep.good_bytes);
    if (::ftruncate(fd, static_cast<off_t>(rep.good_bytes)) != 0)
      return sys_error("cannot cut the torn last line of", path, errno);
    boost::json::object fields;
    fields.emplace("torn_bytes", static_cast<std::uint64_t>(torn.size()));
    fields.emplace("torn_hex", to_hex(torn.substr(0, std::min(torn.size(), kMaxTornHex))));
    if (auto r = f->append(audit::kRecoveryType, fields, true, now_unix_ms); !r) return r.error();
  }
  return f;
}

Result<void> AuditFile::write_all(std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd_, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return sys_error("cannot write to forensic log", path_, errno);
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

Result<void> AuditFile::append(std::string_view type, const boost::json::object& fields, bool sync,
                               std::int64_t now_unix_ms) {
  if (broken_)
    return make_error(errc::io_error, "forensic log " + path_ +
                                          " holds a partial record that could not be removed; "
                                          "not appending (restart the daemon to recover)");
  audit::ChainHead next;
  std::string line = audit::make_record(head_, audit::format_utc_ms(now_unix_ms), type, fields, next);
  line.push_back('\n');
  if (auto r = write_all(line); !r) {
    // A partial line followed by a later record would read as tampering; cut it off now.
    if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) broken_ = true;
    return r;
  }
  size_ += line.size();
  head_ = std::move(next);
  if (sync && ::fdatasync(fd_) != 0) return sys_error("cannot fdatasync forensic log", path_, errno);
  return {};
}

}  // namespace vguard::fenced
