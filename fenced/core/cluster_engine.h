#pragma once
// The cluster decision engine of vguardd (cluster mode): a replicated state machine over the agreed order of
// the cluster bus, pure and I/O-free like Engine, which it uses to act on this host's own domains.
//
// Replicated state (identical on every member that completed the same SYNC, safety-design.md §3):
//   per host   : losses (how often it left the membership), confirmed_loss (+ by whom), its last FACTS;
//   per domain : owner host, ownership epoch (grows on every change of owner, in the agreed order), name.
// Rules (each covered by tests/unit/cluster_engine_test.cpp):
// - A host is the only authority on what runs on it (its FACTS). A domain reported active by exactly one host
//   is owned by it; a change of owner raises the epoch. Reported active by two hosts: duplicate alarm, no
//   change. Active on a host while its recorded owner is lost and unconfirmed: alarm, no change.
// - A fence request accepted by any member is carried out by the host that runs the domain (FENCE), and is
//   answered only from that host's answer (FENCE_DONE), whose "off" rests on its own libvirt; an answer whose
//   epoch differs from the requester's at delivery is not evidence. Every wait has a deadline.
// - A domain whose owner left the membership is "owner lost": off/reboot/status fail with the reason until
//   the host is confirmed fenced for that loss (CONFIRM_FENCED) or rejoins and reports the domain itself.
// - Without quorum, or outside any view, no action on another host's domain and no start are allowed.
// - On every membership change all members exchange SYNC (state transfer to joiners included) and apply
//   nothing else until the SYNC of every member is delivered; the merge is a function of the SYNC set alone.
#include <map>
#include <set>

#include "bus.h"
#include "engine.h"

namespace vguard::fenced {

/// The start guard's configurable reactions ([guard] in vguard.conf).
struct GuardPolicy {
  /// One UUID active on two hosts outside a migration hand-over: always an alarm; then optionally the copy
  /// that is not the recorded owner's (the lower epoch) is paused or destroyed by its own host.
  enum class Duplicate { alert, pause, destroy } duplicate = Duplicate::alert;
  /// At libvirtd restart ("reconnect begin"), a domain running here that another host owns: alarm only, or
  /// refuse the reconnect (libvirt then kills this copy).
  enum class Reconnect { alert, refuse } reconnect = Reconnect::alert;
};

struct ClusterIdentity {
  NodeId self = 0;
  std::string hostname;
  std::uint64_t incarnation = 0;  ///< unique per vguardd start (e.g. boot time in ms)
  bool pacemaker_history = false; ///< confirm lost hosts from Pacemaker's fencing history
  /// The cluster's hosts (corosync node ids), from [cluster] nodes. Without it the view can never be known to
  /// be complete, so "shut off where it is defined" is never taken as evidence for a domain without an owner.
  std::set<NodeId> configured;
  GuardPolicy guard;
};

// Cluster inputs.
struct BusViewIn {
  View view;
};
struct BusMsgIn {
  NodeId from = 0;
  proto::ClusterMsg msg;
};
struct BusLostIn {
  std::string reason;
};
struct QuorumIn {
  bool quorate = false;
};
/// Answer to QueryFenceHistory: Unix time (s) of the host's last successful fencing, 0 if none.
struct FenceHistoryIn {
  NodeId host = 0;
  std::int64_t last_fenced = 0;
};
using ClusterInput = std::variant<RequestIn, HvConnected, HvDomain, HvLost, OpDone, Tick, BusViewIn, BusMsgIn,
                                  BusLostIn, QuorumIn, FenceHistoryIn>;
struct ClusterEvent {
  TimeMs now = 0;
  ClusterInput input;
};

class ClusterEngine {
 public:
  ClusterEngine(ClusterIdentity id, Policy policy);

  std::vector<Command> handle(const ClusterEvent& ev);

  // Introspection (tests, status).
  [[nodiscard]] bool synced() const { return synced_; }
  [[nodiscard]] bool quorate() const { return quorate_; }
  [[nodiscard]] const std::set<NodeId>& members() const { return members_; }
  [[nodiscard]] const std::map<Uuid, proto::DomainRecord>& domains() const { return domains_; }
  [[nodiscard]] const std::map<NodeId, proto::HostRecord>& hosts() const { return hosts_; }
  /// A view grants claims only when decisive: synced, and more than half of the configured hosts are stateful
  /// members, or every configured host is present (libvirt reachable) or confirmed fenced.
  [[nodiscard]] bool decisive() const;
  [[nodiscard]] bool stateful() const { return stateful_; }
  [[nodiscard]] bool lost(NodeId h) const;
  [[nodiscard]] bool confirmed(NodeId h) const;
  /// A digest of the replicated state (equal on members that completed the same SYNC).
  [[nodiscard]] std::string digest() const;

 private:
  using Out = std::vector<Command>;
  struct Remote {  // a request of ours carried out by another host
    RequestIn in;
    NodeId host = 0;
    Uuid uuid;
    std::string name;
    TimeMs deadline = 0;
    NodeId owner = 0;         // the domain's owner when routed
    std::uint64_t epoch = 0;  // and its epoch: the answer counts only if both are unchanged
    std::uint64_t mig_epoch = 0;  // and no migration may have been granted meanwhile (scenario 34)
  };
  struct Execution {  // a FENCE we carry out for another member
    NodeId requester = 0;
    std::uint64_t request = 0;
    Uuid uuid;
    std::uint64_t epoch = 0;  // routed epoch, echoed in FENCE_DONE
  };
  [[nodiscard]] bool view_complete() const;
  [[nodiscard]] bool all_present() const;  // view_complete() without the local quorum flag (replicated)

  // Start guard (claims, stability, hand-over).
  struct Claim {  // one of our hook requests, from sending until it is answered and settled
    RequestIn in;
    proto::MsgClaim msg;
    TimeMs deadline = 0;  // D_v: after it, never yes
    bool answered = false;
    bool granted = false;
    std::uint64_t epoch = 0;  // granted epoch (start) or mig_epoch (migrate)
    std::uint32_t round = 0;
    std::set<NodeId> acks;
    bool reconfirm = false;  // a membership change reset the acks: ask again after the SYNC
  };
  // `deadline`: D_v of a hook parked during a state transfer (0: a new hook, D_v counted from now).
  void hook_start(const RequestIn& r, proto::MsgClaim::Kind kind, Out& out, TimeMs deadline = 0);
  void hook_release(const RequestIn& r, Out& out);
  void hook_reconnect(const RequestIn& r, Out& out);
  [[nodiscard]] std::optional<std::string> refuse_claim(const proto::MsgClaim& c) const;
  void on_claim(NodeId from, const proto::MsgClaim& c, Out& out);
  void on_ack(NodeId from, const proto::MsgAck& a, Out& out);
  void on_release(NodeId from, const proto::MsgRelease& m, Out& out);
  void on_migrate_end(NodeId from, const proto::MsgMigrateEnd& m, Out& out);
  void check_stable(std::uint64_t id, Out& out);
  void answer_claim(Claim& c, bool yes, const std::string& why, Out& out);
  void give_up(Claim& c, Out& out);  // our hook was answered no: release what was granted
  void after_sync(Out& out);
  void handover_rules(const Uuid& u, Out& out);
  void check_duplicate(const Uuid& u, Out& out);
  void release_not_running(Out& out);
  void on_local_change(const DomainInfo& before, const DomainInfo& now, Out& out);
  [[nodiscard]] boost::json::object claim_fields(const Uuid& u) const;
  [[nodiscard]] std::string members_text() const;

  void on_request(TimeMs now, const RequestIn& r, Out& out);
  void on_view(const View& v, Out& out);
  void on_message(NodeId from, const proto::ClusterMsg& m, Out& out);
  void apply(NodeId from, const proto::ClusterMsg& m, Out& out);
  void apply_one(NodeId from, const proto::ClusterMsg& m, Out& out);
  void merge(Out& out);
  void apply_facts(const proto::Facts& f, Out& out);
  void adopt_owners(const proto::Facts& f, Out& out);
  void send_facts(Out& out);
  void forward_local(Out& out, std::vector<Command> cmds);
  void reply(Out& out, const RequestIn& r, const proto::DomainEntry* d, proto::Status st, errc code,
             std::string message, bool sync_outcome = false);
  void list(const RequestIn& r, Out& out);
  void host_list(const RequestIn& r, Out& out);
  void confirm(const RequestIn& r, Out& out);
  void fail_remotes(Out& out, const std::string& why, std::optional<NodeId> only_host);

  [[nodiscard]] bool allowed(const std::optional<proto::KeyId>& key, std::string_view n) const {
    return policy_.allowed(key, n);
  }
  [[nodiscard]] std::string key_name(const std::optional<proto::KeyId>& key) const { return policy_.key_name(key); }
  [[nodiscard]] std::string host_name(NodeId h) const;
  [[nodiscard]] bool active_in(const proto::Facts& f, const Uuid& u) const;
  [[nodiscard]] std::vector<NodeId> hosts_reporting_active(const Uuid& u) const;
  [[nodiscard]] proto::PowerState state_on(NodeId h, const Uuid& u) const;

  ClusterIdentity id_;
  Policy policy_;
  TimeMs now_ = 0;  // time of the event being handled
  Engine local_;  // acts on this host's libvirt

  // Local libvirt view (becomes our FACTS).
  bool hv_connected_ = false;
  std::map<Uuid, DomainInfo> local_domains_;
  std::uint64_t facts_seq_ = 0;

  // Membership.
  bool in_view_ = false;
  bool quorate_ = false;
  std::set<NodeId> members_;

  // SYNC round.
  bool synced_ = false;     // completed the SYNC of the current view
  bool stateful_ = false;   // completed a SYNC in a decisive view since this vguardd started
  std::size_t stateful_members_ = 0;
  std::uint64_t gen_ = 0;  // decisive generation (replicated: agreed in SYNC)
  proto::DomainRecord& touch(const Uuid& u, const std::string& name);  // a record about to change (gen_)  // members whose SYNC in this view said stateful (fixed at the merge)
  bool has_state_ = false;  // completed a SYNC since this vguardd started
  std::set<NodeId> sync_waiting_;
  std::set<NodeId> state_peers_;  // members that completed our last SYNC with us (identical tables)
  std::vector<proto::MsgSync> sync_inbox_;
  std::uint64_t view_no_ = 0;  // confchgs this process delivered: the round identity of its SYNCs (MsgSyncOk)
  std::map<NodeId, proto::MsgSync> sync_latest_;  // per member, its latest SYNC for this member list, until
                                                  // its sender confirms it current (then in sync_inbox_)
  std::map<NodeId, proto::Facts> relay_;  // others' FACTS delivered in rounds that never completed
  void complete_sync(Out& out);
  std::vector<std::pair<NodeId, proto::ClusterMsg>> buffered_;

  // Replicated state.
  std::map<NodeId, proto::HostRecord> hosts_;
  std::map<Uuid, proto::DomainRecord> domains_;

  // Requests.
  std::map<std::uint64_t, Remote> remote_;       // by our request id
  std::map<std::uint64_t, Execution> exec_;      // by synthetic local request id
  // FENCE(off/reboot) delivered in this view and not yet answered (FENCE_DONE), by (requester, request): they
  // block claims of the domain. Cleared at every confchg, so all members of a view hold the same set (a joiner
  // has none) and a requester that left ends its fences (scenarios 34, 35).
  std::map<std::pair<NodeId, std::uint64_t>, Uuid> fencing_;
  std::map<std::uint64_t, RequestIn> confirms_;  // our CONFIRM_FENCED requests, by request id
  std::uint64_t next_synthetic_ = 0;
  std::map<std::uint64_t, Claim> claims_;       // our hook claims, by request id
  std::map<Uuid, std::uint64_t> incoming_;      // migrations this process answered yes (mig_epoch), until the
                                                // target's prepare hook used the hand-over
  // This host's own evidence per domain, as local sequence numbers (what happened after what, here): our last
  // yes (start or migrate), the last start and stop libvirt reported, the last release hook.
  struct LocalRun {
    std::uint64_t yes = 0;
    std::uint64_t yes_epoch = 0;
    std::uint64_t started = 0;
    std::uint64_t stopped = 0;
    std::uint64_t hook_released = 0;
  };
  std::map<Uuid, LocalRun> runs_;
  std::uint64_t run_seq_ = 0;
  [[nodiscard]] bool stop_evidence(const Uuid& u) const;
  void settle_local(const Uuid& u, Out& out);
  struct Parked {  // a hook that arrived during a state transfer: decided once it completes
    RequestIn in;
    TimeMs deadline = 0;
  };
  std::vector<Parked> parked_;
  std::map<Uuid, std::string> alarmed_;         // duplicates already reported (by the host set), not repeated
  std::uint64_t next_policy_op_ = 0;            // DoPause/DoDestroy of the duplicate policy (own id space)
  TimeMs listed_at_ = -1;                       // when the current libvirt listing was asked for (-1: none)
  std::map<Uuid, TimeMs> yes_at_;               // when we last answered a start claim yes

  // Pacemaker fencing history: per lost host, the loss it was first observed for and the last-fence time then.
  // Only a fence newer than that baseline confirms the loss (a fence seen after the loss, never before it).
  struct Baseline {
    std::uint32_t loss = 0;
    std::int64_t fenced = 0;
  };
  std::map<NodeId, Baseline> history_;
  TimeMs next_history_poll_ = 0;
  void on_history(const FenceHistoryIn& h, Out& out);
};

}  // namespace vguard::fenced
