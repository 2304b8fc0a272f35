#pragma once
// Small file helpers of vguardctl.
#include <string>

#include "result.h"

namespace vguard::ctl {

/// Reads a whole file. Errors: errc::io_error naming the path and the reason ("cannot read /x: No such
/// file...").
Result<std::string> read_file(const std::string& path);

/// Directory part of path ("." when there is none, "/" for a file in the root).
std::string parent_dir(const std::string& path);

/// mkdir -p: creates the missing directories of dir with exactly mode (0700 by default, whatever the umask);
/// existing ones are left alone. Errors: errc::io_error (a component exists and is not a directory, or mkdir
/// fails).
Result<void> make_dirs(const std::string& dir, unsigned mode = 0700);

}  // namespace vguard::ctl
