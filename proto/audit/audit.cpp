#include "audit.h"

#include <fmt/format.h>

#include <array>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <chrono>
#include <limits>

#include "crypto.h"
#include "uuid.h"

namespace vguard::audit {
namespace {

namespace json = boost::json;

constexpr std::array<std::string_view, 5> kReserved = {"seq", "ts", "type", "prev", "hash"};
constexpr std::string_view kHashKey = ",\"hash\":\"";
constexpr std::size_t kHashLen = 64;
// `,"hash":"` + 64 hex + `"}`
constexpr std::size_t kSuffixLen = kHashKey.size() + kHashLen + 2;

bool is_lower_hex64(std::string_view s) {
  if (s.size() != kHashLen) return false;
  for (const char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string hash_hex(std::string_view bytes) { return to_hex(proto::as_view(proto::sha256(bytes))); }

enum class Fault { none, not_json, not_record, hash_mismatch };

struct LineCheck {
  Fault fault = Fault::none;
  std::string what;  // for not_json / not_record
  ParsedRecord rec;  // seq is filled whenever it could be read, even on hash_mismatch
};

LineCheck fail(Fault f, std::string what) {
  LineCheck c;
  c.fault = f;
  c.what = std::move(what);
  return c;
}

std::optional<std::uint64_t> as_seq(const json::value& v) {
  if (v.is_uint64()) return v.get_uint64();
  if (v.is_int64() && v.get_int64() >= 0) return static_cast<std::uint64_t>(v.get_int64());
  return std::nullopt;
}

// Structure first, then the hash: a line that is not a record at all must be reported as such, not as an
// edited record.
LineCheck check_line(std::string_view line) {
  boost::system::error_code ec;
  json::value v = json::parse(line, ec);
  if (ec) return fail(Fault::not_json, "not JSON (" + ec.message() + ")");
  if (!v.is_object()) return fail(Fault::not_record, "not a JSON object");
  json::object& o = v.get_object();
  if (o.size() < kReserved.size()) return fail(Fault::not_record, "too few members for a record");
  // Fixed leading members, in order.
  const auto* it = o.begin();
  for (std::size_t i = 0; i < 4; ++i) {
    if (it[i].key() != kReserved[i])
      return fail(Fault::not_record, fmt::format("member {} is \"{}\", expected \"{}\"", i + 1,
                                                 std::string_view(it[i].key()), kReserved[i]));
  }
  const json::key_value_pair& last = it[o.size() - 1];
  if (last.key() != "hash") return fail(Fault::not_record, "last member is not \"hash\"");

  LineCheck c;
  const auto seq = as_seq(it[0].value());
  if (!seq) return fail(Fault::not_record, "seq is not a non-negative integer");
  c.rec.seq = *seq;
  if (!it[1].value().is_string()) return fail(Fault::not_record, "ts is not a string");
  if (!it[2].value().is_string() || it[2].value().get_string().empty())
    return fail(Fault::not_record, "type is not a non-empty string");
  if (!it[3].value().is_string() || !is_lower_hex64(it[3].value().get_string()))
    return fail(Fault::not_record, "prev is not 64 lower-case hex characters");
  if (!last.value().is_string() || !is_lower_hex64(last.value().get_string()))
    return fail(Fault::not_record, "hash is not 64 lower-case hex characters");
  c.rec.ts = std::string(it[1].value().get_string());
  c.rec.type = std::string(it[2].value().get_string());
  c.rec.prev = std::string(it[3].value().get_string());
  c.rec.hash = std::string(last.value().get_string());
  for (std::size_t i = 4; i + 1 < o.size(); ++i) {
    for (const auto r : kReserved)
      if (it[i].key() == r) return fail(Fault::not_record, fmt::format("duplicate member \"{}\"", r));
    c.rec.fields.emplace(it[i].key(), it[i].value());
  }

  // The hashed bytes are the line as written minus its hash member; that member must therefore be spelled
  // exactly as make_record() writes it.
  const std::string expected_suffix = std::string(kHashKey) + c.rec.hash + "\"}";
  if (line.size() <= kSuffixLen || line.substr(line.size() - kSuffixLen) != expected_suffix)
    return fail(Fault::not_record, "the hash member is not written as ,\"hash\":\"<64 hex>\"} at the end");
  std::string hashed(line.substr(0, line.size() - kSuffixLen));
  hashed.push_back('}');
  if (!proto::ct_equal(hash_hex(hashed), c.rec.hash)) {
    c.fault = Fault::hash_mismatch;
    return c;
  }
  return c;
}

// Only used to word a seq gap: a missing seq found further down means reordering, not removal.
bool seq_appears_in(std::string_view rest, std::uint64_t seq) {
  while (!rest.empty()) {
    const std::size_t nl = rest.find('\n');
    const std::string_view line = rest.substr(0, nl);
    boost::system::error_code ec;
    const json::value v = json::parse(line, ec);
    if (!ec && v.is_object()) {
      const auto* s = v.get_object().if_contains("seq");
      if (s && as_seq(*s) == seq) return true;
    }
    if (nl == std::string_view::npos) break;
    rest.remove_prefix(nl + 1);
  }
  return false;
}

}  // namespace

std::string make_record(const ChainHead& prev, std::string_view ts_iso, std::string_view type,
                        const json::object& fields, ChainHead& next) {
  VG_ASSERT(is_lower_hex64(prev.hash), "audit chain head hash must be 64 lower-case hex characters");
  VG_ASSERT(prev.seq < std::numeric_limits<std::uint64_t>::max(), "audit seq overflow");
  VG_ASSERT(!type.empty(), "audit record type must not be empty");
  json::object o;
  o.reserve(fields.size() + 5);
  o.emplace("seq", prev.seq + 1);
  o.emplace("ts", ts_iso);
  o.emplace("type", type);
  o.emplace("prev", prev.hash);
  for (const auto& kv : fields) {
    for (const auto r : kReserved)
      VG_ASSERT(kv.key() != r, "audit fields must not use a reserved member name");
    o.emplace(kv.key(), kv.value());
  }
  // Build the final line from the hashed bytes themselves, so that what is hashed and what is written
  // cannot diverge.
  std::string line = json::serialize(o);
  const std::string hash = hash_hex(line);
  line.pop_back();  // '}'
  line.append(kHashKey);
  line.append(hash);
  line.append("\"}");
  next.seq = prev.seq + 1;
  next.hash = hash;
  return line;
}

std::string format_utc_ms(std::int64_t unix_ms) {
  using namespace std::chrono;
  const sys_time<milliseconds> tp{milliseconds{unix_ms}};
  const auto day = floor<days>(tp);
  const year_month_day ymd{day};
  const hh_mm_ss<milliseconds> hms{tp - day};
  const int y = static_cast<int>(ymd.year());
  VG_ASSERT(y >= 0 && y <= 9999, "audit timestamp outside years 0000..9999");
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z", y, static_cast<unsigned>(ymd.month()),
                     static_cast<unsigned>(ymd.day()), hms.hours().count(), hms.minutes().count(),
                     hms.seconds().count(), hms.subseconds().count());
}

VerifyReport verify_log(std::string_view whole_file) {
  VerifyReport r;
  std::size_t pos = 0;
  std::uint64_t line_no = 0;
  while (pos < whole_file.size()) {
    ++line_no;
    const std::size_t nl = whole_file.find('\n', pos);
    const bool terminated = nl != std::string_view::npos;
    const std::size_t end = terminated ? nl : whole_file.size();
    const std::string_view line = whole_file.substr(pos, end - pos);
    const LineCheck c = check_line(line);

    if (c.fault != Fault::none) {
      r.first_bad_line = line_no;
      if (!terminated) {
        // A crash during write(2) leaves a prefix of a line without its newline. It cannot verify, and it
        // is not tampering with the records before it.
        r.torn_tail = true;
        r.problem = fmt::format(
            "torn last line (incomplete write, e.g. crash) after seq {}; chain intact up to it", r.head.seq);
        return r;
      }
      r.ok = false;
      switch (c.fault) {
        case Fault::hash_mismatch:
          r.problem = fmt::format("line {} (seq {}): hash does not match its contents (record edited)",
                                  line_no, c.rec.seq);
          break;
        default:
          r.problem = fmt::format("line {}: not a valid record: {}", line_no, c.what);
          break;
      }
      return r;
    }

    const std::uint64_t expected = r.head.seq + 1;
    if (c.rec.seq != expected) {
      r.ok = false;
      r.first_bad_line = line_no;
      if (line_no == 1)
        r.problem = fmt::format(
            "line 1: the first record has seq {}, expected 1 (records removed from the start?)", c.rec.seq);
      else if (c.rec.seq > expected)
        r.problem = fmt::format("line {}: seq {} follows seq {} ({})", line_no, c.rec.seq, r.head.seq,
                                seq_appears_in(whole_file.substr(terminated ? end + 1 : end), expected)
                                    ? "records reordered?"
                                    : "record removed?");
      else
        r.problem = fmt::format("line {}: seq {} follows seq {} (records reordered or inserted?)", line_no,
                                c.rec.seq, r.head.seq);
      return r;
    }
    if (c.rec.prev != r.head.hash) {
      r.ok = false;
      r.first_bad_line = line_no;
      if (line_no == 1)
        r.problem = fmt::format("line 1 (seq {}): prev is not the genesis value of 64 '0' (record replaced?)",
                                c.rec.seq);
      else
        r.problem = fmt::format(
            "line {} (seq {}): prev does not match hash of line {} (record inserted or replaced?)", line_no,
            c.rec.seq, line_no - 1);
      return r;
    }

    ++r.records;
    r.head.seq = c.rec.seq;
    r.head.hash = c.rec.hash;
    r.good_bytes = terminated ? end + 1 : end;
    if (!terminated) r.missing_final_newline = true;
    pos = end + 1;
  }
  return r;
}

Result<ChainHead> head_of(std::string_view whole_file, std::size_t& good_bytes) {
  VerifyReport r = verify_log(whole_file);
  good_bytes = r.good_bytes;
  if (!r.ok) return make_error(errc::io_error, "forensic log chain is broken: " + r.problem);
  return std::move(r.head);
}

Result<ParsedRecord> parse_record(std::string_view line) {
  LineCheck c = check_line(line);
  if (c.fault == Fault::none || c.fault == Fault::hash_mismatch) {
    c.rec.hash_ok = c.fault == Fault::none;
    return std::move(c.rec);
  }
  return make_error(errc::bad_frame, "not a valid record: " + c.what);
}

}  // namespace vguard::audit
