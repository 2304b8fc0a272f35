#pragma once
// Forensic log record format and hash-chain verification (STYLE.md §6, proto/audit). Pure: no file I/O.
//
// One JSON object per line, members in this order:
//   {"seq":N,"ts":"2026-11-22T03:04:05.123Z","type":"<type>","prev":"<64 hex>",<caller fields>,"hash":"<64
//   hex>"}
// - seq starts at 1 and grows by one per record.
// - prev is the previous record's hash; the first record's prev is 64 '0' characters (kGenesisHash).
// - hash is the lower-case hex SHA-256 of the exact bytes of the line without its hash member, i.e. of the
//   line with the suffix `,"hash":"<64 hex>"}` replaced by `}`. Hashing the bytes as written (not a
//   re-serialization) makes verification independent of the JSON library's formatting choices.
// The chain is not keyed: it proves that no record was edited, removed, inserted or reordered *unless* the
// attacker rewrote every later record as well. Anchor the head hash elsewhere (journald, another host) to
// close that gap.
#include <boost/json/object.hpp>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "result.h"

namespace vguard::audit {

/// prev of the first record: 64 '0' characters.
inline constexpr std::string_view kGenesisHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

/// Type of the record a writer appends after cutting off a torn last line.
inline constexpr std::string_view kRecoveryType = "recovery";

/// The end of a chain: the last record's seq and hash (seq 0 and kGenesisHash for an empty log).
struct ChainHead {
  std::uint64_t seq = 0;
  std::string hash = std::string(kGenesisHash);

  friend bool operator==(const ChainHead&, const ChainHead&) = default;
};

/// Builds the record that follows prev and stores its seq and hash in next (next may alias prev).
/// Returns the line WITHOUT a trailing newline. Member order: seq, ts, type, prev, fields in their order,
/// hash. Preconditions (VG_ASSERT, a violation is a bug): fields has none of the members seq, ts, type, prev,
/// hash; type is not empty; prev.hash is 64 lower-case hex characters. Pure and thread-safe.
std::string make_record(const ChainHead& prev, std::string_view ts_iso, std::string_view type,
                        const boost::json::object& fields, ChainHead& next);

/// Formats Unix milliseconds as "YYYY-MM-DDTHH:MM:SS.mmmZ" (UTC, proleptic Gregorian, pure arithmetic).
/// Precondition: the year is within 0000..9999 (VG_ASSERT), so that the text has a fixed width and
/// timestamps compare correctly as strings.
std::string format_utc_ms(std::int64_t unix_ms);

/// Outcome of verify_log().
struct VerifyReport {
  /// True when every complete line verifies. A torn tail alone does not clear it.
  bool ok = true;
  /// Number of records that verified (all of them when ok).
  std::uint64_t records = 0;
  /// 1-based line number of the first line that does not verify (tampering or torn tail); nullopt when none.
  std::optional<std::uint64_t> first_bad_line;
  /// Human description of what is wrong, empty when nothing is. Names the line and, when known, the seq.
  std::string problem;
  /// True when the last line has no trailing newline and does not verify: an incomplete write (crash).
  /// Only reported when everything before it verifies (otherwise ok is false and problem names the earlier
  /// line).
  bool torn_tail = false;
  /// True when the last line verifies and chains correctly but lacks its trailing newline (a write that lost
  /// only the '\n'). The record counts; a writer must add the newline before appending.
  bool missing_final_newline = false;
  /// Head after the last record that verified.
  ChainHead head;
  /// Byte length of the verified prefix of the file: every complete good line with its newline, plus a
  /// verified final line that lacks its newline. A writer truncates to this length to cut off a torn tail.
  std::size_t good_bytes = 0;
};

/// Verifies a whole log file. Detects an edited record (hash mismatch), a removed record (seq gap),
/// reordered or inserted records (seq not increasing, prev mismatch), and anything that is not a record
/// (non-JSON, missing or misplaced members) and reports the first such line. An empty input is ok with 0
/// records. Records of type "recovery" are ordinary records. Pure and thread-safe.
VerifyReport verify_log(std::string_view whole_file);

/// For a writer reopening its log: verifies whole_file and returns the head to continue from, and in
/// good_bytes the length of the verified prefix (see VerifyReport::good_bytes); a torn tail lies beyond it.
/// Errors: errc::io_error when the chain is broken, with the problem (first bad line) as context.
Result<ChainHead> head_of(std::string_view whole_file, std::size_t& good_bytes);

/// A parsed record line (not chain-verified: see verify_log()).
struct ParsedRecord {
  std::uint64_t seq = 0;
  std::string ts;
  std::string type;
  std::string prev;
  std::string hash;
  /// The caller fields, in file order (seq, ts, type, prev and hash removed).
  boost::json::object fields;
  /// False when the hash does not match the line's bytes (the record was edited).
  bool hash_ok = true;
};

/// Parses one line (without its newline) into a record and checks whether its hash matches its bytes
/// (hash_ok); it does not check the chain. Errors: errc::bad_frame with a description when the line is not a
/// record at all ("not a valid record: not JSON (...)", "... member 1 is \"x\", expected \"seq\""). Used by
/// readers that display records. Pure and thread-safe.
Result<ParsedRecord> parse_record(std::string_view line);

}  // namespace vguard::audit
