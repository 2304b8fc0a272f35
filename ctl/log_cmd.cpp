#include "log_cmd.h"

#include <fmt/format.h>

#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>
#include <cctype>
#include <charconv>
#include <limits>

namespace vguard::ctl {
namespace {

namespace json = boost::json;

constexpr std::string_view kMinTimestamp = "0000-01-01T00:00:00.000Z";

bool all_digits(std::string_view s) {
  for (const char c : s)
    if (c < '0' || c > '9') return false;
  return !s.empty();
}

int num(std::string_view s) {
  int v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

Error since_error(std::string_view text, std::string_view why) {
  return make_error(errc::bad_config,
                    fmt::format("invalid --since '{}': {}; use an ISO UTC time such as 2026-11-22 or "
                                "2026-11-22T03:00 (optionally with seconds, milliseconds and 'Z'), or an age "
                                "such as 30s, 10m, 2h, 1d",
                                text, why));
}

Result<std::string> parse_relative(std::string_view text, std::int64_t now_unix_ms) {
  const char unit = text.back();
  std::int64_t scale = 0;
  switch (unit) {
    case 's':
      scale = 1000;
      break;
    case 'm':
      scale = 60 * 1000;
      break;
    case 'h':
      scale = 3600 * 1000;
      break;
    case 'd':
      scale = 86400 * 1000;
      break;
    default:
      return since_error(text, "unknown unit");
  }
  const std::string_view digits = text.substr(0, text.size() - 1);
  std::int64_t n = 0;
  const auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (ec != std::errc{} || p != digits.data() + digits.size() || n < 0)
    return since_error(text, "bad number");
  // Stay within years 0000..9999 so that format_utc_ms() is defined.
  constexpr std::int64_t kMinMs = -62167219200000;  // 0000-01-01T00:00:00Z
  if (n > (now_unix_ms - kMinMs) / scale) return since_error(text, "too far in the past");
  return audit::format_utc_ms(now_unix_ms - n * scale);
}

Result<std::string> parse_iso(std::string_view text) {
  std::string s(text);
  if (!s.empty() && (s.back() == 'Z' || s.back() == 'z')) s.pop_back();
  if (s.size() > 10 && (s[10] == ' ' || s[10] == 't')) s[10] = 'T';
  // Accepted lengths: date, +hour, +minutes, +seconds, +1..3 fraction digits.
  static constexpr std::string_view kShape = "dddd-dd-ddTdd:dd:dd.ddd";
  const bool len_ok = s.size() == 10 || s.size() == 13 || s.size() == 16 || s.size() == 19 ||
                      (s.size() >= 21 && s.size() <= 23);
  if (!len_ok) return since_error(text, "not a recognised time");
  for (std::size_t i = 0; i < s.size(); ++i) {
    const bool want_digit = kShape[i] == 'd';
    if (want_digit ? !std::isdigit(static_cast<unsigned char>(s[i])) : s[i] != kShape[i])
      return since_error(text, "not a recognised time");
  }
  if (num(s.substr(5, 2)) < 1 || num(s.substr(5, 2)) > 12) return since_error(text, "month out of range");
  if (num(s.substr(8, 2)) < 1 || num(s.substr(8, 2)) > 31) return since_error(text, "day out of range");
  if (s.size() >= 13 && num(s.substr(11, 2)) > 23) return since_error(text, "hour out of range");
  if (s.size() >= 16 && num(s.substr(14, 2)) > 59) return since_error(text, "minute out of range");
  if (s.size() >= 19 && num(s.substr(17, 2)) > 60) return since_error(text, "second out of range");
  // Fill the rest with its minimum: the bound is the first instant the prefix denotes.
  s.append(kMinTimestamp.substr(s.size()));
  return s;
}

bool needs_quotes(std::string_view s) {
  if (s.empty()) return true;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '=' || c == '"' || c == '\\') return true;
  }
  return false;
}

// JSON quoting escapes control characters, so a forged record cannot drive the terminal.
std::string display(std::string_view s) {
  if (!needs_quotes(s)) return std::string(s);
  return json::serialize(json::string(s));
}

bool iequal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i])))
      return false;
  return true;
}

bool matches_domain(const json::object& f, std::string_view d) {
  if (const auto* v = f.if_contains("domain"); v && v->is_string() && v->get_string() == d) return true;
  if (const auto* v = f.if_contains("uuid"); v && v->is_string() && iequal(v->get_string(), d)) return true;
  // A request record names its target as the client wrote it (name or UUID).
  if (const auto* v = f.if_contains("target"); v && v->is_string() && iequal(v->get_string(), d)) return true;
  return false;
}

}  // namespace

Result<std::string> parse_since(std::string_view text, std::int64_t now_unix_ms) {
  if (text.empty()) return since_error(text, "empty");
  if (text.size() >= 2 && all_digits(text.substr(0, text.size() - 1)) &&
      std::isalpha(static_cast<unsigned char>(text.back())) && text.back() != 'Z' && text.back() != 'z')
    return parse_relative(text, now_unix_ms);
  return parse_iso(text);
}

std::string format_record(const audit::ParsedRecord& rec) {
  std::string out = fmt::format("{} {} {}", display(rec.ts), rec.seq, display(rec.type));
  for (const auto& kv : rec.fields) {
    out.push_back(' ');
    out += display(kv.key());
    out.push_back('=');
    out += kv.value().is_string() ? display(kv.value().get_string()) : json::serialize(kv.value());
  }
  return out;
}

Result<ShowResult> show_log(std::string_view content, const ShowOptions& opts) {
  ShowResult res;
  const audit::VerifyReport rep = audit::verify_log(content);
  std::size_t pos = 0;
  std::uint64_t line_no = 0;
  while (pos < content.size()) {
    ++line_no;
    const std::size_t nl = content.find('\n', pos);
    const bool terminated = nl != std::string_view::npos;
    const std::size_t end = terminated ? nl : content.size();
    const std::string_view line = content.substr(pos, end - pos);
    pos = end + 1;
    auto rec = audit::parse_record(line);
    if (!rec) {
      if (!terminated) break;  // the torn tail; reported below from the verify report
      return make_error(errc::bad_frame, fmt::format("line {}: {}", line_no, rec.error().context));
    }
    if (opts.domain && !matches_domain(rec->fields, *opts.domain)) continue;
    if (opts.since && rec->ts < *opts.since) continue;
    if (opts.json) {
      res.out.append(line);
    } else {
      res.out += format_record(*rec);
    }
    res.out.push_back('\n');
  }
  if (!rep.ok) res.warnings.push_back("chain not intact: " + rep.problem + " (see 'vguardctl log verify')");
  if (rep.torn_tail) res.warnings.push_back("ignoring the last line: " + rep.problem);
  return res;
}

VerifyOutcome verify_outcome(const audit::VerifyReport& r) {
  if (!r.ok) return {kExitFailure, "TAMPERED: " + r.problem};
  if (r.torn_tail) return {kExitTornTail, "OK with torn tail: " + r.problem};
  std::string msg =
      fmt::format("OK: {} records, chain intact, head {}", r.records, r.head.hash.substr(0, 16));
  if (r.missing_final_newline) msg += " (last line lacks its newline)";
  return {kExitOk, msg};
}

}  // namespace vguard::ctl
