#pragma once
// The decision engine of vguardd: pure, single-threaded, no I/O (STYLE.md §1-2). Every safety rule of
// standalone mode lives here: who may act on which domain, when a domain counts as off, what is answered
// when the hypervisor cannot be reached. The runtime feeds it Events and carries out its Commands in order;
// an Audit command always precedes the Reply it justifies, so the forensic record is written first.
#include <boost/json/object.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "cluster_msg.h"
#include "hypervisor.h"
#include "log.h"
#include "message.h"
#include "result.h"
#include "uuid.h"

namespace vguard::fenced {

using TimeMs = std::int64_t;  ///< monotonic milliseconds (deadlines only; never replicated)

/// What the engine needs from the configuration.
struct Policy {
  struct KeyRule {
    std::string name;                ///< the config section name, for logs
    std::vector<std::string> allow;  ///< globs over domain names and UUIDs; empty = nothing (deny by default)
  };
  std::map<proto::KeyId, KeyRule> keys;
  std::uint32_t default_budget_ms = 30000;
  std::uint32_t max_budget_ms = 300000;

  /// Deny by default: a key may act on a domain only if one of its globs matches the name or the UUID text.
  /// nullopt (the root-only control socket) may act on everything.
  [[nodiscard]] bool allowed(const std::optional<proto::KeyId>& key, std::string_view name_or_uuid) const;
  /// The key's section name for logs ("local-root" for the control socket, hex id for an unknown key).
  [[nodiscard]] std::string key_name(const std::optional<proto::KeyId>& key) const;
};

/// off, reboot and on change a domain's power state (their outcomes are fsync'd before the reply).
bool is_fence_action(proto::Action a);
/// "success", "failure", "off", "denied": the forensic log's result words.
std::string_view status_word(proto::Status s);

// ---- inputs ----
/// A request that passed framing, MAC and replay checks.
struct RequestIn {
  std::uint64_t id = 0;
  std::string requester;             ///< peer address, for the log
  std::optional<proto::KeyId> key;   ///< nullopt: the local root control socket (full rights)
  proto::Request request;
};
/// The hypervisor connection is up; domains is a listing taken after the event subscription.
struct HvConnected {
  std::vector<DomainInfo> domains;
  /// When the listing was asked for (monotonic ms; 0 = unknown). A start granted after it may not show yet.
  TimeMs listed_at = 0;
};
/// A lifecycle event.
struct HvDomain {
  DomainInfo info;
};
/// The hypervisor connection dropped (or a connect attempt failed while it was down).
struct HvLost {
  std::string reason;
};
/// A DoDestroy / DoStart / DoQuery finished. ok means the hypervisor confirmed the target state (destroy:
/// shut off; start: active) or, for a query, answered with `state`.
struct OpDone {
  std::uint64_t op = 0;
  bool ok = false;
  std::string error;                          ///< reason when !ok
  errc code = errc::operation_failed;         ///< why, when !ok
  proto::PowerState state = proto::PowerState::unknown;  ///< DoQuery's answer
};
/// Timer tick: expire deadlines.
struct Tick {};

using Input = std::variant<RequestIn, HvConnected, HvDomain, HvLost, OpDone, Tick>;
struct Event {
  TimeMs now = 0;
  Input input;
};

// ---- outputs ----
/// Append a forensic record; sync = fsync before anything after it happens.
struct Audit {
  std::string type;
  boost::json::object fields;
  bool sync = false;
};
struct LogLine {
  Level level = Level::info;
  std::string text;
};
/// Destroy the domain; answer OpDone{op} once the hypervisor reports it shut off (or fails).
struct DoDestroy {
  std::uint64_t op = 0;
  Uuid uuid;
};
/// Start the domain; answer OpDone{op}.
struct DoStart {
  std::uint64_t op = 0;
  Uuid uuid;
};
/// Pause the domain (duplicate policy "pause"); answer OpDone{op} once the hypervisor reports it paused.
struct DoPause {
  std::uint64_t op = 0;
  Uuid uuid;
};
/// Ask the hypervisor for the domain's current state; answer OpDone{op, ok, state}.
struct DoQuery {
  std::uint64_t op = 0;
  Uuid uuid;
};
/// Answer request `request` (the runtime adds the nonce and signs).
struct Reply {
  std::uint64_t request = 0;
  proto::Response response;
};
/// Multicast a message to the cluster (agreed order). Only the cluster engine emits it.
struct SendMsg {
  proto::ClusterMsg msg;
};
/// Ask Pacemaker's fencing history when `host` was last fenced; answer FenceHistoryIn. Cluster engine only.
struct QueryFenceHistory {
  std::uint32_t host = 0;
  std::string name;
};
using Command =
    std::variant<Audit, LogLine, DoDestroy, DoStart, DoPause, DoQuery, Reply, SendMsg, QueryFenceHistory>;

class Engine {
 public:
  explicit Engine(Policy policy) : policy_(std::move(policy)) {}

  /// Feeds one event; returns the commands to carry out, in order.
  std::vector<Command> handle(const Event& ev);

  // Introspection for tests and status output.
  [[nodiscard]] bool hypervisor_connected() const { return connected_; }
  [[nodiscard]] std::size_t pending() const {
    std::size_t n = pending_.size();
    for (const auto& [u, q] : waiting_) n += q.size();
    return n;
  }
  [[nodiscard]] std::optional<DomainInfo> domain(const Uuid& u) const;

 private:
  // One request on one domain, in flight or waiting its turn. Requests on the same domain run one at a time
  // (a status must not read a state that a running start is about to change; an off must not overtake an on).
  enum class Phase { queued, query, destroy, start };
  struct Pending {
    std::uint64_t request = 0;
    proto::Action action = proto::Action::status;
    DomainInfo target;
    TimeMs deadline = 0;
    std::uint64_t op = 0;
    Phase phase = Phase::queued;
  };
  using Out = std::vector<Command>;

  void on_request(TimeMs now, const RequestIn& r, Out& out);
  void on_op_done(const OpDone& d, Out& out);
  void on_tick(TimeMs now, Out& out);
  void on_connected(const HvConnected& c, Out& out);
  void on_lost(const HvLost& l, Out& out);
  void on_domain(const DomainInfo& d, Out& out);

  [[nodiscard]] bool allowed(const std::optional<proto::KeyId>& key, std::string_view n) const {
    return policy_.allowed(key, n);
  }
  [[nodiscard]] std::string key_name(const std::optional<proto::KeyId>& key) const { return policy_.key_name(key); }
  void list(const RequestIn& r, Out& out);
  void finish(Out& out, std::uint64_t request, proto::Action action, const DomainInfo* d, proto::Status st,
              errc code, std::string message);
  void decide(Out& out, std::uint64_t request, const DomainInfo& d, std::string_view decision,
              std::string_view reason);
  void begin(Pending p, Out& out);            // first step of a request whose domain is free
  void step(Pending p, Out& out);             // issues the command of p.phase and parks p under a new op
  void complete(const Pending& p, Out& out);  // p answered: start the next waiting request on its domain

  Policy policy_;
  bool connected_ = false;
  std::string disconnect_reason_ = "not connected yet";
  std::map<Uuid, DomainInfo> domains_;
  std::map<std::uint64_t, Pending> pending_;          // in flight, by op id
  std::map<Uuid, std::vector<Pending>> waiting_;       // queued behind the one in flight, per domain
  std::map<Uuid, std::uint64_t> busy_;                 // domain -> op in flight
  std::map<std::uint64_t, Uuid> late_;                 // ops whose request timed out, still running
  std::uint64_t next_op_ = 1;
};

}  // namespace vguard::fenced
