#include "fake_hypervisor.h"

#include <gtest/gtest.h>

#include <mutex>
#include <thread>

namespace vguard::fenced {
namespace {

using proto::PowerState;

Uuid uuid(const char* s) { return *Uuid::parse(s); }
const Uuid kA = uuid("11111111-1111-1111-1111-111111111111");
const Uuid kB = uuid("22222222-2222-2222-2222-222222222222");
const Uuid kMissing = uuid("99999999-9999-9999-9999-999999999999");

class Recorder final : public HypervisorListener {
 public:
  void on_domain_event(const DomainInfo& d) noexcept override {
    std::lock_guard lk(mu_);
    events_.push_back(d);
  }
  void on_connection_lost(const Error& why) noexcept override {
    std::lock_guard lk(mu_);
    lost_.push_back(why);
  }
  std::vector<DomainInfo> events() const {
    std::lock_guard lk(mu_);
    return events_;
  }
  std::size_t lost() const {
    std::lock_guard lk(mu_);
    return lost_.size();
  }

 private:
  mutable std::mutex mu_;
  std::vector<DomainInfo> events_;
  std::vector<Error> lost_;
};

void populate(FakeHypervisor& h) {
  h.add({kA, "vm-a", PowerState::running});
  h.add({kB, "vm-b", PowerState::shutoff});
}

bool is(const Error& e, errc c) { return e.code == make_error_code(c); }

TEST(FakeHypervisor, CallsFailUntilConnected) {
  FakeHypervisor h;
  populate(h);
  auto r = h.list_domains();
  ASSERT_FALSE(r);
  EXPECT_TRUE(is(r.error(), errc::hypervisor_unreachable));
  EXPECT_FALSE(h.connected());
  ASSERT_TRUE(h.connect());
  EXPECT_TRUE(h.connected());
  EXPECT_TRUE(h.connect());  // idempotent
  auto l = h.list_domains();
  ASSERT_TRUE(l);
  EXPECT_EQ(l->size(), 2u);
}

TEST(FakeHypervisor, DestroyAndStartChangeStateAndFireEvents) {
  FakeHypervisor h;
  Recorder rec;
  h.set_listener(&rec);
  populate(h);
  ASSERT_TRUE(h.connect());

  ASSERT_TRUE(h.destroy(kA));
  EXPECT_EQ(h.get(kA)->state, PowerState::shutoff);
  ASSERT_TRUE(h.destroy(kA));  // idempotent, no second event
  ASSERT_TRUE(h.start(kB));
  ASSERT_TRUE(h.start(kB));  // idempotent
  EXPECT_EQ(*h.state(kB), PowerState::running);

  const auto ev = rec.events();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0], (DomainInfo{kA, "vm-a", PowerState::shutoff}));
  EXPECT_EQ(ev[1], (DomainInfo{kB, "vm-b", PowerState::running}));
}

TEST(FakeHypervisor, UnknownDomain) {
  FakeHypervisor h;
  ASSERT_TRUE(h.connect());
  EXPECT_TRUE(is(h.state(kMissing).error(), errc::no_such_domain));
  EXPECT_TRUE(is(h.destroy(kMissing).error(), errc::no_such_domain));
  EXPECT_TRUE(is(h.start(kMissing).error(), errc::no_such_domain));
}

TEST(FakeHypervisor, UnreachableFailsEverythingAndReportsLossOnce) {
  FakeHypervisor h;
  Recorder rec;
  h.set_listener(&rec);
  populate(h);
  ASSERT_TRUE(h.connect());
  h.set_reachable(false);
  h.set_reachable(false);
  EXPECT_EQ(rec.lost(), 1u);
  EXPECT_FALSE(h.connected());
  EXPECT_TRUE(is(h.connect().error(), errc::hypervisor_unreachable));
  EXPECT_TRUE(is(h.destroy(kA).error(), errc::hypervisor_unreachable));
  EXPECT_EQ(h.get(kA)->state, PowerState::running);  // nothing happened
  h.set_reachable(true);
  EXPECT_FALSE(h.connected());  // reconnecting is the caller's job
  ASSERT_TRUE(h.connect());
  EXPECT_TRUE(h.destroy(kA));
  EXPECT_EQ(rec.lost(), 1u);
}

TEST(FakeHypervisor, ExternalChangesFireEvents) {
  FakeHypervisor h;
  Recorder rec;
  h.set_listener(&rec);
  populate(h);
  EXPECT_TRUE(h.set_state(kA, PowerState::paused));
  EXPECT_FALSE(h.set_state(kMissing, PowerState::paused));
  h.remove(kB);
  ASSERT_EQ(rec.events().size(), 2u);
  EXPECT_EQ(rec.events()[0].state, PowerState::paused);
  EXPECT_EQ(rec.events()[1], (DomainInfo{kB, "vm-b", PowerState::shutoff}));
  EXPECT_FALSE(h.get(kB));
}

// The scenario the FailPlan matrix drives: every call it makes is one failure point.
Result<void> scenario(FakeHypervisor& h) {
  if (auto r = h.connect(); !r) return r.error();
  auto l = h.list_domains();
  if (!l) return l.error();
  for (const DomainInfo& d : *l) {
    auto s = h.state(d.uuid);
    if (!s) return s.error();
  }
  if (auto r = h.destroy(kA); !r) return r.error();
  if (auto r = h.start(kB); !r) return r.error();
  return {};
}

// Beast's failMatrix: fail call n = 0, 1, 2, ... until the scenario succeeds, so every failure point runs.
TEST(FakeHypervisor, FailPlanMatrix) {
  std::size_t n = 0;
  for (; n < 100; ++n) {
    FakeHypervisor h;
    populate(h);
    h.fail_call(n, errc::operation_failed);
    auto r = scenario(h);
    if (r) {
      // Nothing was injected: the plan was armed past the last call.
      EXPECT_EQ(h.calls(), n);
      EXPECT_EQ(h.get(kA)->state, PowerState::shutoff);
      EXPECT_EQ(h.get(kB)->state, PowerState::running);
      break;
    }
    EXPECT_TRUE(is(r.error(), errc::operation_failed)) << r.error().message();
    EXPECT_EQ(h.calls(), n + 1) << "the scenario must stop at the failed call";
    // An injected failure has no side effect.
    const auto journal = h.journal();
    ASSERT_EQ(journal.size(), n + 1);
    if (journal.back().starts_with("destroy")) {
      EXPECT_EQ(h.get(kA)->state, PowerState::running);
    }
    if (journal.back().starts_with("start")) {
      EXPECT_EQ(h.get(kB)->state, PowerState::shutoff);
    }
  }
  EXPECT_EQ(n, 6u);  // connect, list, 2 x state, destroy, start
}

TEST(FakeHypervisor, InjectedUnreachableDropsConnection) {
  FakeHypervisor h;
  Recorder rec;
  h.set_listener(&rec);
  populate(h);
  ASSERT_TRUE(h.connect());  // call 0
  h.fail_call(2, errc::hypervisor_unreachable);
  ASSERT_TRUE(h.state(kA));  // call 1
  auto r = h.destroy(kA);    // call 2: injected
  ASSERT_FALSE(r);
  EXPECT_TRUE(is(r.error(), errc::hypervisor_unreachable));
  EXPECT_EQ(rec.lost(), 1u);
  EXPECT_FALSE(h.connected());
  EXPECT_TRUE(is(h.destroy(kA).error(), errc::hypervisor_unreachable));  // call 3: not connected
  ASSERT_TRUE(h.connect());                                              // call 4
  EXPECT_TRUE(h.destroy(kA));                                            // call 5
  EXPECT_EQ(h.calls(), 6u);
}

TEST(FakeHypervisor, ConcurrentCallsAreSafe) {
  FakeHypervisor h;
  Recorder rec;
  h.set_listener(&rec);
  populate(h);
  ASSERT_TRUE(h.connect());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < 200; ++i) {
        if ((i + t) % 2 == 0) {
          (void)h.destroy(kA);
        } else {
          (void)h.start(kA);
        }
        (void)h.list_domains();
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(h.calls(), 1u + 4u * 400u);
}

}  // namespace
}  // namespace vguard::fenced
