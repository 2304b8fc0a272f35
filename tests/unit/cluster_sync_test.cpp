// Safety scenarios (safety-scenarios.md) over the cluster harness: sync (state transfer, SYNC rounds, merge),
// scenarios 16-22. Every scenario runs over 40 seeds of random delivery interleavings.
#include "cluster_harness.h"

namespace vguard::fenced {
namespace {

using namespace harness;  // also brings proto::Action, PowerState, Status

const Uuid kW = *Uuid::parse("7e000000-0000-4000-8000-0000000000bb");

class SyncSeeds : public SeedFixture {};

// One message as node n delivered it (decoded from the hub's delivery log).
struct Delivered {
  NodeId from = 0;
  proto::ClusterMsg msg;
};

// What n delivered after its latest confchg, in order: the premise checks of the scenarios below look at it.
std::vector<Delivered> since_last_view(Cluster& k, NodeId n) {
  std::vector<Delivered> out;
  for (const auto& line : k.hub.delivered(n)) {
    if (line.rfind("view ", 0) == 0) {
      out.clear();
      continue;
    }
    if (line.rfind("msg ", 0) != 0) continue;
    const auto colon = line.find(':', 4);
    auto m = proto::decode_cluster(line.substr(colon + 1), kClusterKeyId, kClusterKey);
    if (m) out.push_back({static_cast<NodeId>(std::stoul(line.substr(4, colon - 4))), std::move(*m)});
  }
  return out;
}

std::vector<proto::MsgSync> syncs_from(const std::vector<Delivered>& log, NodeId from) {
  std::vector<proto::MsgSync> out;
  for (const auto& d : log)
    if (const auto* s = std::get_if<proto::MsgSync>(&d.msg); s && d.from == from) out.push_back(*s);
  return out;
}

std::set<NodeId> ids(std::initializer_list<NodeId> l) { return std::set<NodeId>(l); }

// The merge of the latest SYNC round on each member of `view` used every member's SYNC for this view, never an
// older one of the same sender delivered in it: the replica holds at least the FACTS of m's last SYNC.
void expect_current_syncs_counted(Cluster& k, const std::set<NodeId>& view) {
  for (NodeId n : view) {
    ASSERT_TRUE(k[n].engine->synced()) << "h" << n;
    ASSERT_EQ(k[n].engine->members(), view) << "h" << n;
    const auto log = since_last_view(k, n);
    for (NodeId m : view) {
      const proto::MsgSync* last = nullptr;
      const auto all = syncs_from(log, m);
      for (const auto& s : all)
        if (std::set<NodeId>(s.view.begin(), s.view.end()) == view) last = &s;
      ASSERT_NE(last, nullptr) << "h" << n << " delivered no SYNC of h" << m << " for this view";
      const auto& f = k[n].engine->hosts().at(m).facts;
      ASSERT_TRUE(f.has_value());
      EXPECT_GE(f->seq, last->facts.seq) << "h" << n << " merged an older SYNC of h" << m;
    }
  }
}

bool has_alarm(const Node& n, const std::string& kind) {
  return std::any_of(n.alarms.begin(), n.alarms.end(),
                     [&](const std::string& a) { return a.find("\"" + kind + "\"") != std::string::npos; });
}

bool reports_active(const ClusterEngine& e, NodeId h, const Uuid& u) {
  const auto& f = e.hosts().at(h).facts;
  if (!f) return false;
  for (const auto& x : f->entries)
    if (x.uuid == u) return x.state != PowerState::shutoff;
  return false;
}

TEST_P(SyncSeeds, LostOwnerKeepsItsRecordAgainstAPausedCopyAtTheMerge) {
  // Scenario 16: v is owned by h3. h2 comes back (heal of {1,3}|{2}, a merge); h3's SYNC for the merged view
  // reaches h3 only (self-only), then h3 is lost. At the merge h1's FACTS show an unguarded paused copy of v.
  // Checked on every replica of {h1,h2}: the owner stays h3 (lost, same epoch), the alarm is raised (this
  // engine's kind for "active while the owner is lost" is active-while-owner-lost), off fails with the
  // reason, and a claim by h2 (and by h1) is refused although the view is decisive; no new copy starts.
  guarded(c);
  c.check_i1 = false;  // h1's paused copy exists outside the guard on purpose (I1 is checked below by hand)
  ASSERT_EQ(c[3].call(Action::hook_prepare, kV.str()).status, Status::success);
  start_here(c[3]);
  c.settle();
  const std::uint64_t e = rec(c[1]).epoch;
  c.hub.partition({{1, 3}, {2}});
  c.settle();
  for (auto& [id, n] : c.nodes) n->alarms.clear();
  c.hub.send_self_only_next(3);  // h3's next message is its SYNC for the merged view
  c.hub.heal();
  c[1].set_state(kV, PowerState::paused);  // before h1 builds its SYNC: the paused copy is in it
  c.settle();
  for (NodeId n : {1u, 2u}) {
    ASSERT_EQ(c[n].engine->members(), ids({1, 2})) << "h" << n;
    ASSERT_TRUE(c[n].engine->synced()) << "h" << n;
    EXPECT_TRUE(c[n].engine->decisive()) << "h" << n;
    EXPECT_EQ(rec(c[n]).owner, 3u) << "h" << n;
    EXPECT_EQ(rec(c[n]).epoch, e) << "h" << n;
    EXPECT_TRUE(c[n].engine->lost(3)) << "h" << n;
    EXPECT_TRUE(reports_active(*c[n].engine, 1, kV)) << "h1's paused copy is in the merged FACTS, h" << n;
    EXPECT_TRUE(has_alarm(c[n], "active-while-owner-lost")) << "h" << n;
  }
  auto off = c[2].call(Action::off, kV.str());
  EXPECT_EQ(off.status, Status::failure) << off.message;
  EXPECT_NE(off.message.find("lost"), std::string::npos) << off.message;
  for (NodeId n : {2u, 1u}) {
    auto r = c[n].call(Action::hook_prepare, kV.str());
    EXPECT_EQ(r.status, Status::failure) << "h" << n << ": " << r.message;
    EXPECT_NE(r.message.find("lost"), std::string::npos) << r.message;
  }
  EXPECT_EQ(c[1].model[kV].state, PowerState::paused) << "nothing was killed";
  EXPECT_EQ(active_on(c), (std::vector<NodeId>{1, 3})) << "no copy started by the guard";
  for (NodeId n : {1u, 2u}) EXPECT_EQ(rec(c[n]).owner, 3u) << "h" << n;
  expect_converged(c);
}

TEST_P(SyncSeeds, CrashedHostsLastFactsSurviveAnInterruptedSync) {
  // Scenario 17: v has no owner. h2 comes back (heal); h3 starts v outside the guard (FACTS only, no record)
  // and its corosync dies before it sent its SYNC for the merged view, so the merged round never completes and
  // the next view {h1,h2} merges without h3. Variant (even seeds): h3 crashes just after its SYNC (which
  // carries the same FACTS). Checked on both replicas: h3's last FACTS (v running) survive the merge, v is
  // still unowned, and claim(v,h1) (and h2) is refused because h3 is lost and may run it; I1 in ground truth.
  guarded(c);
  const bool after_sync = GetParam() % 2 == 0;
  c.hub.partition({{1, 3}, {2}});
  c.settle();
  c.hub.heal();                             // the confchg of {1,2,3} is ordered, delivered by nobody yet
  c[3].set_state(kV, PowerState::running);  // unguarded start: its FACTS are ordered after that confchg
  if (after_sync) {
    ASSERT_TRUE(c.hub.step(3));  // h3 delivers the confchg and sends its SYNC
  }
  c.hub.crash(3);
  c.settle();
  for (NodeId n : {1u, 2u}) {
    ASSERT_EQ(c[n].engine->members(), ids({1, 2})) << "h" << n;
    ASSERT_TRUE(c[n].engine->synced()) << "h" << n;
    EXPECT_TRUE(c[n].engine->decisive()) << "h" << n;
    EXPECT_TRUE(c[n].engine->lost(3)) << "h" << n;
    EXPECT_EQ(rec(c[n]).owner, 0u) << "a lost host's FACTS never adopt, h" << n;
    EXPECT_TRUE(reports_active(*c[n].engine, 3, kV)) << "h3's last FACTS were lost by the merge on h" << n;
  }
  for (NodeId n : {1u, 2u}) {
    auto r = c[n].call(Action::hook_prepare, kV.str());
    EXPECT_EQ(r.status, Status::failure) << "h" << n << ": " << r.message;
    if (r.status == Status::success) {
      start_here(c[n]);  // what libvirt does after a yes: I1 then counts it
    }
    EXPECT_NE(r.message.find("lost"), std::string::npos) << r.message;
  }
  EXPECT_EQ(active_on(c), std::vector<NodeId>{3});
  expect_converged(c);
}

// Scenario 18's run: v granted to h1; h3's corosync dies (V1 = {1,2}); v stops on h1 during V1; h3 comes
// back (V2 = {1,2,3}). With `late`, h2's SYNC for V1 is held past V2's confchg. Returns every node's digest.
std::map<NodeId, std::string> late_sync_run(Cluster& k, bool late) {
  std::map<NodeId, std::string> out;
  guarded(k);
  const auto r1 = k[1].call(Action::hook_prepare, kV.str());
  EXPECT_EQ(r1.status, Status::success) << r1.message;
  start_here(k[1]);
  k.settle();
  if (late) k.hub.delay_next_past_view(2);
  k.hub.crash(3);
  k.settle();
  if (late) {
    EXPECT_FALSE(k[1].engine->synced()) << "V1 cannot complete without h2's SYNC";
    EXPECT_EQ(k.hub.held_count(), 1u) << "h2's SYNC for V1 is held";
  }
  stop_here(k[1]);
  k.settle();
  k.hub.restart(3);
  k.settle();
  if (late) {
    // Premise: every member delivered h2's SYNC for V1 in V2, before h2's SYNC for V2.
    for (NodeId n : {1u, 2u, 3u}) {
      const auto s = syncs_from(since_last_view(k, n), 2);
      EXPECT_EQ(s.size(), 2u) << "h" << n;
      if (s.size() == 2) {
        EXPECT_EQ(s[0].view, (std::vector<NodeId>{1, 2})) << "h" << n;
      }
    }
  }
  expect_current_syncs_counted(k, ids({1, 2, 3}));
  for (auto& [id, n] : k.nodes) out[id] = n->engine->digest();
  return out;
}

TEST_P(SyncSeeds, LateSyncCountsOnceAndChangesNothing) {
  // Scenario 18: h2's SYNC for V1 is delivered late, into V2. In this engine a SYNC counts only in the view it
  // was built for (its member list), so in V2 each member's SYNC for V2 counts exactly once (the merge holds
  // the FACTS of h2's V2 SYNC, not of the late one), the replicas are equal, and the outcome (digest of every
  // replica: owners, epochs, decisive generations, losses, FACTS) equals the same run without the delay.
  const auto late = late_sync_run(c, true);
  expect_converged(c);
  Cluster ref{static_cast<std::uint64_t>(GetParam()) + 1000};
  ref.hub.reorder_delivery_interleaving(true);
  const auto plain = late_sync_run(ref, false);
  expect_converged(ref);
  EXPECT_EQ(late, plain) << "the late SYNC changed the outcome";
  for (NodeId n : {1u, 2u, 3u}) EXPECT_EQ(rec(c[n]).owner, 0u) << "released after the merge, h" << n;
  EXPECT_EQ(c[3].call(Action::hook_prepare, kV.str()).status, Status::success);
}

// Five hosts, all configured, each with v and w defined and shut off.
void five(Cluster& k) {
  for (NodeId n = 1; n <= 5; ++n) {
    k.add(n, doms({{kV, "v", PowerState::shutoff}, {kW, "w", PowerState::shutoff}}));
    // Nothing is delivered before settle(): the engine that will get the first confchg is this one.
    k[n].engine = std::make_unique<ClusterEngine>(
        ClusterIdentity{n, "h" + std::to_string(n), k[n].incarnation, false, {1, 2, 3, 4, 5}, k[n].guard},
        Policy{});
    k[n].connect_libvirt();
  }
  k.settle();
}

TEST_P(SyncSeeds, ThreeCallbacksOfOneRingChangeGiveOneSyncCompletion) {
  // Scenario 19, with five hosts: {1,2,3,4}|{5}, then one ring change gives h1 and h2 three confchg callbacks:
  // NODEDOWN (4 left), NODEUP (5 joined) - the fake bus splits the change like corosync - and PROCDOWN (3's
  // vguardd dies). The totem callback is not modelled: the Bus port has none, and the engine uses no ring id
  // (safety-design.md §2). Checked: no member completes a SYNC for the intermediate views, each of h1, h2, h5
  // completes exactly one, on the SYNCs built for the last view; a claim sent before the change (h2) and a
  // hook that arrives after the first callback (h1, parked) are granted only after that completion.
  five(c);
  c.hub.partition({{1, 2, 3, 4}, {5}});
  c.settle();
  ASSERT_TRUE(c[1].engine->decisive());
  c.hub.split_view_changes(true);
  c.hub.partition({{1, 2, 3, 5}, {4}});
  c.hub.kill(3);
  const auto rw = hook(c[2], Action::hook_prepare, kW);  // h2 has delivered none of the callbacks yet
  while (c[1].engine->members() != ids({1, 2, 3})) ASSERT_TRUE(c.hub.step(1));
  EXPECT_FALSE(c[1].engine->synced()) << "a left-only callback restarts the state transfer too";
  const auto rv = hook(c[1], Action::hook_prepare, kV);
  EXPECT_FALSE(answer(c[1], rv)) << "parked until the state transfer completes";
  const std::set<NodeId> last = ids({1, 2, 5});
  std::map<NodeId, int> completions;
  std::map<NodeId, bool> was;
  for (NodeId n : last) was[n] = c[n].engine->synced();
  while (c.hub.step()) {
    for (NodeId n : last) {
      const auto& e = *c[n].engine;
      if (e.synced() && !was[n]) {
        ++completions[n];
        EXPECT_EQ(e.members(), last) << "h" << n << " completed a SYNC for an intermediate view";
      }
      was[n] = e.synced();
      for (const Uuid& u : {kV, kW}) {
        const auto it = e.domains().find(u);
        if (it != e.domains().end() && it->second.owner != 0) {
          EXPECT_TRUE(e.synced() && e.members() == last) << "h" << n << " granted before the last SYNC";
        }
      }
    }
    for (auto [n, r] : {std::pair{1u, rv}, std::pair{2u, rw}}) {
      if (answer(c[n], r)) {
        EXPECT_TRUE(c[n].engine->synced() && c[n].engine->members() == last) << "h" << n << " answered early";
      }
    }
  }
  for (NodeId n : last) EXPECT_EQ(completions[n], 1) << "h" << n;
  EXPECT_TRUE(yes(c[1], rv)) << answer(c[1], rv).value_or(proto::Response{}).message;
  EXPECT_TRUE(yes(c[2], rw)) << answer(c[2], rw).value_or(proto::Response{}).message;
  for (NodeId n : last) {
    EXPECT_EQ(c[n].engine->domains().at(kV).owner, 1u) << "h" << n;
    EXPECT_EQ(c[n].engine->domains().at(kW).owner, 2u) << "h" << n;
    EXPECT_EQ(c[n].engine->domains().at(kV).epoch, 1u) << "h" << n;
    EXPECT_EQ(c[n].engine->domains().at(kW).epoch, 1u) << "h" << n;
  }
  expect_current_syncs_counted(c, last);
  expect_converged(c);
}

TEST_P(SyncSeeds, RecurringMemberListCountsOnlyTheCurrentSync) {
  // Scenario 20: the member list {1,2,3} recurs within one burst of changes: h3's vguardd comes back (Va), h2
  // is evicted (Vb: {1,3} | {2}) and rejoins (Vc), all before anybody delivered Va, as when corosync answers
  // TRY_AGAIN through one ring change. Every member sends its SYNC for Va when it delivers Va, by which time
  // the bus orders its messages into Vc: each Va SYNC (same member list as Vc) is delivered in Vc before the
  // sender's Vc SYNC. Checked: the merge in Vc uses each member's Vc SYNC, not the stale one (not counted at
  // all, so not twice); replicas are equal; h2's eviction, seen by h1 and h3 in Vb after the Va SYNCs were
  // built, is not forgotten (its loss counter); a claim then succeeds.
  guarded(c);
  c.hub.kill(3);
  c.settle();
  const std::uint32_t losses2 = c[1].engine->hosts().at(2).losses;
  c.restart_vguardd(3);
  c.hub.partition({{1, 3}, {2}});
  c.hub.heal();
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) {
    // Premise: the stale SYNC of some member with the recurring member list was delivered in Vc.
    const auto log = since_last_view(c, n);
    bool stale = false;
    for (NodeId m : {1u, 2u, 3u}) stale |= syncs_from(log, m).size() > 1 && syncs_from(log, m)[0].view.size() == 3;
    EXPECT_TRUE(stale) << "h" << n;
  }
  expect_current_syncs_counted(c, ids({1, 2, 3}));
  for (NodeId n : {1u, 2u, 3u})
    EXPECT_EQ(c[n].engine->hosts().at(2).losses, losses2 + 1) << "h2's eviction was forgotten on h" << n;
  expect_converged(c);
  const auto r = c[2].call(Action::hook_prepare, kV.str());
  EXPECT_EQ(r.status, Status::success) << r.message;
  for (NodeId n : {1u, 2u, 3u}) EXPECT_EQ(rec(c[n]).owner, 2u) << "h" << n;
  expect_converged(c);
}

TEST_P(SyncSeeds, DeliveriesDuringTheSyncApplyOnceAfterTheMerge) {
  // Scenario 21: v runs on h1 (granted, epoch 1). h3's vguardd comes back (a joiner). Before anybody delivered
  // that confchg, h1 stops v (STOPPED: its release) and h2 claims w, so on every member, the joiner included,
  // both are delivered between the confchg and the last SYNC (checked from the delivery logs). Checked on every
  // replica: both are applied exactly once, after the merge: v released at epoch 1, w owned by h2 at epoch 1,
  // h2's hook answered yes, equal digests; then the joiner refuses w elsewhere and grants v.
  for (NodeId n : {1u, 2u, 3u})
    c.add(n, doms({{kV, "v", PowerState::shutoff}, {kW, "w", PowerState::shutoff}}));
  c.settle();
  ASSERT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::success);
  start_here(c[1]);
  c.settle();
  c.hub.kill(3);
  c.settle();
  c.restart_vguardd(3);
  stop_here(c[1]);
  const auto rw = hook(c[2], Action::hook_prepare, kW);
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) {
    const auto log = since_last_view(c, n);
    std::size_t release = log.size(), claim = log.size(), last_sync = 0;
    for (std::size_t i = 0; i < log.size(); ++i) {
      if (std::holds_alternative<proto::MsgRelease>(log[i].msg) && release == log.size()) release = i;
      if (std::holds_alternative<proto::MsgClaim>(log[i].msg)) claim = i;
      if (std::holds_alternative<proto::MsgSync>(log[i].msg)) last_sync = i;
    }
    EXPECT_LT(release, last_sync) << "premise: STOPPED(v) delivered during the SYNC round on h" << n;
    EXPECT_LT(claim, last_sync) << "premise: claim(w) delivered during the SYNC round on h" << n;
  }
  ASSERT_TRUE(yes(c[2], rw)) << answer(c[2], rw).value_or(proto::Response{}).message;
  for (NodeId n : {1u, 2u, 3u}) {
    ASSERT_TRUE(c[n].engine->synced()) << "h" << n;
    EXPECT_EQ(rec(c[n], kV).owner, 0u) << "h" << n;
    EXPECT_EQ(rec(c[n], kV).epoch, 1u) << "h" << n;
    EXPECT_EQ(rec(c[n], kW).owner, 2u) << "h" << n;
    EXPECT_EQ(rec(c[n], kW).epoch, 1u) << "h" << n;
  }
  expect_converged(c);
  start_here(c[2], kW);
  c.settle();
  EXPECT_EQ(c[3].call(Action::hook_prepare, kW.str()).status, Status::failure) << "w runs on h2";
  EXPECT_EQ(c[3].call(Action::hook_prepare, kV.str()).status, Status::success) << "v was released";
  for (NodeId n : {1u, 2u, 3u}) EXPECT_EQ(rec(c[n], kV).epoch, 2u) << "h" << n;
  EXPECT_EQ(active_on(c, kW), std::vector<NodeId>{2});
  expect_converged(c);
}

// Scenario 22's run: v granted to h1 and running; `split`; h1 stops v on its side; heal.
void release_on_one_side(Cluster& k, const std::vector<std::vector<NodeId>>& split, NodeId other_side) {
  guarded(k);
  ASSERT_EQ(k[1].call(Action::hook_prepare, kV.str()).status, Status::success);
  start_here(k[1]);
  k.settle();
  const std::uint64_t e = rec(k[1]).epoch;
  k.hub.partition(split);
  k.settle();
  stop_here(k[1]);
  k.settle();
  ASSERT_EQ(rec(k[1]).owner, 0u) << "side A released v";
  ASSERT_EQ(rec(k[other_side]).owner, 1u) << "side B kept the owner";
  ASSERT_EQ(rec(k[other_side]).epoch, e);
  k.hub.heal();
  // The merge itself is checked at the step each replica completes it: the owner re-sends its release after
  // every SYNC, which would hide a wrong merge once everything settled.
  std::map<NodeId, bool> was;
  for (NodeId n : {1u, 2u, 3u}) was[n] = k[n].engine->synced();
  while (k.hub.step()) {
    for (NodeId n : {1u, 2u, 3u}) {
      if (k[n].engine->synced() && !was[n]) {
        EXPECT_EQ(rec(k[n]).owner, 0u) << "the merge kept the owner, h" << n;
      }
      was[n] = k[n].engine->synced();
    }
  }
  for (NodeId n : {1u, 2u, 3u}) {
    ASSERT_TRUE(k.hub.last_view(n).has_value());
    EXPECT_FALSE(k.hub.last_view(n)->joined.empty()) << "premise: h" << n << " saw the others join (NODEUP)";
    ASSERT_TRUE(k[n].engine->synced()) << "h" << n;
    EXPECT_EQ(rec(k[n]).owner, 0u) << "merged as released, h" << n;
    EXPECT_EQ(rec(k[n]).epoch, e) << "h" << n;
  }
  expect_converged(k);
  ASSERT_EQ(k[other_side].call(Action::hook_prepare, kV.str()).status, Status::success);
  start_here(k[other_side]);
  k.settle();
  for (NodeId n : {1u, 2u, 3u}) EXPECT_EQ(rec(k[n]).epoch, e + 1) << "h" << n;
  EXPECT_EQ(active_on(k), std::vector<NodeId>{other_side});
  expect_converged(k);
}

TEST_P(SyncSeeds, HealMergesAReleaseOverAnUnchangedOwner) {
  // Scenario 22: a heal where both sides see the other join (NODEUP); side A released v at the same epoch (on
  // its owner's evidence), side B still records the owner. Merged as released on every replica, equal digests,
  // and a new claim from side B is granted at the next epoch. Two variants: A is the decisive majority {1,2}
  // (its change carries the newer decisive generation), and A is the owner alone {1} while B = {2,3} is
  // decisive but changed nothing (equal generation and epoch: "released beats owned").
  release_on_one_side(c, {{1, 2}, {3}}, 3);
  Cluster c2{static_cast<std::uint64_t>(GetParam()) + 1000};
  c2.hub.reorder_delivery_interleaving(true);
  release_on_one_side(c2, {{1}, {2, 3}}, 3);
}

INSTANTIATE_TEST_SUITE_P(ManySeeds, SyncSeeds, ::testing::Range(1, 41));

}  // namespace
}  // namespace vguard::fenced
