#pragma once
// An in-process corosync CPG for tests (STYLE.md §2: "vqsim inside GoogleTest"): N FakeBus endpoints on one
// FakeBusHub, with total order per partition, partitions and heals, crashes, clean leaves, and the two CPG
// anomalies of safety-design.md §2 (non-uniform "self-only" delivery and "late" delivery after a confchg).
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "bus.h"

namespace vguard::fenced {

class FakeBusHub;

/// One node's endpoint. Created and owned by FakeBusHub::add_node(); its address is stable for the hub's
/// lifetime. Every call forwards to the hub, so the contract is documented there.
class FakeBus final : public Bus {
 public:
  FakeBus(FakeBusHub& hub, NodeId id) : hub_(&hub), id_(id) {}
  ~FakeBus() override = default;

  /// Replaces the listener (may be null: events are then logged but reach nobody). May be called at any
  /// time, e.g. to attach a fresh engine before FakeBusHub::restart() or a second start().
  void set_listener(BusListener* l) override { listener_ = l; }
  /// The process joins the group: idempotent while started; a no-op apart from recording the wish while the
  /// node's corosync is crashed (the join then happens at FakeBusHub::restart()). Never fails.
  Result<void> start() override;
  /// Orders a message in this node's component (nothing is delivered inside send()). errc::not_running before
  /// start(), after stop()/kill(), and while crashed. Never fails otherwise (TRY_AGAIN is the adapter's
  /// business, not the bus's).
  Result<void> send(std::string bytes) override;
  [[nodiscard]] NodeId local_node() const override { return id_; }

  [[nodiscard]] BusListener* listener() const { return listener_; }

 private:
  FakeBusHub* hub_;
  NodeId id_;
  BusListener* listener_ = nullptr;
};

/// The simulated cluster. Single-threaded and deterministic: the same seed and the same sequence of calls
/// give the same deliveries, byte for byte.
///
/// ## Model
/// - *Connectivity groups*: every node added to the hub belongs to one group (initially all in one group).
///   partition() and heal() change the groups. A node is *running* when its process has called start() (and
///   not stop()/kill()) and its corosync is up (not crash()ed since the last restart()).
/// - *Components*: the running nodes of one group form one component (one CPG view). Each component has its
///   own total order of *events*: confchgs (views) and messages. An event is *ordered* when it is appended to
///   the delivery queue of every current member of its component; it is delivered later, by step().
///   Consequently every member of a component delivers the same events in the same order, and for any two
///   nodes the events they both deliver appear in the same relative order (checked by the unit tests).
/// - *Nothing is delivered inside send() or a membership call*: they only order events. The test drives
///   delivery with step() / run_until_idle(). Listeners may call send() and any hub control from inside a
///   callback; the effect is ordered after the event being delivered.
/// - *Delivery interleaving*: by default step() delivers the event that was ordered first across all queues
///   (one global FIFO, which still respects every per-node order). With reorder_delivery_interleaving(true),
///   step() picks the node to deliver next with the seeded RNG; each node's own queue is still FIFO, so only
///   the interleaving between nodes varies (the "delay" of CPG delivery on one host relative to another).
/// - *No drops inside a view*: CPG never drops a message within a view, and neither does the fake. The only
///   ways a message reaches fewer than all members are the two faults below and a crash (the crashed node's
///   undelivered events are discarded).
///
/// ## Membership changes (confchg)
/// Every membership call recomputes the components. Each running node whose component membership changed gets
/// one confchg, ordered after everything already ordered for it:
/// - View::members = the new component (sorted); View::joined = new members not in the node's previous view
///   (CPG's NODEUP after a heal, or a process join), except that a node entering from no view (start(),
///   restart()) sees joined = {itself}; View::left = previous members not in the new component, with:
///   crash → nodedown, stop → leave, kill → procdown, still running but partitioned away → nodedown.
/// - Members of a merged component come from different previous views, so their joined/left lists differ
///   (both sides of a heal see "the others joined"), but the members list and the position of the confchg
///   in the component order are the same: the confchg is one event (one id, see delivered_ids()).
/// - With split_view_changes(true), a node that sees both departures and arrivals gets two confchgs, the way
///   corosync splits one ring change (left first with members = the survivors of its old view, then joined
///   with members = the new component). Default: one confchg with both lists.
/// - After each confchg the node gets on_quorum(rule(members, total)), where total is the number of nodes
///   ever added to the hub and the default rule is members * 2 > total. It is a separate step() and is not
///   part of the component order (libquorum is not ordered with CPG).
///
/// ## Faults
/// - crash(n): n's corosync dies. n's undelivered events are discarded, n's listener gets on_lost (its only
///   remaining callback), send() fails with not_running; the others see n leave with nodedown. restart(n)
///   brings corosync back; if the process is started (it still is after a crash) n joins again.
/// - stop(n): clean cpg_leave of the process: the others see leave; kill(n): the process dies, corosync
///   lives: the others see procdown. In both cases n's undelivered events are discarded and n's listener gets
///   nothing more; start() (or restart()) joins again as a fresh process.
/// - send_self_only_next(n) ("self-only", non-uniform delivery): n's next message is ordered for n only, then
///   n is isolated in a group of its own (a ring break just after the send): n delivers the message and then
///   a confchg where everybody else left with nodedown; the others deliver what was ordered before it, then
///   a confchg where n left with nodedown, and never the message (not even after a heal).
/// - delay_next_past_view(n) ("late"): n's next message is held. It and every later message n sends while it
///   is held (per-sender FIFO is preserved) are ordered right after the next confchg of the component n sent
///   them in, for every member of the component that then contains n, the sender included (so also for
///   nodes that just joined). If n itself left in that change (crash/stop/kill), they go to the component
///   holding the lowest-id survivor of the old component (a message delivered after its sender's leave), or
///   nowhere if nobody survived. Messages of other senders sent meanwhile are delivered before the confchg.
///   A held message whose component never changes is never delivered (see held_count()).
/// - late_probability(p): every message is "late" with probability p (seeded RNG), in addition to the
///   explicit delay_next_past_view().
///
/// ## Introspection
/// delivered(n) is n's delivery log, one line per callback:
///   "view 1,2,3"                          members only, when joined and left are empty
///   "view 1,2,3 joined=3"                 "view 1,2 left=3:nodedown,4:leave"   (both parts when both apply)
///   "msg 2:<bytes>"                       sender id, then the bytes verbatim
///   "quorum 1" / "quorum 0"
///   "lost <error message>"
/// The log survives crashes and restarts (it is the whole history of that endpoint).
class FakeBusHub {
 public:
  using QuorumRule = std::function<bool(std::size_t members, std::size_t total)>;

  explicit FakeBusHub(std::uint64_t seed);
  FakeBusHub(const FakeBusHub&) = delete;
  FakeBusHub& operator=(const FakeBusHub&) = delete;
  ~FakeBusHub();

  /// Creates the endpoint for `id` (not started: call bus.start()). The node is connected to the first
  /// group of the last partition() (to everybody when there was none). Aborts on a duplicate id.
  FakeBus& add_node(NodeId id);
  /// The endpoint of `id` (aborts when unknown).
  FakeBus& bus(NodeId id);

  // --- delivery ---
  /// Delivers the next event to one listener; false when no node has anything to deliver.
  bool step();
  /// Delivers the next event of node `id` only; false when its queue is empty.
  bool step(NodeId id);
  /// step() until idle or `max_steps`; returns the number of steps taken (== max_steps means not idle).
  std::size_t run_until_idle(std::size_t max_steps = 1000000);
  /// Events ordered but not yet delivered, over all nodes.
  [[nodiscard]] std::size_t pending() const;

  // --- membership ---
  /// Splits the cluster into the given groups (each id at most once; ids not listed are isolated alone).
  void partition(const std::vector<std::vector<NodeId>>& groups);
  /// Reconnects everybody into one group.
  void heal();
  /// The host's corosync dies (peers see nodedown; the node gets on_lost).
  void crash(NodeId id);
  /// Clean leave of the process (peers see leave).
  void stop(NodeId id);
  /// The process dies, corosync stays (peers see procdown).
  void kill(NodeId id);
  /// Brings back a crashed, stopped or killed node: corosync up, process started, joins its group.
  void restart(NodeId id);
  /// Replaces the quorum rule (default: members * 2 > total).
  void set_quorum_rule(QuorumRule rule) { quorum_rule_ = std::move(rule); }

  // --- faults ---
  void send_self_only_next(NodeId id);
  void delay_next_past_view(NodeId id);
  void late_probability(double p) { late_p_ = p; }
  void reorder_delivery_interleaving(bool on) { interleave_ = on; }
  void split_view_changes(bool on) { split_ = on; }

  // --- introspection ---
  /// n's delivery log (format in the class comment).
  [[nodiscard]] std::vector<std::string> delivered(NodeId id) const;
  /// Ids of the views and messages n delivered, in delivery order. A message or a confchg has the same id on
  /// every node that delivers it (a split confchg's first half has its own id).
  [[nodiscard]] std::vector<std::uint64_t> delivered_ids(NodeId id) const;
  /// n's current component as ordered by the hub (may be ahead of what n's listener has seen); empty when n
  /// is not running.
  [[nodiscard]] std::vector<NodeId> members(NodeId id) const;
  /// The last view n's listener was given, if any.
  [[nodiscard]] std::optional<View> last_view(NodeId id) const;
  [[nodiscard]] bool running(NodeId id) const;
  /// Late messages still held (waiting for a confchg of their component).
  [[nodiscard]] std::size_t held_count() const { return held_.size(); }
  /// All node ids, ascending.
  [[nodiscard]] std::vector<NodeId> nodes() const;

 private:
  friend class FakeBus;
  struct Item;
  struct Node;
  struct Held {
    NodeId from;
    std::string bytes;
    std::vector<NodeId> component;  // the sender's component when it sent
  };

  Result<void> start_node(NodeId id);
  Result<void> send_from(NodeId id, std::string bytes);
  Node& node(NodeId id);
  [[nodiscard]] const Node& node(NodeId id) const;
  void recompute();
  void enqueue(Node& n, Item item);
  void order_message(const std::vector<NodeId>& to, NodeId from, const std::string& bytes);
  void take_down(NodeId id, LeaveReason why);
  bool deliver_one(Node& n);

  std::mt19937_64 rng_;
  std::map<NodeId, std::unique_ptr<Node>> nodes_;
  std::vector<Held> held_;
  QuorumRule quorum_rule_;
  std::uint64_t next_ticket_ = 1;
  std::uint64_t next_event_ = 1;
  std::size_t next_group_ = 1;
  double late_p_ = 0.0;
  bool interleave_ = false;
  bool split_ = false;
};

}  // namespace vguard::fenced
