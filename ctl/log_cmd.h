#pragma once
// vguardctl log show / log verify: pure functions over the forensic log's content.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "audit.h"
#include "result.h"

namespace vguard::ctl {

inline constexpr std::string_view kDefaultLogFile = "/var/lib/vguard/forensic.log";

/// Turns a --since argument into the smallest canonical timestamp ("YYYY-MM-DDTHH:MM:SS.mmmZ") it denotes:
/// - an ISO UTC prefix: "2026-11-22", "2026-11-22T03", "2026-11-22T03:00", "2026-11-22 03:00:05",
///   "2026-11-22T03:00:05.1", optionally ending in 'Z'; missing parts are filled with their minimum;
/// - a relative age "<N>s", "<N>m", "<N>h" or "<N>d": now_unix_ms minus that.
/// Errors: errc::bad_config describing the accepted forms (time zone offsets are not accepted).
Result<std::string> parse_since(std::string_view text, std::int64_t now_unix_ms);

struct ShowOptions {
  std::optional<std::string>
      domain;  ///< keep records whose "domain" equals it or whose "uuid" equals it (any case)
  std::optional<std::string> since;  ///< canonical bound from parse_since(): keep records with ts >= since
  bool json = false;                 ///< print the raw lines instead of the human form
};

struct ShowResult {
  std::string out;                    ///< what goes to stdout
  std::vector<std::string> warnings;  ///< what goes to stderr (broken chain, torn last line)
};

/// Filters and formats the records of a whole log file. A torn last line is skipped with a warning; a chain
/// that does not verify only gives a warning (show is for reading, verify is for judging). Errors:
/// errc::bad_frame naming the line when a complete line is not a record at all.
Result<ShowResult> show_log(std::string_view content, const ShowOptions& opts);

/// Human form of one record: "<ts> <seq> <type> k=v k=v ..." (no prev/hash). String values that are empty or
/// hold spaces, '=', quotes, backslashes or control characters are JSON-quoted; other values are JSON text.
std::string format_record(const audit::ParsedRecord& rec);

/// Exit codes of vguardctl (documented in vguardctl(8)).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitTornTail = 3;

struct VerifyOutcome {
  int exit_code = kExitOk;
  std::string message;  ///< one line, without newline
};

/// "OK: N records, chain intact, head <16 hex>" (0), "TAMPERED: <problem>" (1) or
/// "OK with torn tail: <problem>" (3).
VerifyOutcome verify_outcome(const audit::VerifyReport& report);

}  // namespace vguard::ctl
