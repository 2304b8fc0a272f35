// N ClusterEngines over the in-process FakeBusHub, each with a model hypervisor as ground truth: map
// convergence, state transfer to a joiner, cross-host fencing, lost owners, confirm-fenced, partitions without
// quorum, heal, epochs. Scenarios run over many seeds with random delivery interleavings; after every scenario
// the invariants are checked: members agree on the replica (digest), and no "off" answer was false in
// ground truth at answer time (I2).
#include "cluster_engine.h"

#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>

#include <map>
#include <memory>
#include <set>

#include "cluster_msg.h"
#include "fake_bus.h"
#include "key.h"

namespace vguard::fenced {
namespace {

using proto::Action;
using proto::PowerState;
using proto::Status;

const std::string kClusterKey = "cluster-key-for-tests-0123456789";
const proto::KeyId kClusterKeyId = proto::key_id_of(kClusterKey);
const Uuid kD1 = *Uuid::parse("d1000000-0000-0000-0000-000000000001");
const Uuid kD2 = *Uuid::parse("d2000000-0000-0000-0000-000000000002");
const Uuid kD3 = *Uuid::parse("d3000000-0000-0000-0000-000000000003");

struct Node;

struct Cluster {
  FakeBusHub hub;
  std::map<NodeId, std::unique_ptr<Node>> nodes;
  TimeMs now = 1000;
  int false_offs = 0;  // I2 violations
  explicit Cluster(std::uint64_t seed) : hub(seed) {}
  Node& add(NodeId id, std::map<Uuid, DomainInfo> domains);
  Node& operator[](NodeId id) { return *nodes.at(id); }
  void settle() { hub.run_until_idle(); }
  bool running_anywhere_else(NodeId except, const Uuid& u);
};

struct Node final : BusListener {
  Cluster& c;
  NodeId id;
  std::uint64_t incarnation = 1;
  std::unique_ptr<ClusterEngine> engine;
  std::map<Uuid, DomainInfo> model;  // this host's libvirt (ground truth)
  std::map<std::uint64_t, proto::Response> replies;
  std::map<std::uint64_t, Action> asked;
  std::vector<std::string> alarms;
  std::uint64_t next_request = 1;

  Node(Cluster& cl, NodeId n, std::map<Uuid, DomainInfo> m) : c(cl), id(n), model(std::move(m)) { reset_engine(); }
  void reset_engine() {
    Policy p;
    engine = std::make_unique<ClusterEngine>(
        ClusterIdentity{id, "h" + std::to_string(id), incarnation, false, {1, 2, 3}}, p);
  }
  void feed(ClusterInput in) { run(engine->handle(ClusterEvent{c.now, std::move(in)})); }
  void connect_libvirt() {
    std::vector<DomainInfo> list;
    for (const auto& [u, d] : model) list.push_back(d);
    feed(HvConnected{list});
  }
  void set_state(const Uuid& u, PowerState s, bool migrated = false) {
    model[u].state = s;
    model[u].migrated_away = migrated;
    feed(HvDomain{model[u]});
  }
  bool defer = false;             // hold hypervisor commands until flush()
  std::vector<Command> deferred;
  void flush() {
    defer = false;
    auto cmds = std::move(deferred);
    deferred.clear();
    run(std::move(cmds));
  }
  void run(std::vector<Command> cmds) {
    for (auto& cmd : cmds) {
      if (defer && (std::holds_alternative<DoDestroy>(cmd) || std::holds_alternative<DoStart>(cmd) ||
                    std::holds_alternative<DoQuery>(cmd))) {
        deferred.push_back(cmd);
        continue;
      }
      if (auto* d = std::get_if<DoDestroy>(&cmd)) {
        model[d->uuid].state = PowerState::shutoff;
        feed(HvDomain{model[d->uuid]});
        feed(OpDone{d->op, true, "", errc::ok, PowerState::shutoff});
      } else if (auto* s = std::get_if<DoStart>(&cmd)) {
        model[s->uuid].state = PowerState::running;
        feed(HvDomain{model[s->uuid]});
        feed(OpDone{s->op, true, "", errc::ok, PowerState::running});
      } else if (auto* q = std::get_if<DoQuery>(&cmd)) {
        auto it = model.find(q->uuid);
        if (it == model.end())
          feed(OpDone{q->op, false, "no domain", errc::no_such_domain});
        else
          feed(OpDone{q->op, true, "", errc::ok, it->second.state});
      } else if (auto* m = std::get_if<SendMsg>(&cmd)) {
        (void)c.hub.bus(id).send(proto::encode_cluster(kClusterKeyId, kClusterKey, m->msg));
      } else if (auto* r = std::get_if<Reply>(&cmd)) {
        // I2: an "off" answer must be true in ground truth when it is given.
        const auto a = asked[r->request];
        if ((r->response.status == Status::off || (r->response.status == Status::success &&
                                                   (a == Action::off || a == Action::reboot))) &&
            !r->response.domains.empty()) {
          for (const auto& entry : r->response.domains)
            if (c.running_anywhere_else(0, entry.uuid) && a != Action::reboot) ++c.false_offs;
        }
        replies[r->request] = r->response;
      } else if (auto* au = std::get_if<Audit>(&cmd)) {
        if (au->type == "alarm") alarms.push_back(boost::json::serialize(au->fields));
      }
    }
  }
  std::uint64_t ask(Action a, const std::string& target) {
    proto::Request q;
    q.action = a;
    q.target = target;
    q.budget_ms = 10000;
    const std::uint64_t rid = next_request++;
    asked[rid] = a;
    feed(RequestIn{rid, "test", std::nullopt, q});
    return rid;
  }
  // Asks, lets the cluster settle, returns the answer.
  proto::Response call(Action a, const std::string& target) {
    const auto rid = ask(a, target);
    c.settle();
    auto it = replies.find(rid);
    EXPECT_NE(it, replies.end()) << "no answer to " << proto::action_name(a) << " " << target << " on h" << id;
    return it == replies.end() ? proto::Response{} : it->second;
  }
  // BusListener
  void on_message(NodeId from, std::string bytes) override {
    auto m = proto::decode_cluster(bytes, kClusterKeyId, kClusterKey);
    ASSERT_TRUE(m) << m.error().message();
    feed(BusMsgIn{from, std::move(*m)});
  }
  void on_view(const View& v) override { feed(BusViewIn{v}); }
  void on_quorum(bool q) override { feed(QuorumIn{q}); }
  void on_lost(const Error& e) override { feed(BusLostIn{e.message()}); }
};

Node& Cluster::add(NodeId id, std::map<Uuid, DomainInfo> domains) {
  auto n = std::make_unique<Node>(*this, id, std::move(domains));
  auto& bus = hub.add_node(id);
  bus.set_listener(n.get());
  Node& ref = *n;
  nodes[id] = std::move(n);
  ref.connect_libvirt();
  (void)bus.start();
  return ref;
}

bool Cluster::running_anywhere_else(NodeId except, const Uuid& u) {
  for (auto& [id, n] : nodes) {
    if (id == except) continue;
    auto it = n->model.find(u);
    if (it != n->model.end() && it->second.state != PowerState::shutoff) return true;
  }
  return false;
}

std::map<Uuid, DomainInfo> doms(std::initializer_list<DomainInfo> l) {
  std::map<Uuid, DomainInfo> m;
  for (const auto& d : l) m[d.uuid] = d;
  return m;
}

// h1 runs d1, h2 runs d2, h3 has d3 defined and shut off.
void standard(Cluster& c, bool all_three = true) {
  c.add(1, doms({{kD1, "d1", PowerState::running}}));
  c.add(2, doms({{kD2, "d2", PowerState::running}}));
  if (all_three) c.add(3, doms({{kD3, "d3", PowerState::shutoff}}));
  c.settle();
}

// Members of one view that completed its SYNC hold equal replicas (I3).
void expect_converged(Cluster& c) {
  std::map<std::set<NodeId>, std::string> by_view;
  for (auto& [id, n] : c.nodes) {
    if (!n->engine->synced()) continue;
    auto [it, fresh] = by_view.emplace(n->engine->members(), n->engine->digest());
    if (!fresh) {
      EXPECT_EQ(n->engine->digest(), it->second) << "h" << id << " disagrees with its view";
    }
  }
  EXPECT_EQ(c.false_offs, 0) << "an off answer was false in ground truth (I2)";
}

class Seeds : public ::testing::TestWithParam<int> {
 protected:
  Cluster c{static_cast<std::uint64_t>(GetParam())};
  void SetUp() override { c.hub.reorder_delivery_interleaving(true); }
};

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
  c[2].incarnation = 2;
  c[2].reset_engine();  // vguardd restarted with the host
  c.hub.restart(2);
  c[2].connect_libvirt();
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
  const auto bytes = proto::encode_cluster(kClusterKeyId, kClusterKey, s);
  auto m = proto::decode_cluster(bytes, kClusterKeyId, kClusterKey);
  ASSERT_TRUE(m) << m.error().message();
  const auto& back = std::get<proto::MsgSync>(*m);
  EXPECT_EQ(back.hosts, s.hosts);
  EXPECT_EQ(back.domains, s.domains);
  EXPECT_EQ(back.facts, s.facts);
  auto wrong = proto::decode_cluster(bytes, kClusterKeyId, "another-cluster-key-0123456789ab");
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, make_error_code(errc::bad_mac));
  for (std::size_t n = 0; n < bytes.size(); n += 7) EXPECT_FALSE(proto::decode_cluster(bytes.substr(0, n), kClusterKeyId, kClusterKey));
}

}  // namespace
}  // namespace vguard::fenced

namespace vguard::fenced {
namespace {
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
}  // namespace
}  // namespace vguard::fenced

namespace vguard::fenced {
namespace {
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
}  // namespace
}  // namespace vguard::fenced

namespace vguard::fenced {
namespace {
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
}  // namespace
}  // namespace vguard::fenced

namespace vguard::fenced {
namespace {
TEST_P(Seeds, RestartedLowestMemberDoesNotEraseTheReplica) {
  // h1 (the lowest id, the usual table carrier) restarts its vguardd; h3 is lost meanwhile. The restarted h1
  // has no tables: the carrier must be h2, and h3 must stay lost (not forgotten, so never "off").
  standard(c);
  c.hub.crash(3);
  c.settle();
  c.hub.kill(1);  // vguardd on h1 dies (procdown)
  c.settle();
  c[1].incarnation = 2;
  c[1].reset_engine();
  c.hub.restart(1);
  c[1].connect_libvirt();
  c.settle();
  ASSERT_TRUE(c[1].engine->synced());
  EXPECT_TRUE(c[1].engine->lost(3)) << "the restarted host learned h3's loss from the carrier";
  EXPECT_TRUE(c[2].engine->lost(3));
  EXPECT_EQ(c[1].call(Action::status, "d3").status, Status::failure);
  expect_converged(c);
}
}  // namespace
}  // namespace vguard::fenced

namespace vguard::fenced {
namespace {
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
}  // namespace
}  // namespace vguard::fenced
namespace vguard::fenced {
namespace {
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
TEST(ClusterReview, MinorityOffFromStaleConfirmation) {
  Cluster c(5);
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
}  // namespace
}  // namespace vguard::fenced
