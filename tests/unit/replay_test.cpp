#include "replay.h"

#include <gtest/gtest.h>

namespace vguard::proto {
namespace {

Nonce nonce(std::uint8_t v) {
  Nonce n{};
  n[0] = v;
  return n;
}

TEST(Replay, FreshNonceAccepted) {
  ReplayGuard g(30000, 100);
  EXPECT_TRUE(g.check(nonce(1), 1000000, 1000000));
  EXPECT_TRUE(g.check(nonce(2), 1000000, 1000000));
}

TEST(Replay, SameNonceRefusedInsideWindow) {
  ReplayGuard g(30000, 100);
  ASSERT_TRUE(g.check(nonce(1), 1000000, 1000000));
  for (std::int64_t later : {1000000, 1000001, 1015000, 1030000}) {
    auto r = g.check(nonce(1), 1000000, later);
    ASSERT_FALSE(r) << later;
    EXPECT_EQ(r.error().code, make_error_code(errc::replayed_nonce)) << later;
  }
}

TEST(Replay, ReplayAfterWindowIsStale) {
  ReplayGuard g(30000, 100);
  ASSERT_TRUE(g.check(nonce(1), 1000000, 1000000));
  auto r = g.check(nonce(1), 1000000, 1030001);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, make_error_code(errc::stale_timestamp));
  EXPECT_EQ(g.size(), 0u) << "expired nonces are forgotten";
}

TEST(Replay, FutureAndPastTimestampsRefused) {
  ReplayGuard g(30000, 100);
  EXPECT_FALSE(g.check(nonce(1), 1000000 + 30001, 1000000));
  EXPECT_FALSE(g.check(nonce(1), 1000000 - 30001, 1000000));
  EXPECT_TRUE(g.check(nonce(1), 1000000 + 30000, 1000000));
}

TEST(Replay, FullCacheFailsClosed) {
  ReplayGuard g(30000, 2);
  ASSERT_TRUE(g.check(nonce(1), 1000000, 1000000));
  ASSERT_TRUE(g.check(nonce(2), 1000000, 1000000));
  auto r = g.check(nonce(3), 1000000, 1000000);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, make_error_code(errc::busy));
  EXPECT_TRUE(g.check(nonce(3), 1040000, 1040000)) << "room again once old nonces expire";
}

}  // namespace
}  // namespace vguard::proto
