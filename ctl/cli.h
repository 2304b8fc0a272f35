#pragma once
// vguardctl's command line: parsing and dispatch, with the outside world injected so tests run it in-process.
#include <chrono>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "message.h"
#include "result.h"

namespace vguard::ctl {

/// What vguardctl needs from outside. main() binds these to proto::call and the system clock.
struct Deps {
  /// One request (list_status, hosts, confirm_fenced) to vguardd's Unix control socket (local root socket:
  /// no key).
  std::function<Result<proto::Response>(const std::string& socket_path, std::chrono::milliseconds timeout,
                                        proto::Action action, const std::string& target)>
      call;
  /// Unix time in milliseconds (for --since 10m).
  std::function<std::int64_t()> now_unix_ms;
  /// The running vguardctl's own path (/proc/self/exe), to find vguard-hook next to it; empty if unknown.
  std::string self_exe;
};

/// Runs vguardctl with args (argv without argv[0]); results go to out, diagnostics to err (one line,
/// prefixed "vguardctl: "). Returns the exit code: kExitOk, kExitFailure, kExitUsage or kExitTornTail.
int run(const std::vector<std::string>& args, std::ostream& out, std::ostream& err, const Deps& deps);

/// The general usage text (vguardctl --help).
std::string usage();

}  // namespace vguard::ctl
