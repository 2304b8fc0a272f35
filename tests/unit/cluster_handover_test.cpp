// Safety scenarios (safety-scenarios.md) over the cluster harness: handover.
// Migration hand-over and fencing: scenarios 26, 27, 30-35. Mapping onto this engine (docs/cluster-protocol.md):
// the design's migrate REQUEST is CLAIM(migrate) from the target's `migrate begin` hook; its END(fail) is
// MIGRATE_END(fail) from the target; its END(ok) has no message here: ownership moves when the target's FACTS
// report the domain running ("switched", phase 2) and the record clears once the source reports its copy gone
// (phase 0) or the source is confirmed fenced.
#include "cluster_harness.h"

namespace vguard::fenced {
namespace {

using namespace harness;  // also brings proto::Action, PowerState, Status

class HandoverSeeds : public SeedFixture {};

// kV claimed by h1 and running there; every host has it defined (shared storage).
void owned_by_h1(Cluster& c) {
  guarded(c);
  ASSERT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::success);
  start_here(c[1]);
  c.settle();
}

// Same, with a duplicate policy that kills the copy that is not the owner's: any wrong duplicate verdict
// then shows in ground truth, not only in an alarm.
void owned_by_h1_destroy_policy(Cluster& c) {
  for (NodeId n : {1u, 2u, 3u}) {
    c.add(n, doms({{kV, "v", PowerState::shutoff}}));
    c[n].guard.duplicate = GuardPolicy::Duplicate::destroy;
    c[n].reset_engine();
    c[n].connect_libvirt();
  }
  c.settle();
  ASSERT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::success);
  start_here(c[1]);
  c.settle();
}

// A message as `from` multicast it (a delayed or stale one the engine no longer produces by itself).
void send_as(Cluster& c, NodeId from, const proto::ClusterMsg& m) {
  ASSERT_TRUE(c.hub.bus(from).send(proto::encode_cluster(kClusterKeyId, kClusterKey, m)));
}

// A full migration kV: from -> to through the hooks and libvirt's events on both ends.
void migrate(Cluster& c, NodeId from, NodeId to) {
  ASSERT_EQ(c[to].call(Action::hook_migrate, kV.str()).status, Status::success);
  ASSERT_EQ(c[to].call(Action::hook_prepare, kV.str()).status, Status::success) << "hand-over, no claim";
  c[to].set_state(kV, PowerState::paused);  // incoming copy
  c.settle();
  c[from].set_state(kV, PowerState::paused);
  c[to].set_state(kV, PowerState::running);  // switch-over
  c.settle();
  c[from].set_state(kV, PowerState::shutoff, /*migrated=*/true);
  c.settle();
}

void expect_record(Cluster& c, std::initializer_list<NodeId> hosts, NodeId owner, std::uint64_t epoch,
                   int phase, const char* what) {
  for (NodeId n : hosts) {
    EXPECT_EQ(rec(c[n]).owner, owner) << what << ", h" << n;
    EXPECT_EQ(rec(c[n]).epoch, epoch) << what << ", h" << n;
    EXPECT_EQ(rec(c[n]).mig_phase, phase) << what << ", h" << n;
  }
}

TEST_P(HandoverSeeds, MigrateHookTimingOutGivesTheHandOverBack) {
  // Scenario 26: the target's migrate hook reaches D_v before its grant is stable → the hook is told no (never
  // yes, I5), MIGRATE_END(fail) gives the grant back, the record is cleared on every member (owner h1, epoch
  // unchanged) and a later migration is granted. The seed picks how far the claim got before D_v: not
  // delivered anywhere, granted on the target only, or granted everywhere with the ACKs arriving after D_v.
  owned_by_h1(c);
  const std::uint64_t e = rec(c[1]).epoch;
  const auto r = hook(c[2], Action::hook_migrate);
  switch (GetParam() % 3) {
    case 0:  // D_v passes before anybody delivered the claim
      c.now += 20000;
      tick(c);
      break;
    case 1:  // the target delivered (granted) its own claim; the others have not yet
      while (c[2].engine->domains().at(kV).mig_phase == 0 && c.hub.step(2)) {
      }
      ASSERT_EQ(rec(c[2]).mig_phase, 1);
      c.now += 20000;
      tick(c);
      break;
    default:  // no tick: the last ACK itself arrives after D_v
      c.now += 20000;
      break;
  }
  c.settle();
  ASSERT_TRUE(answer(c[2], r));
  EXPECT_EQ(answer(c[2], r)->status, Status::failure) << "never yes after D_v: " << answer(c[2], r)->message;
  expect_record(c, {1, 2, 3}, 1, e, 0, "hand-over given back");
  EXPECT_EQ(c[2].call(Action::hook_prepare, kV.str()).status, Status::failure)
      << "no hand-over bypass for a migration that was answered no";
  EXPECT_EQ(active_on(c), std::vector<NodeId>{1});
  EXPECT_EQ(c[3].call(Action::hook_migrate, kV.str()).status, Status::success) << "not stuck";
  expect_converged(c);
}

TEST_P(HandoverSeeds, StaleMigrateEndIsIgnored) {
  // Scenario 27: v migrates h1 -> h2 (mig_epoch e1, completed by the target's FACTS), then h2 -> h1 is granted
  // (e2). A MIGRATE_END naming e1 delivered now, from h1 (the old source, now the new target: the only sender
  // whose END could apply), must change nothing, ok or fail: owner h2 with the e2 hand-over recorded on every
  // member, until the e2 hand-over itself ends (switch-over to h1 on odd seeds, h1's incoming copy failing on
  // even ones). This engine never sends END(ok); the stale message is injected on h1's bus.
  owned_by_h1(c);
  migrate(c, 1, 2);
  const std::uint64_t e1 = rec(c[3]).epoch;
  expect_record(c, {1, 2, 3}, 2, e1, 0, "first migration done");
  ASSERT_EQ(c[1].call(Action::hook_migrate, kV.str()).status, Status::success);
  const std::uint64_t e2 = rec(c[3]).mig_epoch;
  ASSERT_GT(e2, e1);
  c[1].set_state(kV, PowerState::paused);  // h1's incoming copy exists now
  c.settle();
  send_as(c, 1, proto::MsgMigrateEnd{1, kV, e1, true, "stale END(ok) of the first migration"});
  send_as(c, 1, proto::MsgMigrateEnd{1, kV, e1, false, "stale END(fail) of the first migration"});
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) {
    EXPECT_EQ(rec(c[n]).mig_phase, 1) << "h" << n;
    EXPECT_EQ(rec(c[n]).mig_epoch, e2) << "h" << n;
    EXPECT_EQ(rec(c[n]).mig_target, 1u) << "h" << n;
  }
  expect_record(c, {1, 2, 3}, 2, e1, 1, "owner h2 until the e2 hand-over ends");
  if (GetParam() % 2) {
    c[2].set_state(kV, PowerState::paused);
    c[1].set_state(kV, PowerState::running);
    c.settle();
    c[2].set_state(kV, PowerState::shutoff, true);
    c.settle();
    expect_record(c, {1, 2, 3}, 1, e2, 0, "second migration done");
    EXPECT_EQ(active_on(c), std::vector<NodeId>{1});
  } else {
    c[1].set_state(kV, PowerState::shutoff);  // incoming qemu died: END(fail, e2) from h1
    c.settle();
    expect_record(c, {1, 2, 3}, 2, e1, 0, "second migration failed");
    EXPECT_EQ(active_on(c), std::vector<NodeId>{2});
  }
  expect_converged(c);
}

TEST_P(HandoverSeeds, SourcesStalePausedFactsAfterTheSwitchOverAreNoDuplicate) {
  // Scenario 30: at the switch-over the source's libvirt pauses its copy, but vguardd learns it only after the
  // target's "running" (END(ok) here) moved ownership to h2. With duplicate_policy = destroy, that late
  // "paused" must raise no alarm and kill nothing. Odd seeds also hold the source's FACTS (paused, then gone
  // with MIGRATED) past a membership change (h3's vguardd restarts), so they reach the merge after the record
  // is cleared: the SYNC's newer FACTS win and the stale ones are ignored.
  owned_by_h1_destroy_policy(c);
  const std::uint64_t e = rec(c[1]).epoch;
  ASSERT_EQ(c[2].call(Action::hook_migrate, kV.str()).status, Status::success);
  c[2].set_state(kV, PowerState::paused);
  c.settle();
  const bool late = GetParam() % 2;
  c[1].model[kV].state = PowerState::paused;  // ground truth: paused; its event reaches vguardd late
  c[2].set_state(kV, PowerState::running);
  c.settle();
  expect_record(c, {1, 2, 3}, 2, e + 1, 2, "switched over, source copy not yet gone");
  if (late) c.hub.delay_next_past_view(1);
  c[1].feed(HvDomain{c[1].model[kV]});  // the late "paused"
  c.settle();
  c[1].set_state(kV, PowerState::shutoff, /*migrated=*/true);
  c.settle();
  if (late) {
    c.hub.kill(3);
    c.settle();
    c.restart_vguardd(3);
    c.settle();
  }
  expect_record(c, {1, 2, 3}, 2, e + 1, 0, "migrated");
  for (NodeId n : {1u, 2u, 3u}) EXPECT_TRUE(c[n].alarms.empty()) << "h" << n << ": " << c[n].alarms.front();
  EXPECT_EQ(c[2].model[kV].state, PowerState::running) << "the new owner's copy was not killed";
  EXPECT_EQ(active_on(c), std::vector<NodeId>{2});
  expect_converged(c);
}

TEST_P(HandoverSeeds, SourceLostAfterTheSwitchOverKeepsTheRecordUntilTheTargetReports) {
  // Scenario 31: h1 (source) paused its copy at the switch-over and is lost; h2 already runs it but its FACTS
  // still say paused. The record stays (owner h1, hand-over recorded): claims refused, fences fail, nothing is
  // "off". h2's FACTS then report running: owner h2 at mig_epoch (epoch + 1). The source's paused copy may
  // still exist (lost, unconfirmed), so an off is still not answered (I2 would catch it: h1's copy is paused in
  // ground truth); once h1 is confirmed power-fenced the hand-over clears and FENCE(v) destroys on h2 and is
  // answered off. (The design lets FENCE destroy on T at once; this engine fails a fence while a hand-over is
  // recorded, docs/cluster-protocol.md, and a lost source keeps it recorded.)
  owned_by_h1(c);
  const std::uint64_t e = rec(c[1]).epoch;
  ASSERT_EQ(c[2].call(Action::hook_migrate, kV.str()).status, Status::success);
  const std::uint64_t me = rec(c[3]).mig_epoch;
  c[2].set_state(kV, PowerState::paused);
  c.settle();
  c[1].set_state(kV, PowerState::paused);  // switch-over: the source pauses
  c.settle();
  c[2].model[kV].state = PowerState::running;  // resumed on h2; its event is still on its way
  c.hub.crash(1);
  c.settle();
  expect_record(c, {2, 3}, 1, e, 1, "source lost, target's FACTS stale");
  EXPECT_EQ(c[3].call(Action::hook_prepare, kV.str()).status, Status::failure);
  EXPECT_NE(c[3].call(Action::off, kV.str()).status, Status::success);
  EXPECT_NE(c[3].call(Action::status, kV.str()).status, Status::off);
  c[2].feed(HvDomain{c[2].model[kV]});  // h2's FACTS: running
  c.settle();
  for (NodeId n : {2u, 3u}) {
    EXPECT_EQ(rec(c[n]).owner, 2u) << "h" << n;
    EXPECT_EQ(rec(c[n]).epoch, me) << "h" << n;
    EXPECT_EQ(rec(c[n]).mig_phase, 2) << "switched, the lost source's copy may still exist; h" << n;
  }
  EXPECT_EQ(me, e + 1);
  auto early = c[3].call(Action::off, kV.str());
  EXPECT_NE(early.status, Status::success) << "h1's paused copy may still exist: " << early.message;
  EXPECT_EQ(c[2].model[kV].state, PowerState::running);
  EXPECT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::failure) << "h1 is in no view";
  c[1].model[kV].state = PowerState::shutoff;  // the power fence
  ASSERT_EQ(c[3].call(Action::confirm_fenced, "h1").status, Status::success);
  expect_record(c, {2, 3}, 2, me, 0, "source confirmed fenced");
  auto off = c[3].call(Action::off, kV.str());
  EXPECT_EQ(off.status, Status::success) << off.message;
  EXPECT_NE(off.message.find("h2"), std::string::npos) << "answered by the target's destroy: " << off.message;
  EXPECT_EQ(c[2].model[kV].state, PowerState::shutoff) << "destroyed on h2";
  expect_converged(c);
}

TEST_P(HandoverSeeds, TargetLostWithBothCopiesRunningKeepsTheRecordUntilConfirmed) {
  // Scenario 32: the target h2 is cut off right after its migrate grant, before it reported its incoming copy;
  // the Finish reply is lost, so the source resumes and both copies run. The source's END(fail) (injected:
  // this engine takes END(fail) only from the target, whose evidence it is) changes nothing: the record stays,
  // a start on h3 is refused, FENCE(v) fails (I2: h2's copy runs). After CONFIRM_FENCED(h2): owner h1, epoch
  // unchanged, hand-over cleared, and FENCE(v) destroys on h1 with evidence.
  owned_by_h1(c);
  const std::uint64_t e = rec(c[1]).epoch;
  ASSERT_EQ(c[2].call(Action::hook_migrate, kV.str()).status, Status::success);
  const std::uint64_t me = rec(c[3]).mig_epoch;
  c.hub.partition({{1, 3}, {2}});
  c.settle();
  c[2].set_state(kV, PowerState::running);  // the target ran it (only its own partition hears it)
  c.settle();
  send_as(c, 1, proto::MsgMigrateEnd{1, kV, me, false, "source: Finish reply lost, resumed here"});
  c.settle();
  expect_record(c, {1, 3}, 1, e, 1, "target lost");
  auto f = c[3].call(Action::off, kV.str());
  EXPECT_NE(f.status, Status::success) << f.message;
  EXPECT_EQ(c[1].model[kV].state, PowerState::running) << "nothing destroyed while the record is open";
  EXPECT_EQ(c[3].call(Action::hook_prepare, kV.str()).status, Status::failure);
  EXPECT_EQ(c[3].call(Action::hook_migrate, kV.str()).status, Status::failure);
  c[2].model[kV].state = PowerState::shutoff;  // the power fence
  c.hub.crash(2);
  c.settle();
  ASSERT_EQ(c[1].call(Action::confirm_fenced, "h2").status, Status::success);
  expect_record(c, {1, 3}, 1, e, 0, "target confirmed fenced");
  auto off = c[3].call(Action::off, kV.str());
  EXPECT_EQ(off.status, Status::success) << off.message;
  EXPECT_EQ(c[1].model[kV].state, PowerState::shutoff);
  expect_converged(c);
}

TEST_P(HandoverSeeds, SourceConfirmedFencedHandsOverToAnActiveTarget) {
  // Scenario 33: h1 (source) is lost during a granted migration while h2's incoming copy is active; h1 is then
  // confirmed power-fenced → h2 owns v (mig_epoch) with the hand-over cleared, and FENCE(v) is answered from
  // h2's destroy, never "off because h1 was fenced": h2's destroy is held until flush(), so an early off would
  // be false in ground truth (I2). On odd seeds h2's FACTS reporting its copy arrive only after the
  // confirmation.
  owned_by_h1(c);
  ASSERT_EQ(c[2].call(Action::hook_migrate, kV.str()).status, Status::success);
  const std::uint64_t me = rec(c[3]).mig_epoch;
  const bool target_late = GetParam() % 2;
  if (target_late) {
    c[2].model[kV].state = PowerState::paused;
  } else {
    c[2].set_state(kV, PowerState::paused);
    c.settle();
  }
  c.hub.crash(1);
  c.settle();
  EXPECT_NE(c[3].call(Action::status, kV.str()).status, Status::off);
  c[1].model[kV].state = PowerState::shutoff;  // the power fence
  ASSERT_EQ(c[3].call(Action::confirm_fenced, "h1").status, Status::success);
  if (target_late) {
    EXPECT_NE(c[3].call(Action::status, kV.str()).status, Status::off) << "h2's copy is paused";
    c[2].feed(HvDomain{c[2].model[kV]});
    c.settle();
  }
  expect_record(c, {2, 3}, 2, me, 0, "handed over to the active target");
  auto st = c[3].call(Action::status, kV.str());
  EXPECT_NE(st.status, Status::off) << st.message;
  c[2].defer = true;
  const auto rid = c[3].ask(Action::off, kV.str());
  c.settle();
  EXPECT_FALSE(answer(c[3], rid) && answer(c[3], rid)->status == Status::success)
      << "off before h2 destroyed its copy: " << answer(c[3], rid)->message;
  c[2].flush();
  c.settle();
  ASSERT_TRUE(answer(c[3], rid));
  EXPECT_EQ(answer(c[3], rid)->status, Status::success) << answer(c[3], rid)->message;
  EXPECT_EQ(c[2].model[kV].state, PowerState::shutoff);
  expect_converged(c);
}

TEST_P(HandoverSeeds, FenceAgainstAMigration) {
  // Scenario 34: (a) FENCE(v, off) in flight (the owner's destroy is held): the target's migrate REQUEST is
  // refused at delivery by every member, and the fence is then answered off on the owner's evidence.
  // (b) The migrate REQUEST is ordered just before a FENCE that the requester routed at the old state: the
  // migration is granted, the target's incoming copy exists (its event still on the way), and the owner's
  // FENCE_DONE, although for the same epoch, is not evidence: a migration was granted meanwhile (I2 would
  // catch an off). Part (b) then ends the failed migration and checks the replicas.
  owned_by_h1(c);
  const std::uint64_t e = rec(c[1]).epoch;
  c[1].defer = true;
  const auto f1 = c[3].ask(Action::off, kV.str());
  if (GetParam() % 2) c.settle();  // the FENCE is delivered everywhere before the REQUEST is even sent
  const auto m1 = hook(c[2], Action::hook_migrate);
  c.settle();
  ASSERT_TRUE(answer(c[2], m1));
  EXPECT_EQ(answer(c[2], m1)->status, Status::failure) << "migration granted while a fence is in flight";
  for (NodeId n : {1u, 2u, 3u}) EXPECT_EQ(rec(c[n]).mig_phase, 0) << "h" << n;
  c[1].flush();
  c.settle();
  ASSERT_TRUE(answer(c[3], f1));
  EXPECT_EQ(answer(c[3], f1)->status, Status::success) << answer(c[3], f1)->message;
  EXPECT_TRUE(active_on(c).empty());

  // (b) v runs on h1 again, epoch e2.
  ASSERT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::success);
  start_here(c[1]);
  c.settle();
  const std::uint64_t e2 = rec(c[3]).epoch;
  ASSERT_GT(e2, e);
  c[1].defer = true;
  const auto m2 = hook(c[2], Action::hook_migrate);  // ordered first
  const auto f2 = c[3].ask(Action::off, kV.str());   // routed on a replica without the migration
  c.settle();
  ASSERT_TRUE(yes(c[2], m2)) << answer(c[2], m2).value_or(proto::Response{}).message;
  c[2].model[kV].state = PowerState::paused;  // incoming copy; its event is late
  c[1].flush();                               // the owner's destroy completes: FENCE_DONE for epoch e2
  c.settle();
  ASSERT_TRUE(answer(c[3], f2));
  EXPECT_NE(answer(c[3], f2)->status, Status::success) << "FENCE_DONE after a migration grant is not evidence";
  // The source's copy is gone, so the migration fails: h2's incoming copy stops (END(fail) from h2).
  c[2].feed(HvDomain{c[2].model[kV]});
  c.settle();
  stop_here(c[2]);
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) {
    EXPECT_EQ(rec(c[n]).mig_phase, 0) << "h" << n;
    EXPECT_NE(rec(c[n]).owner, 2u) << "h" << n;
  }
  EXPECT_TRUE(active_on(c).empty());
  expect_converged(c);
}

TEST_P(HandoverSeeds, FenceRequesterCrashEndsItsFenceAtTheViewChange) {
  // Scenario 35: h3's FENCE(v, off) is in flight (h1's destroy held) and blocks a migrate REQUEST; h3's vguardd
  // dies (procdown) and restarts. The view change ends the dead requester's fence on every member, the
  // restarted one included, so the same REQUEST is now decided alike everywhere (granted: nothing blocks it,
  // expect_converged checks the replicas agree). The held destroy then completes, the failed hand-over ends
  // on the target's evidence, and a new FENCE from the restarted h3 is accepted and answered off with
  // evidence.
  owned_by_h1(c);
  c[1].defer = true;
  c[3].ask(Action::off, kV.str());
  c.settle();
  auto blocked = c[2].call(Action::hook_migrate, kV.str());
  EXPECT_EQ(blocked.status, Status::failure) << "a fence is in flight";
  EXPECT_NE(blocked.message.find("fence"), std::string::npos) << blocked.message;
  c.hub.kill(3);
  c.settle();
  c.restart_vguardd(3);
  c.settle();
  auto m = c[2].call(Action::hook_migrate, kV.str());
  EXPECT_EQ(m.status, Status::success) << "the dead requester's fence still blocks: " << m.message;
  expect_converged(c);
  c[1].flush();  // the old destroy completes; its FENCE_DONE reaches no requester
  c.settle();
  EXPECT_TRUE(active_on(c).empty());
  stop_here(c[2]);  // the incoming copy never came: the target ends the hand-over as failed
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) EXPECT_EQ(rec(c[n]).mig_phase, 0) << "h" << n;
  auto off = c[3].call(Action::off, kV.str());
  EXPECT_EQ(off.status, Status::success) << off.message;
  EXPECT_TRUE(active_on(c).empty());
  expect_converged(c);
}

INSTANTIATE_TEST_SUITE_P(ManySeeds, HandoverSeeds, ::testing::Range(1, 41));

}  // namespace
}  // namespace vguard::fenced
