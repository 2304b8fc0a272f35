// Safety scenarios (safety-scenarios.md) over the cluster harness: views (stability across membership changes,
// decisive views, restarts and flapping members). Scenario numbers refer to safety-scenarios.md; names of
// messages are this engine's (docs/cluster-protocol.md): the design's REQUEST is CLAIM, ABORT is RELEASE with a
// request id, and stability is per-claim ACK rounds (RECONFIRM after a membership change).
#include "cluster_harness.h"

namespace vguard::fenced {
namespace {

using namespace harness;  // also brings proto::Action, PowerState, Status

class ViewSeeds : public SeedFixture {};

const Uuid kW = *Uuid::parse("7e000000-0000-4000-8000-0000000000bb");

// What the requester's engine looked like when the answer to `rid` appeared.
struct AnsweredAt {
  std::set<NodeId> members;
  bool synced = false;
};

// Delivers one event at a time (seeded interleaving) until idle, noting n's view when rid gets its answer.
std::optional<AnsweredAt> settle_watching(Cluster& c, Node& n, std::uint64_t rid) {
  std::optional<AnsweredAt> at;
  if (answer(n, rid)) at = AnsweredAt{n.engine->members(), n.engine->synced()};
  while (c.hub.step())
    if (!at && answer(n, rid)) at = AnsweredAt{n.engine->members(), n.engine->synced()};
  return at;
}

// The harness configures {1,2,3}; scenario 11 needs five configured hosts, so its engines are built here.
const std::set<NodeId> kFive{1, 2, 3, 4, 5};
void five_host_engine(Node& n) {
  n.engine = std::make_unique<ClusterEngine>(
      ClusterIdentity{n.id, "h" + std::to_string(n.id), n.incarnation, false, kFive, n.guard}, Policy{});
}
void five_hosts(Cluster& c) {
  for (NodeId id : kFive) {
    Node& n = c.add(id, doms({{kV, "v", PowerState::shutoff}}));
    five_host_engine(n);  // replaced before anything was delivered to the harness's default engine
    n.connect_libvirt();
  }
  c.settle();
}
// Like Cluster::restart_vguardd, with five configured hosts.
void restart_five(Cluster& c, NodeId id) {
  Node& n = c[id];
  ++n.incarnation;
  five_host_engine(n);
  c.hub.restart(id);
  n.connect_libvirt();
}

TEST_P(ViewSeeds, AckThenCleanLeaveStillSaysYes) {
  // Scenario 4: h2 delivers h3's claim (its ACK is then ordered in this view) and leaves at once (PROCDOWN,
  // or a clean LEAVE on odd seeds). The ACK is delivered before the confchg; whether h3 collects the other
  // ACKs before or after it (seeded), h3 says yes and both survivors hold the grant. A confchg never refuses a
  // pending hook.
  guarded(c);
  const auto r3 = hook(c[3], Action::hook_prepare);
  while (rec(c[2]).owner != 3 && c.hub.step()) {
  }
  ASSERT_EQ(rec(c[2]).owner, 3u) << "h2 granted the claim and sent its ACK";
  if (GetParam() % 2) {
    c.hub.stop(2);
  } else {
    c.hub.kill(2);
  }
  c.settle();
  ASSERT_TRUE(answer(c[3], r3)) << "not left to the deadline";
  EXPECT_TRUE(yes(c[3], r3)) << answer(c[3], r3)->message;
  for (NodeId n : {1u, 3u}) {
    EXPECT_EQ(c[n].engine->members(), (std::set<NodeId>{1, 3})) << "h" << n;
    EXPECT_EQ(rec(c[n]).owner, 3u) << "h" << n;
    EXPECT_EQ(rec(c[n]).epoch, 1u) << "h" << n;
  }
  start_here(c[3]);
  c.settle();
  EXPECT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::failure) << "h1 may not start it too";
  c.restart_vguardd(2);
  c.settle();
  EXPECT_EQ(rec(c[2]).owner, 3u) << "the restarted h2 learned the grant";
  EXPECT_EQ(c[2].call(Action::hook_prepare, kV.str()).status, Status::failure);
  EXPECT_EQ(active_on(c), std::vector<NodeId>{3});
  expect_converged(c);
}

TEST_P(ViewSeeds, AckLostWithNodedownWaitsForTheSurvivorsSync) {
  // Scenario 5: h2's ACK of h3's claim is delivered to h2 only, then h2 is cut off ({1,3}|{2}, NODEDOWN).
  // No yes in the old view (h2's ACK is missing there); both survivors delivered the claim before the
  // confchg, so the merged state of the decisive {1,3} holds it, and the yes follows the post-merge ACK
  // round (RECONFIRM). (This engine carries the tables of a previously synced group in one SYNC, the
  // lowest id's, not in every member's: "both SYNCs contain it" maps to "both survivors hold it".) At h2's
  // heal the claim survives the merge.
  guarded(c);
  const auto r3 = hook(c[3], Action::hook_prepare);
  c.hub.send_self_only_next(2);  // h2's next message is its ACK
  const auto at = settle_watching(c, c[3], r3);
  ASSERT_TRUE(at) << "answered before the deadline";
  EXPECT_TRUE(yes(c[3], r3)) << answer(c[3], r3)->message;
  EXPECT_EQ(at->members, (std::set<NodeId>{1, 3})) << "no yes in the view that lost h2's ACK";
  EXPECT_TRUE(at->synced) << "the yes waits for the new view's SYNC and its ACK round";
  for (NodeId n : {1u, 3u}) {
    EXPECT_TRUE(c[n].engine->decisive()) << "h" << n;
    EXPECT_EQ(rec(c[n]).owner, 3u) << "h" << n;
  }
  EXPECT_FALSE(c[2].engine->decisive()) << "h2 alone";
  EXPECT_EQ(rec(c[2]).owner, 3u) << "h2 delivered the claim before its ACK";
  start_here(c[3]);
  c.settle();
  c.hub.heal();
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) {
    EXPECT_EQ(rec(c[n]).owner, 3u) << "the claim survives h2's heal, h" << n;
    EXPECT_EQ(rec(c[n]).epoch, 1u) << "h" << n;
  }
  EXPECT_EQ(c[2].call(Action::hook_prepare, kV.str()).status, Status::failure);
  EXPECT_EQ(active_on(c), std::vector<NodeId>{3});
  expect_converged(c);
}

TEST_P(ViewSeeds, AckLostWhenOnlyTheRequesterCarriesTheClaim) {
  // Scenario 5, variant: only the requester's SYNC contains the claim. {1}|{2,3}: the decisive {2,3}
  // grants h3's claim; h2's ACK is self-only, so h3 is left alone (not decisive, no yes). h3 then meets h1,
  // which never heard of the claim: the merge of {1,3} takes it from h3's SYNC alone (the later decisive
  // generation), and the yes waits for h1's ACK in the post-merge round.
  guarded(c);
  c.hub.partition({{1}, {2, 3}});
  c.settle();
  ASSERT_TRUE(c[3].engine->decisive());
  const auto r3 = hook(c[3], Action::hook_prepare);
  c.hub.send_self_only_next(2);
  c.settle();
  EXPECT_FALSE(answer(c[3], r3)) << "h3 alone is not decisive: neither yes nor refused, still pending";
  EXPECT_FALSE(c[3].engine->decisive());
  EXPECT_EQ(rec(c[3]).owner, 3u);
  EXPECT_EQ(rec(c[1]).owner, 0u) << "h1 never delivered the claim";
  c.hub.partition({{1, 3}, {2}});
  const auto at = settle_watching(c, c[3], r3);
  ASSERT_TRUE(at);
  EXPECT_TRUE(yes(c[3], r3)) << answer(c[3], r3)->message;
  EXPECT_EQ(at->members, (std::set<NodeId>{1, 3}));
  EXPECT_TRUE(at->synced) << "yes only after the merge and its ACK round";
  EXPECT_EQ(rec(c[1]).owner, 3u) << "h1 learned the grant from h3's SYNC";
  start_here(c[3]);
  c.settle();
  c.hub.heal();
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) EXPECT_EQ(rec(c[n]).owner, 3u) << "h" << n;
  EXPECT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::failure);
  EXPECT_EQ(active_on(c), std::vector<NodeId>{3});
  expect_converged(c);
}

TEST_P(ViewSeeds, LateClaimIntoANonDecisiveViewIsRefusedAtDelivery) {
  // Scenario 7: h3's claim is held past the next confchg, which leaves h3 alone ({1,2}|{3}). It is
  // delivered there after the SYNC and refused at delivery (not decisive), at once rather than at the
  // deadline; h1 and h2 never see it, and nothing of it survives the heal.
  guarded(c);
  c.hub.delay_next_past_view(3);
  const auto r3 = hook(c[3], Action::hook_prepare);
  c.hub.partition({{1, 2}, {3}});
  c.settle();
  ASSERT_TRUE(answer(c[3], r3)) << "refused deterministically at delivery";
  EXPECT_EQ(answer(c[3], r3)->status, Status::failure);
  EXPECT_NE(answer(c[3], r3)->message.find("decisive"), std::string::npos) << answer(c[3], r3)->message;
  for (NodeId n : {1u, 2u, 3u}) {
    EXPECT_EQ(rec(c[n]).owner, 0u) << "h" << n;
    EXPECT_EQ(rec(c[n]).epoch, 0u) << "no grant anywhere, h" << n;
  }
  c.hub.heal();
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) EXPECT_EQ(rec(c[n]).owner, 0u) << "no dangling claim after the heal, h" << n;
  EXPECT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::success);
  start_here(c[1]);
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) {
    EXPECT_EQ(rec(c[n]).owner, 1u) << "h" << n;
    EXPECT_EQ(rec(c[n]).epoch, 1u) << "the first grant ever, h" << n;
  }
  EXPECT_EQ(active_on(c), std::vector<NodeId>{1});
  expect_converged(c);
}

TEST_P(ViewSeeds, LateAbortOfATimedOutClaimLeavesTheRetryIntact) {
  // Scenario 9: h1's claim id1 is granted (epoch 1) but h2 is slow and never acknowledges it before D_v:
  // the hook is told no and h1 gives the grant back (RELEASE epoch 1, request id1: the design's ABORT). The
  // hook retries at once (id2, sent before the abort is delivered anywhere; on odd seeds both are held past a
  // membership change). id2 is granted (epoch 2). Per-sender FIFO orders ABORT(id1) before id2 in this
  // engine, so the late abort is a second copy of it, as after_sync re-sends a give-up while a replica
  // holds the grant: delivered after id2's grant, it is a no-op everywhere.
  guarded(c);
  const auto id1 = hook(c[1], Action::hook_prepare);
  while (c.hub.step(1) || c.hub.step(3)) {
  }
  ASSERT_EQ(rec(c[1]).owner, 1u);
  ASSERT_FALSE(answer(c[1], id1)) << "h2 has not acknowledged";
  const bool across_view = GetParam() % 2;
  if (across_view) c.hub.delay_next_past_view(1);
  c.now += 20000;
  c[1].feed(Tick{});
  ASSERT_TRUE(answer(c[1], id1));
  EXPECT_EQ(answer(c[1], id1)->status, Status::failure);
  const auto id2 = hook(c[1], Action::hook_prepare);
  if (across_view) {
    c.hub.kill(2);
    c.settle();
    c.restart_vguardd(2);
  }
  c.settle();
  ASSERT_TRUE(yes(c[1], id2)) << answer(c[1], id2).value_or(proto::Response{}).message;
  for (NodeId n : {1u, 2u, 3u}) {
    EXPECT_EQ(rec(c[n]).owner, 1u) << "h" << n;
    EXPECT_EQ(rec(c[n]).epoch, 2u) << "id1 granted 1, id2 granted 2, h" << n;
  }
  c[1].run({SendMsg{proto::MsgRelease{1, kV, 1, id1, "hook answered no"}}});  // the late ABORT(id1)
  c.settle();
  start_here(c[1]);
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) {
    EXPECT_EQ(rec(c[n]).owner, 1u) << "ABORT(id1) must not free id2's grant, h" << n;
    EXPECT_EQ(rec(c[n]).epoch, 2u) << "h" << n;
  }
  EXPECT_EQ(c[2].call(Action::hook_prepare, kV.str()).status, Status::failure);
  EXPECT_EQ(active_on(c), std::vector<NodeId>{1});
  expect_converged(c);
}

TEST_P(ViewSeeds, StaleMajorityOfFiveIsNotDecisive) {
  // Scenario 11: five configured hosts. {1,2}|{3,4,5}; v granted to and started on h5; h3 and h4 reboot
  // (corosync and vguardd) and come back with {1,2} while h5 is cut off. {1,2,3',4'} is a quorate
  // majority whose tables ({1,2}'s) never saw the grant, but only h1 and h2 are stateful (2 of 5): not
  // decisive, claims refused. It becomes decisive when h5 rejoins (even seeds: the claim is then refused, h5
  // owns v) or when h5 is confirmed fenced (odd seeds: then h1's claim is granted).
  five_hosts(c);
  ASSERT_TRUE(c[1].engine->decisive()) << "cold start with all five present";
  c.hub.partition({{1, 2}, {3, 4, 5}});
  c.settle();
  ASSERT_TRUE(c[5].engine->decisive());
  ASSERT_EQ(c[5].call(Action::hook_prepare, kV.str()).status, Status::success);
  start_here(c[5]);
  c.settle();
  c.hub.crash(3);
  c.hub.crash(4);
  c.settle();
  c.hub.partition({{1, 2, 3, 4}, {5}});
  restart_five(c, 3);
  restart_five(c, 4);
  c.settle();
  for (NodeId n : {1u, 2u, 3u, 4u}) {
    ASSERT_TRUE(c[n].engine->synced()) << "h" << n;
    EXPECT_EQ(c[n].engine->members(), (std::set<NodeId>{1, 2, 3, 4})) << "h" << n;
    EXPECT_TRUE(c[n].engine->quorate()) << "a quorate majority, h" << n;
    EXPECT_FALSE(c[n].engine->decisive()) << "h" << n;
    EXPECT_EQ(rec(c[n]).owner, 0u) << "stale: the grant to h5 is unknown here, h" << n;
  }
  for (NodeId n : {1u, 3u}) {
    auto r = c[n].call(Action::hook_prepare, kV.str());
    EXPECT_EQ(r.status, Status::failure) << "h" << n;
    EXPECT_NE(r.message.find("decisive"), std::string::npos) << r.message;
  }
  EXPECT_EQ(active_on(c), std::vector<NodeId>{5});
  if (GetParam() % 2 == 0) {
    c.hub.heal();
    c.settle();
    for (NodeId n : kFive) {
      EXPECT_TRUE(c[n].engine->decisive()) << "h" << n;
      EXPECT_EQ(rec(c[n]).owner, 5u) << "h" << n;
    }
    auto r = c[1].call(Action::hook_prepare, kV.str());
    EXPECT_EQ(r.status, Status::failure);
    EXPECT_EQ(r.message.find("decisive"), std::string::npos) << "refused on ownership now: " << r.message;
    EXPECT_EQ(active_on(c), std::vector<NodeId>{5});
  } else {
    c[5].model[kV].state = PowerState::shutoff;  // the power fence
    c.hub.crash(5);
    c.settle();
    EXPECT_FALSE(c[1].engine->decisive());
    ASSERT_EQ(c[1].call(Action::confirm_fenced, "h5").status, Status::success);
    for (NodeId n : {1u, 2u, 3u, 4u}) EXPECT_TRUE(c[n].engine->decisive()) << "complete by the confirmation, h" << n;
    ASSERT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::success);
    start_here(c[1]);
    c.hub.heal();
    restart_five(c, 5);
    c.settle();
    for (NodeId n : kFive) EXPECT_EQ(rec(c[n]).owner, 1u) << "h" << n;
    EXPECT_EQ(c[5].call(Action::hook_prepare, kV.str()).status, Status::failure);
    EXPECT_EQ(active_on(c), std::vector<NodeId>{1});
  }
  expect_converged(c);
}

TEST_P(ViewSeeds, RollingRestartKeepsGrantingAndRestoresStatefulness) {
  // Scenario 12: each vguardd restarts in turn (twice round, killed or cleanly stopped), with a start
  // granted to a surviving host while it is down and one granted to the restarted host afterwards. The two
  // stateful survivors stay decisive; every restarted host becomes stateful after its first (decisive)
  // SYNC, so the next restart still leaves a stateful majority; claims keep succeeding; I1 throughout.
  guarded(c);
  std::mt19937_64 rng(static_cast<std::uint64_t>(GetParam()));
  NodeId owner = 0;
  auto move_to = [&](NodeId to) {
    if (owner != 0) {
      stop_here(c[owner]);
      c.settle();
    }
    auto r = c[to].call(Action::hook_prepare, kV.str());
    ASSERT_EQ(r.status, Status::success) << "h" << to << ": " << r.message;
    start_here(c[to]);
    c.settle();
    owner = to;
  };
  for (int round = 0; round < 2; ++round) {
    for (NodeId h : {1u, 2u, 3u}) {
      if (rng() % 2) {
        c.hub.kill(h);
      } else {
        c.hub.stop(h);
      }
      c.settle();
      std::vector<NodeId> up;
      for (NodeId n : {1u, 2u, 3u})
        if (n != h) up.push_back(n);
      for (NodeId n : up) EXPECT_TRUE(c[n].engine->decisive()) << "h" << n << " while h" << h << " is down";
      move_to(up[rng() % up.size()]);
      c.restart_vguardd(h);
      c.settle();
      EXPECT_TRUE(c[h].engine->stateful()) << "restarted h" << h << " after a decisive SYNC";
      EXPECT_EQ(rec(c[h]).owner, owner) << "h" << h << " learned the owner";
      move_to(h);
      for (NodeId n : {1u, 2u, 3u}) EXPECT_EQ(rec(c[n]).owner, h) << "h" << n;
      EXPECT_EQ(active_on(c), std::vector<NodeId>{h});
    }
  }
  for (NodeId n : {1u, 2u, 3u}) EXPECT_EQ(rec(c[n]).epoch, 12u) << "one grant per start, h" << n;
  expect_converged(c);
}

TEST_P(ViewSeeds, FencedHostsRebootingIntoAMajorityAreNotDecisive) {
  // Scenario 15: h2 and h3 are power-fenced; {h1} is decisive by the two confirmations (complete) and grants
  // v to h1. h2 and h3 reboot cut off from h1: {2',3'} is a quorate majority but neither is stateful (a
  // restarted vguardd never is; this engine keeps no persisted tables, so their SYNCs carry has_state=false
  // and FACTS only): not decisive, so h1's running v is safe. libquorum's flag is made always true here so
  // that only the decisive rule stands between {2',3'} and a second start (on the real cluster the lone
  // h1 would need e.g. last_man_standing to be quorate).
  c.hub.set_quorum_rule([](std::size_t, std::size_t) { return true; });
  guarded(c);
  c.hub.crash(2);
  c.hub.crash(3);
  c.settle();
  EXPECT_FALSE(c[1].engine->decisive()) << "one stateful host of three, and not complete";
  ASSERT_EQ(c[1].call(Action::confirm_fenced, "h2").status, Status::success);
  ASSERT_EQ(c[1].call(Action::confirm_fenced, "h3").status, Status::success);
  ASSERT_TRUE(c[1].engine->decisive()) << "complete: every other configured host confirmed fenced";
  ASSERT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::success);
  start_here(c[1]);
  c.settle();
  c.hub.partition({{1}, {2, 3}});
  c.restart_vguardd(2);
  c.restart_vguardd(3);
  c.settle();
  for (NodeId n : {2u, 3u}) {
    ASSERT_TRUE(c[n].engine->synced()) << "h" << n;
    EXPECT_FALSE(c[n].engine->stateful()) << "h" << n;
    EXPECT_FALSE(c[n].engine->decisive()) << "h" << n;
    auto r = c[n].call(Action::hook_prepare, kV.str());
    EXPECT_EQ(r.status, Status::failure) << "h" << n;
    EXPECT_NE(r.message.find("decisive"), std::string::npos) << r.message;
  }
  EXPECT_EQ(active_on(c), std::vector<NodeId>{1});
  c.hub.heal();
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) {
    EXPECT_TRUE(c[n].engine->decisive()) << "h" << n;
    EXPECT_TRUE(c[n].engine->stateful()) << "after a decisive SYNC, h" << n;
    EXPECT_EQ(rec(c[n]).owner, 1u) << "h" << n;
  }
  EXPECT_EQ(c[3].call(Action::hook_prepare, kV.str()).status, Status::failure);
  EXPECT_EQ(active_on(c), std::vector<NodeId>{1});
  expect_converged(c);
}

// Scenario 23's driver: hooks whose yes starts the domain in ground truth (the harness checks I4/I5 at answers).
struct Flapping {
  Cluster& c;
  std::mt19937_64 rng;
  struct Pending {
    NodeId node;
    std::uint64_t rid;
  };
  std::vector<Pending> pending;
  int yes_count = 0;

  void watch() {
    for (auto it = pending.begin(); it != pending.end();) {
      Node& n = c[it->node];
      auto a = answer(n, it->rid);
      if (!a) {
        ++it;
        continue;
      }
      if (a->status == Status::success) {
        ++yes_count;
        start_here(n);  // libvirt starts it on the yes
      }
      it = pending.erase(it);
    }
  }
  void steps(std::size_t k) {
    for (std::size_t i = 0; i < k && c.hub.step(); ++i) watch();
  }
  void ask(NodeId n) { pending.push_back({n, hook(c[n], Action::hook_prepare)}); }
};

TEST_P(ViewSeeds, FlappingMemberThenAClaimSucceeds) {
  // Scenario 23: h3 leaves and rejoins 50 times (vguardd killed or stopped and restarted, corosync crashed
  // and restarted under the same vguardd, or partitioned and healed), with only a random number of
  // deliveries in between, so SYNC rounds are interrupted. TRY_AGAIN bursts: the bus adapter retries them,
  // so at engine level they are sends ordered later; a burst holds a random member's outgoing messages until
  // the next confchg (delay_next_past_view), and any message is late with probability 5 %. Meanwhile hooks,
  // stops and status requests run on all hosts and time advances. Checked: I1 (harness, every event), I2
  // (harness, every answer), I5 (no yes after D_v), I3 at the end; once h3 stops flapping and the cluster
  // settles, a claim by h3 succeeds within a bounded number of attempts.
  for (NodeId n : {1u, 2u, 3u}) c.add(n, doms({{kV, "v", PowerState::shutoff}, {kW, "w", PowerState::shutoff}}));
  c.settle();
  Flapping f{c, std::mt19937_64(static_cast<std::uint64_t>(GetParam()) * 7919u), {}, 0};
  c.hub.late_probability(0.05);
  bool h3_process = true;  // h3's vguardd exists (not killed/stopped)
  auto chance = [&](unsigned pct) { return f.rng() % 100 < pct; };
  bool bursts = true;
  auto activity = [&] {
    for (NodeId n : {1u, 2u, 3u}) {
      if (n == 3 && !h3_process) continue;
      if (chance(15)) f.ask(n);
      if (chance(10) && c[n].model[kV].state != PowerState::shutoff) stop_here(c[n]);
      if (chance(10)) c[n].ask(Action::status, kV.str());  // I2 checked by the harness at the answer
    }
    if (bursts && chance(20)) c.hub.delay_next_past_view(static_cast<NodeId>(1 + f.rng() % 3));
    if (chance(20)) {
      c.now += static_cast<TimeMs>(f.rng() % 4000);
      tick(c);
      f.watch();
    }
    f.steps(f.rng() % 40);
  };
  for (int cycle = 0; cycle < 50; ++cycle) {
    if (cycle == 49) {
      // The fake bus holds a late message until its component's next confchg (corosync's retries would
      // deliver it in the same view): the last cycle's two confchgs flush what earlier bursts held.
      bursts = false;
      c.hub.late_probability(0.0);
    }
    const int how = static_cast<int>(f.rng() % 4);
    switch (how) {
      case 0: c.hub.kill(3); h3_process = false; break;
      case 1: c.hub.stop(3); h3_process = false; break;
      case 2: c.hub.crash(3); break;
      default: c.hub.partition({{1, 2}, {3}}); break;
    }
    activity();
    switch (how) {
      case 0:
      case 1: c.restart_vguardd(3); h3_process = true; break;
      case 2: c.hub.restart(3); break;
      default: c.hub.heal(); break;
    }
    activity();
  }
  // The flapping stops: let everything settle, deadlines included.
  f.steps(1000000);
  c.now += 20000;
  tick(c);
  f.watch();
  f.steps(1000000);
  EXPECT_EQ(c.hub.held_count(), 0u);
  for (NodeId n : {1u, 2u, 3u}) {
    ASSERT_TRUE(c[n].engine->synced()) << "h" << n;
    EXPECT_TRUE(c[n].engine->decisive()) << "h" << n;
  }
  expect_converged(c);
  int attempts = 0;
  bool granted = false;
  while (!granted && attempts < 3) {
    ++attempts;
    granted = c[3].call(Action::hook_prepare, kW.str()).status == Status::success;
  }
  EXPECT_TRUE(granted) << "no claim granted in " << attempts << " attempts after the flapping stopped";
  EXPECT_EQ(attempts, 1) << "a settled cluster grants at the first attempt";
  start_here(c[3], kW);
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) EXPECT_EQ(rec(c[n], kW).owner, 3u) << "h" << n;
  EXPECT_LE(active_on(c).size(), 1u);
  expect_converged(c);
  RecordProperty("yes_during_flapping", f.yes_count);
}

// Regressions found by scenario 23, each reduced to the fault that exposed it.
TEST_P(ViewSeeds, OutsideASyncedViewACopyShutOffHereIsNotOff) {
  // I2: a host without a synced replica (out of every view, or a joiner before its SYNC) answered "off" for
  // a domain shut off in its own libvirt while it ran on another host (defined on every host, as on shared
  // storage). Only a domain active here may be answered from the local libvirt then.
  guarded(c);
  ASSERT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::success);
  start_here(c[1]);
  c.settle();
  c.hub.crash(3);  // h3's corosync dies: h3 is in no view
  c.hub.kill(2);   // h2's vguardd restarts: a joiner until its SYNC completes
  c.settle();
  c.restart_vguardd(2);
  for (NodeId n : {2u, 3u}) {
    ASSERT_FALSE(c[n].engine->synced()) << "h" << n;
    for (Action a : {Action::status, Action::off}) {
      const auto rid = c[n].ask(a, kV.str());
      ASSERT_TRUE(answer(c[n], rid)) << "h" << n;
      EXPECT_EQ(answer(c[n], rid)->status, Status::failure) << "h" << n << ": " << answer(c[n], rid)->message;
    }
  }
  EXPECT_EQ(c[1].model[kV].state, PowerState::running);
  c.settle();
  expect_converged(c);
}

TEST_P(ViewSeeds, AHookParkedDuringAStateTransferKeepsItsDeadline) {
  // I5: a hook that arrives during a SYNC waits for it, but its D_v counts from its arrival. It used to be
  // counted again from the end of the state transfer, so a yes could follow the hook's own deadline.
  guarded(c);
  c.hub.kill(3);
  while (c[1].engine->synced() && c.hub.step(1)) {
  }
  ASSERT_FALSE(c[1].engine->synced());
  const auto r1 = hook(c[1], Action::hook_prepare);
  ASSERT_FALSE(answer(c[1], r1)) << "parked";
  c.now += kClaimDv - 500;  // the state transfer is slow, but completes before D_v
  while (!c[1].engine->synced() && (c.hub.step(1) || c.hub.step(2))) {
  }
  ASSERT_TRUE(c[1].engine->synced());
  ASSERT_FALSE(answer(c[1], r1)) << "claimed once the SYNC completed";
  c.now += 1000;  // past D_v before h2 acknowledges
  tick(c);
  ASSERT_TRUE(answer(c[1], r1)) << "answered no at its D_v";
  EXPECT_EQ(answer(c[1], r1)->status, Status::failure);
  c.settle();
  EXPECT_EQ(answer(c[1], r1)->status, Status::failure) << "never yes after D_v";
  for (NodeId n : {1u, 2u}) EXPECT_EQ(rec(c[n]).owner, 0u) << "the grant was given back, h" << n;
  expect_converged(c);
}

INSTANTIATE_TEST_SUITE_P(ManySeeds, ViewSeeds, ::testing::Range(1, 41));

}  // namespace
}  // namespace vguard::fenced
