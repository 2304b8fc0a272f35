// proto/audit: record format, hash chain, verification, golden chains in tests/data/audit/.
// VG_REGENERATE=1 rewrites every golden chain from the code below; review the diff before committing it.
#include "audit.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/json/array.hpp>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "crypto.h"
#include "uuid.h"

namespace vguard::audit {
namespace {

using ::testing::HasSubstr;
namespace json = boost::json;

const std::string kZeros(64, '0');
constexpr std::int64_t kT0 = 1795316645123;  // 2026-11-22T03:04:05.123Z
constexpr std::string_view kWebUuid = "5e1f0c2a-7d4b-4c8e-9a61-0b3d2f4e6a71";
constexpr std::string_view kDbUuid = "a0b1c2d3-e4f5-4a6b-8c7d-9e0f1a2b3c4d";

std::string data_path(const std::string& name) { return std::string(VG_TEST_DATA) + "/audit/" + name; }

std::string read_data(const std::string& name) {
  std::ifstream in(data_path(name), std::ios::binary);
  EXPECT_TRUE(in) << "missing golden file " << data_path(name) << " (run with VG_REGENERATE=1)";
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < s.size()) {
    const auto nl = s.find('\n', pos);
    out.push_back(s.substr(pos, nl - pos));
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  return out;
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

// The ten records of good.log, written the way vguardd would.
std::vector<std::string> good_lines() {
  struct Rec {
    std::string type;
    json::object fields;
  };
  std::vector<Rec> recs;
  recs.push_back({"startup", {{"node", "hv1"}, {"version", "0.1.0"}}});
  recs.push_back({"membership", {{"ring", "1.7"}, {"members", json::array{1, 2, 3}}, {"quorate", true}}});
  recs.push_back({"fence_request",
                  {{"request", "r-1"},
                   {"domain", "web1"},
                   {"uuid", kWebUuid},
                   {"action", "off"},
                   {"key", "0123456789abcdef"}}});
  recs.push_back({"destroy", {{"domain", "web1"}, {"uuid", kWebUuid}, {"reason", "fence request r-1"}}});
  recs.push_back({"destroy_done", {{"domain", "web1"}, {"uuid", kWebUuid}, {"ok", true}, {"ms", 1532}}});
  recs.push_back({"fence_reply", {{"request", "r-1"}, {"status", "success"}}});
  recs.push_back({"start_denied", {{"domain", "db1"}, {"uuid", kDbUuid}, {"reason", "owned by node 2"}}});
  recs.push_back({"membership", {{"ring", "1.8"}, {"members", json::array{1, 2}}, {"quorate", true}}});
  recs.push_back({"recovery", {{"torn_bytes", 7}, {"torn_hex", "7b22736571223a"}}});
  recs.push_back({"shutdown", {{"signal", "SIGTERM"}}});
  std::vector<std::string> lines;
  ChainHead head;
  std::int64_t t = kT0;
  for (const auto& r : recs) {
    lines.push_back(make_record(head, format_utc_ms(t), r.type, r.fields, head));
    t += 1500;
  }
  return lines;
}

std::string hash_of_line(const std::string& line) {
  return line.substr(line.size() - 66, 64);  // `"hash":"<64>"}`
}

// Every golden chain, derived from good_lines() by the tampering its name says.
std::vector<std::pair<std::string, std::string>> golden_files() {
  const auto good = good_lines();
  std::vector<std::pair<std::string, std::string>> files;
  files.emplace_back("good.log", join_lines(good));

  auto edited = good;  // line 7: the reason changed, hash left alone
  const auto at = edited[6].find("node 2");
  edited[6].replace(at, 6, "node 3");
  files.emplace_back("edited.log", join_lines(edited));

  auto removed = good;  // record 5 deleted
  removed.erase(removed.begin() + 4);
  files.emplace_back("removed.log", join_lines(removed));

  auto reordered = good;  // records 4 and 5 swapped
  std::swap(reordered[3], reordered[4]);
  files.emplace_back("reordered.log", join_lines(reordered));

  // A well-formed forged record with seq 4 chained onto record 3, inserted before the real record 4.
  auto inserted = good;
  ChainHead h3{3, hash_of_line(good[2])}, ignored;
  inserted.insert(inserted.begin() + 3,
                  make_record(h3, format_utc_ms(kT0 + 3500), "destroy",
                              {{"domain", "db1"}, {"uuid", kDbUuid}, {"reason", "forged"}}, ignored));
  files.emplace_back("inserted.log", join_lines(inserted));

  // Record 7 edited AND re-hashed: its own hash verifies, the next record's prev no longer matches.
  auto rehashed = good;
  ChainHead h6{6, hash_of_line(good[5])};
  rehashed[6] = make_record(h6, format_utc_ms(kT0 + 6 * 1500), "start_denied",
                            {{"domain", "db1"}, {"uuid", kDbUuid}, {"reason", "owned by node 3"}}, ignored);
  files.emplace_back("rehashed.log", join_lines(rehashed));

  auto garbage = good;  // a non-JSON line in the middle
  garbage.insert(garbage.begin() + 5, "this is not a record");
  files.emplace_back("garbage.log", join_lines(garbage));

  // A crash while writing record 11: the first 60 bytes of it, no newline.
  ChainHead h10{10, hash_of_line(good[9])};
  const std::string rec11 =
      make_record(h10, format_utc_ms(kT0 + 15000), "startup", {{"node", "hv1"}}, ignored);
  files.emplace_back("torn.log", join_lines(good) + rec11.substr(0, 60));
  return files;
}

TEST(AuditGolden, FilesMatchCodeOrRegenerate) {
  const bool regenerate = std::getenv("VG_REGENERATE") != nullptr;
  for (const auto& [name, content] : golden_files()) {
    if (regenerate) {
      std::ofstream out(data_path(name), std::ios::binary | std::ios::trunc);
      out << content;
      ASSERT_TRUE(out.good()) << "cannot write " << data_path(name);
    } else {
      // A difference means the record format changed: old logs would stop verifying.
      EXPECT_EQ(read_data(name), content) << name << " differs from the code (VG_REGENERATE=1 rewrites it)";
    }
  }
}

TEST(AuditFormat, UtcMilliseconds) {
  EXPECT_EQ(format_utc_ms(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(format_utc_ms(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(format_utc_ms(kT0), "2026-11-22T03:04:05.123Z");
  EXPECT_EQ(format_utc_ms(1709168523004), "2024-02-29T01:02:03.004Z");
  EXPECT_EQ(format_utc_ms(253402300799999), "9999-12-31T23:59:59.999Z");
}

TEST(AuditFormat, FirstRecordIsByteExact) {
  // Expected line computed independently (Python json + hashlib), so the hash rule is checked, not echoed.
  ChainHead next;
  const std::string line = make_record(ChainHead{}, "2026-11-22T03:04:05.123Z", "fence",
                                       {{"domain", "web1"}, {"n", 42}, {"ok", true}}, next);
  EXPECT_EQ(line, "{\"seq\":1,\"ts\":\"2026-11-22T03:04:05.123Z\",\"type\":\"fence\",\"prev\":\"" + kZeros +
                      "\",\"domain\":\"web1\",\"n\":42,\"ok\":true,"
                      "\"hash\":\"e1808bf3182677ca187f4a2e91049808d64b9cbe6fbb8991c35b661e35d014aa\"}");
  EXPECT_EQ(next.seq, 1u);
  EXPECT_EQ(next.hash, "e1808bf3182677ca187f4a2e91049808d64b9cbe6fbb8991c35b661e35d014aa");
}

TEST(AuditFormat, RecordsChainAndNextMayAliasPrev) {
  ChainHead head;
  const std::string a = make_record(head, "t1", "a", {}, head);
  const std::string a_hash = head.hash;
  const std::string b = make_record(head, "t2", "b", {{"x", "y"}}, head);
  EXPECT_EQ(head.seq, 2u);
  EXPECT_THAT(b, HasSubstr("\"seq\":2,"));
  EXPECT_THAT(b, HasSubstr("\"prev\":\"" + a_hash + "\""));
  EXPECT_EQ(hash_of_line(b), head.hash);
  EXPECT_EQ(b.find('\n'), std::string::npos);
  const auto r = verify_log(a + "\n" + b + "\n");
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.records, 2u);
  EXPECT_EQ(r.head, head);
}

TEST(AuditFormat, HashIsSha256OfLineWithoutHashMember) {
  ChainHead next;
  const std::string line = make_record(ChainHead{}, "t", "x", {{"k", "v \"quoted\" \n"}}, next);
  const std::string stripped = line.substr(0, line.size() - 75) + "}";
  EXPECT_EQ(to_hex(proto::as_view(proto::sha256(stripped))), next.hash);
}

TEST(AuditFormatDeathTest, ReservedFieldNamesAbort) {
  ChainHead next;
  EXPECT_DEATH(make_record(ChainHead{}, "t", "x", {{"hash", "x"}}, next), "reserved member name");
  EXPECT_DEATH(make_record(ChainHead{}, "t", "x", {{"seq", 5}}, next), "reserved member name");
  EXPECT_DEATH(make_record(ChainHead{}, "t", "", {}, next), "type must not be empty");
  EXPECT_DEATH(make_record(ChainHead{0, "abc"}, "t", "x", {}, next), "64 lower-case hex");
}

TEST(AuditVerify, EmptyFileIsOk) {
  const auto r = verify_log("");
  EXPECT_TRUE(r.ok);
  EXPECT_EQ(r.records, 0u);
  EXPECT_FALSE(r.torn_tail);
  EXPECT_FALSE(r.first_bad_line.has_value());
  EXPECT_EQ(r.head, ChainHead{});
  EXPECT_EQ(r.good_bytes, 0u);
}

TEST(AuditVerify, GoodChain) {
  const std::string content = read_data("good.log");
  const auto r = verify_log(content);
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.records, 10u);
  EXPECT_TRUE(r.problem.empty());
  EXPECT_FALSE(r.torn_tail);
  EXPECT_EQ(r.head.seq, 10u);
  EXPECT_EQ(r.head.hash, hash_of_line(split_lines(content).back()));
  EXPECT_EQ(r.good_bytes, content.size());
}

struct TamperCase {
  const char* file;
  std::uint64_t bad_line;
  std::uint64_t records_before;
  const char* problem;
};

class AuditTamper : public ::testing::TestWithParam<TamperCase> {};

TEST_P(AuditTamper, NamesFirstBadLine) {
  const auto& c = GetParam();
  const std::string content = read_data(c.file);
  const auto r = verify_log(content);
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.torn_tail);
  EXPECT_EQ(r.first_bad_line, c.bad_line);
  EXPECT_EQ(r.records, c.records_before);
  EXPECT_EQ(r.head.seq, c.records_before);
  EXPECT_THAT(r.problem, HasSubstr(c.problem));
  // head_of refuses too, naming the same problem.
  std::size_t good = 0;
  const auto h = head_of(content, good);
  ASSERT_FALSE(h.has_value());
  EXPECT_EQ(h.error().code, make_error_code(errc::io_error));
  EXPECT_THAT(h.error().context, HasSubstr(c.problem));
}

INSTANTIATE_TEST_SUITE_P(
    Golden, AuditTamper,
    ::testing::Values(
        TamperCase{"edited.log", 7, 6, "line 7 (seq 7): hash does not match its contents (record edited)"},
        TamperCase{"removed.log", 5, 4, "line 5: seq 6 follows seq 4 (record removed?)"},
        TamperCase{"reordered.log", 4, 3, "line 4: seq 5 follows seq 3 (records reordered?)"},
        TamperCase{"inserted.log", 5, 4, "line 5: seq 4 follows seq 4 (records reordered or inserted?)"},
        TamperCase{"rehashed.log", 8, 7,
                   "line 8 (seq 8): prev does not match hash of line 7 (record inserted or replaced?)"},
        TamperCase{"garbage.log", 6, 5, "line 6: not a valid record: not JSON"}));

TEST(AuditVerify, TornTailIsReportedNotTampering) {
  const std::string content = read_data("torn.log");
  const auto r = verify_log(content);
  EXPECT_TRUE(r.ok);
  EXPECT_TRUE(r.torn_tail);
  EXPECT_EQ(r.records, 10u);
  EXPECT_EQ(r.first_bad_line, 11u);
  EXPECT_EQ(r.problem, "torn last line (incomplete write, e.g. crash) after seq 10; chain intact up to it");
  EXPECT_EQ(r.good_bytes, read_data("good.log").size());
  std::size_t good = 0;
  const auto h = head_of(content, good);
  ASSERT_TRUE(h.has_value()) << h.error().message();
  EXPECT_EQ(h->seq, 10u);
  EXPECT_EQ(good, read_data("good.log").size());
}

TEST(AuditVerify, TornTailAfterTamperingIsTampering) {
  std::string content = read_data("edited.log") + "{\"seq\":11,\"ts\"";
  const auto r = verify_log(content);
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.torn_tail);
  EXPECT_EQ(r.first_bad_line, 7u);
}

TEST(AuditVerify, VerifiedLastLineWithoutNewlineCounts) {
  std::string content = read_data("good.log");
  content.pop_back();
  const auto r = verify_log(content);
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_FALSE(r.torn_tail);
  EXPECT_TRUE(r.missing_final_newline);
  EXPECT_EQ(r.records, 10u);
  EXPECT_EQ(r.good_bytes, content.size());
}

TEST(AuditVerify, CompleteButMisplacedUnterminatedLastLineIsTampering) {
  // Record 10 dropped, record 10's line kept without newline after record 8: it verifies alone but skips 9.
  auto lines = good_lines();
  std::string content = join_lines({lines.begin(), lines.begin() + 8}) + lines[9];
  const auto r = verify_log(content);
  EXPECT_FALSE(r.ok);
  EXPECT_FALSE(r.torn_tail);
  EXPECT_EQ(r.first_bad_line, 9u);
  EXPECT_THAT(r.problem, HasSubstr("seq 10 follows seq 8 (record removed?)"));
}

TEST(AuditVerify, FirstRecordMustStartTheChain) {
  ChainHead next;
  const std::string not_first = make_record(ChainHead{1, std::string(64, 'a')}, "t", "x", {}, next);
  auto r = verify_log(not_first + "\n");
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_line, 1u);
  EXPECT_THAT(r.problem, HasSubstr("the first record has seq 2, expected 1"));

  const std::string wrong_prev = make_record(ChainHead{0, std::string(64, 'a')}, "t", "x", {}, next);
  r = verify_log(wrong_prev + "\n");
  EXPECT_FALSE(r.ok);
  EXPECT_THAT(r.problem, HasSubstr("line 1 (seq 1): prev is not the genesis value"));
}

TEST(AuditVerify, MalformedLinesAreNamed) {
  const auto good = good_lines();
  struct Case {
    std::string line;
    std::string problem;
  };
  const std::vector<Case> cases = {
      {"", "not JSON"},
      {"[1,2]", "not a JSON object"},
      {"{\"seq\":1}", "too few members"},
      {"{\"ts\":\"t\",\"seq\":1,\"type\":\"x\",\"prev\":\"" + kZeros + "\",\"hash\":\"" + kZeros + "\"}",
       "member 1 is \"ts\", expected \"seq\""},
      {"{\"seq\":-1,\"ts\":\"t\",\"type\":\"x\",\"prev\":\"" + kZeros + "\",\"hash\":\"" + kZeros + "\"}",
       "seq is not a non-negative integer"},
      {"{\"seq\":1,\"ts\":\"t\",\"type\":\"x\",\"prev\":\"" + kZeros + "\",\"hash\":\"" + kZeros +
           "\",\"z\":1}",
       "last member is not \"hash\""},
      {"{\"seq\":1,\"ts\":\"t\",\"type\":\"x\",\"prev\":\"" + kZeros + "\",\"hash\" : \"" + kZeros + "\"}",
       "the hash member is not written as"},
      {"{\"seq\":1,\"ts\":\"t\",\"type\":\"x\",\"prev\":\"" + kZeros + "\",\"hash\":\"" +
           std::string(64, 'A') + "\"}",
       "hash is not 64 lower-case hex"},
  };
  for (const auto& c : cases) {
    const auto r = verify_log(good[0] + "\n" + c.line + "\n" + good[1] + "\n");
    EXPECT_FALSE(r.ok) << c.line;
    EXPECT_EQ(r.first_bad_line, 2u) << c.line;
    EXPECT_THAT(r.problem, HasSubstr("line 2: not a valid record: " + c.problem)) << c.line;
  }
}

TEST(AuditVerify, CarriageReturnLineEndingsDoNotVerify) {
  const auto good = good_lines();
  const auto r = verify_log(good[0] + "\r\n" + good[1] + "\n");
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.first_bad_line, 1u);
}

TEST(AuditParse, ParsesFieldsAndFlagsEditedRecords) {
  const auto lines = split_lines(read_data("good.log"));
  auto rec = parse_record(lines[2]);
  ASSERT_TRUE(rec.has_value()) << rec.error().message();
  EXPECT_EQ(rec->seq, 3u);
  EXPECT_EQ(rec->type, "fence_request");
  EXPECT_EQ(rec->ts, "2026-11-22T03:04:08.123Z");
  EXPECT_TRUE(rec->hash_ok);
  ASSERT_EQ(rec->fields.size(), 5u);
  EXPECT_EQ(rec->fields.begin()->key(), "request");
  EXPECT_EQ(rec->fields.at("domain").as_string(), "web1");

  const auto edited = split_lines(read_data("edited.log"));
  rec = parse_record(edited[6]);
  ASSERT_TRUE(rec.has_value());
  EXPECT_FALSE(rec->hash_ok);

  const auto bad = parse_record("hello");
  ASSERT_FALSE(bad.has_value());
  EXPECT_EQ(bad.error().code, make_error_code(errc::bad_frame));
  EXPECT_THAT(bad.error().context, HasSubstr("not a valid record: not JSON"));
}

}  // namespace
}  // namespace vguard::audit
