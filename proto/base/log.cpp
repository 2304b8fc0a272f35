#include "log.h"

#include <cstdio>

namespace vguard {

std::string_view level_name(Level l) noexcept {
  switch (l) {
    case Level::critical: return "critical";
    case Level::error: return "error";
    case Level::warning: return "warning";
    case Level::notice: return "notice";
    case Level::info: return "info";
    case Level::debug: return "debug";
    case Level::trace: return "trace";
  }
  return "?";
}

void StderrLogger::write(Level level, std::string_view subsys, std::string_view text) {
  if (static_cast<int>(level) > static_cast<int>(threshold_)) return;
  // <N> prefix: systemd/journald maps it to the syslog priority when stderr goes to the journal.
  const int prio = static_cast<int>(level) > 7 ? 7 : static_cast<int>(level);
  std::lock_guard lock(mu_);
  std::fprintf(stderr, "<%d>%.*s %.*s: %.*s\n", prio, static_cast<int>(level_name(level).size()),
               level_name(level).data(), static_cast<int>(subsys.size()), subsys.data(),
               static_cast<int>(text.size()), text.data());
  std::fflush(stderr);
}

}  // namespace vguard
