#include <gtest/gtest.h>

#include "result.h"
#include "uuid.h"

namespace vguard {
namespace {

TEST(Uuid, ParseAndFormat) {
  auto u = Uuid::parse("6695EB01-f6a4-8304-79aa-97f2502e193f");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->str(), "6695eb01-f6a4-8304-79aa-97f2502e193f");
  for (const char* bad : {"", "6695eb01f6a4830479aa97f2502e193f", "6695eb01-f6a4-8304-79aa-97f2502e193", "g695eb01-f6a4-8304-79aa-97f2502e193f",
                          "6695eb01-f6a4-8304-79aa-97f2502e193f0", "6695eb01+f6a4-8304-79aa-97f2502e193f"})
    EXPECT_FALSE(Uuid::parse(bad)) << bad;
}

TEST(Glob, Table) {
  struct Case {
    const char* p;
    const char* t;
    bool m;
  } cases[] = {{"*", "", true},         {"*", "abc", true},        {"web-*", "web-1", true},
               {"web-*", "db-1", false}, {"?b?", "abc", true},      {"a*c", "abbbc", true},
               {"a*c", "abbb", false},   {"*-1", "web-1", true},    {"web-1", "web-1", true},
               {"web-1", "web-10", false}, {"a*b*c", "axxbyyc", true}, {"", "", true}, {"", "a", false}};
  for (const auto& c : cases) EXPECT_EQ(glob_match(c.p, c.t), c.m) << c.p << " vs " << c.t;
}

TEST(Hex, RoundTrip) {
  EXPECT_EQ(to_hex(std::string("\x00\xff\x10", 3)), "00ff10");
  EXPECT_EQ(*from_hex("00FF10"), std::string("\x00\xff\x10", 3));
  EXPECT_FALSE(from_hex("0"));
  EXPECT_FALSE(from_hex("zz"));
}

TEST(Error, MessageIncludesContext) {
  Error e = make_error(errc::no_such_domain, "domain 'x'");
  EXPECT_EQ(e.message(), "domain 'x': no such domain");
  Result<int> r = e;
  EXPECT_FALSE(r);
  Result<int> ok = 42;
  EXPECT_EQ(*ok, 42);
}

}  // namespace
}  // namespace vguard
