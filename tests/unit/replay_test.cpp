#include "replay.h"

#include <gtest/gtest.h>

namespace vguard::proto {
namespace {

Nonce nonce(std::uint8_t v) {
  Nonce n{};
  n[0] = v;
  return n;
}
const KeyId kA{1};
const KeyId kB{2};

TEST(Replay, FreshNonceAccepted) {
  ReplayGuard g(30000, 100);
  EXPECT_TRUE(g.check(kA, nonce(1), 1000000, 1000000, 0));
  EXPECT_TRUE(g.check(kA, nonce(2), 1000000, 1000000, 0));
}

TEST(Replay, SameNonceRefusedInsideWindow) {
  ReplayGuard g(30000, 100);
  ASSERT_TRUE(g.check(kA, nonce(1), 1000000, 1000000, 0));
  for (std::int64_t later : {0, 1, 15000, 30000}) {
    auto r = g.check(kA, nonce(1), 1000000, 1000000 + later, later);
    ASSERT_FALSE(r) << later;
    EXPECT_EQ(r.error().code, make_error_code(errc::replayed_nonce)) << later;
  }
}

TEST(Replay, NoncesArePerKey) {
  ReplayGuard g(30000, 100);
  ASSERT_TRUE(g.check(kA, nonce(1), 1000000, 1000000, 0));
  EXPECT_TRUE(g.check(kB, nonce(1), 1000000, 1000000, 0));
}

TEST(Replay, ReplayAfterWindowIsStale) {
  ReplayGuard g(30000, 100);
  ASSERT_TRUE(g.check(kA, nonce(1), 1000000, 1000000, 0));
  auto r = g.check(kA, nonce(1), 1000000, 1030001, 30001);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, make_error_code(errc::stale_timestamp));
  EXPECT_TRUE(g.check(kA, nonce(2), 1060000, 1060000, 60001));
  EXPECT_EQ(g.size(), 1u) << "nonces are forgotten 2 windows after they were seen";
}

TEST(Replay, WallClockStepBackDoesNotForget) {
  ReplayGuard g(30000, 100);
  ASSERT_TRUE(g.check(kA, nonce(1), 1000000, 1000000, 0));
  // The wall clock jumps forward an hour and back again; the monotonic clock moved 1 s: still refused.
  EXPECT_FALSE(g.check(kA, nonce(9), 1000000, 4600000, 500));
  auto r = g.check(kA, nonce(1), 1000000, 1000000, 1000);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, make_error_code(errc::replayed_nonce));
}

TEST(Replay, FutureAndPastTimestampsRefused) {
  ReplayGuard g(30000, 100);
  EXPECT_FALSE(g.check(kA, nonce(1), 1000000 + 30001, 1000000, 0));
  EXPECT_FALSE(g.check(kA, nonce(1), 1000000 - 30001, 1000000, 0));
  EXPECT_TRUE(g.check(kA, nonce(1), 1000000 + 30000, 1000000, 0));
}

TEST(Replay, FullTableFailsClosedForThatKeyOnly) {
  ReplayGuard g(30000, 2);
  ASSERT_TRUE(g.check(kA, nonce(1), 1000000, 1000000, 0));
  ASSERT_TRUE(g.check(kA, nonce(2), 1000000, 1000000, 0));
  auto r = g.check(kA, nonce(3), 1000000, 1000000, 0);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, make_error_code(errc::busy));
  EXPECT_TRUE(g.check(kB, nonce(3), 1000000, 1000000, 0)) << "another key is unaffected";
  EXPECT_TRUE(g.check(kA, nonce(3), 1061000, 1061000, 61000)) << "room again once old nonces expire";
}

}  // namespace
}  // namespace vguard::proto
