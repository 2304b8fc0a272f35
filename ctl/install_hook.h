#pragma once
// vguardctl install-hook: installs vguard-hook as libvirt's qemu hook through a small /bin/sh wrapper.
#include <string>
#include <string_view>

#include "result.h"

namespace vguard::ctl {

inline constexpr std::string_view kDefaultHooksDir = "/etc/libvirt/hooks";
inline constexpr std::string_view kDefaultConfigFile = "/etc/vguard/vguard.conf";
/// Second line of every wrapper vguardctl writes: what makes a file ours to replace.
inline constexpr std::string_view kHookMarker = "# vguard-hook wrapper, installed by vguardctl install-hook";

struct InstallHookOptions {
  std::string hooks_dir = std::string(kDefaultHooksDir);
  std::string config = std::string(kDefaultConfigFile);  ///< absolute; vguard-hook reads it ($VGUARD_CONFIG)
  std::string hook;                                      ///< absolute path of the vguard-hook program
};

struct InstalledHook {
  enum class Action { installed, updated, unchanged } action = Action::installed;
  std::string target;  ///< the wrapper's path
};

/// The wrapper's text. libvirt runs hooks with a cleared environment, so the config path is in the file.
std::string hook_wrapper(std::string_view config, std::string_view hook);

/// The word in single quotes for /bin/sh: 'it'\''s'.
std::string shell_quote(std::string_view word);

/// DIR/qemu.d/vguard when DIR/qemu.d is a directory (libvirt >= 6.5 runs every executable there), else
/// DIR/qemu.
std::string hook_target(const std::string& hooks_dir);

/// Writes hook_wrapper() to hook_target() with mode 0755 (a temporary file in the same directory, renamed
/// over the target), creating a missing hooks_dir with mode 0755. An identical file is left alone
/// (unchanged); a file with kHookMarker on its second line is replaced (updated). Errors (nothing is
/// changed): errc::io_error when the target exists and is not our wrapper ("TARGET exists and is not a vguard
/// hook; ..."), when config or hook is not an absolute path, when hook is not an executable file, or on I/O.
Result<InstalledHook> install_hook(const InstallHookOptions& opts);

/// The default vguard-hook program: vguard-hook next to the running vguardctl (self_exe) if it exists (a
/// build tree, or an install whose bindir holds both), else self_exe's dir + relative_to_bindir if that
/// exists (an install under any prefix: "../libexec/vguard/vguard-hook"), else installed (the configured
/// PREFIX/libexec/vguard/vguard-hook).
std::string default_hook_program(const std::string& self_exe, std::string_view relative_to_bindir,
                                 std::string_view installed);

}  // namespace vguard::ctl
