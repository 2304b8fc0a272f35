#include "install_hook.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "fs_util.h"

namespace vguard::ctl {
namespace {

Error io_error(std::string_view what, const std::string& path, int err) {
  return make_error(errc::io_error, fmt::format("{} {}: {}", what, path, std::strerror(err)));
}

bool is_dir(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool is_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// The second line of text, without its newline.
std::string_view second_line(std::string_view text) {
  const auto first = text.find('\n');
  if (first == std::string_view::npos) return {};
  text.remove_prefix(first + 1);
  return text.substr(0, text.find('\n'));
}

Result<void> write_all(int fd, const std::string& path, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return io_error("cannot write", path, errno);
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

// The target never holds a partial wrapper: libvirt may run it at any moment. The temporary file becomes
// executable only once complete.
Result<void> replace_file(const std::string& path, std::string_view content) {
  std::string tmpl = path + ".tmp.XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  const int fd = ::mkostemp(buf.data(), O_CLOEXEC);  // mode 0600
  if (fd < 0) return io_error("cannot create a temporary file next to", path, errno);
  const std::string tmp(buf.data());
  auto r = write_all(fd, tmp, content);
  if (r && ::fsync(fd) != 0) r = io_error("cannot fsync", tmp, errno);
  if (r && ::fchmod(fd, 0755) != 0) r = io_error("cannot chmod", tmp, errno);
  if (::close(fd) != 0 && r) r = io_error("cannot close", tmp, errno);
  if (r && ::rename(tmp.c_str(), path.c_str()) != 0) r = io_error("cannot rename " + tmp + " to", path, errno);
  if (!r) {
    ::unlink(tmp.c_str());
    return r;
  }
  const int dfd = ::open(parent_dir(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  return {};
}

}  // namespace

std::string shell_quote(std::string_view word) {
  std::string out = "'";
  for (const char c : word) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

std::string hook_wrapper(std::string_view config, std::string_view hook) {
  return fmt::format(
      "#!/bin/sh\n"
      "{}\n"
      "# libvirt runs hooks with an empty environment: the configuration path is set here.\n"
      "VGUARD_CONFIG={} exec {} \"$@\"\n",
      kHookMarker, shell_quote(config), shell_quote(hook));
}

std::string hook_target(const std::string& hooks_dir) {
  const std::string dropin = hooks_dir + "/qemu.d";
  return is_dir(dropin) ? dropin + "/vguard" : hooks_dir + "/qemu";
}

Result<InstalledHook> install_hook(const InstallHookOptions& opts) {
  if (opts.hooks_dir.empty()) return make_error(errc::io_error, "the hooks directory must not be empty");
  if (opts.config.empty() || opts.config[0] != '/')
    return make_error(errc::io_error, "the configuration file must be an absolute path, not '" + opts.config + "'");
  if (opts.hook.empty() || opts.hook[0] != '/')
    return make_error(errc::io_error, "the vguard-hook program must be an absolute path, not '" + opts.hook + "'");
  // A wrapper that cannot exec its program fails every hook call, and a failing "reconnect" makes libvirt
  // kill the running guests: never install one.
  if (!is_file(opts.hook) || ::access(opts.hook.c_str(), X_OK) != 0)
    return make_error(errc::io_error, opts.hook + " is not an executable file; name vguard-hook with --hook PATH");

  InstalledHook res;
  res.target = hook_target(opts.hooks_dir);
  const std::string content = hook_wrapper(opts.config, opts.hook);
  struct stat st {};
  if (::lstat(res.target.c_str(), &st) == 0) {
    const auto current = S_ISREG(st.st_mode) ? read_file(res.target) : Result<std::string>(std::string());
    if (!current) return current.error();
    if (second_line(*current) != kHookMarker)
      return make_error(errc::io_error,
                        fmt::format("{} exists and is not a vguard hook; not touching it (move it into {}/qemu.d/ "
                                    "or remove it)",
                                    res.target, opts.hooks_dir));
    if (*current == content && (st.st_mode & 07777) == 0755) {
      res.action = InstalledHook::Action::unchanged;
      return res;
    }
    res.action = InstalledHook::Action::updated;
  } else if (errno != ENOENT) {
    return io_error("cannot access", res.target, errno);
  } else if (auto made = make_dirs(opts.hooks_dir, 0755); !made) {
    return made.error();
  }
  if (auto w = replace_file(res.target, content); !w) return w.error();
  return res;
}

std::string default_hook_program(const std::string& self_exe, std::string_view relative_to_bindir,
                                 std::string_view installed) {
  if (!self_exe.empty()) {
    const std::filesystem::path dir = std::filesystem::path(self_exe).parent_path();
    for (const std::filesystem::path& candidate : {dir / "vguard-hook", dir / relative_to_bindir}) {
      const std::string p = candidate.lexically_normal().string();
      if (is_file(p)) return p;
    }
  }
  return std::string(installed);
}

}  // namespace vguard::ctl
