#include "fake_bus.h"

#include <algorithm>
#include <iterator>
#include <set>
#include <utility>

namespace vguard::fenced {

namespace {


std::string join_ids(const std::vector<NodeId>& ids) {
  std::string s;
  for (NodeId id : ids) {
    if (!s.empty()) s += ',';
    s += std::to_string(id);
  }
  return s;
}

std::string render(const View& v) {
  std::string s = "view " + join_ids(v.members);
  if (!v.joined.empty()) s += " joined=" + join_ids(v.joined);
  if (!v.left.empty()) {
    s += " left=";
    bool first = true;
    for (const auto& [id, why] : v.left) {
      if (!first) s += ',';
      first = false;
      s += std::to_string(id) + ':' + leave_reason_name(why);
    }
  }
  return s;
}

std::vector<NodeId> minus(const std::vector<NodeId>& a, const std::vector<NodeId>& b) {
  std::vector<NodeId> out;
  std::set_difference(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

std::vector<NodeId> intersect(const std::vector<NodeId>& a, const std::vector<NodeId>& b) {
  std::vector<NodeId> out;
  std::set_intersection(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(out));
  return out;
}

}  // namespace

struct FakeBusHub::Item {
  enum class Kind { message, view, quorum, lost } kind;
  std::uint64_t ticket = 0;    // global ordering position (default interleaving)
  std::uint64_t event_id = 0;  // component event id (message, view)
  NodeId from = 0;
  std::string bytes;
  View view;
  bool quorate = false;
  Error error;
};

struct FakeBusHub::Node {
  explicit Node(FakeBusHub& hub, NodeId i) : id(i), bus(hub, i) {}
  NodeId id;
  FakeBus bus;
  bool started = false;                             // the process wants to be in the group
  bool corosync_up = true;                          // not crashed
  LeaveReason down_reason = LeaveReason::nodedown;  // how it went down (what the others see)
  std::size_t group = 0;                            // connectivity group
  std::vector<NodeId> view;  // current component as ordered by the hub (empty when not running)
  std::deque<Item> queue;
  std::vector<std::string> log;
  std::vector<std::uint64_t> ids;
  std::optional<View> last_view;
  bool self_only_next = false;
  bool late_next = false;

  [[nodiscard]] bool running() const { return started && corosync_up; }
};

// ------------------------------------------------------------------------------------------------ FakeBus

Result<void> FakeBus::start() { return hub_->start_node(id_); }

Result<void> FakeBus::send(std::string bytes) { return hub_->send_from(id_, std::move(bytes)); }

// ------------------------------------------------------------------------------------------------ FakeBusHub

FakeBusHub::FakeBusHub(std::uint64_t seed)
    : rng_(seed), quorum_rule_([](std::size_t members, std::size_t total) { return members * 2 > total; }) {}

FakeBusHub::~FakeBusHub() = default;

FakeBus& FakeBusHub::add_node(NodeId id) {
  VG_ASSERT(nodes_.find(id) == nodes_.end(), "FakeBusHub::add_node: duplicate node id");
  auto n = std::make_unique<Node>(*this, id);
  FakeBus& b = n->bus;
  nodes_.emplace(id, std::move(n));
  return b;
}

FakeBus& FakeBusHub::bus(NodeId id) { return node(id).bus; }

FakeBusHub::Node& FakeBusHub::node(NodeId id) {
  auto it = nodes_.find(id);
  VG_ASSERT(it != nodes_.end(), "FakeBusHub: unknown node id");
  return *it->second;
}

const FakeBusHub::Node& FakeBusHub::node(NodeId id) const {
  auto it = nodes_.find(id);
  VG_ASSERT(it != nodes_.end(), "FakeBusHub: unknown node id");
  return *it->second;
}

Result<void> FakeBusHub::start_node(NodeId id) {
  Node& n = node(id);
  if (n.started) return {};
  n.started = true;
  if (n.corosync_up) recompute();
  return {};
}

void FakeBusHub::enqueue(Node& n, Item item) {
  item.ticket = next_ticket_++;
  n.queue.push_back(std::move(item));
}

void FakeBusHub::order_message(const std::vector<NodeId>& to, NodeId from, const std::string& bytes) {
  const std::uint64_t id = next_event_++;
  for (NodeId m : to) {
    Item it{Item::Kind::message};
    it.event_id = id;
    it.from = from;
    it.bytes = bytes;
    enqueue(node(m), std::move(it));
  }
}

Result<void> FakeBusHub::send_from(NodeId id, std::string bytes) {
  Node& n = node(id);
  if (!n.running())
    return make_error(errc::not_running, "fake bus: node " + std::to_string(id) + " not in a view");
  if (n.self_only_next) {
    n.self_only_next = false;
    order_message({id}, id, bytes);
    n.group = next_group_++;  // the ring breaks just after the send
    recompute();
    return {};
  }
  bool late = n.late_next;
  n.late_next = false;
  if (late_p_ > 0.0) {
    // Portable draw in [0, 1): 53 random bits.
    const double u = static_cast<double>(rng_() >> 11U) * (1.0 / 9007199254740992.0);
    if (u < late_p_) late = true;
  }
  const bool sender_has_held =
      std::any_of(held_.begin(), held_.end(), [id](const Held& h) { return h.from == id; });
  if (late || sender_has_held) {
    held_.push_back(Held{id, std::move(bytes), n.view});
    return {};
  }
  order_message(n.view, id, bytes);
  return {};
}

void FakeBusHub::recompute() {
  // New components: running nodes grouped by connectivity group.
  std::map<std::size_t, std::vector<NodeId>> comps;
  for (const auto& [id, n] : nodes_) {
    if (n->running()) comps[n->group].push_back(id);  // ascending: map order
  }
  std::set<NodeId> changed;  // nodes whose component changed (including nodes that went down)
  for (const auto& [id, n] : nodes_) {
    const std::vector<NodeId> now = n->running() ? comps[n->group] : std::vector<NodeId>{};
    if (now != n->view) changed.insert(id);
  }
  if (changed.empty()) return;

  // Order the confchgs, one event per changed component (and per old-view survivor set when split).
  std::map<std::vector<NodeId>, std::uint64_t> split_ids;
  for (const auto& [group, members] : comps) {
    if (std::none_of(members.begin(), members.end(), [&](NodeId m) { return changed.count(m) > 0; }))
      continue;
    const std::uint64_t comp_event = next_event_++;
    for (NodeId m : members) {
      Node& n = node(m);
      View v;
      v.members = members;
      if (n.view.empty()) {
        v.joined = {m};
      } else {
        v.joined = minus(members, n.view);
        for (NodeId gone : minus(n.view, members)) {
          const Node& g = node(gone);
          v.left.emplace_back(gone, g.running() ? LeaveReason::nodedown : g.down_reason);
        }
      }
      const bool quorate = quorum_rule_(members.size(), nodes_.size());
      if (split_ && !v.joined.empty() && !v.left.empty()) {
        View first;
        first.members = intersect(n.view, members);
        first.left = v.left;
        auto [sid, fresh] = split_ids.emplace(first.members, 0);
        if (fresh) sid->second = next_event_++;
        const bool q1 = quorum_rule_(first.members.size(), nodes_.size());
        Item a{Item::Kind::view};
        a.event_id = sid->second;
        a.view = std::move(first);
        enqueue(n, std::move(a));
        Item aq{Item::Kind::quorum};
        aq.quorate = q1;
        enqueue(n, std::move(aq));
        v.left.clear();
      }
      Item it{Item::Kind::view};
      it.event_id = comp_event;
      it.view = std::move(v);
      enqueue(n, std::move(it));
      Item q{Item::Kind::quorum};
      q.quorate = quorate;
      enqueue(n, std::move(q));
    }
  }
  for (auto& [id, n] : nodes_) n->view = n->running() ? comps[n->group] : std::vector<NodeId>{};

  // Late messages: those whose component just changed are ordered after the confchg (in send order).
  std::vector<Held> keep;
  for (Held& h : held_) {
    if (std::none_of(h.component.begin(), h.component.end(),
                     [&](NodeId m) { return changed.count(m) > 0; })) {
      keep.push_back(std::move(h));
      continue;
    }
    const Node* target = &node(h.from);
    if (!target->running()) {
      target = nullptr;
      for (NodeId m : h.component) {
        if (node(m).running()) {
          target = &node(m);
          break;
        }
      }
    }
    if (target != nullptr) order_message(target->view, h.from, h.bytes);
  }
  held_ = std::move(keep);
}

void FakeBusHub::take_down(NodeId id, LeaveReason why) {
  Node& n = node(id);
  if (!n.running()) {
    // Already out of every view: only record the new state.
    if (why == LeaveReason::nodedown)
      n.corosync_up = false;
    else
      n.started = false;
    return;
  }
  n.down_reason = why;
  n.queue.clear();
  n.self_only_next = false;
  n.late_next = false;
  if (why == LeaveReason::nodedown) {
    n.corosync_up = false;
    Item it{Item::Kind::lost};
    it.error = make_error(errc::not_running, "fake bus: corosync on node " + std::to_string(id) + " crashed");
    enqueue(n, std::move(it));
  } else {
    n.started = false;
  }
  recompute();
}

void FakeBusHub::crash(NodeId id) { take_down(id, LeaveReason::nodedown); }
void FakeBusHub::stop(NodeId id) { take_down(id, LeaveReason::leave); }
void FakeBusHub::kill(NodeId id) { take_down(id, LeaveReason::procdown); }

void FakeBusHub::restart(NodeId id) {
  Node& n = node(id);
  n.corosync_up = true;
  n.started = true;
  recompute();
}

void FakeBusHub::partition(const std::vector<std::vector<NodeId>>& groups) {
  std::set<NodeId> seen;
  std::map<NodeId, std::size_t> assign;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    for (NodeId id : groups[g]) {
      (void)node(id);  // aborts when unknown
      VG_ASSERT(seen.insert(id).second, "FakeBusHub::partition: node listed twice");
      assign[id] = g;
    }
  }
  next_group_ = std::max(next_group_, groups.size());
  for (auto& [id, n] : nodes_) {
    auto it = assign.find(id);
    n->group = it != assign.end() ? it->second : next_group_++;
  }
  recompute();
}

void FakeBusHub::heal() {
  for (auto& [id, n] : nodes_) n->group = 0;
  recompute();
}

void FakeBusHub::send_self_only_next(NodeId id) { node(id).self_only_next = true; }
void FakeBusHub::delay_next_past_view(NodeId id) { node(id).late_next = true; }

bool FakeBusHub::deliver_one(Node& n) {
  if (n.queue.empty()) return false;
  Item it = std::move(n.queue.front());
  n.queue.pop_front();
  BusListener* l = n.bus.listener();
  switch (it.kind) {
    case Item::Kind::message:
      n.log.push_back("msg " + std::to_string(it.from) + ':' + it.bytes);
      n.ids.push_back(it.event_id);
      if (l != nullptr) l->on_message(it.from, std::move(it.bytes));
      break;
    case Item::Kind::view:
      n.log.push_back(render(it.view));
      n.ids.push_back(it.event_id);
      n.last_view = it.view;
      if (l != nullptr) l->on_view(it.view);
      break;
    case Item::Kind::quorum:
      n.log.push_back(it.quorate ? "quorum 1" : "quorum 0");
      if (l != nullptr) l->on_quorum(it.quorate);
      break;
    case Item::Kind::lost:
      n.log.push_back("lost " + it.error.message());
      if (l != nullptr) l->on_lost(it.error);
      break;
  }
  return true;
}

bool FakeBusHub::step() {
  std::vector<Node*> ready;
  for (auto& [id, n] : nodes_) {
    if (!n->queue.empty()) ready.push_back(n.get());
  }
  if (ready.empty()) return false;
  Node* pick = nullptr;
  if (interleave_) {
    pick = ready[static_cast<std::size_t>(rng_() % ready.size())];
  } else {
    pick = *std::min_element(ready.begin(), ready.end(), [](const Node* a, const Node* b) {
      return a->queue.front().ticket < b->queue.front().ticket;
    });
  }
  return deliver_one(*pick);
}

bool FakeBusHub::step(NodeId id) { return deliver_one(node(id)); }

std::size_t FakeBusHub::run_until_idle(std::size_t max_steps) {
  std::size_t steps = 0;
  while (steps < max_steps && step()) ++steps;
  return steps;
}

std::size_t FakeBusHub::pending() const {
  std::size_t total = 0;
  for (const auto& [id, n] : nodes_) total += n->queue.size();
  return total;
}

std::vector<std::string> FakeBusHub::delivered(NodeId id) const { return node(id).log; }
std::vector<std::uint64_t> FakeBusHub::delivered_ids(NodeId id) const { return node(id).ids; }
std::vector<NodeId> FakeBusHub::members(NodeId id) const { return node(id).view; }
std::optional<View> FakeBusHub::last_view(NodeId id) const { return node(id).last_view; }
bool FakeBusHub::running(NodeId id) const { return node(id).running(); }

std::vector<NodeId> FakeBusHub::nodes() const {
  std::vector<NodeId> out;
  for (const auto& [id, n] : nodes_) out.push_back(id);
  return out;
}

}  // namespace vguard::fenced
