// fenced/adapters/audit_file: the forensic log writer on a real file system (a temporary directory).
#include "audit_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/json/parse.hpp>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "uuid.h"

namespace vguard::fenced {
namespace {

using ::testing::HasSubstr;
namespace fs = std::filesystem;

constexpr std::int64_t kNow = 1795316645123;  // 2026-11-22T03:04:05.123Z

std::string read_data(const std::string& name) {
  std::ifstream in(std::string(VG_TEST_DATA) + "/audit/" + name, std::ios::binary);
  EXPECT_TRUE(in) << "missing golden file " << name;
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void spit(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << content;
  ASSERT_TRUE(out.good());
}

unsigned mode_of(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

std::string last_line(const std::string& content) {
  const auto end = content.size() - 1;  // skip the final '\n'
  const auto start = content.rfind('\n', end - 1);
  return content.substr(start == std::string::npos ? 0 : start + 1,
                        end - (start == std::string::npos ? 0 : start + 1));
}

class AuditFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "vguard-audit-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/forensic.log";
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string dir_;
  std::string path_;
};

TEST_F(AuditFileTest, CreatesFileAndParentDirectoriesPrivately) {
  const std::string path = dir_ + "/a/b/forensic.log";
  auto f = AuditFile::open(path, kNow);
  ASSERT_TRUE(f.has_value()) << f.error().message();
  EXPECT_EQ((*f)->head(), audit::ChainHead{});
  EXPECT_EQ((*f)->path(), path);
  EXPECT_EQ(mode_of(path), 0600u);
  EXPECT_EQ(mode_of(dir_ + "/a"), 0700u);
  EXPECT_EQ(mode_of(dir_ + "/a/b"), 0700u);
  EXPECT_EQ(slurp(path), "");
}

TEST_F(AuditFileTest, AppendsAVerifiableChain) {
  auto f = AuditFile::open(path_, kNow);
  ASSERT_TRUE(f.has_value()) << f.error().message();
  ASSERT_TRUE((*f)->append("startup", {{"node", "hv1"}}, false, kNow).has_value());
  ASSERT_TRUE((*f)->append("destroy", {{"domain", "web1"}}, true, kNow + 1).has_value());
  EXPECT_EQ((*f)->head().seq, 2u);
  const std::string content = slurp(path_);
  const auto r = audit::verify_log(content);
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.records, 2u);
  EXPECT_EQ(r.head, (*f)->head());
  EXPECT_THAT(content, HasSubstr("\"ts\":\"2026-11-22T03:04:05.124Z\",\"type\":\"destroy\""));
}

TEST_F(AuditFileTest, ReopenContinuesTheChain) {
  audit::ChainHead before;
  {
    auto f = AuditFile::open(path_, kNow);
    ASSERT_TRUE(f.has_value());
    ASSERT_TRUE((*f)->append("a", {}, true, kNow).has_value());
    ASSERT_TRUE((*f)->append("b", {}, true, kNow).has_value());
    before = (*f)->head();
  }
  auto f = AuditFile::open(path_, kNow);
  ASSERT_TRUE(f.has_value()) << f.error().message();
  EXPECT_EQ((*f)->head(), before);
  ASSERT_TRUE((*f)->append("c", {}, true, kNow).has_value());
  const auto r = audit::verify_log(slurp(path_));
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.records, 3u);
}

TEST_F(AuditFileTest, ContinuesTheGoldenChain) {
  spit(path_, read_data("good.log"));
  auto f = AuditFile::open(path_, kNow);
  ASSERT_TRUE(f.has_value()) << f.error().message();
  EXPECT_EQ((*f)->head().seq, 10u);
  ASSERT_TRUE((*f)->append("startup", {}, true, kNow).has_value());
  const auto r = audit::verify_log(slurp(path_));
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.records, 11u);
}

TEST_F(AuditFileTest, RefusesABrokenChainAndLeavesItAlone) {
  for (const char* name : {"edited.log", "removed.log", "garbage.log"}) {
    const std::string content = read_data(name);
    spit(path_, content);
    auto f = AuditFile::open(path_, kNow);
    ASSERT_FALSE(f.has_value()) << name;
    EXPECT_EQ(f.error().code, make_error_code(errc::io_error));
    EXPECT_THAT(f.error().context, HasSubstr("forensic log " + path_ + " is not intact: line ")) << name;
    EXPECT_THAT(f.error().context, HasSubstr("move it away"));
    EXPECT_EQ(slurp(path_), content) << name;
  }
  spit(path_, read_data("edited.log"));
  auto f = AuditFile::open(path_, kNow);
  ASSERT_FALSE(f.has_value());
  EXPECT_THAT(f.error().context,
              HasSubstr("line 7 (seq 7): hash does not match its contents (record edited)"));
}

TEST_F(AuditFileTest, CutsATornTailAndRecordsIt) {
  const std::string good = read_data("good.log");
  const std::string torn = read_data("torn.log");
  const std::string tail = torn.substr(good.size());
  ASSERT_FALSE(tail.empty());
  spit(path_, torn);
  auto f = AuditFile::open(path_, kNow);
  ASSERT_TRUE(f.has_value()) << f.error().message();
  EXPECT_EQ((*f)->head().seq, 11u);
  const std::string content = slurp(path_);
  ASSERT_EQ(content.substr(0, good.size()), good);
  const auto r = audit::verify_log(content);
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_FALSE(r.torn_tail);
  EXPECT_EQ(r.records, 11u);
  auto rec = audit::parse_record(last_line(content));
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->type, "recovery");
  EXPECT_EQ(rec->ts, "2026-11-22T03:04:05.123Z");
  EXPECT_EQ(rec->fields.at("torn_bytes").to_number<std::uint64_t>(), tail.size());
  EXPECT_EQ(rec->fields.at("torn_hex").as_string(), to_hex(tail));
  ASSERT_TRUE((*f)->append("startup", {}, true, kNow).has_value());
  EXPECT_TRUE(audit::verify_log(slurp(path_)).ok);
}

TEST_F(AuditFileTest, LongTornTailKeepsOnlyItsFirst4096Bytes) {
  const std::string good = read_data("good.log");
  std::string tail = "{\"seq\":11,\"ts\":\"";
  tail.append(10000, 'x');
  spit(path_, good + tail);
  auto f = AuditFile::open(path_, kNow);
  ASSERT_TRUE(f.has_value()) << f.error().message();
  auto rec = audit::parse_record(last_line(slurp(path_)));
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->fields.at("torn_bytes").to_number<std::uint64_t>(), tail.size());
  EXPECT_EQ(rec->fields.at("torn_hex").as_string(), to_hex(tail.substr(0, 4096)));
}

TEST_F(AuditFileTest, AddsTheNewlineAVerifiedLastLineLost) {
  std::string good = read_data("good.log");
  good.pop_back();
  spit(path_, good);
  auto f = AuditFile::open(path_, kNow);
  ASSERT_TRUE(f.has_value()) << f.error().message();
  EXPECT_EQ((*f)->head().seq, 10u);
  ASSERT_TRUE((*f)->append("startup", {}, true, kNow).has_value());
  const auto r = audit::verify_log(slurp(path_));
  EXPECT_TRUE(r.ok) << r.problem;
  EXPECT_EQ(r.records, 11u);
}

TEST_F(AuditFileTest, SecondWriterIsLockedOut) {
  auto a = AuditFile::open(path_, kNow);
  ASSERT_TRUE(a.has_value());
  auto b = AuditFile::open(path_, kNow);
  ASSERT_FALSE(b.has_value());
  EXPECT_THAT(b.error().context, HasSubstr("in use by another process"));
  a->reset();
  EXPECT_TRUE(AuditFile::open(path_, kNow).has_value());
}

TEST_F(AuditFileTest, RefusesSymlinksDirectoriesAndEmptyPaths) {
  spit(dir_ + "/real.log", "");
  ASSERT_EQ(::symlink((dir_ + "/real.log").c_str(), path_.c_str()), 0);
  auto f = AuditFile::open(path_, kNow);
  ASSERT_FALSE(f.has_value());
  EXPECT_THAT(f.error().context, HasSubstr("symbolic link"));

  f = AuditFile::open(dir_, kNow);
  ASSERT_FALSE(f.has_value());
  EXPECT_THAT(f.error().context, HasSubstr(dir_));

  f = AuditFile::open("", kNow);
  ASSERT_FALSE(f.has_value());

  spit(dir_ + "/file", "");
  f = AuditFile::open(dir_ + "/file/forensic.log", kNow);
  ASSERT_FALSE(f.has_value());
  EXPECT_THAT(f.error().context, HasSubstr("is not a directory"));
}

TEST_F(AuditFileTest, FailedWriteLeavesNoPartialRecord) {
  auto f = AuditFile::open(path_, kNow);
  ASSERT_TRUE(f.has_value());
  ASSERT_TRUE((*f)->append("a", {}, true, kNow).has_value());
  const std::string before = slurp(path_);
  const audit::ChainHead head = (*f)->head();

  // Make the next write stop part-way: RLIMIT_FSIZE just above the current size, SIGXFSZ ignored (EFBIG).
  struct rlimit old {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  auto* old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim = old;
  lim.rlim_cur = before.size() + 20;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &lim), 0);
  const auto r = (*f)->append("b", {{"pad", std::string(200, 'p')}}, true, kNow);
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);

  ASSERT_FALSE(r.has_value());
  EXPECT_THAT(r.error().context, HasSubstr("cannot write to forensic log"));
  EXPECT_EQ((*f)->head(), head);
  EXPECT_EQ(slurp(path_), before);
  ASSERT_TRUE((*f)->append("c", {}, true, kNow).has_value());
  const auto v = audit::verify_log(slurp(path_));
  EXPECT_TRUE(v.ok) << v.problem;
  EXPECT_EQ(v.records, 2u);
}

}  // namespace
}  // namespace vguard::fenced
