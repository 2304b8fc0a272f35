// Cluster engine scenarios over the harness in cluster_harness.h: map convergence, state transfer to a joiner,
// cross-host fencing, lost owners, confirm-fenced, partitions without quorum, heal, epochs, and the start
// guard. Scenarios run over many seeds with random delivery interleavings.
#include "cluster_harness.h"

namespace vguard::fenced {
namespace {

using namespace harness;  // also brings proto::Action, PowerState, Status

class Seeds : public SeedFixture {};

TEST_P(Seeds, MapConvergesWithOwnersAndEpochs) {
  standard(c);
  for (NodeId n : {1u, 2u, 3u}) {
    ASSERT_TRUE(c[n].engine->synced()) << n;
    const auto& d = c[n].engine->domains();
    ASSERT_EQ(d.size(), 3u) << n;
    EXPECT_EQ(d.at(kD1).owner, 1u);
    EXPECT_EQ(d.at(kD2).owner, 2u);
    EXPECT_EQ(d.at(kD3).owner, 0u) << "never active: no owner";
    EXPECT_EQ(d.at(kD1).epoch, 1u);
  }
  expect_converged(c);
  auto l = c[3].call(Action::list_status, "");
  ASSERT_EQ(l.domains.size(), 3u);
  EXPECT_EQ(l.domains[0].host, "h1");
  EXPECT_EQ(l.domains[0].state, PowerState::running);
}

TEST_P(Seeds, CrossHostFenceIsCarriedOutByTheOwner) {
  standard(c);
  auto r = c[1].call(Action::off, "d2");
  EXPECT_EQ(r.status, Status::success) << r.message;
  EXPECT_EQ(c[2].model[kD2].state, PowerState::shutoff) << "h2's libvirt destroyed it";
  auto s = c[3].call(Action::status, kD2.str());
  EXPECT_EQ(s.status, Status::off) << s.message;
  auto on = c[3].call(Action::on, "d2");
  EXPECT_EQ(on.status, Status::success) << on.message;
  EXPECT_EQ(c[2].model[kD2].state, PowerState::running);
  EXPECT_EQ(c[1].call(Action::status, "d2").status, Status::success);
  // A shut-off domain with no owner is answered by the host that has it defined.
  EXPECT_EQ(c[1].call(Action::status, "d3").status, Status::off);
  EXPECT_EQ(c[1].call(Action::status, "nosuch").status, Status::failure);
  expect_converged(c);
}

TEST_P(Seeds, JoinerReceivesTheMapBeforeAnswering) {
  standard(c, false);
  c[1].set_state(kD1, PowerState::shutoff);
  c[1].set_state(kD1, PowerState::running);  // still h1, epoch unchanged
  c.settle();
  auto& h3 = c.add(3, doms({{kD3, "d3", PowerState::shutoff}}));
  // Before the SYNC completes the joiner refuses to answer from its (empty) replica.
  const auto early = h3.ask(Action::status, "d2");
  EXPECT_TRUE(h3.replies.count(early)) ;
  EXPECT_EQ(h3.replies[early].status, Status::failure);
  c.settle();
  ASSERT_TRUE(h3.engine->synced());
  EXPECT_EQ(h3.engine->domains().size(), 3u);
  EXPECT_EQ(h3.engine->domains().at(kD2).owner, 2u);
  EXPECT_EQ(h3.call(Action::status, "d2").status, Status::success);
  expect_converged(c);
}

TEST_P(Seeds, LostOwnerIsNeverOffUntilConfirmedFenced) {
  standard(c);
  c.hub.crash(3);
  c.settle();
  c.hub.crash(2);  // d2's host vanishes with d2 running (ground truth: still running)
  c.settle();
  // {1} alone has no quorum; restore quorum by bringing h3 back first.
  c.hub.restart(3);
  c.settle();
  ASSERT_TRUE(c[1].engine->lost(2));
  for (Action a : {Action::status, Action::off, Action::reboot}) {
    auto r = c[1].call(a, "d2");
    EXPECT_EQ(r.status, Status::failure) << proto::action_name(a) << ": " << r.message;
    EXPECT_NE(r.message.find("lost"), std::string::npos) << r.message;
  }
  auto l = c[1].call(Action::list_status, "");
  bool flagged = false;
  for (const auto& d : l.domains)
    if (d.uuid == kD2) flagged = d.flags & proto::kDomainOwnerLost;
  EXPECT_TRUE(flagged);
  // The admin powers h2 off for real, then confirms.
  c[2].model[kD2].state = PowerState::shutoff;
  auto conf = c[1].call(Action::confirm_fenced, "h2");
  EXPECT_EQ(conf.status, Status::success) << conf.message;
  EXPECT_TRUE(c[3].engine->confirmed(2)) << "replicated";
  EXPECT_EQ(c[3].call(Action::status, "d2").status, Status::off);
  EXPECT_EQ(c[1].call(Action::off, "d2").status, Status::success);
  expect_converged(c);
}

TEST_P(Seeds, ConfirmOfAMemberOrUnknownHostRefused) {
  standard(c);
  EXPECT_EQ(c[1].call(Action::confirm_fenced, "h2").status, Status::failure);
  EXPECT_EQ(c[1].call(Action::confirm_fenced, "h9").status, Status::failure);
}

TEST_P(Seeds, RejoiningOwnerReportsItselfAndIsNoLongerLost) {
  standard(c);
  c.hub.crash(2);
  c.settle();
  EXPECT_EQ(c[1].call(Action::status, "d2").status, Status::failure);
  c.restart_vguardd(2);
  c.settle();
  EXPECT_FALSE(c[1].engine->lost(2));
  EXPECT_EQ(c[1].call(Action::status, "d2").status, Status::success);
  EXPECT_EQ(c[2].engine->domains().at(kD1).owner, 1u) << "the restarted host got the map by state transfer";
  expect_converged(c);
}

TEST_P(Seeds, MinorityWithoutQuorumRefusesRemoteActions) {
  standard(c);
  c.hub.partition({{1}, {2, 3}});
  c.settle();
  EXPECT_FALSE(c[1].engine->quorate());
  auto r = c[1].call(Action::off, "d2");
  EXPECT_EQ(r.status, Status::failure);
  EXPECT_NE(r.message.find("lost"), std::string::npos) << "seen from the minority, h2 is lost: " << r.message;
  EXPECT_EQ(c[2].model[kD2].state, PowerState::running) << "nothing changed";
  // Its own domain it can still fence (its own libvirt is the evidence).
  EXPECT_EQ(c[1].call(Action::status, "d1").status, Status::success);
  // The majority keeps serving; h1 is lost to it, so d1 is owner-lost there.
  EXPECT_EQ(c[3].call(Action::off, "d2").status, Status::success);
  EXPECT_EQ(c[3].call(Action::status, "d1").status, Status::failure);
  c.hub.heal();
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) EXPECT_TRUE(c[n].engine->synced()) << n;
  expect_converged(c);
  EXPECT_FALSE(c[2].engine->lost(1));
  EXPECT_EQ(c[2].call(Action::status, "d1").status, Status::success);
}

TEST_P(Seeds, MigrationMovesOwnerAndRaisesEpoch) {
  standard(c);
  c.check_i1 = false;  // an unguarded migration (no hook, so no hand-over record): both copies exist briefly
  // libvirt-level migration d1: h1 -> h2 (events on both hosts).
  c[2].model[kD1] = {kD1, "d1", PowerState::paused};
  c[2].feed(HvDomain{c[2].model[kD1]});
  c.settle();
  EXPECT_EQ(c[3].engine->domains().at(kD1).owner, 1u) << "both active: no move while h1 still reports it";
  EXPECT_FALSE(c[3].alarms.empty()) << "duplicate alarm";
  c[1].set_state(kD1, PowerState::shutoff, true);
  c[2].set_state(kD1, PowerState::running);
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) {
    EXPECT_EQ(c[n].engine->domains().at(kD1).owner, 2u) << n;
    EXPECT_EQ(c[n].engine->domains().at(kD1).epoch, 2u) << n;
  }
  auto r = c[1].call(Action::off, "d1");
  EXPECT_EQ(r.status, Status::success) << r.message;
  EXPECT_EQ(c[2].model[kD1].state, PowerState::shutoff) << "the new owner destroyed it";
  expect_converged(c);
}

TEST_P(Seeds, ExecutingHostLeavingFailsTheRequest) {
  standard(c);
  // Partition h2 away right after the FENCE is sent, before it is delivered anywhere.
  const auto rid = c[1].ask(Action::off, "d2");
  c.hub.partition({{1, 3}, {2}});
  c.settle();
  ASSERT_TRUE(c[1].replies.count(rid));
  const auto& r = c[1].replies[rid];
  if (r.status == Status::success) {
    EXPECT_EQ(c[2].model[kD2].state, PowerState::shutoff) << "success only with the owner's evidence";
  } else {
    EXPECT_EQ(r.status, Status::failure);
  }
  expect_converged(c);
}

INSTANTIATE_TEST_SUITE_P(ManySeeds, Seeds, ::testing::Range(1, 41));

TEST(ClusterMsg, RoundTripAndRefusals) {
  proto::MsgSync s;
  s.from = 2;
  s.incarnation = 7;
  s.has_state = true;
  s.hosts.push_back({3, "h3", 2, 1, "root", 1, 9, proto::Facts{3, "h3", 1, 9, true, {{kD1, "d1", PowerState::running, false}}}});
  s.domains.push_back({kD1, "d1", 3, 4});
  s.facts = proto::Facts{2, "h2", 7, 1, true, {{kD2, "d2", PowerState::paused, false}}};
  s.round = 5;
  s.relayed.push_back(proto::Facts{3, "h3", 1, 4, true, {{kD3, "d3", PowerState::running, false}}});
  const auto bytes = proto::encode_cluster(kClusterKeyId, kClusterKey, s);
  auto m = proto::decode_cluster(bytes, kClusterKeyId, kClusterKey);
  ASSERT_TRUE(m) << m.error().message();
  const auto& back = std::get<proto::MsgSync>(*m);
  EXPECT_EQ(back.hosts, s.hosts);
  EXPECT_EQ(back.domains, s.domains);
  EXPECT_EQ(back.facts, s.facts);
  EXPECT_EQ(back.round, s.round);
  EXPECT_EQ(back.relayed, s.relayed);
  auto wrong = proto::decode_cluster(bytes, kClusterKeyId, "another-cluster-key-0123456789ab");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, make_error_code(errc::bad_mac));
  for (std::size_t n = 0; n < bytes.size(); n += 7) EXPECT_FALSE(proto::decode_cluster(bytes.substr(0, n), kClusterKeyId, kClusterKey));
}

TEST(ClusterMsg, FactsOutOfUuidOrderRefused) {
  // Lookups bisect FACTS entries, so a message listing them out of order (or twice) never gets in.
  proto::MsgFacts f{proto::Facts{2, "h2", 7, 1, true, {{kD1, "d1", PowerState::running, false},
                                                      {kD2, "d2", PowerState::running, false}}}};
  EXPECT_TRUE(proto::decode_cluster(proto::encode_cluster(kClusterKeyId, kClusterKey, f), kClusterKeyId, kClusterKey));
  std::swap(f.facts.entries[0], f.facts.entries[1]);
  EXPECT_FALSE(proto::decode_cluster(proto::encode_cluster(kClusterKeyId, kClusterKey, f), kClusterKeyId, kClusterKey));
  f.facts.entries[0] = f.facts.entries[1];
  EXPECT_FALSE(proto::decode_cluster(proto::encode_cluster(kClusterKeyId, kClusterKey, f), kClusterKeyId, kClusterKey));
}


TEST(ClusterHook, PrepareRefusedWhereTheMapForbidsIt) {
  Cluster c(7);
  standard(c);
  EXPECT_EQ(c[1].call(Action::hook_prepare, kD2.str()).status, Status::failure) << "running on h2";
  EXPECT_EQ(c[1].call(Action::hook_prepare, kD3.str()).status, Status::success) << "shut off everywhere";
  c.hub.partition({{1}, {2, 3}});
  c.settle();
  auto r = c[1].call(Action::hook_prepare, kD3.str());
  EXPECT_EQ(r.status, Status::failure);
  EXPECT_NE(r.message.find("quorum"), std::string::npos) << r.message;
  EXPECT_EQ(c[2].call(Action::hook_prepare, kD1.str()).status, Status::failure) << "owner h1 lost, unconfirmed";
}

TEST(ClusterClock, RemoteExecutionUsesTheCurrentTime) {
  // The executing host must time a FENCE from now, not from the epoch of its clock: with a large clock value
  // and the owner answering only after a tick, the request still succeeds.
  Cluster c(3);
  c.now = 5'000'000;
  standard(c);
  c[2].defer = true;  // h2's libvirt takes a while
  const auto rid = c[1].ask(Action::off, "d2");
  c.settle();
  ASSERT_FALSE(c[2].deferred.empty()) << "the destroy is running on h2";
  c.now += 50;
  c[2].feed(Tick{});
  c[2].flush();
  c.settle();
  ASSERT_TRUE(c[1].replies.count(rid));
  EXPECT_EQ(c[1].replies[rid].status, Status::success) << c[1].replies[rid].message;
}

TEST_P(Seeds, CorosyncRestartUnderARunningVguarddRejoinsAsJoiner) {
  standard(c);
  c.hub.crash(2);  // h2's corosync dies; its vguardd (same engine) stays
  c.settle();
  EXPECT_FALSE(c[2].engine->synced());
  EXPECT_EQ(c[2].call(Action::off, "d1").status, Status::failure) << "no view: no action on others' domains";
  EXPECT_EQ(c[2].call(Action::status, "d2").status, Status::success) << "its own domain, from its own libvirt";
  c.hub.restart(2);
  c.settle();
  EXPECT_TRUE(c[2].engine->synced());
  EXPECT_FALSE(c[1].engine->lost(2));
  EXPECT_EQ(c[2].call(Action::off, "d1").status, Status::success);
  expect_converged(c);
}

TEST_P(Seeds, RestartedLowestMemberDoesNotEraseTheReplica) {
  // h1 (the lowest id, the usual table carrier) restarts its vguardd; h3 is lost meanwhile. The restarted h1
  // has no tables: the carrier must be h2, and h3 must stay lost (not forgotten, so never "off").
  standard(c);
  c.hub.crash(3);
  c.settle();
  c.hub.kill(1);  // vguardd on h1 dies (procdown)
  c.settle();
  c.restart_vguardd(1);
  c.settle();
  ASSERT_TRUE(c[1].engine->synced());
  EXPECT_TRUE(c[1].engine->lost(3)) << "the restarted host learned h3's loss from the carrier";
  EXPECT_TRUE(c[2].engine->lost(3));
  EXPECT_EQ(c[1].call(Action::status, "d3").status, Status::failure);
  expect_converged(c);
}

std::vector<QueryFenceHistory> history_queries(const std::vector<Command>& cmds) {
  std::vector<QueryFenceHistory> q;
  for (const auto& c : cmds)
    if (const auto* x = std::get_if<QueryFenceHistory>(&c)) q.push_back(*x);
  return q;
}

TEST(ClusterHistory, OnlyAFenceAfterTheLossConfirmsIt) {
  Cluster c(11);
  standard(c);
  for (NodeId n : {1u, 2u, 3u}) {
    c[n].engine =
        std::make_unique<ClusterEngine>(ClusterIdentity{n, "h" + std::to_string(n), 9, true, {1, 2, 3}}, Policy{});
    c[n].connect_libvirt();
  }
  c.hub.kill(1);
  c.hub.kill(2);
  c.hub.kill(3);
  c.settle();
  c.hub.restart(1);
  c.hub.restart(2);
  c.hub.restart(3);
  c.settle();
  c.hub.crash(3);
  c.settle();
  ASSERT_TRUE(c[1].engine->lost(3));
  c.now += 5000;
  auto q = history_queries(c[1].engine->handle(ClusterEvent{c.now, Tick{}}));
  ASSERT_EQ(q.size(), 1u) << "the lowest member asks about the lost host";
  EXPECT_EQ(q[0].host, 3u);
  EXPECT_TRUE(history_queries(c[2].engine->handle(ClusterEvent{c.now, Tick{}})).empty()) << "only one member asks";
  // A fence recorded before the loss (the first answer is only a baseline) confirms nothing.
  c[1].feed(FenceHistoryIn{3, 1000});
  c[1].feed(FenceHistoryIn{3, 1000});
  c.settle();
  EXPECT_TRUE(c[2].engine->lost(3));
  EXPECT_EQ(c[2].call(Action::status, "d3").status, Status::failure);
  // A newer fence does.
  c[3].model[kD3].state = PowerState::shutoff;
  c[1].feed(FenceHistoryIn{3, 2000});
  c.settle();
  EXPECT_TRUE(c[2].engine->confirmed(3));
  expect_converged(c);
}
// R1: a SYNC delayed past the next confchg is counted as the sender's SYNC of the new view.
TEST(ClusterReview, StaleSyncForgetsALoss) {
  Cluster c(5);
  c.add(1, doms({{kD1, "d1", PowerState::running}, {kD2, "d2", PowerState::shutoff}}));
  c.add(2, doms({{kD2, "d2", PowerState::running}}));
  c.add(3, doms({{kD3, "d3", PowerState::shutoff}}));
  c.settle();
  ASSERT_EQ(c[1].engine->domains().at(kD2).owner, 2u);
  c.hub.delay_next_past_view(1);  // h1's SYNC for the next view is late
  c.hub.crash(3);
  c.settle();
  c.hub.crash(2);  // d2 keeps running on h2 (ground truth)
  c.settle();
  ASSERT_TRUE(c[1].engine->synced());
  EXPECT_TRUE(c[1].engine->lost(2)) << "h2 left and is not confirmed";
  auto r = c[1].call(Action::status, "d2");
  EXPECT_NE(r.status, Status::off) << r.message;
}
// R2: the FENCE is not pinned to the epoch it was routed at.
TEST(ClusterReview, FenceDoneAfterStartElsewhere) {
  Cluster c(5);
  c.add(1, doms({{kD1, "d1", PowerState::running}}));
  c.add(2, doms({{kD2, "d2", PowerState::running}}));
  c.add(3, doms({{kD2, "d2", PowerState::shutoff}}));
  c.settle();
  c[2].set_state(kD2, PowerState::shutoff);  // clean stop on h2, still owner
  c.settle();
  c[3].set_state(kD2, PowerState::running);  // started on h3: FACTS ordered, not yet delivered at h1
  const auto rid = c[1].ask(Action::off, "d2");  // routed to h2 from h1's map
  c.settle();
  ASSERT_TRUE(c[1].replies.count(rid));
  const bool ok = c[1].replies[rid].status == Status::success;
  EXPECT_FALSE(ok && c[3].model[kD2].state == PowerState::running)
      << "off=success while d2 runs on h3: " << c[1].replies[rid].message;
}
// R3: a member reporting it active hides the lost owner.
TEST(ClusterReview, ActiveMemberHidesLostOwner) {
  Cluster c(5);
  c.add(1, doms({{kD1, "d1", PowerState::running}}));
  c.add(2, doms({{kD2, "d2", PowerState::running}}));
  c.add(3, doms({{kD3, "d3", PowerState::shutoff}}));
  c.settle();
  c[3].model[kD2] = {kD2, "d2", PowerState::paused};  // incoming migration on h3
  c[3].feed(HvDomain{c[3].model[kD2]});
  c.settle();
  c.hub.partition({{1, 3}, {2}});
  c.settle();
  auto r = c[1].call(Action::off, "d2");
  EXPECT_FALSE(r.status == Status::success && c[2].model[kD2].state == PowerState::running)
      << "off=success while d2 runs on lost h2: " << r.message;
}
// R4: a host whose vguardd never joined is unknown, not lost: a defined-but-off copy elsewhere answers "off".
TEST(ClusterReview, NeverSeenHostIsNotLost) {
  Cluster c(5);
  c.add(1, doms({{kD1, "d1", PowerState::running}, {kD3, "d3", PowerState::shutoff}}));
  c.add(2, doms({{kD2, "d2", PowerState::running}}));
  c.settle();
  // h3 runs d3 but its vguardd is not in the group (not started yet / crashed before the first SYNC).
  auto r = c[1].call(Action::status, "d3");
  EXPECT_NE(r.status, Status::off) << r.message;
}
// R5: loss numbers diverge between partitions; a confirmation of one side's loss N covers the other side's.
TEST(ClusterReview, DivergentLossCounters) {
  Cluster c(5);
  c.add(1, doms({{kD1, "d1", PowerState::running}}));
  c.add(2, doms({{kD2, "d2", PowerState::running}, {kD3, "d3", PowerState::shutoff}}));
  c.add(3, doms({{kD3, "d3", PowerState::running}}));
  c.settle();
  c.hub.partition({{1, 3}, {2}});  // h2 side: losses[3]=1
  c.settle();
  c.hub.partition({{1}, {2}, {3}});  // h1 side: losses[3]=1
  c.settle();
  c.hub.partition({{1, 3}, {2}});
  c.settle();
  c.hub.partition({{1}, {2}, {3}});  // h1 side: losses[3]=2; h2 side still 1
  c.settle();
  // Admin really power-cycles h3, then confirms on h1 (loss 2).
  c[3].model[kD3].state = PowerState::shutoff;
  EXPECT_EQ(c[1].call(Action::confirm_fenced, "h3").status, Status::success);
  c.hub.kill(3);
  c.settle();
  c[3].incarnation = 2;
  c[3].reset_engine();
  c.hub.partition({{1}, {2, 3}});
  c.hub.restart(3);
  c[3].connect_libvirt();
  c.settle();
  c[3].set_state(kD3, PowerState::running);  // h3 runs d3 again, seen by h2 (quorate side)
  c.settle();
  c.hub.partition({{1, 2}, {3}});  // h3 away from h2: h2 side losses[3]=2, unconfirmed
  c.settle();
  for (NodeId n : {1u,2u}) { auto& h=c[n].engine->hosts().at(3); printf("h%u: losses=%u conf=%u owner=%u members=%zu lost=%d confirmed=%d\n", n, h.losses, h.confirmed_loss, c[n].engine->domains().at(kD3).owner, c[n].engine->members().size(), c[n].engine->lost(3), c[n].engine->confirmed(3)); }
  auto r = c[2].call(Action::status, "d3");
  EXPECT_NE(r.status, Status::off) << "d3 runs on h3: " << r.message;
  expect_converged(c);
}
// R6: minority partition answers "off" from a confirmation while the majority restarted the domain.
TEST(ClusterReview, ConfirmByAHostNameTwoHostsReportIsRefused) {
  // h2 and h3 both call themselves "dup" (misconfigured). h3 is lost: "confirm-fenced dup" could confirm the
  // wrong one, so it is refused; the node id is unambiguous.
  Cluster c(3);
  c.hostname = {{2, "dup"}, {3, "dup"}};
  c.add(1, {});
  c.add(2, {});
  c.add(3, doms({{kD3, "d3", PowerState::running}}));
  c.settle();
  c.hub.crash(3);
  c.settle();
  c[3].model[kD3].state = PowerState::shutoff;  // powered off
  const auto amb = c[1].call(Action::confirm_fenced, "dup");
  EXPECT_EQ(amb.status, Status::failure);
  EXPECT_NE(amb.message.find("node id"), std::string::npos) << amb.message;
  EXPECT_NE(c[1].call(Action::status, "d3").status, Status::off) << "nothing confirmed";
  EXPECT_EQ(c[1].call(Action::confirm_fenced, "3").status, Status::success);
  EXPECT_EQ(c[1].call(Action::status, "d3").status, Status::off);
}

TEST(ClusterReview, MinorityOffFromStaleConfirmation) {
  Cluster c(5);
  c.configured = {1, 2, 3, 4, 5};  // {h2,h4,h5} is the majority
  c.add(1, doms({{kD1, "d1", PowerState::running}}));
  c.add(2, doms({{kD3, "d3", PowerState::shutoff}}));
  c.add(3, doms({{kD3, "d3", PowerState::running}}));
  c.add(4, {});
  c.add(5, {});
  c.settle();
  c.hub.crash(3);
  c.settle();
  c[3].model[kD3].state = PowerState::shutoff;  // really powered off
  EXPECT_EQ(c[1].call(Action::confirm_fenced, "h3").status, Status::success);
  c.hub.partition({{1}, {2, 4, 5}});
  c.settle();
  EXPECT_EQ(c[2].call(Action::hook_prepare, kD3.str()).status, Status::success);
  c[2].set_state(kD3, PowerState::running);
  c.settle();
  auto r = c[1].call(Action::status, "d3");
  EXPECT_NE(r.status, Status::off) << "d3 runs on h2: " << r.message;
}

// ---------------------------------------------------------------------------------------------------
// Start guard scenarios (safety-design.md §4-§6, safety-scenarios.md): claims through the agreed order,
// stability, decisive views, hand-over, duplicates. The fake libvirt of each host is the ground truth: a hook
// answered yes starts the domain there; I1 (never active on two hosts outside a hand-over) is checked.
TEST_P(Seeds, ClaimIsGrantedOnceStableAndRefusedElsewhere) {
  // Scenario 1: basic claim: CLAIM, all ACKs (I5), fsync (I4), yes; every replica owner h1, epoch 1.
  guarded(c);
  const auto r1 = hook(c[1], Action::hook_prepare);
  EXPECT_FALSE(answer(c[1], r1)) << "no yes before every member acknowledged (I5)";
  c.settle();
  ASSERT_TRUE(yes(c[1], r1)) << answer(c[1], r1).value_or(proto::Response{}).message;
  start_here(c[1]);
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) {
    EXPECT_EQ(rec(c[n]).owner, 1u) << n;
    EXPECT_EQ(rec(c[n]).epoch, 1u) << n;
  }
  auto r2 = c[2].call(Action::hook_prepare, kV.str());
  EXPECT_EQ(r2.status, Status::failure);
  EXPECT_NE(r2.message.find("h1"), std::string::npos) << r2.message;
  EXPECT_EQ(active_on(c), std::vector<NodeId>{1});
  // Stopped on h1 (release hook): now it may start on h2, with a higher epoch.
  stop_here(c[1]);
  c.settle();
  EXPECT_EQ(rec(c[3]).owner, 0u);
  EXPECT_TRUE(yes(c[2], hook(c[2], Action::hook_prepare)) || (c.settle(), true));
  c.settle();
  EXPECT_EQ(rec(c[1]).owner, 2u);
  EXPECT_EQ(rec(c[1]).epoch, 2u);
  expect_converged(c);
}

TEST_P(Seeds, RacingClaimsHaveExactlyOneWinner) {
  guarded(c);
  std::mt19937 rng(static_cast<unsigned>(GetParam()));
  for (int round = 0; round < 20; ++round) {
    std::map<NodeId, std::uint64_t> rid;
    for (NodeId n : {1u, 2u, 3u})
      if (rng() % 4 != 0 || n == static_cast<NodeId>(1 + round % 3)) rid[n] = hook(c[n], Action::hook_prepare);
    c.settle();
    std::vector<NodeId> winners;
    for (auto [n, r] : rid) {
      ASSERT_TRUE(answer(c[n], r)) << "round " << round << ": h" << n << " got no answer";
      if (yes(c[n], r)) winners.push_back(n);
    }
    ASSERT_EQ(winners.size(), 1u) << "round " << round;
    start_here(c[winners[0]]);
    c.settle();
    ASSERT_EQ(active_on(c), winners) << "I1, round " << round;
    stop_here(c[winners[0]]);
    c.settle();
  }
  expect_converged(c);
}

TEST_P(Seeds, NonUniformClaimNeverSaysYes) {
  // Scenario 3: h3's claim is delivered to h3 only, then h3 is cut off.
  guarded(c);
  c.hub.send_self_only_next(3);
  const auto r3 = hook(c[3], Action::hook_prepare);
  c.settle();
  EXPECT_FALSE(yes(c[3], r3)) << "a minority holding the grant is not stable";
  // The majority grants it to h1.
  const auto r1 = hook(c[1], Action::hook_prepare);
  c.settle();
  ASSERT_TRUE(yes(c[1], r1)) << answer(c[1], r1).value_or(proto::Response{}).message;
  c.now += 20000;
  tick(c);
  c.settle();
  ASSERT_TRUE(answer(c[3], r3));
  EXPECT_EQ(answer(c[3], r3)->status, Status::failure);
  // Heal before h1's qemu started: h3's released record must not outrank h1's grant (decisive generation).
  c.hub.heal();
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) EXPECT_EQ(rec(c[n]).owner, 1u) << "h" << n;
  EXPECT_EQ(c[2].call(Action::hook_prepare, kV.str()).status, Status::failure);
  start_here(c[1]);
  c.settle();
  EXPECT_EQ(active_on(c), std::vector<NodeId>{1});
  expect_converged(c);
}

TEST_P(Seeds, ClaimDeliveredAfterAViewChangeIsDecidedThere) {
  // Scenario 6: h3's claim is held past the next membership change (h2's vguardd restarts).
  guarded(c);
  c.hub.delay_next_past_view(3);
  const auto r3 = hook(c[3], Action::hook_prepare);
  c.hub.kill(2);
  c.settle();
  c.restart_vguardd(2);
  c.settle();
  ASSERT_TRUE(answer(c[3], r3)) << "decided in the later view";
  EXPECT_TRUE(yes(c[3], r3)) << answer(c[3], r3)->message;
  EXPECT_EQ(rec(c[2]).owner, 3u) << "the restarted member learned the grant";
  expect_converged(c);
}

TEST_P(Seeds, NoYesAfterTheDeadlineAndTheGrantIsGivenBack) {
  // Scenario 8: the acknowledgements arrive after D_v.
  guarded(c);
  const auto r1 = hook(c[1], Action::hook_prepare);
  c.now += 20000;
  tick(c);
  ASSERT_TRUE(answer(c[1], r1));
  EXPECT_EQ(answer(c[1], r1)->status, Status::failure);
  c.settle();
  EXPECT_EQ(answer(c[1], r1)->status, Status::failure) << "never yes after D_v (I5)";
  for (NodeId n : {1u, 2u, 3u}) EXPECT_EQ(rec(c[n]).owner, 0u) << "released everywhere, h" << n;
  EXPECT_TRUE(yes(c[2], (c.settle(), hook(c[2], Action::hook_prepare))) || (c.settle(), true));
  c.settle();
  EXPECT_EQ(rec(c[3]).owner, 2u);
  expect_converged(c);
}

TEST_P(Seeds, StaleMajorityIsNotDecisive) {
  // Scenario 10: {h1}|{h2,h3}; v granted to h3; h2's vguardd restarts; h3 is cut off; {h1,h2'} must not grant.
  guarded(c);
  c.hub.partition({{1}, {2, 3}});
  c.settle();
  const auto r3 = hook(c[3], Action::hook_prepare);
  c.settle();
  ASSERT_TRUE(yes(c[3], r3)) << answer(c[3], r3).value_or(proto::Response{}).message;
  start_here(c[3]);
  c.settle();
  c.hub.kill(2);
  c.settle();
  c.restart_vguardd(2);
  c.settle();
  c.hub.partition({{1, 2}, {3}});
  c.settle();
  EXPECT_FALSE(c[1].engine->decisive());
  auto r = c[1].call(Action::hook_prepare, kV.str());
  EXPECT_EQ(r.status, Status::failure);
  EXPECT_NE(r.message.find("decisive"), std::string::npos) << r.message;
  EXPECT_EQ(active_on(c), std::vector<NodeId>{3});
}

TEST_P(Seeds, LostOwnerBlocksClaimsUntilConfirmedFenced) {
  guarded(c);
  ASSERT_EQ(c[3].call(Action::hook_prepare, kV.str()).status, Status::success);
  start_here(c[3]);
  c.settle();
  c.hub.crash(3);
  c.settle();
  auto r = c[1].call(Action::hook_prepare, kV.str());
  EXPECT_EQ(r.status, Status::failure);
  EXPECT_NE(r.message.find("lost"), std::string::npos) << r.message;
  c[3].model[kV].state = PowerState::shutoff;  // the power fence
  ASSERT_EQ(c[1].call(Action::confirm_fenced, "h3").status, Status::success);
  auto r2 = c[1].call(Action::hook_prepare, kV.str());
  EXPECT_EQ(r2.status, Status::success) << r2.message;
  EXPECT_EQ(rec(c[2]).owner, 1u);
}

// Owner h1 runs kV (claimed); h2 is the migration target.
void running_on_h1(Cluster& c) {
  guarded(c);
  ASSERT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::success);
  start_here(c[1]);
  c.settle();
}

TEST_P(Seeds, MigrationHandsOwnershipOverWithAHigherEpoch) {
  running_on_h1(c);
  const std::uint64_t e = rec(c[1]).epoch;
  auto m = c[2].call(Action::hook_migrate, kV.str());
  ASSERT_EQ(m.status, Status::success) << m.message;
  EXPECT_EQ(rec(c[3]).mig_phase, 1);
  EXPECT_EQ(c[2].call(Action::hook_prepare, kV.str()).status, Status::success) << "the hand-over is the grant";
  EXPECT_EQ(c[3].call(Action::hook_prepare, kV.str()).status, Status::failure) << "a third host may not start it";
  c[2].set_state(kV, PowerState::paused);  // incoming copy (both exist: not a duplicate)
  c.settle();
  c[1].set_state(kV, PowerState::paused);
  c[2].set_state(kV, PowerState::running);  // switch-over
  c.settle();
  c[1].set_state(kV, PowerState::shutoff, /*migrated=*/true);
  hook(c[1], Action::hook_release);  // the source's release hook must not release the target's domain
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) {
    EXPECT_EQ(rec(c[n]).owner, 2u) << n;
    EXPECT_GT(rec(c[n]).epoch, e) << n;
    EXPECT_EQ(rec(c[n]).mig_phase, 0) << n;
    EXPECT_TRUE(c[n].alarms.empty()) << "a hand-over is not a duplicate: " << c[n].alarms.front();
  }
  EXPECT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::failure) << "start on the old source";
  expect_converged(c);
}

TEST_P(Seeds, FailedMigrationLeavesOwnershipWithTheSource) {
  // Scenario 25: incoming copy dies → MIGRATE_END(fail) → owner h1, record cleared; new migration granted.
  running_on_h1(c);
  const std::uint64_t e = rec(c[1]).epoch;
  ASSERT_EQ(c[2].call(Action::hook_migrate, kV.str()).status, Status::success);
  c[2].set_state(kV, PowerState::paused);
  c.settle();
  EXPECT_EQ(c[3].call(Action::off, kV.str()).status, Status::failure) << "no single host speaks during a hand-over";
  c[2].set_state(kV, PowerState::shutoff);  // the incoming qemu died before resume
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) {
    EXPECT_EQ(rec(c[n]).owner, 1u) << n;
    EXPECT_EQ(rec(c[n]).epoch, e) << n;
    EXPECT_EQ(rec(c[n]).mig_phase, 0) << n;
  }
  EXPECT_EQ(c[3].call(Action::hook_migrate, kV.str()).status, Status::success) << "a new migration is granted";
  expect_converged(c);
}

TEST_P(Seeds, MigrationRefusedWithoutARunningOwner) {
  guarded(c);
  auto m = c[2].call(Action::hook_migrate, kV.str());
  EXPECT_EQ(m.status, Status::failure) << "nothing to migrate from";
  ASSERT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::success);
  auto m2 = c[2].call(Action::hook_migrate, kV.str());
  EXPECT_EQ(m2.status, Status::failure) << "claimed but its owner's libvirt does not report it active yet";
  EXPECT_NE(m2.message.find("does not report it active"), std::string::npos) << m2.message;
}

TEST_P(Seeds, DuplicateRaisesAnAlarmAndThePolicyStopsTheUnownedCopy) {
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
  c[2].set_state(kV, PowerState::running);  // started on h2 without the hook
  c.settle();
  for (NodeId n : {1u, 2u, 3u}) EXPECT_FALSE(c[n].alarms.empty()) << "alarm on h" << n;
  EXPECT_EQ(c[2].model[kV].state, PowerState::shutoff) << "h2 destroyed its unowned copy";
  EXPECT_EQ(c[1].model[kV].state, PowerState::running) << "the owner's copy is untouched";
  EXPECT_EQ(rec(c[3]).owner, 1u);
}

TEST_P(Seeds, DuplicateAlertOnlyIsTheDefault) {
  running_on_h1(c);
  c[3].set_state(kV, PowerState::running);
  c.settle();
  EXPECT_FALSE(c[1].alarms.empty());
  EXPECT_EQ(c[3].model[kV].state, PowerState::running) << "alert only";
  auto l = c[2].call(Action::list_status, "");
  bool marked = false;
  for (const auto& d : l.domains) marked |= d.uuid == kV && (d.flags & proto::kDomainDuplicate);
  EXPECT_TRUE(marked) << "status marks the domain";
}

TEST(ClusterGuard, ReconnectOfACopyOwnedElsewhere) {
  for (auto policy : {GuardPolicy::Reconnect::alert, GuardPolicy::Reconnect::refuse}) {
    Cluster c(7);
    for (NodeId n : {1u, 2u, 3u}) {
      c.add(n, doms({{kV, "v", PowerState::shutoff}}));
      c[n].guard.reconnect = policy;
      c[n].reset_engine();
      c[n].connect_libvirt();
    }
    c.settle();
    ASSERT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::success);
    start_here(c[1]);
    c.settle();
    EXPECT_EQ(c[1].call(Action::hook_reconnect, kV.str()).status, Status::success) << "its own domain";
    auto r = c[2].call(Action::hook_reconnect, kV.str());
    EXPECT_EQ(r.status, policy == GuardPolicy::Reconnect::refuse ? Status::failure : Status::success) << r.message;
    EXPECT_NE(r.message.find("owned by h1"), std::string::npos) << r.message;
    EXPECT_FALSE(c[2].alarms.empty());
  }
}

TEST(ClusterGuard, HookActionsOnlyOnTheControlSocketAndNeedNodes) {
  Cluster c(3);
  guarded(c);
  proto::Request q;
  q.action = Action::hook_prepare;
  q.target = kV.str();
  c[1].feed(RequestIn{99, "tcp", proto::KeyId{}, q});
  EXPECT_EQ(c[1].replies[99].status, Status::denied);
  EXPECT_EQ(c[1].call(Action::hook_prepare, "not-a-uuid").status, Status::failure);
}

TEST(ClusterGuard, ColdStartWaitsForEveryHost) {
  Cluster c(5);
  c.add(1, doms({{kV, "v", PowerState::shutoff}}));
  c.add(2, doms({{kV, "v", PowerState::shutoff}}));
  c.settle();
  EXPECT_FALSE(c[1].engine->decisive()) << "no stateful member, h3 absent";
  auto r = c[1].call(Action::hook_prepare, kV.str());
  EXPECT_EQ(r.status, Status::failure);
  c.add(3, doms({{kV, "v", PowerState::shutoff}}));
  c.settle();
  EXPECT_TRUE(c[1].engine->decisive());
  EXPECT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::success);
  // From now on a majority of stateful hosts suffices: h3 leaves, {h1,h2} still grants.
  c.hub.crash(3);
  c.settle();
  EXPECT_TRUE(c[2].engine->decisive());
}

TEST_P(Seeds, HostMissingFromTheConfiguredNodesDoesNotMakeAMajority) {
  // h4 runs vguardd with the cluster key but is not in [cluster] nodes (1,2,3). Once stateful it must not count:
  // {h1,h4} would otherwise be "2 of 3 stateful" and grant alongside the real majority {h2,h3}. Both halves are
  // quorate to corosync here (a 2|2 split with a tie-breaker-less rule): only vguard's own rule separates them.
  c.hub.set_quorum_rule([](std::size_t members, std::size_t) { return members >= 2; });
  for (NodeId n : {1u, 2u, 3u, 4u}) c.add(n, doms({{kV, "v", PowerState::shutoff}}));
  c.settle();
  ASSERT_TRUE(c[1].engine->decisive());
  c.hub.partition({{1, 4}, {2, 3}});
  c.settle();
  EXPECT_FALSE(c[1].engine->decisive()) << "one configured host of three is no majority";
  const auto r1 = hook(c[1], Action::hook_prepare);
  const auto r2 = hook(c[2], Action::hook_prepare);
  c.settle();
  EXPECT_FALSE(yes(c[1], r1));
  ASSERT_TRUE(yes(c[2], r2)) << answer(c[2], r2).value_or(proto::Response{}).message;
  start_here(c[2]);
  if (yes(c[1], r1)) start_here(c[1]);
  c.settle();
  EXPECT_EQ(active_on(c), std::vector<NodeId>{2});
  expect_converged(c);
}

TEST_P(Seeds, OwnerThatStoppedWhileItsVguarddWasDownReleasesOnItsListing) {
  // Scenario 38: h1 owns v; its vguardd dies; v stops meanwhile; the restarted vguardd's listing (taken after
  // the subscription) shows it inactive: released, so another host may start it.
  running_on_h1(c);
  c.hub.kill(1);
  c.settle();
  c[1].model[kV].state = PowerState::shutoff;
  c.restart_vguardd(1);
  c.settle();
  EXPECT_EQ(rec(c[2]).owner, 0u);
  EXPECT_EQ(c[2].call(Action::hook_prepare, kV.str()).status, Status::success);
}

TEST_P(Seeds, AListingAskedBeforeAYesReleasesNothing) {
  guarded(c);
  c.now = 5000;
  ASSERT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::success);
  // libvirt has not started it yet; a reconnect listing asked for before the yes arrives now.
  c[1].feed(HvConnected{{DomainInfo{kV, "v", PowerState::shutoff, false}}, 4000});
  c.settle();
  EXPECT_EQ(rec(c[2]).owner, 1u) << "the start in progress keeps its grant";
  EXPECT_EQ(c[2].call(Action::hook_prepare, kV.str()).status, Status::failure);
  // A listing asked for later that still shows it inactive (the start failed without a hook) releases it.
  c.now = 9000;
  c[1].feed(HvConnected{{DomainInfo{kV, "v", PowerState::shutoff, false}}, 8000});
  c.settle();
  EXPECT_EQ(rec(c[2]).owner, 0u);
}

// Review findings, each reproduced first.
TEST_P(Seeds, RestartedMigrationTargetCannotStartWithoutAClaimAndTheHandOverEnds) {
  running_on_h1(c);
  ASSERT_EQ(c[2].call(Action::hook_migrate, kV.str()).status, Status::success);
  c.hub.kill(2);  // h2's vguardd restarts before libvirt launched the incoming copy (which then never comes)
  c.settle();
  c.restart_vguardd(2);
  c.settle();
  EXPECT_EQ(rec(c[1]).mig_phase, 0) << "the restarted target's listing ended the hand-over";
  EXPECT_EQ(rec(c[1]).owner, 1u);
  auto r = c[2].call(Action::hook_prepare, kV.str());
  EXPECT_EQ(r.status, Status::failure) << "no hand-over bypass for a yes this process never gave";
  EXPECT_EQ(active_on(c), std::vector<NodeId>{1});
  EXPECT_EQ(c[3].call(Action::hook_migrate, kV.str()).status, Status::success) << "not stuck";
}

TEST_P(Seeds, StaleStopEventDoesNotReleaseTheNextStart) {
  running_on_h1(c);
  c[1].model[kV].state = PowerState::shutoff;  // stopped; libvirt's event is late
  hook(c[1], Action::hook_release);
  c.settle();
  ASSERT_EQ(rec(c[2]).owner, 0u);
  ASSERT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::success);  // started again at once
  c[1].feed(HvDomain{c[1].model[kV]});  // the old stop event arrives now
  c.settle();
  EXPECT_EQ(rec(c[2]).owner, 1u) << "the stale stop released the new grant";
  EXPECT_EQ(c[2].call(Action::hook_prepare, kV.str()).status, Status::failure);
}

TEST_P(Seeds, UnguardedCopyDoesNotTakeAGrantThatIsStillStarting) {
  guarded(c);
  ASSERT_EQ(c[1].call(Action::hook_prepare, kV.str()).status, Status::success);  // qemu not launched yet
  c[2].set_state(kV, PowerState::running);  // a copy started on h2 without the hook
  c.settle();
  EXPECT_EQ(rec(c[3]).owner, 1u);
  c[2].set_state(kV, PowerState::shutoff);
  c.settle();
  auto r = c[3].call(Action::hook_prepare, kV.str());
  EXPECT_EQ(r.status, Status::failure) << "h1's start is still under way: " << r.message;
}

TEST_P(Seeds, InterruptedSyncLeavesEqualReplicas) {
  guarded(c);
  ASSERT_EQ(c[2].call(Action::hook_prepare, kV.str()).status, Status::success);
  start_here(c[2]);
  c.settle();
  c.hub.delay_next_past_view(2);
  c[2].set_state(kV, PowerState::shutoff);  // its FACTS and release are held past the next view
  c.hub.partition({{1, 2}, {3}});
  c.hub.heal();
  c.settle();
  expect_converged(c);
  EXPECT_EQ(rec(c[3]).owner, 0u) << "the release was derived again after the SYNC";
  EXPECT_EQ(c[3].call(Action::hook_prepare, kV.str()).status, Status::success);
}

TEST_P(Seeds, HookDuringAStateTransferWaitsForIt) {
  guarded(c);
  c.hub.kill(3);
  while (c[1].engine->synced() && c.hub.step(1)) {
  }
  ASSERT_FALSE(c[1].engine->synced());
  const auto r = hook(c[1], Action::hook_prepare);
  EXPECT_FALSE(answer(c[1], r)) << "parked, not refused";
  c.settle();
  ASSERT_TRUE(answer(c[1], r));
  EXPECT_TRUE(yes(c[1], r)) << answer(c[1], r)->message;
}

TEST(ClusterMsg, GuardMessagesRoundTrip) {
  for (const proto::ClusterMsg& m :
       {proto::ClusterMsg{proto::MsgClaim{proto::MsgClaim::Kind::migrate, 2, 77, kV, "v", 5}},
        proto::ClusterMsg{proto::MsgAck{2, 77, 3}}, proto::ClusterMsg{proto::MsgReconfirm{2, 77, kV, 6, 1}},
        proto::ClusterMsg{proto::MsgRelease{1, kV, 6, 0, "release hook"}},
        proto::ClusterMsg{proto::MsgMigrateEnd{2, kV, 7, false, "incoming copy stopped"}},
        proto::ClusterMsg{proto::MsgSyncOk{2, 7, 9}}}) {
    const auto bytes = proto::encode_cluster(kClusterKeyId, kClusterKey, m);
    auto back = proto::decode_cluster(bytes, kClusterKeyId, kClusterKey);
    ASSERT_TRUE(back) << back.error().message();
    EXPECT_EQ(back->index(), m.index());
    EXPECT_EQ(proto::encode_cluster(kClusterKeyId, kClusterKey, *back), bytes);
    // Truncated: a clear error, never a half message.
    auto cut = bytes.substr(0, bytes.size() - 33);
    EXPECT_FALSE(proto::decode_cluster(cut, kClusterKeyId, kClusterKey));
  }
}

}  // namespace
}  // namespace vguard::fenced
