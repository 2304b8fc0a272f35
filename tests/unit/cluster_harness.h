// Test harness for the cluster engine: N ClusterEngines over the in-process FakeBusHub, each host with a model
// hypervisor as ground truth (safety-scenarios.md). Invariants checked by the harness:
//   I1 after every event any engine handles (Cluster::i1_step), I2 at every answer (Node::run),
//   I3 when a scenario calls expect_converged().
// Shared by the scenario suites in tests/unit/cluster_*_test.cpp; each suite derives its own fixture from
// SeedFixture and instantiates it over seeds.
#pragma once

#include <gtest/gtest.h>

#include <boost/json/serialize.hpp>

#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "cluster_engine.h"
#include "cluster_msg.h"
#include "fake_bus.h"
#include "key.h"

namespace vguard::fenced::harness {

using proto::Action;
using proto::PowerState;
using proto::Status;

inline const std::string kClusterKey = "cluster-key-for-tests-0123456789";
inline const proto::KeyId kClusterKeyId = proto::key_id_of(kClusterKey);
inline const Uuid kD1 = *Uuid::parse("d1000000-0000-0000-0000-000000000001");
inline const Uuid kD2 = *Uuid::parse("d2000000-0000-0000-0000-000000000002");
inline const Uuid kD3 = *Uuid::parse("d3000000-0000-0000-0000-000000000003");

struct Node;

struct Cluster {
  FakeBusHub hub;
  std::map<NodeId, std::unique_ptr<Node>> nodes;
  TimeMs now = 1000;
  int false_offs = 0;  // I2 violations
  // I1, checked after every event any engine handles: no UUID active in ground truth on two hosts unless some
  // replica records a hand-over for it. Scenarios that start an unguarded copy on purpose switch it off.
  std::set<NodeId> configured{1, 2, 3};  // [cluster] nodes of every engine (set before add())
  std::map<NodeId, std::string> hostname;  // overrides the default "h<id>" (set before add())
  bool check_i1 = true;
  int double_active = 0;
  // I4 (every hook answer and fence outcome is in the log before the answer; a yes or an "off" only after an
  // fsync'd record) and I5 (no claim answered yes after D_v or before every member of the view holds the
  // grant in its replica), checked at every answer. Each entry names the violation.
  std::vector<std::string> i4_i5;
  void i1_step();
  explicit Cluster(std::uint64_t seed) : hub(seed) {}
  Node& add(NodeId id, std::map<Uuid, DomainInfo> domains);
  Node& operator[](NodeId id) { return *nodes.at(id); }
  void settle() { hub.run_until_idle(); }
  bool running_anywhere_else(NodeId except, const Uuid& u);
  // vguardd on `id` comes back as a new process (new incarnation, empty engine) after it died: it rejoins the
  // group and reconnects to its libvirt.
  void restart_vguardd(NodeId id);
};

// Every request the harness asks carries this budget; a claim's D_v is the budget minus the engine's margin.
inline constexpr std::uint32_t kBudgetMs = 10000;
inline constexpr TimeMs kClaimDv = kBudgetMs - 500;

struct Node final : BusListener {
  Cluster& c;
  NodeId id;
  std::uint64_t incarnation = 1;
  std::unique_ptr<ClusterEngine> engine;
  std::map<Uuid, DomainInfo> model;  // this host's libvirt (ground truth)
  std::map<std::uint64_t, proto::Response> replies;
  std::map<std::uint64_t, Action> asked;
  std::map<std::uint64_t, std::string> asked_target;
  std::map<std::uint64_t, TimeMs> asked_at;
  std::set<std::uint64_t> claimed;  // requests this host sent a CLAIM for
  std::set<std::pair<NodeId, std::uint64_t>> claims_delivered;  // (requester, request), kept across restarts
  // Request ids of the audit records this host emitted so far, and which of them were fsync'd.
  std::set<std::uint64_t> audited, audited_sync;
  std::vector<std::string> alarms;
  std::uint64_t next_request = 1;
  GuardPolicy guard;

  Node(Cluster& cl, NodeId n, std::map<Uuid, DomainInfo> m) : c(cl), id(n), model(std::move(m)) { reset_engine(); }
  void reset_engine() {
    Policy p;
    engine = std::make_unique<ClusterEngine>(
        ClusterIdentity{id, c.hostname.count(id) ? c.hostname.at(id) : "h" + std::to_string(id), incarnation, false,
                        c.configured, guard},
        p);
  }
  void feed(ClusterInput in) {
    run(engine->handle(ClusterEvent{c.now, std::move(in)}));
    c.i1_step();
  }
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
        if (auto* cl = std::get_if<proto::MsgClaim>(&m->msg)) claimed.insert(cl->request);
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
        check_i4_i5(r->request, r->response);
        replies[r->request] = r->response;
      } else if (auto* au = std::get_if<Audit>(&cmd)) {
        if (au->type == "alarm") alarms.push_back(boost::json::serialize(au->fields));
        if (const auto* rq = au->fields.if_contains("request"); rq && rq->is_number()) {
          const auto rid = rq->to_number<std::uint64_t>();
          audited.insert(rid);
          if (au->sync) audited_sync.insert(rid);
        }
      }
    }
  }
  void check_i4_i5(std::uint64_t rid, const proto::Response& r);
  std::uint64_t ask(Action a, const std::string& target) {
    proto::Request q;
    q.action = a;
    q.target = target;
    q.budget_ms = kBudgetMs;
    const std::uint64_t rid = next_request++;
    asked[rid] = a;
    asked_target[rid] = target;
    asked_at[rid] = c.now;
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
    if (auto* cl = std::get_if<proto::MsgClaim>(&*m)) claims_delivered.emplace(cl->requester, cl->request);
    feed(BusMsgIn{from, std::move(*m)});
  }
  void on_view(const View& v) override { feed(BusViewIn{v}); }
  void on_quorum(bool q) override { feed(QuorumIn{q}); }
  void on_lost(const Error& e) override { feed(BusLostIn{e.message()}); }
};

inline Node& Cluster::add(NodeId id, std::map<Uuid, DomainInfo> domains) {
  auto n = std::make_unique<Node>(*this, id, std::move(domains));
  auto& bus = hub.add_node(id);
  bus.set_listener(n.get());
  Node& ref = *n;
  nodes[id] = std::move(n);
  ref.connect_libvirt();
  (void)bus.start();
  return ref;
}

inline void Node::check_i4_i5(std::uint64_t rid, const proto::Response& r) {
  const Action a = asked.count(rid) ? asked[rid] : Action::status;
  const bool hook = a == Action::hook_prepare || a == Action::hook_migrate || a == Action::hook_release ||
                    a == Action::hook_reconnect;
  const bool fence = a == Action::off || a == Action::reboot || a == Action::on;
  const std::string where = "h" + std::to_string(id) + " request " + std::to_string(rid) + " (" +
                            std::string(proto::action_name(a)) + ")";
  if ((hook || fence) && !audited.count(rid)) c.i4_i5.push_back("I4: answered before it was logged: " + where);
  const bool yes = r.status == Status::success;
  if (((hook && yes && a != Action::hook_release) || (fence && r.status != Status::failure)) &&
      !audited_sync.count(rid))
    c.i4_i5.push_back("I4: answered before an fsync'd record: " + where);
  if (!yes || !claimed.count(rid)) return;
  // I5: a claim's yes, before D_v, with the grant in the replica of every member of this host's view.
  if (c.now > asked_at[rid] + kClaimDv) c.i4_i5.push_back("I5: yes after D_v: " + where);
  const auto u = Uuid::parse(asked_target[rid]);
  if (!u) return;
  // A member holds it if it delivered the CLAIM (granted at delivery) or has it in its replica (learned
  // through a SYNC after a view change).
  for (NodeId m : engine->members()) {
    const Node& mn = *c.nodes.at(m);
    const auto& reps = mn.engine->domains();
    const auto it = reps.find(*u);
    const bool holds = mn.claims_delivered.count({id, rid}) ||
                       (it != reps.end() &&
                        (a == Action::hook_migrate ? it->second.mig_target == id : it->second.owner == id));
    if (!holds) c.i4_i5.push_back("I5: yes before h" + std::to_string(m) + " holds the grant: " + where);
  }
}

inline void Cluster::i1_step() {
  if (!check_i1) return;
  std::map<Uuid, int> active;
  for (auto& [id, n] : nodes)
    for (const auto& [u, d] : n->model)
      if (d.state != PowerState::shutoff) ++active[u];
  for (const auto& [u, count] : active) {
    if (count < 2) continue;
    bool handover = false;
    for (auto& [id, n] : nodes) {
      if (!n->engine) continue;
      auto it = n->engine->domains().find(u);
      handover |= it != n->engine->domains().end() && it->second.mig_phase != 0;
    }
    if (!handover) ++double_active;
  }
}

inline void Cluster::restart_vguardd(NodeId id) {
  Node& n = *nodes.at(id);
  ++n.incarnation;
  n.reset_engine();
  hub.restart(id);
  n.connect_libvirt();
}

inline bool Cluster::running_anywhere_else(NodeId except, const Uuid& u) {
  for (auto& [id, n] : nodes) {
    if (id == except) continue;
    auto it = n->model.find(u);
    if (it != n->model.end() && it->second.state != PowerState::shutoff) return true;
  }
  return false;
}

inline std::map<Uuid, DomainInfo> doms(std::initializer_list<DomainInfo> l) {
  std::map<Uuid, DomainInfo> m;
  for (const auto& d : l) m[d.uuid] = d;
  return m;
}

// h1 runs d1, h2 runs d2, h3 has d3 defined and shut off.
inline void standard(Cluster& c, bool all_three = true) {
  c.add(1, doms({{kD1, "d1", PowerState::running}}));
  c.add(2, doms({{kD2, "d2", PowerState::running}}));
  if (all_three) c.add(3, doms({{kD3, "d3", PowerState::shutoff}}));
  c.settle();
}

// Members of one view that completed its SYNC hold equal replicas (I3).
inline void expect_converged(Cluster& c) {
  std::map<std::set<NodeId>, std::string> by_view;
  for (auto& [id, n] : c.nodes) {
    if (!n->engine->synced()) continue;
    auto [it, fresh] = by_view.emplace(n->engine->members(), n->engine->digest());
    if (!fresh) {
      EXPECT_EQ(n->engine->digest(), it->second) << "h" << id << " disagrees with its view";
    }
  }
  EXPECT_EQ(c.false_offs, 0) << "an off answer was false in ground truth (I2)";
  EXPECT_EQ(c.double_active, 0) << "a domain was active on two hosts outside a hand-over (I1)";
  for (const auto& v : c.i4_i5) ADD_FAILURE() << v;
}

// Base of the seeded scenario suites: every seed gives another random delivery interleaving.
class SeedFixture : public ::testing::TestWithParam<int> {
 protected:
  Cluster c{static_cast<std::uint64_t>(GetParam())};
  void SetUp() override { c.hub.reorder_delivery_interleaving(true); }
};

// ---- start-guard helpers ----
inline const Uuid kV = *Uuid::parse("7e000000-0000-4000-8000-0000000000aa");

// Hosts that have kV active in ground truth.
inline std::vector<NodeId> active_on(Cluster& c, const Uuid& u = kV) {
  std::vector<NodeId> out;
  for (auto& [id, n] : c.nodes) {
    auto it = n->model.find(u);
    if (it != n->model.end() && it->second.state != PowerState::shutoff) out.push_back(id);
  }
  return out;
}

// Three hosts, kV defined (shut off) on each, as on shared storage.
inline void guarded(Cluster& c) {
  for (NodeId n : {1u, 2u, 3u}) c.add(n, doms({{kV, "v", PowerState::shutoff}}));
  c.settle();
}

inline std::uint64_t hook(Node& n, Action a, const Uuid& u = kV) { return n.ask(a, u.str()); }
inline std::optional<proto::Response> answer(Node& n, std::uint64_t rid) {
  auto it = n.replies.find(rid);
  if (it == n.replies.end()) return std::nullopt;
  return it->second;
}
inline bool yes(Node& n, std::uint64_t rid) {
  auto a = answer(n, rid);
  return a && a->status == Status::success;
}
// libvirt starts the domain after a yes, or stops it and runs the release hook.
inline void start_here(Node& n, const Uuid& u = kV) { n.set_state(u, PowerState::running); }
inline void stop_here(Node& n, const Uuid& u = kV) {
  n.set_state(u, PowerState::shutoff);
  hook(n, Action::hook_release, u);
}
inline const proto::DomainRecord& rec(Node& n, const Uuid& u = kV) { return n.engine->domains().at(u); }
inline void tick(Cluster& c) {
  for (auto& [id, n] : c.nodes) n->feed(Tick{});
}

}  // namespace vguard::fenced::harness
