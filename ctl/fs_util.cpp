#include "fs_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vguard::ctl {

Result<std::string> read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return make_error(errc::io_error, "cannot read " + path + ": " + std::strerror(errno));
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      const int e = errno;
      ::close(fd);
      return make_error(errc::io_error, "cannot read " + path + ": " + std::strerror(e));
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

std::string parent_dir(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

Result<void> make_dirs(const std::string& dir, unsigned mode) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return make_error(errc::io_error, dir + " exists and is not a directory");
    return {};
  }
  if (errno != ENOENT)
    return make_error(errc::io_error, "cannot access " + dir + ": " + std::strerror(errno));
  const std::string parent = parent_dir(dir);
  if (parent != dir) {
    auto r = make_dirs(parent, mode);
    if (!r) return r;
  }
  if (::mkdir(dir.c_str(), static_cast<mode_t>(mode)) != 0) {
    if (errno == EEXIST) return {};
    return make_error(errc::io_error, "cannot create directory " + dir + ": " + std::strerror(errno));
  }
  // The umask narrowed mkdir's mode; a directory we created gets exactly the mode asked for.
  if (::chmod(dir.c_str(), static_cast<mode_t>(mode)) != 0)
    return make_error(errc::io_error, "cannot chmod directory " + dir + ": " + std::strerror(errno));
  return {};
}

}  // namespace vguard::ctl
