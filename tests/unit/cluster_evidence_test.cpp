// Safety scenarios (safety-scenarios.md) over the cluster harness: cold starts, evidence, identity.
// Names of messages are this engine's (docs/cluster-protocol.md): the design's REQUEST is CLAIM, ABORT is
// RELEASE with a request id, END is MIGRATE_END (fail) or the FACTS that complete a hand-over.
#include "cluster_harness.h"

namespace vguard::fenced {
namespace {

using namespace harness;  // also brings proto::Action, PowerState, Status

class EvidenceSeeds : public SeedFixture {};

const Uuid kW = *Uuid::parse("7e000000-0000-4000-8000-0000000000bb");

// Delivers what is queued for h1 and h3 only: h2 lags behind the agreed order (its replica is stale).
void settle_without_h2(Cluster& c) {
  while (c.hub.step(1) || c.hub.step(3)) {
  }
}

// An engine that watches Pacemaker's fencing history (ClusterIdentity::pacemaker_history), for a node whose
// harness engine has not delivered anything yet.
void history_engine(Node& n) {
  n.engine = std::make_unique<ClusterEngine>(
      ClusterIdentity{n.id, "h" + std::to_string(n.id), n.incarnation, true, n.c.configured, n.guard}, Policy{});
}

// A new vguardd process on `id` whose libvirt connection is not up (yet).
void restart_without_libvirt(Cluster& c, NodeId id) {
  Node& n = c[id];
  ++n.incarnation;
  n.reset_engine();
  c.hub.restart(id);
}

void send_as(Cluster& c, NodeId from, const proto::ClusterMsg& m) {
  ASSERT_TRUE(c.hub.bus(from).send(proto::encode_cluster(kClusterKeyId, kClusterKey, m)));
}

TEST_P(EvidenceSeeds, RefusedClaimIsAnsweredWithoutAnAckRoundAndChangesNothing) {
  // Scenario 2: v is owned by h1. (a) h2's replica already shows it: the requester applies the predicate
  // every member would apply and answers no at once, without ordering anything (stricter than "at its own
  // delivery"). (b) h2's replica does not show it yet (h3's claim is ordered just before h2's): h2 answers no
  // at the delivery of its own CLAIM, in that very step, without waiting for any ACK. Replicas unchanged.
  guarded(c);
  const auto r1 = hook(c[1], Action::hook_prepare);
  c.settle();
  ASSERT_TRUE(yes(c[1], r1)) << answer(c[1], r1).value_or(proto::Response{}).message;
  start_here(c[1]);
  c.settle();
  std::map<NodeId, std::string> before;
  for (NodeId n : {1u, 2u, 3u}) before[n] = c[n].engine->digest();
  const auto r2 = hook(c[2], Action::hook_prepare);
  ASSERT_TRUE(answer(c[2], r2)) << "answered without waiting for anything";
  EXPECT_EQ(answer(c[2], r2)->status, Status::failure);
  EXPECT_NE(answer(c[2], r2)->message.find("h1"), std::string::npos) << answer(c[2], r2)->message;
  EXPECT_FALSE(c[2].claimed.count(r2)) << "nothing ordered, so nothing to acknowledge";
  EXPECT_EQ(c.hub.pending(), 0u);
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) EXPECT_EQ(c[n].engine->digest(), before[n]) << "replica changed on h" << n;

  // (b) v released; h3 and h2 claim it at the same time, h3's CLAIM first in the agreed order.
  stop_here(c[1]);
  c.settle();
  ASSERT_EQ(rec(c[2]).owner, 0u);
  const std::uint64_t e = rec(c[2]).epoch;
  const auto r3 = hook(c[3], Action::hook_prepare);
  const auto r2b = hook(c[2], Action::hook_prepare);
  ASSERT_TRUE(c[2].claimed.count(r2b)) << "h2's replica allowed it: the CLAIM is ordered";
  bool decided_at_delivery = false;
  while (c.hub.step()) {
    if (!c[2].claims_delivered.count({2, r2b}) || decided_at_delivery) continue;
    ASSERT_TRUE(answer(c[2], r2b)) << "no answer at the delivery of h2's own refused CLAIM";
    decided_at_delivery = true;
  }
  ASSERT_TRUE(decided_at_delivery);
  EXPECT_EQ(answer(c[2], r2b)->status, Status::failure);
  ASSERT_TRUE(yes(c[3], r3)) << answer(c[3], r3).value_or(proto::Response{}).message;
  start_here(c[3]);
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) {
    EXPECT_EQ(rec(c[n]).owner, 3u) << "h" << n;
    EXPECT_EQ(rec(c[n]).epoch, e + 1) << "only h3's grant raised the epoch, h" << n;
  }
  EXPECT_EQ(active_on(c), std::vector<NodeId>{3});
  expect_converged(c);
}

TEST_P(EvidenceSeeds, ColdStartRebuildsOwnersFromFactsAndWaitsForEveryHost) {
  // Scenario 13: cold start, all present. This engine has NO persisted tables (docs/cluster-protocol.md,
  // "Deliberately simpler"): when every vguardd restarts, the map is rebuilt from the members' FACTS, so the
  // design's "epoch = max of the persisted tables" becomes: the owner is the one host whose libvirt runs v,
  // every replica agrees on it and on its (new) epoch, and later grants raise it from there. Decisive only when
  // every configured host is a member with its libvirt reachable: before that, a domain that only the absent
  // host runs (w on h3) could be granted elsewhere.
  for (NodeId n : {1u, 2u, 3u})
    c.add(n, doms({{kV, "v", PowerState::shutoff}, {kW, "w", PowerState::shutoff}}));
  c.settle();
  // History: v granted to h1, then to h2 (epoch 2); w runs on h3.
  ASSERT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::success);
  start_here(c[1]);
  c.settle();
  stop_here(c[1]);
  c.settle();
  ASSERT_EQ(c[2].call(Action::hook_prepare, kV.str()).status, Status::success);
  start_here(c[2]);
  ASSERT_EQ(c[3].call(Action::hook_prepare, kW.str()).status, Status::success);
  start_here(c[3], kW);
  c.settle();
  ASSERT_EQ(rec(c[1]).epoch, 2u);
  // Every vguardd dies; the domains keep running. h1 and h2 come back first (seeded order).
  for (NodeId n : {1u, 2u, 3u}) c.hub.kill(n);
  c.settle();
  const NodeId first = GetParam() % 2 ? 1 : 2, second = 3 - first;
  c.restart_vguardd(first);
  c.settle();
  c.restart_vguardd(second);
  c.settle();
  for (NodeId n : {1u, 2u}) {
    ASSERT_TRUE(c[n].engine->synced()) << "h" << n;
    EXPECT_FALSE(c[n].engine->decisive()) << "cold start, h3 absent, h" << n;
    EXPECT_EQ(rec(c[n]).owner, 2u) << "rebuilt from h2's FACTS, h" << n;
  }
  auto rw = c[1].call(Action::hook_prepare, kW.str());
  EXPECT_EQ(rw.status, Status::failure) << "w runs on the absent h3";
  EXPECT_NE(rw.message.find("decisive"), std::string::npos) << rw.message;
  if (rw.status == Status::success) start_here(c[1], kW);  // I1 then fails
  // h3's vguardd is back but its libvirt is not: every host a member, still not complete.
  restart_without_libvirt(c, 3);
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) {
    ASSERT_TRUE(c[n].engine->synced()) << "h" << n;
    EXPECT_FALSE(c[n].engine->decisive()) << "h3's libvirt unreachable, h" << n;
  }
  EXPECT_EQ(c[2].call(Action::hook_prepare, kW.str()).status, Status::failure);
  c[3].connect_libvirt();
  c.settle();
  const std::uint64_t e = rec(c[1]).epoch;
  for (NodeId n : {1u, 2u, 3u}) {
    EXPECT_TRUE(c[n].engine->decisive()) << "all present, h" << n;
    EXPECT_EQ(rec(c[n]).owner, 2u) << "h" << n;
    EXPECT_EQ(rec(c[n]).epoch, e) << "one epoch on every replica, h" << n;
    EXPECT_EQ(rec(c[n], kW).owner, 3u) << "h" << n;
  }
  EXPECT_EQ(c[1].call(Action::hook_prepare, kW.str()).status, Status::failure) << "w runs on h3";
  EXPECT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::failure) << "v runs on h2";
  stop_here(c[2]);
  c.settle();
  ASSERT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::success);
  start_here(c[1]);
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) {
    EXPECT_EQ(rec(c[n]).owner, 1u) << "h" << n;
    EXPECT_EQ(rec(c[n]).epoch, e + 1) << "grants raise the rebuilt epoch, h" << n;
  }
  EXPECT_EQ(active_on(c), std::vector<NodeId>{1});
  EXPECT_EQ(active_on(c, kW), std::vector<NodeId>{3});
  expect_converged(c);
}

TEST_P(EvidenceSeeds, ColdStartWithOneHostAbsentNeedsAConfirmationAfterItsLoss) {
  // Scenario 14: cold start, one absent. NO persisted tables here, so a host that no restarted vguardd has
  // seen is unknown: it cannot be confirmed fenced at all and the cold cluster waits for it (an availability
  // deviation, never a grant). Closest faithful version: h3 took part in the cold cluster (its libvirt
  // unreachable, so the view was never complete and nobody became stateful) and is lost. A CONFIRM_FENCED
  // dated before the current view formed is ignored: one naming h3's earlier loss, and a Pacemaker history
  // entry already there at the loss (the baseline). A fence observed after the loss makes {h1,h2} complete,
  // hence decisive.
  for (NodeId n : {1u, 2u}) {
    Node& node = c.add(n, doms({{kV, "v", PowerState::shutoff}}));
    history_engine(node);  // replaced before anything was delivered to the harness's default engine
    node.connect_libvirt();
  }
  c.settle();  // h3 absent from the start
  EXPECT_FALSE(c[1].engine->decisive());
  auto unknown = c[1].call(Action::confirm_fenced, "h3");
  EXPECT_EQ(unknown.status, Status::failure) << "never seen by this cold cluster: " << unknown.message;
  history_engine(c.add(3, doms({{kV, "v", PowerState::shutoff}})));  // its libvirt never connects
  // h3 joins twice with its libvirt unreachable and is lost twice (losses 1, 2).
  for (int loss = 1; loss <= 2; ++loss) {
    if (loss == 2) c.hub.restart(3);
    c.settle();
    ASSERT_EQ(c[1].engine->members(), (std::set<NodeId>{1, 2, 3}));
    EXPECT_FALSE(c[1].engine->decisive()) << "h3's libvirt unreachable";
    c.hub.crash(3);
    c.settle();
  }
  for (NodeId n : {1u, 2u}) {
    ASSERT_TRUE(c[n].engine->lost(3)) << "h" << n;
    ASSERT_EQ(c[n].engine->hosts().at(3).losses, 2u) << "h" << n;
    EXPECT_FALSE(c[n].engine->stateful()) << "a cold cluster, h" << n;
  }
  const auto& hf = c[1].engine->hosts().at(3).facts;
  ASSERT_TRUE(hf);
  // A confirmation of h3's first loss (queued before h3 came back) is delivered only now.
  send_as(c, 2, proto::MsgConfirmFenced{3, 1, "vguardctl (first loss)", hf->incarnation, hf->seq});
  c.settle();
  // Pacemaker's history at the loss: a fence from before it is only the baseline.
  c[1].feed(FenceHistoryIn{3, 1000});
  c[1].feed(FenceHistoryIn{3, 1000});
  c.settle();
  for (NodeId n : {1u, 2u}) {
    EXPECT_TRUE(c[n].engine->lost(3)) << "h" << n;
    EXPECT_FALSE(c[n].engine->decisive()) << "h" << n;
  }
  EXPECT_EQ(c[2].call(Action::hook_prepare, kV.str()).status, Status::failure);
  // h3 is power-fenced now; Pacemaker reports the newer fence.
  c[1].feed(FenceHistoryIn{3, 2000});
  c.settle();
  for (NodeId n : {1u, 2u}) {
    EXPECT_TRUE(c[n].engine->confirmed(3)) << "h" << n;
    EXPECT_TRUE(c[n].engine->decisive()) << "complete by the confirmation, h" << n;
  }
  ASSERT_EQ(c[2].call(Action::hook_prepare, kV.str()).status, Status::success);
  start_here(c[2]);
  c.settle();
  for (NodeId n : {1u, 2u}) EXPECT_EQ(rec(c[n]).owner, 2u) << "h" << n;
  expect_converged(c);
}

TEST_P(EvidenceSeeds, MigrationCompletesOnTheSourcesMigratedStopAndLaterEndsAreNoOps) {
  // Scenario 24: migration happy path. REQUEST = CLAIM(migrate). The design's END(ok, e) has no message of its
  // own in this engine: the hand-over completes at the delivery of the FACTS that show it; here the source's
  // STOPPED with detail MIGRATED while the target's incoming copy is still paused (its RESUMED comes later).
  // Owner T, epoch + 1. "T's later END is a no-op": T's later FACTS (running) and a MIGRATE_END naming the
  // finished mig_epoch change nothing.
  guarded(c);
  ASSERT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::success);
  start_here(c[1]);
  c.settle();
  const std::uint64_t e = rec(c[1]).epoch;
  const auto rm = hook(c[2], Action::hook_migrate);
  EXPECT_TRUE(c[2].claimed.count(rm)) << "the migrate hook is a REQUEST";
  EXPECT_FALSE(answer(c[2], rm)) << "no yes before every member acknowledged";
  c.settle();
  ASSERT_TRUE(yes(c[2], rm)) << answer(c[2], rm).value_or(proto::Response{}).message;
  for (NodeId n : {1u, 2u, 3u}) {
    EXPECT_EQ(rec(c[n]).mig_phase, 1) << "h" << n;
    EXPECT_EQ(rec(c[n]).mig_source, 1u) << "h" << n;
    EXPECT_EQ(rec(c[n]).mig_epoch, e + 1) << "h" << n;
    EXPECT_EQ(rec(c[n]).owner, 1u) << "h" << n;
  }
  // T's prepare (the start of the incoming copy) takes no claim: answered at once, nothing ordered.
  const auto rp = hook(c[2], Action::hook_prepare);
  ASSERT_TRUE(yes(c[2], rp)) << answer(c[2], rp).value_or(proto::Response{}).message;
  EXPECT_FALSE(c[2].claimed.count(rp));
  EXPECT_EQ(c.hub.pending(), 0u);
  c[2].set_state(kV, PowerState::paused);  // incoming copy
  c.settle();
  EXPECT_EQ(rec(c[3]).owner, 1u) << "not switched over yet";
  c[1].set_state(kV, PowerState::shutoff, /*migrated=*/true);  // S: STOPPED_MIGRATED
  hook(c[1], Action::hook_release);
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) {
    EXPECT_EQ(rec(c[n]).owner, 2u) << "h" << n;
    EXPECT_EQ(rec(c[n]).epoch, e + 1) << "h" << n;
    EXPECT_EQ(rec(c[n]).mig_phase, 0) << "h" << n;
    EXPECT_TRUE(c[n].alarms.empty()) << "a hand-over is not a duplicate, h" << n;
  }
  const proto::DomainRecord done = rec(c[3]);
  c[2].set_state(kV, PowerState::running);  // T's RESUMED, after the fact
  c.settle();
  send_as(c, 2, proto::MsgMigrateEnd{2, kV, e + 1, true, "late end"});
  send_as(c, 2, proto::MsgMigrateEnd{2, kV, e + 1, false, "late end"});
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) EXPECT_EQ(rec(c[n]), done) << "a later END changed the record on h" << n;
  EXPECT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::failure);
  EXPECT_EQ(active_on(c), std::vector<NodeId>{2});
  expect_converged(c);
}

TEST_P(EvidenceSeeds, MigrateRequestWithAStaleEpochIsRefused) {
  // Scenario 28: h2's replica lags: it still shows owner h1 at epoch e, running. Meanwhile v moved to h3 at
  // e+1 (an unguarded migration: h1 reports it gone with detail MIGRATED, h3 reports it running; no ACK needed,
  // so h2 takes no part). h2's migrate REQUEST (expected epoch e) is ordered after that move → refused on the
  // epoch, although h3 now runs it. A fresh REQUEST (expected e+1) is granted with the source at delivery (h3).
  guarded(c);
  ASSERT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::success);
  start_here(c[1]);
  c.settle();
  const std::uint64_t e = rec(c[2]).epoch;
  c[1].set_state(kV, PowerState::shutoff, /*migrated=*/true);
  c[3].set_state(kV, PowerState::running);
  settle_without_h2(c);
  ASSERT_EQ(rec(c[1]).owner, 3u);
  ASSERT_EQ(rec(c[1]).epoch, e + 1);
  ASSERT_EQ(rec(c[2]).owner, 1u) << "h2 lags";
  const auto rm = hook(c[2], Action::hook_migrate);
  ASSERT_TRUE(c[2].claimed.count(rm)) << "h2's stale replica let the REQUEST out";
  c.settle();
  ASSERT_TRUE(answer(c[2], rm));
  EXPECT_EQ(answer(c[2], rm)->status, Status::failure);
  EXPECT_NE(answer(c[2], rm)->message.find("changed meanwhile"), std::string::npos) << answer(c[2], rm)->message;
  for (NodeId n : {1u, 2u, 3u}) {
    EXPECT_EQ(rec(c[n]).owner, 3u) << "h" << n;
    EXPECT_EQ(rec(c[n]).epoch, e + 1) << "h" << n;
    EXPECT_EQ(rec(c[n]).mig_phase, 0) << "no hand-over recorded, h" << n;
  }
  ASSERT_EQ(c[2].call(Action::hook_migrate, kV.str()).status, Status::success);
  for (NodeId n : {1u, 2u, 3u}) EXPECT_EQ(rec(c[n]).mig_source, 3u) << "the owner at delivery, h" << n;
  EXPECT_EQ(active_on(c), std::vector<NodeId>{3});
  expect_converged(c);
}

TEST_P(EvidenceSeeds, MigrateRefusedWhileTheOwnersStartEventIsLostGrantedAfterItsReconnect) {
  // Scenario 29: v granted to h1 and running, but libvirt's start event was lost: h1's FACTS still say shut
  // off. A migrate REQUEST is refused (no owner's libvirt vouches for the copy). h1's libvirt connection is
  // re-established (events subscribed, then the listing asked for): FACTS report it running, and the same
  // REQUEST is granted; the migration then completes.
  guarded(c);
  ASSERT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::success);
  c[1].model[kV].state = PowerState::running;  // started; its event never reaches vguardd
  c.settle();
  const std::uint64_t e = rec(c[1]).epoch;
  auto m = c[2].call(Action::hook_migrate, kV.str());
  EXPECT_EQ(m.status, Status::failure);
  EXPECT_NE(m.message.find("does not report it active"), std::string::npos) << m.message;
  for (NodeId n : {1u, 2u, 3u}) {
    EXPECT_EQ(rec(c[n]).owner, 1u) << "h" << n;
    EXPECT_EQ(rec(c[n]).mig_phase, 0) << "h" << n;
  }
  c.now += 100;
  c[1].feed(HvConnected{{c[1].model[kV]}, c.now});  // the listing, asked for after the subscription
  c.settle();
  EXPECT_EQ(rec(c[3]).owner, 1u) << "a listing that shows it running releases nothing";
  auto m2 = c[2].call(Action::hook_migrate, kV.str());
  ASSERT_EQ(m2.status, Status::success) << m2.message;
  for (NodeId n : {1u, 2u, 3u}) EXPECT_EQ(rec(c[n]).mig_epoch, e + 1) << "h" << n;
  c[2].set_state(kV, PowerState::paused);
  c[2].set_state(kV, PowerState::running);
  c[1].set_state(kV, PowerState::shutoff, /*migrated=*/true);
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) EXPECT_EQ(rec(c[n]).owner, 2u) << "h" << n;
  EXPECT_EQ(active_on(c), std::vector<NodeId>{2});
  expect_converged(c);
}

TEST_P(EvidenceSeeds, UnownedDomainIsOffOnlyWhenEveryLibvirtIsReachable) {
  // Scenario 36: evidence (c). v has no owner, every host is a member. h3's libvirt connection is lost
  // (HvLost on h3, FACTS "unreachable"), and v is started there meanwhile, unseen: off and status must not
  // answer off (I2 checks the ground truth at every answer). On even seeds h3's last listing had v (shut
  // off; unreachable makes it "maybe active"), on odd seeds v was defined there only after the loss. Once v
  // is stopped again and h3 has reconnected, every libvirt reports it inactive: status off, off succeeds.
  c.add(1, doms({{kV, "v", PowerState::shutoff}}));
  c.add(2, doms({{kV, "v", PowerState::shutoff}}));
  c.add(3, GetParam() % 2 ? std::map<Uuid, DomainInfo>{} : doms({{kV, "v", PowerState::shutoff}}));
  c.settle();
  ASSERT_EQ(c[1].call(Action::status, kV.str()).status, Status::off) << "complete view, inactive everywhere";
  c[3].feed(HvLost{"connection reset"});
  c.settle();
  c[3].model[kV] = DomainInfo{kV, "v", PowerState::running, false};
  for (NodeId n : {1u, 2u}) {
    ASSERT_EQ(c[n].engine->members().size(), 3u);
    EXPECT_EQ(rec(c[n]).owner, 0u);
    auto s = c[n].call(Action::status, kV.str());
    EXPECT_NE(s.status, Status::off) << "h" << n << ": " << s.message;
    auto o = c[n].call(Action::off, "v");
    EXPECT_EQ(o.status, Status::failure) << "h" << n << ": " << o.message;
  }
  EXPECT_EQ(c[3].model[kV].state, PowerState::running);
  c[3].model[kV].state = PowerState::shutoff;
  c[3].connect_libvirt();
  c.settle();
  EXPECT_EQ(c[2].call(Action::status, kV.str()).status, Status::off);
  auto o = c[2].call(Action::off, "v");
  EXPECT_EQ(o.status, Status::success) << o.message;
  expect_converged(c);
}

TEST_P(EvidenceSeeds, LostOwnersFenceFailsUntilAFenceAfterItsLossIsReported) {
  // Scenario 37: v runs on h3, which is lost. off fails with the reason. Pacemaker's history entry that was
  // already there at the loss (this engine takes the first answer after the loss as that snapshot) confirms
  // nothing: off still fails. A fence recorded after it (h3 really powered off) confirms the loss on every
  // member: status off, off succeeds.
  for (NodeId n : {1u, 2u, 3u}) {
    Node& node = c.add(n, doms({{kV, "v", PowerState::shutoff}}));
    history_engine(node);
    node.connect_libvirt();
  }
  c.settle();
  ASSERT_EQ(c[3].call(Action::hook_prepare, kV.str()).status, Status::success);
  start_here(c[3]);
  c.settle();
  c.hub.crash(3);
  c.settle();
  ASSERT_TRUE(c[1].engine->lost(3));
  auto o = c[1].call(Action::off, "v");
  EXPECT_EQ(o.status, Status::failure);
  EXPECT_NE(o.message.find("lost"), std::string::npos) << o.message;
  c[1].feed(FenceHistoryIn{3, 1000});  // the snapshot at the loss
  c[1].feed(FenceHistoryIn{3, 1000});
  c.settle();
  for (NodeId n : {1u, 2u}) {
    EXPECT_TRUE(c[n].engine->lost(3)) << "h" << n;
    auto r = c[n].call(Action::off, "v");
    EXPECT_EQ(r.status, Status::failure) << "h" << n << ": " << r.message;
    EXPECT_NE(c[n].call(Action::status, "v").status, Status::off) << "h" << n;
  }
  c[3].model[kV].state = PowerState::shutoff;  // the power fence
  c[1].feed(FenceHistoryIn{3, 2000});
  c.settle();
  for (NodeId n : {1u, 2u}) EXPECT_TRUE(c[n].engine->confirmed(3)) << "h" << n;
  EXPECT_EQ(c[2].call(Action::status, "v").status, Status::off);
  auto o2 = c[2].call(Action::off, "v");
  EXPECT_EQ(o2.status, Status::success) << o2.message;
  EXPECT_NE(o2.message.find("pacemaker"), std::string::npos) << "cites who confirmed it: " << o2.message;
  expect_converged(c);
}

TEST_P(EvidenceSeeds, RequestersOwnStartingUpCopyDoesNotBlockItsClaim) {
  // Scenario 39: libvirt puts v in its starting-up pause before the prepare hook runs; h1's FACTS (delivered,
  // cached in every replica) show v paused on h1. h2's claim is refused meanwhile; h1's own claim is granted;
  // after it, h3's is refused too.
  guarded(c);
  c[1].set_state(kV, PowerState::paused);
  c.settle();
  auto r2 = c[2].call(Action::hook_prepare, kV.str());
  EXPECT_EQ(r2.status, Status::failure) << r2.message;
  auto r1 = c[1].call(Action::hook_prepare, kV.str());
  ASSERT_EQ(r1.status, Status::success) << r1.message;
  c[1].set_state(kV, PowerState::running);
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) EXPECT_EQ(rec(c[n]).owner, 1u) << "h" << n;
  auto r3 = c[3].call(Action::hook_prepare, kV.str());
  EXPECT_EQ(r3.status, Status::failure) << r3.message;
  EXPECT_EQ(active_on(c), std::vector<NodeId>{1});
  expect_converged(c);
}

TEST_P(EvidenceSeeds, RestartedVguarddsFactsCountWhateverItsIncarnationAndSeq) {
  // Scenario 40: freshness. h2 owns v; its vguardd dies, v stops meanwhile, and a new vguardd starts. Its
  // FACTS restart at a low seq, with a new incarnation that is higher (even seeds) or lower (odd seeds: its
  // clock went back) than the old one. They replace the old FACTS on every member: v is released (h2's own
  // listing) and h1's claim is granted.
  guarded(c);
  c.hub.kill(2);
  c.settle();
  c.restart_vguardd(2);  // incarnation 2, so that a lower one exists
  c.settle();
  ASSERT_EQ(c[2].call(Action::hook_prepare, kV.str()).status, Status::success);
  start_here(c[2]);
  for (int i = 0; i < 5; ++i) {  // a few lifecycle events: a high seq in the old incarnation
    c[2].set_state(kV, PowerState::paused);
    c[2].set_state(kV, PowerState::running);
  }
  c.settle();
  const auto old = *c[1].engine->hosts().at(2).facts;
  c.hub.kill(2);
  c.settle();
  c[2].model[kV].state = PowerState::shutoff;
  Node& h2 = c[2];
  h2.incarnation = GetParam() % 2 ? 1 : 3;
  h2.reset_engine();
  c.hub.restart(2);
  h2.connect_libvirt();
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) {
    const auto& f = c[n].engine->hosts().at(2).facts;
    ASSERT_TRUE(f) << "h" << n;
    EXPECT_EQ(f->incarnation, h2.incarnation) << "h" << n;
    EXPECT_LT(f->seq, old.seq) << "h" << n;
    EXPECT_EQ(rec(c[n]).owner, 0u) << "released by h2's listing, h" << n;
  }
  auto r = c[1].call(Action::hook_prepare, kV.str());
  EXPECT_EQ(r.status, Status::success) << r.message;
  if (r.status == Status::success) start_here(c[1]);
  c.settle();
  EXPECT_EQ(active_on(c), std::vector<NodeId>{1});
  expect_converged(c);
}

TEST_P(EvidenceSeeds, LocalNoQuorumRefusesOwnHookButAcknowledgesOthers) {
  // Scenario 40: quorum. libquorum tells h3 "not quorate" (a local flag, not ordered with CPG; h3 is still in
  // the view). h3 refuses its own hook at once, asking nobody; h1's claim is acknowledged by h3 like by
  // anybody else (h1's yes needs h3's ACK), and h3's replica stays equal to the others'.
  guarded(c);
  c[3].feed(QuorumIn{false});
  const auto r3 = hook(c[3], Action::hook_prepare);
  ASSERT_TRUE(answer(c[3], r3));
  EXPECT_EQ(answer(c[3], r3)->status, Status::failure);
  EXPECT_NE(answer(c[3], r3)->message.find("quorum"), std::string::npos) << answer(c[3], r3)->message;
  EXPECT_FALSE(c[3].claimed.count(r3));
  const auto r1 = hook(c[1], Action::hook_prepare);
  c.settle();
  ASSERT_TRUE(yes(c[1], r1)) << answer(c[1], r1).value_or(proto::Response{}).message;
  EXPECT_TRUE(c[3].claims_delivered.count({1, r1}));
  start_here(c[1]);
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) EXPECT_EQ(rec(c[n]).owner, 1u) << "h" << n;
  EXPECT_EQ(c[3].engine->digest(), c[1].engine->digest());
  stop_here(c[1]);
  c.settle();
  EXPECT_EQ(c[3].call(Action::hook_prepare, kV.str()).status, Status::failure) << "still not quorate";
  c[3].feed(QuorumIn{true});
  EXPECT_EQ(c[3].call(Action::hook_prepare, kV.str()).status, Status::success);
  expect_converged(c);
}

TEST_P(EvidenceSeeds, FenceByANameThatIsNotUniqueIsRefused) {
  // Scenario 40: names. A fence target given by name must match exactly one UUID in the cluster. Two domains
  // called "web" (h1, h2): off "web" is refused as ambiguous and destroys nothing; by UUID it works.
  c.add(1, doms({{kD1, "web", PowerState::running}}));
  c.add(2, doms({{kD2, "web", PowerState::running}}));
  c.add(3, {});
  c.settle();
  auto o = c[3].call(Action::off, "web");
  EXPECT_EQ(o.status, Status::failure) << o.message;
  EXPECT_EQ(o.error, static_cast<std::uint16_t>(errc::ambiguous_domain)) << o.message;
  EXPECT_EQ(c[1].model[kD1].state, PowerState::running);
  EXPECT_EQ(c[2].model[kD2].state, PowerState::running);
  EXPECT_EQ(c[3].call(Action::off, kD2.str()).status, Status::success);
  EXPECT_EQ(c[2].model[kD2].state, PowerState::shutoff);
  expect_converged(c);
}

INSTANTIATE_TEST_SUITE_P(ManySeeds, EvidenceSeeds, ::testing::Range(1, 41));

}  // namespace
}  // namespace vguard::fenced
