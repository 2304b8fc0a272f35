#include "cluster_engine.h"

#include <fmt/format.h>

#include <algorithm>

#include "crypto.h"
#include "key.h"

namespace vguard::fenced {
namespace {

using proto::Action;
using proto::PowerState;
using proto::Status;

constexpr std::uint64_t kSyntheticBit = 1ULL << 63;  // local Engine request ids we use for remote FENCEs

bool is_fence(Action a) { return is_fence_action(a); }

bool newer(const proto::Facts& a, const proto::Facts& b) {
  return std::tie(a.incarnation, a.seq) > std::tie(b.incarnation, b.seq);
}

constexpr std::uint64_t kPolicyBit = 1ULL << 62;  // op ids of duplicate-policy actions (Engine uses small ids)
constexpr TimeMs kClaimMargin = 500;               // D_v = the hook's deadline minus this

// Which of two records of one domain is later in its history (the merge keeps it): the epoch, then the
// hand-over, then the step inside it: granted < switched < settled owner < released.
// A record last changed by a decisive view outranks any change made since by a side that was not decisive
// (e.g. the release of a claim that only its sender ever delivered).
std::tuple<std::uint64_t, std::uint64_t, std::uint64_t, int> order_key(const proto::DomainRecord& d) {
  const int rank = d.mig_phase == 1 ? 1 : d.mig_phase == 2 ? 2 : d.owner != 0 ? 3 : 4;
  return {d.gen, d.epoch, d.mig_epoch, rank};
}

bool active_state(PowerState s) { return s != PowerState::shutoff; }

}  // namespace

ClusterEngine::ClusterEngine(ClusterIdentity id, Policy policy)
    : id_(std::move(id)), policy_(policy), local_(std::move(policy)) {}

bool ClusterEngine::lost(NodeId h) const {
  if (members_.count(h)) return false;
  auto it = hosts_.find(h);
  return it != hosts_.end() && it->second.losses > 0 && !confirmed(h);
}

bool ClusterEngine::confirmed(NodeId h) const {
  if (members_.count(h)) return false;
  auto it = hosts_.find(h);
  if (it == hosts_.end() || it->second.losses == 0 || it->second.confirmed_loss != it->second.losses) return false;
  // Loss numbers are counted per partition; what identifies the loss that was confirmed is the host's last
  // report the confirmer had. Newer FACTS (it ran again, seen by any side) void the confirmation.
  const auto& f = it->second.facts;
  const std::uint64_t inc = f ? f->incarnation : 0, seq = f ? f->seq : 0;
  return inc == it->second.confirmed_incarnation && seq == it->second.confirmed_seq;
}

std::string ClusterEngine::host_name(NodeId h) const {
  if (h == 0) return "-";
  auto it = hosts_.find(h);
  if (it != hosts_.end() && !it->second.hostname.empty()) return it->second.hostname;
  return "node" + std::to_string(h);
}

namespace {
// FACTS entries are sorted by UUID (built from a std::map, checked at decode): bisect, since the merge asks
// this for every domain of every host.
const proto::FactsEntry* find_entry(const proto::Facts& f, const Uuid& u) {
  const auto it = std::lower_bound(f.entries.begin(), f.entries.end(), u,
                                   [](const proto::FactsEntry& e, const Uuid& x) { return e.uuid < x; });
  return it != f.entries.end() && it->uuid == u ? &*it : nullptr;
}
}  // namespace

bool ClusterEngine::active_in(const proto::Facts& f, const Uuid& u) const {
  const auto* e = find_entry(f, u);
  return e && (!f.reachable || (e->state != PowerState::shutoff && !e->migrated_away));
}

std::vector<NodeId> ClusterEngine::hosts_reporting_active(const Uuid& u) const {
  std::vector<NodeId> out;
  for (const auto& [h, rec] : hosts_)
    if (members_.count(h) && rec.facts && active_in(*rec.facts, u)) out.push_back(h);
  return out;
}

PowerState ClusterEngine::state_on(NodeId h, const Uuid& u) const {
  auto it = hosts_.find(h);
  if (it == hosts_.end() || !it->second.facts) return PowerState::unknown;
  if (!it->second.facts->reachable) return PowerState::unknown;
  const auto* e = find_entry(*it->second.facts, u);
  return e ? e->state : PowerState::unknown;
}

std::string ClusterEngine::digest() const {
  std::string s;
  for (const auto& [h, r] : hosts_)
    s += fmt::format("h{}:{}:{}:{}:{}:{}:{};", h, r.losses, r.confirmed_loss, r.confirmed_incarnation, r.confirmed_seq,
                     r.facts ? r.facts->incarnation : 0, r.facts ? r.facts->seq : 0);
  for (const auto& [u, d] : domains_)
    s += fmt::format("d{}:{}:{}:{}:{}:{}:{}:{};", u.str(), d.owner, d.epoch, d.mig_source, d.mig_target, d.mig_epoch,
                     d.mig_phase, d.gen);
  return proto::key_id_hex(proto::key_id_of(s));
}

// ---------------------------------------------------------------------------------------------------

std::vector<Command> ClusterEngine::handle(const ClusterEvent& ev) {
  Out out;
  now_ = ev.now;
  std::visit(
      [&](const auto& in) {
        using T = std::decay_t<decltype(in)>;
        if constexpr (std::is_same_v<T, RequestIn>) {
          on_request(ev.now, in, out);
        } else if constexpr (std::is_same_v<T, HvConnected>) {
          hv_connected_ = true;
          listed_at_ = in.listed_at;
          local_domains_.clear();
          for (const auto& d : in.domains) local_domains_[d.uuid] = d;
          forward_local(out, local_.handle(Event{ev.now, in}));
          send_facts(out);
          release_not_running(out);
        } else if constexpr (std::is_same_v<T, HvDomain>) {
          auto prev = local_domains_.find(in.info.uuid);
          const DomainInfo before = prev == local_domains_.end() ? DomainInfo{in.info.uuid, in.info.name,
                                                                              PowerState::shutoff, false}
                                                                 : prev->second;
          local_domains_[in.info.uuid] = in.info;
          forward_local(out, local_.handle(Event{ev.now, in}));
          send_facts(out);
          on_local_change(before, in.info, out);
        } else if constexpr (std::is_same_v<T, HvLost>) {
          const bool was = hv_connected_;
          hv_connected_ = false;
          forward_local(out, local_.handle(Event{ev.now, in}));
          if (was) send_facts(out);
        } else if constexpr (std::is_same_v<T, OpDone> || std::is_same_v<T, Tick>) {
          if constexpr (std::is_same_v<T, OpDone>) {
            if (in.op & kPolicyBit) {
              out.push_back(LogLine{in.ok ? Level::notice : Level::error,
                                    in.ok ? "duplicate policy carried out | op=" + std::to_string(in.op & ~kPolicyBit)
                                          : "duplicate policy failed: " + in.error});
              out.push_back(Audit{"alarm-action", {{"ok", in.ok}, {"error", in.error}}, true});
              return;
            }
          }
          forward_local(out, local_.handle(Event{ev.now, in}));
          if constexpr (std::is_same_v<T, Tick>) {
            // One member (the lowest id) watches Pacemaker's history for the lost hosts.
            if (id_.pacemaker_history && synced_ && !members_.empty() && *members_.begin() == id_.self &&
                ev.now >= next_history_poll_) {
              next_history_poll_ = ev.now + 2000;
              for (const auto& [h, rec] : hosts_)
                if (lost(h)) out.push_back(QueryFenceHistory{h, rec.hostname});
            }
            for (auto it = parked_.begin(); it != parked_.end();) {
              if (it->deadline > ev.now) {
                ++it;
                continue;
              }
              const RequestIn r = it->in;
              it = parked_.erase(it);
              reply(out, r, nullptr, Status::failure, errc::operation_failed,
                    "cluster state transfer did not complete before the hook's deadline");
            }
            for (auto& [id, c] : claims_)
              if (!c.answered && c.deadline <= ev.now)
                answer_claim(c, false, "not granted by the whole cluster view before the hook's deadline", out);
            // A claim answered no that was never delivered back to us within a minute will not be (the bus
            // delivers our own messages or loses them with the view).
            std::erase_if(claims_, [&](const auto& kv) {
              return kv.second.answered && !kv.second.granted && kv.second.deadline + 60000 < ev.now;
            });
            for (auto it = remote_.begin(); it != remote_.end();) {
              if (it->second.deadline > ev.now) {
                ++it;
                continue;
              }
              Remote r = std::move(it->second);
              it = remote_.erase(it);
              proto::DomainEntry d{r.uuid, r.name, PowerState::unknown, host_name(r.host), 0, 0};
              reply(out, r.in, &d, Status::failure, errc::timed_out,
                    "no answer from " + host_name(r.host) + " before the deadline; state not confirmed");
            }
          }
        } else if constexpr (std::is_same_v<T, BusViewIn>) {
          on_view(in.view, out);
        } else if constexpr (std::is_same_v<T, BusMsgIn>) {
          on_message(in.from, in.msg, out);
        } else if constexpr (std::is_same_v<T, BusLostIn>) {
          // This host is in no view: it answers nothing from the replica until it has rejoined and synced.
          in_view_ = false;
          synced_ = false;
          quorate_ = false;
          // Our tables may have missed anything from now on: rejoin as a joiner (FACTS only in the next
          // SYNC), so stale state never enters a merge (safety-design.md §6).
          has_state_ = false;
          state_peers_.clear();
          members_.clear();
          sync_waiting_.clear();
          sync_inbox_.clear();
          sync_latest_.clear();
          buffered_.clear();
          fencing_.clear();
          out.push_back(Audit{"membership", {{"event", "bus-lost"}, {"reason", in.reason}}, false});
          out.push_back(LogLine{Level::error, "cluster bus lost: " + in.reason + "; acting on own domains only"});
          fail_remotes(out, "this host lost the cluster bus (" + in.reason + ")", std::nullopt);
          for (const auto& p : parked_)
            reply(out, p.in, nullptr, Status::failure, errc::operation_failed,
                  "this host lost the cluster bus (" + in.reason + ")");
          parked_.clear();
          for (auto& [id, c] : claims_)
            if (!c.answered) answer_claim(c, false, "this host lost the cluster bus (" + in.reason + ")", out);
          // A claim we did not deliver ourselves before losing the bus is delivered by nobody; granted ones stay
          // until the merge after the rejoin shows whether anybody holds them (then released, see after_sync).
          std::erase_if(claims_, [](const auto& kv) { return !kv.second.granted; });
          stateful_ = false;
        } else if constexpr (std::is_same_v<T, FenceHistoryIn>) {
          on_history(in, out);
        } else if constexpr (std::is_same_v<T, QuorumIn>) {
          if (quorate_ != in.quorate)
            out.push_back(LogLine{Level::notice, in.quorate ? "partition is quorate" : "partition lost quorum"});
          quorate_ = in.quorate;
        }
      },
      ev.input);
  return out;
}

// Passes the local Engine's commands through, turning the replies to FENCEs we executed for other members
// into FENCE_DONE messages.
void ClusterEngine::forward_local(Out& out, std::vector<Command> cmds) {
  for (auto& c : cmds) {
    if (auto* rep = std::get_if<Reply>(&c); rep && (rep->request & kSyntheticBit)) {
      auto it = exec_.find(rep->request);
      if (it == exec_.end()) continue;
      const Execution e = it->second;
      exec_.erase(it);
      proto::MsgFenceDone done;
      done.requester = e.requester;
      done.request = e.request;
      done.from = id_.self;
      done.uuid = e.uuid;
      done.status = rep->response.status;
      done.error = rep->response.error;
      done.message = rep->response.message;
      done.epoch = e.epoch;
      out.push_back(SendMsg{std::move(done)});
      continue;
    }
    out.push_back(std::move(c));
  }
}

void ClusterEngine::send_facts(Out& out) {
  proto::Facts f;
  f.host = id_.self;
  f.hostname = id_.hostname;
  f.incarnation = id_.incarnation;
  f.seq = ++facts_seq_;
  f.reachable = hv_connected_;
  for (const auto& [u, d] : local_domains_) f.entries.push_back({u, d.name, d.state, d.migrated_away});
  if (in_view_) out.push_back(SendMsg{proto::MsgFacts{std::move(f)}});
}

// ---------------------------------------------------------------------------------------------------
// Membership and SYNC

void ClusterEngine::on_view(const View& v, Out& out) {
  if (!synced_) {
    // FACTS delivered in a round that never completed are dropped with it, but their host may have left
    // meanwhile and never report them again (it crashed after them): they travel in our next SYNC, and the
    // merge keeps each host's newest (safety-scenarios.md 17).
    auto relay = [&](NodeId from, const proto::Facts& f) {
      if (f.host != from || f.host == id_.self) return;
      auto [it, fresh] = relay_.try_emplace(f.host, f);
      if (!fresh && newer(f, it->second)) it->second = f;
    };
    for (const auto& [from, s] : sync_latest_) relay(from, s.facts);
    for (const auto& [from, msg] : buffered_)
      if (const auto* f = std::get_if<proto::MsgFacts>(&msg)) relay(from, f->facts);
  }
  ++view_no_;
  const std::set<NodeId> before = members_;
  members_ = std::set<NodeId>(v.members.begin(), v.members.end());
  fencing_.clear();  // every member of the new view starts from none (see the declaration)
  in_view_ = members_.count(id_.self) != 0;
  std::vector<std::string> left;
  for (const auto& [h, reason] : v.left) {
    // Every member of the new view sees the same left list, so the count stays identical everywhere.
    if (before.count(h) || hosts_.count(h)) {
      auto& rec = hosts_[h];
      rec.id = h;
      ++rec.losses;
    }
    left.push_back(fmt::format("{}({})", host_name(h), static_cast<int>(reason)));
  }
  std::string members;
  for (NodeId m : members_) members += (members.empty() ? "" : ",") + host_name(m);
  out.push_back(Audit{"membership",
                      {{"members", members}, {"left", fmt::format("{}", fmt::join(left, ","))},
                       {"joined", v.joined.size()}},
                      false});
  out.push_back(LogLine{Level::notice, fmt::format("membership: [{}] left: [{}] | joined={}", members,
                                                   fmt::join(left, ","), v.joined.size())});
  for (const auto& [h, reason] : v.left) {
    // A request routed to a host that left has no answer coming: fail it now, never success.
    fail_remotes(out, host_name(h) + " left the membership before answering", h);
  }
  // A granted claim not yet stable must be acknowledged by the new view: after its SYNC, if the merged
  // replica still holds the grant (safety-design.md §6: a confchg never refuses a pending hook).
  for (auto& [id, c] : claims_)
    if (c.granted && !c.answered) {
      c.acks.clear();
      ++c.round;
      c.reconfirm = true;
    }
  if (!in_view_) {
    synced_ = false;
    return;
  }
  // Start a SYNC round: everything but SYNCs is buffered until every member's SYNC is delivered.
  synced_ = false;
  sync_waiting_ = members_;
  sync_inbox_.clear();
  sync_latest_.clear();
  // Messages buffered in a view whose SYNC never completed are dropped by every member that delivered them
  // (applying them after the next merge would apply them on some members only). Their senders recover:
  // FACTS are in every SYNC, releases are re-derived after each SYNC, claims and fences hit their deadline.
  buffered_.clear();
  // Members that completed the last SYNC together hold identical tables, so one of them is enough to carry
  // them: the lowest-id one still present. Everybody of that group computes the same carrier (a member that
  // left in between, e.g. a restarted vguardd, is no longer a candidate). Others send their FACTS only.
  for (const auto& [h, reason] : v.left) state_peers_.erase(h);
  NodeId carrier = 0;
  for (NodeId m : state_peers_)
    if (members_.count(m)) {
      carrier = m;
      break;
    }
  proto::MsgSync s;
  s.from = id_.self;
  s.incarnation = id_.incarnation;
  s.view.assign(members_.begin(), members_.end());
  s.has_state = has_state_ && carrier == id_.self;
  s.stateful = stateful_;
  s.gen = gen_;
  s.round = view_no_;
  for (const auto& [h, f] : relay_) s.relayed.push_back(f);
  if (s.has_state) {
    for (const auto& [h, rec] : hosts_) s.hosts.push_back(rec);
    for (const auto& [u, d] : domains_) s.domains.push_back(d);
  }
  s.facts.host = id_.self;
  s.facts.hostname = id_.hostname;
  s.facts.incarnation = id_.incarnation;
  s.facts.seq = ++facts_seq_;
  s.facts.reachable = hv_connected_;
  for (const auto& [u, d] : local_domains_) s.facts.entries.push_back({u, d.name, d.state, d.migrated_away});
  out.push_back(SendMsg{std::move(s)});
}

void ClusterEngine::on_message(NodeId from, const proto::ClusterMsg& m, Out& out) {
  if (!in_view_) return;
  if (const auto* s = std::get_if<proto::MsgSync>(&m)) {
    // A SYNC counts once per member per view (a late one from an earlier view, or a repeat, is ignored).
    if (s->from != from || !sync_waiting_.count(from)) return;
    // A SYNC built for another view (delivered late, after the next confchg) describes a state before that
    // view's losses: it never counts.
    if (std::set<NodeId>(s->view.begin(), s->view.end()) != members_) return;
    // Member lists recur (safety-scenarios.md 20): a SYNC queued for an earlier view with the same list may be
    // delivered here before its sender's current one. It counts only once its sender, delivering it back,
    // confirms it was built after the latest confchg it delivered (MsgSyncOk); until then the latest wins.
    sync_latest_[from] = *s;
    if (from == id_.self && s->incarnation == id_.incarnation && s->round == view_no_)
      out.push_back(SendMsg{proto::MsgSyncOk{id_.self, id_.incarnation, s->round}});
    return;
  }
  if (const auto* k = std::get_if<proto::MsgSyncOk>(&m)) {
    const auto it = sync_latest_.find(from);
    if (k->from != from || !sync_waiting_.count(from) || it == sync_latest_.end() ||
        it->second.incarnation != k->incarnation || it->second.round != k->round)
      return;
    sync_waiting_.erase(from);
    sync_inbox_.push_back(it->second);
    if (sync_waiting_.empty()) complete_sync(out);
    return;
  }
  if (!synced_) {
    buffered_.emplace_back(from, m);
    return;
  }
  apply(from, m, out);
}

// Every member's current SYNC is delivered and confirmed: merge, then apply what was buffered meanwhile.
void ClusterEngine::complete_sync(Out& out) {
  merge(out);
  auto pending = std::move(buffered_);
  buffered_.clear();
  for (const auto& [f, msg] : pending) apply(f, msg, out);
  after_sync(out);
  auto parked = std::move(parked_);
  parked_.clear();
  for (const auto& p : parked) {
    if (p.deadline <= now_) {
      reply(out, p.in, nullptr, Status::failure, errc::operation_failed, "cluster state transfer did not complete in time");
      continue;
    }
    // Its D_v still counts from the hook's arrival, not from the end of the state transfer (I5).
    hook_start(p.in, p.in.request.action == Action::hook_migrate ? proto::MsgClaim::Kind::migrate
                                                                 : proto::MsgClaim::Kind::start, out, p.deadline);
  }
}

// The merge is a function of the SYNC set alone, so every member computes the same state.
void ClusterEngine::merge(Out& out) {
  std::sort(sync_inbox_.begin(), sync_inbox_.end(),
            [](const proto::MsgSync& a, const proto::MsgSync& b) { return a.from < b.from; });
  std::map<NodeId, proto::HostRecord> hosts;
  std::map<Uuid, proto::DomainRecord> domains;
  std::size_t stateful = 0;
  std::uint64_t gen = 0;
  std::vector<proto::Facts> own_facts;  // every member's own fresh FACTS replace what any carrier held
  auto merge_host = [&](const proto::HostRecord& r) {
    auto& h = hosts[r.id];
    h.id = r.id;
    if (!r.hostname.empty()) h.hostname = r.hostname;
    h.losses = std::max(h.losses, r.losses);
    if (r.confirmed_loss > h.confirmed_loss || (r.confirmed_loss == h.confirmed_loss && h.confirmed_by.empty())) {
      h.confirmed_loss = r.confirmed_loss;
      h.confirmed_by = r.confirmed_by;
      h.confirmed_incarnation = r.confirmed_incarnation;
      h.confirmed_seq = r.confirmed_seq;
    }
    if (r.facts && (!h.facts || newer(*r.facts, *h.facts))) h.facts = r.facts;
  };
  for (const auto& s : sync_inbox_) {
    // Only a member that has been through a SYNC brings replicated state; a restarted one brings facts only.
    if (s.has_state) {
      for (const auto& r : s.hosts) merge_host(r);
      for (const auto& d : s.domains) {
        auto [it, fresh] = domains.emplace(d.uuid, d);
        // The later record in the domain's history wins; equal ones (both sides of a split that had not
        // diverged) tie-break on the owner id, so every member picks the same.
        if (!fresh && (order_key(d) > order_key(it->second) ||
                       (order_key(d) == order_key(it->second) && d.owner < it->second.owner)))
          it->second = d;
      }
    }
    // Only configured hosts count towards the stateful majority: a host missing from [cluster] nodes (a
    // misconfiguration) must not turn a minority of the configured ones into a decisive view.
    if (s.stateful && id_.configured.count(s.from)) ++stateful;
    gen = std::max(gen, s.gen);
    proto::HostRecord self;
    self.id = s.from;
    self.hostname = s.facts.hostname;
    self.facts = s.facts;
    merge_host(self);
    own_facts.push_back(s.facts);
    for (const auto& f : s.relayed) {  // others' FACTS from an interrupted round: the newest per host wins
      proto::HostRecord r;
      r.id = f.host;
      r.hostname = f.hostname;
      r.facts = f;
      merge_host(r);
    }
  }
  for (const auto& f : own_facts) hosts[f.host].facts = f;
  hosts_ = std::move(hosts);
  domains_ = std::move(domains);
  synced_ = true;
  has_state_ = true;
  state_peers_ = members_;
  relay_.clear();  // in hosts_ now, on every member
  stateful_members_ = stateful;
  gen_ = gen;
  if (decisive()) {
    ++gen_;
    stateful_ = true;
  }
  // Members' fresh facts decide ownership, in node order (deterministic).
  for (NodeId m : members_)
    if (hosts_.count(m) && hosts_[m].facts) adopt_owners(*hosts_[m].facts, out);
  for (const auto& [u, d] : domains_) handover_rules(u, out);
  std::size_t lost_hosts = 0;
  for (const auto& [h, r] : hosts_)
    if (lost(h)) ++lost_hosts;
  out.push_back(Audit{"sync",
                      {{"members", members_text()}, {"domains", domains_.size()}, {"lost_hosts", lost_hosts},
                       {"stateful_members", stateful}, {"decisive", decisive()}, {"digest", digest()}},
                      false});
  out.push_back(LogLine{Level::notice, fmt::format("state synchronized: {} members, {} domains, {} lost hosts | digest={}",
                                                   members_.size(), domains_.size(), lost_hosts, digest())});
}

// ---------------------------------------------------------------------------------------------------
// Agreed messages

void ClusterEngine::apply(NodeId from, const proto::ClusterMsg& m, Out& out) {
  const bool was = decisive();
  apply_one(from, m, out);
  // A view can become decisive later in its life (a confirmation, a libvirt back): it counts from then on,
  // and grants acknowledged meanwhile are stable now.
  if (!was && decisive()) {
    stateful_ = true;
    std::vector<std::uint64_t> ids;
    for (const auto& [id, c] : claims_) ids.push_back(id);
    for (auto id : ids) check_stable(id, out);
  }
}

void ClusterEngine::apply_one(NodeId from, const proto::ClusterMsg& m, Out& out) {
  std::visit(
      [&](const auto& msg) {
        using T = std::decay_t<decltype(msg)>;
        if constexpr (std::is_same_v<T, proto::MsgFacts>) {
          if (msg.facts.host != from) return;  // a host speaks only for itself
          apply_facts(msg.facts, out);
        } else if constexpr (std::is_same_v<T, proto::MsgClaim>) {
          on_claim(from, msg, out);
        } else if constexpr (std::is_same_v<T, proto::MsgAck>) {
          on_ack(from, msg, out);
        } else if constexpr (std::is_same_v<T, proto::MsgReconfirm>) {
          // Acknowledge only what this replica holds (after the merge, every member holds the same).
          auto d = domains_.find(msg.uuid);
          if (from == id_.self || d == domains_.end()) return;
          const bool held = (d->second.owner == msg.requester && d->second.epoch == msg.epoch &&
                             d->second.mig_phase == 0) ||
                            (d->second.mig_phase == 1 && d->second.mig_target == msg.requester &&
                             d->second.mig_epoch == msg.epoch);
          if (held && msg.requester == from) out.push_back(SendMsg{proto::MsgAck{from, msg.request, msg.round}});
        } else if constexpr (std::is_same_v<T, proto::MsgRelease>) {
          on_release(from, msg, out);
        } else if constexpr (std::is_same_v<T, proto::MsgMigrateEnd>) {
          on_migrate_end(from, msg, out);
        } else if constexpr (std::is_same_v<T, proto::MsgFence>) {
          if (msg.requester != from) return;
          if (msg.action == Action::off || msg.action == Action::reboot)
            fencing_[{msg.requester, msg.request}] = msg.uuid;
          if (msg.target_host != id_.self) return;
          const auto cur = domains_.find(msg.uuid);
          const std::uint64_t epoch = cur == domains_.end() ? 0 : cur->second.epoch;
          if (epoch != msg.epoch) {
            // Routed on a map that has changed since (the domain started or moved elsewhere): our libvirt no
            // longer speaks for it.
            out.push_back(SendMsg{proto::MsgFenceDone{msg.requester, msg.request, id_.self, msg.uuid, Status::failure,
                                                      static_cast<std::uint16_t>(errc::operation_failed),
                                                      fmt::format("ownership changed before the request arrived "
                                                                  "(epoch {} → {})",
                                                                  msg.epoch, epoch),
                                                      msg.epoch}});
            return;
          }
          // Carry it out with the local engine (authorization happened on the requester, which holds the key
          // configuration; the message itself is authenticated with the cluster key).
          const std::uint64_t sid = kSyntheticBit | ++next_synthetic_;
          exec_[sid] = Execution{msg.requester, msg.request, msg.uuid, msg.epoch};
          proto::Request q;
          q.action = msg.action;
          q.target = msg.uuid.str();
          q.flags = proto::kFlagTargetIsUuid;
          q.budget_ms = msg.budget_ms;
          out.push_back(LogLine{Level::notice, fmt::format("{} of {} requested by {} (key {}) | request={}",
                                                           proto::action_name(msg.action), msg.uuid.str(),
                                                           host_name(from), msg.key_name, msg.request)});
          forward_local(out,
                        local_.handle(Event{now_, RequestIn{sid, "cluster:" + host_name(from), std::nullopt, q}}));
        } else if constexpr (std::is_same_v<T, proto::MsgFenceDone>) {
          if (msg.from != from) return;
          fencing_.erase({msg.requester, msg.request});
          if (msg.requester != id_.self) return;
          auto it = remote_.find(msg.request);
          if (it == remote_.end()) return;  // timed out already: the requester was answered "failure"
          Remote r = std::move(it->second);
          remote_.erase(it);
          auto d = domains_.find(msg.uuid);
          const std::uint64_t epoch = d == domains_.end() ? 0 : d->second.epoch;
          const NodeId owner = d == domains_.end() ? 0 : d->second.owner;
          proto::DomainEntry entry{msg.uuid, r.name, PowerState::unknown, host_name(from), epoch, 0};
          if (msg.status == Status::success || msg.status == Status::off) {
            // The executing host's libvirt speaks for the domain only if nothing moved since we routed it: same
            // owner, same epoch, and no other member reports it active.
            std::string why;
            // (Released by its owner at the same epoch is no change: the release rests on the same stop.)
            if (msg.epoch != r.epoch || epoch != r.epoch || (owner != r.owner && owner != 0))
              why = fmt::format("ownership of {} changed during the request (epoch {} → {})", r.name, r.epoch, epoch);
            // A hand-over granted since it was routed: the target may hold a copy the executor's libvirt
            // does not see (FENCE_DONE is evidence only without one, safety-design.md §5).
            if (why.empty() && d != domains_.end() && (d->second.mig_phase != 0 || d->second.mig_epoch != r.mig_epoch))
              why = fmt::format("a migration of {} to {} was granted during the request", r.name,
                                host_name(d->second.mig_target));
            for (NodeId h : hosts_reporting_active(msg.uuid))
              if (h != from && why.empty()) why = r.name + " is reported active on " + host_name(h);
            if (!why.empty() && !(r.in.request.action == Action::on && msg.status == Status::success)) {
              reply(out, r.in, &entry, Status::failure, errc::operation_failed, why + "; not confirmed");
              return;
            }
          }
          if (msg.status == Status::off) entry.state = PowerState::shutoff;
          reply(out, r.in, &entry, msg.status, static_cast<errc>(msg.error),
                host_name(from) + ": " + msg.message, is_fence(r.in.request.action));
        } else if constexpr (std::is_same_v<T, proto::MsgConfirmFenced>) {
          auto h = hosts_.find(msg.host);
          const bool applies = h != hosts_.end() && !members_.count(msg.host) && h->second.losses == msg.loss &&
                               msg.loss > 0;
          if (applies) {
            h->second.confirmed_loss = msg.loss;
            h->second.confirmed_by = msg.by;
            h->second.confirmed_incarnation = msg.facts_incarnation;
            h->second.confirmed_seq = msg.facts_seq;
            // Domains it owned that no member reports active are now off by evidence (the power fence).
            out.push_back(Audit{"confirm-fenced",
                                {{"host", host_name(msg.host)}, {"loss", msg.loss}, {"by", msg.by}, {"applied", true}},
                                true});
            out.push_back(LogLine{Level::notice, fmt::format("{} confirmed fenced (loss {}) by {}",
                                                             host_name(msg.host), msg.loss, msg.by)});
            // The hand-over rules are continuous: a fenced end decides a recorded hand-over now, not at the
            // next FACTS that happens to mention the domain (scenarios 31-33).
            std::vector<Uuid> migrating;
            for (const auto& [u, d] : domains_)
              if (d.mig_phase != 0 && (d.mig_source == msg.host || d.mig_target == msg.host)) migrating.push_back(u);
            for (const auto& u : migrating) handover_rules(u, out);
          } else {
            out.push_back(Audit{"confirm-fenced",
                                {{"host", host_name(msg.host)}, {"loss", msg.loss}, {"by", msg.by}, {"applied", false}},
                                false});
          }
          if (from == id_.self) {
            for (auto it = confirms_.begin(); it != confirms_.end(); ++it) {
              if (it->second.request.target != host_name(msg.host) &&
                  it->second.request.target != std::to_string(msg.host))
                continue;
              const RequestIn r = it->second;
              confirms_.erase(it);
              reply(out, r, nullptr, applies ? Status::success : Status::failure,
                    applies ? errc::ok : errc::operation_failed,
                    applies ? host_name(msg.host) + " confirmed fenced; its domains count as off"
                            : host_name(msg.host) + " rejoined or was lost again before the confirmation applied");
              break;
            }
          }
        }
      },
      m);
}

void ClusterEngine::apply_facts(const proto::Facts& f, Out& out) {
  auto& rec = hosts_[f.host];
  rec.id = f.host;
  if (!f.hostname.empty()) rec.hostname = f.hostname;
  // Within one incarnation seq orders the reports; another incarnation (a restarted vguardd, whatever its
  // clock said) replaces them in the agreed order: clocks never decide.
  if (rec.facts && f.incarnation == rec.facts->incarnation && f.seq <= rec.facts->seq) return;
  rec.facts = f;
  adopt_owners(f, out);
}

void ClusterEngine::adopt_owners(const proto::Facts& f, Out& out) {
  for (const auto& e : f.entries) {
    auto [it, fresh] = domains_.try_emplace(e.uuid, proto::DomainRecord{e.uuid, e.name, 0, 0});
    if (!e.name.empty()) it->second.name = e.name;
  }
  if (!members_.count(f.host) || !f.reachable) return;  // unknown states never adopt
  for (const auto& e : f.entries) {
    auto& d = domains_[e.uuid];
    handover_rules(e.uuid, out);
    if (d.mig_phase != 0) continue;  // a recorded hand-over decides who owns it (handover_rules)
    if (e.state == PowerState::shutoff || e.migrated_away || e.state == PowerState::unknown) {
      check_duplicate(e.uuid, out);
      continue;
    }
    if (d.owner == f.host) {
      check_duplicate(e.uuid, out);
      continue;
    }
    // Active here without a grant to this host: started outside the guard (no hook, or before vguard ran).
    // It becomes the owner only if nobody else can hold it: no owner, a confirmed-fenced one, or a member
    // owner whose own libvirt reports it inactive. Otherwise: duplicate / lost-owner alarm, no change.
    const NodeId prev = d.owner;
    bool take = prev == 0 || confirmed(prev);
    if (!take && members_.count(prev)) {
      // Only the owner's own word that the domain left by migration (an unguarded one) moves it; "inactive"
      // alone may be a granted start that has not launched yet.
      const auto& pf = hosts_[prev].facts;
      take = pf && pf->reachable &&
             std::any_of(pf->entries.begin(), pf->entries.end(),
                         [&](const auto& x) { return x.uuid == e.uuid && x.migrated_away; });
    } else if (!take) {
      out.push_back(Audit{"alarm",
                          {{"kind", "active-while-owner-lost"}, {"uuid", e.uuid.str()}, {"domain", d.name},
                           {"owner", host_name(prev)}, {"on", host_name(f.host)}, {"epoch", d.epoch},
                           {"members", members_text()}},
                          false});
      out.push_back(LogLine{Level::error, fmt::format("{} is active on {} while its owner {} is lost and not confirmed "
                                                      "fenced | uuid={}",
                                                      d.name, host_name(f.host), host_name(prev), e.uuid.str())});
      continue;
    }
    if (take) {
      d.owner = f.host;
      d.epoch = std::max(d.epoch, d.mig_epoch) + 1;
      d.gen = gen_;
      out.push_back(Audit{"owner",
                          {{"uuid", e.uuid.str()}, {"domain", d.name}, {"owner", host_name(f.host)},
                           {"previous", host_name(prev)}, {"epoch", d.epoch}, {"reason", "reported active, unclaimed"},
                           {"members", members_text()}},
                          false});
    }
    check_duplicate(e.uuid, out);
  }
}

// ---------------------------------------------------------------------------------------------------
// Start guard

std::string ClusterEngine::members_text() const {
  std::string m;
  for (NodeId h : members_) m += (m.empty() ? "" : ",") + host_name(h);
  return m;
}

boost::json::object ClusterEngine::claim_fields(const Uuid& u) const {
  boost::json::object f{{"uuid", u.str()}, {"members", members_text()}};
  if (auto it = domains_.find(u); it != domains_.end()) {
    f["domain"] = it->second.name;
    f["owner"] = host_name(it->second.owner);
    f["epoch"] = it->second.epoch;
    if (it->second.mig_phase != 0) {
      f["migration"] = fmt::format("{}->{} phase {} mig_epoch {}", host_name(it->second.mig_source),
                                   host_name(it->second.mig_target), it->second.mig_phase, it->second.mig_epoch);
    }
  }
  return f;
}

bool ClusterEngine::all_present() const {
  if (id_.configured.empty()) return false;
  for (NodeId h : id_.configured) {
    if (confirmed(h)) continue;
    if (!members_.count(h)) return false;
    auto it = hosts_.find(h);
    if (it == hosts_.end() || !it->second.facts || !it->second.facts->reachable) return false;
  }
  return true;
}

bool ClusterEngine::decisive() const {
  if (!in_view_ || !synced_ || id_.configured.empty()) return false;
  return stateful_members_ * 2 > id_.configured.size() || all_present();
}

// The grant predicate (safety-design.md §5), evaluated by every member at delivery on the same replica, so
// every member reaches the same decision. nullopt = grant.
std::optional<std::string> ClusterEngine::refuse_claim(const proto::MsgClaim& c) const {
  if (id_.configured.empty()) return "start claims need the cluster's hosts ([cluster] nodes)";
  if (!decisive())
    return fmt::format("this view is not decisive ({} of {} configured hosts stateful, not all present)",
                       stateful_members_, id_.configured.size());
  const NodeId req = c.requester;
  if (!members_.count(req)) return fmt::format("{} is not a member of this view", host_name(req));
  const auto it = domains_.find(c.uuid);
  const proto::DomainRecord d = it == domains_.end() ? proto::DomainRecord{c.uuid, c.name, 0, 0} : it->second;
  const std::string& name = d.name.empty() ? c.name : d.name;
  if (d.mig_phase == 1)
    return fmt::format("{} is migrating from {} to {} (epoch {})", name, host_name(d.mig_source),
                       host_name(d.mig_target), d.epoch);
  if (d.mig_phase == 2 && c.kind == proto::MsgClaim::Kind::migrate)
    return fmt::format("the hand-over of {} to {} is not finished (its copy on {} still exists)", name,
                       host_name(d.mig_target), host_name(d.mig_source));
  if (c.expected_epoch != d.epoch)
    return fmt::format("ownership of {} changed meanwhile (epoch {} -> {})", name, c.expected_epoch, d.epoch);
  for (const auto& [req_id, fu] : fencing_)
    if (fu == c.uuid)
      return fmt::format("a fence of {} requested by {} is in flight", name, host_name(req_id.first));
  // A lost host that is not confirmed fenced may still run it.
  for (const auto& [h, hr] : hosts_) {
    if (!lost(h)) continue;
    if (d.owner == h || (hr.facts && active_in(*hr.facts, c.uuid)))
      return fmt::format("{}'s last host {} is lost and not confirmed fenced (epoch {})", name, host_name(h), d.epoch);
  }
  if (c.kind == proto::MsgClaim::Kind::start) {
    if (d.owner != 0 && d.owner != req && !confirmed(d.owner))
      return fmt::format("{} is owned by {} (epoch {})", name, host_name(d.owner), d.epoch);
    for (NodeId h : hosts_reporting_active(c.uuid))
      if (h != req) return fmt::format("{} is running on {} (epoch {})", name, host_name(h), d.epoch);
    return std::nullopt;
  }
  // migrate: the owner is another member whose own libvirt reports it active.
  if (d.owner == 0 || d.owner == req || !members_.count(d.owner))
    return fmt::format("{} has no running owner to migrate from (owner {}, epoch {})", name, host_name(d.owner),
                       d.epoch);
  const auto& of = hosts_.at(d.owner).facts;
  if (!of || !of->reachable || !active_in(*of, c.uuid))
    return fmt::format("{}'s owner {} does not report it active", name, host_name(d.owner));
  for (NodeId h : hosts_reporting_active(c.uuid))
    if (h != d.owner) return fmt::format("{} is also reported active on {}", name, host_name(h));
  return std::nullopt;
}

// A hook asks: may this domain start here ("prepare begin"), or come here by migration ("migrate begin")?
void ClusterEngine::hook_start(const RequestIn& r, proto::MsgClaim::Kind kind, Out& out, TimeMs deadline) {
  const bool migrate = kind == proto::MsgClaim::Kind::migrate;
  const char* action = migrate ? "hook-migrate" : "hook-prepare";
  out.push_back(Audit{"request",
                      {{"request", r.id}, {"requester", r.requester}, {"action", action}, {"target", r.request.target},
                       {"members", members_text()}},
                      false});
  const auto u = Uuid::parse(r.request.target);
  if (!u) return reply(out, r, nullptr, Status::failure, errc::no_such_domain, "not a UUID: " + r.request.target);
  if (in_view_ && !synced_) {
    // A start during a membership change waits for its state transfer instead of failing (until D_v).
    const std::uint32_t budget = r.request.budget_ms == 0 ? 10000 : r.request.budget_ms;
    parked_.push_back(Parked{r, deadline != 0 ? deadline : now_ + std::max<TimeMs>(budget - kClaimMargin, budget / 2)});
    return;
  }
  if (!in_view_ || !quorate_)
    // Local and conservative (libquorum is not ordered with CPG): never ask the cluster then.
    return reply(out, r, nullptr, Status::failure, errc::operation_failed,
                 !in_view_ ? "this host is in no cluster view" : "this partition has no quorum");
  auto it = domains_.find(*u);
  std::string name = it == domains_.end() ? u->str() : it->second.name;
  if (auto l = local_domains_.find(*u); l != local_domains_.end() && !l->second.name.empty()) name = l->second.name;
  if (!migrate && it != domains_.end() && it->second.mig_phase == 1 && it->second.mig_target == id_.self &&
      incoming_.count(*u) && incoming_[*u] == it->second.mig_epoch) {
    // The start that follows an incoming migration this process said yes to takes no claim (the hand-over is
    // the grant); once only.
    incoming_.erase(*u);
    out.push_back(Audit{"decision", claim_fields(*u), false});  // the outcome record is synced
    return reply(out, r, nullptr, Status::success, errc::ok,
                 fmt::format("incoming migration of {} (epoch {} -> {})", name, it->second.epoch, it->second.mig_epoch),
                 true);
  }
  proto::MsgClaim c{kind, id_.self, r.id, *u, name, it == domains_.end() ? 0 : it->second.epoch};
  // Refuse at once what the replica already forbids (the same predicate every member will apply): no message.
  if (auto why = refuse_claim(c)) {
    auto f = claim_fields(*u);
    f["request"] = r.id;
    f["decision"] = "refuse";
    f["reason"] = *why;
    out.push_back(Audit{"claim", std::move(f), false});
    return reply(out, r, nullptr, Status::failure, errc::operation_failed, *why);
  }
  const std::uint32_t budget = r.request.budget_ms == 0 ? 10000 : r.request.budget_ms;
  Claim cl;
  cl.in = r;
  cl.msg = c;
  cl.deadline = deadline != 0 ? deadline : now_ + std::max<TimeMs>(budget - kClaimMargin, budget / 2);
  claims_[r.id] = std::move(cl);
  out.push_back(SendMsg{c});
}

void ClusterEngine::on_claim(NodeId from, const proto::MsgClaim& c, Out& out) {
  if (c.requester != from) return;
  const auto why = refuse_claim(c);
  auto f = claim_fields(c.uuid);
  f["request"] = c.request;
  f["requester"] = host_name(from);
  f["kind"] = c.kind == proto::MsgClaim::Kind::start ? "start" : "migrate";
  f["expected_epoch"] = c.expected_epoch;
  auto mine = from == id_.self ? claims_.find(c.request) : claims_.end();
  if (why) {
    f["decision"] = "refuse";
    f["reason"] = *why;
    out.push_back(Audit{"claim", std::move(f), false});
    if (mine != claims_.end()) {
      if (!mine->second.answered) answer_claim(mine->second, false, *why, out);
      claims_.erase(mine);
    }
    return;
  }
  auto& d = domains_.try_emplace(c.uuid, proto::DomainRecord{c.uuid, c.name, 0, 0}).first->second;
  if (d.name.empty()) d.name = c.name;
  std::uint64_t granted = 0;
  if (c.kind == proto::MsgClaim::Kind::start) {
    d.owner = from;
    d.epoch = std::max(d.epoch, d.mig_epoch) + 1;
    d.mig_source = d.mig_target = 0;
    d.mig_epoch = 0;
    d.mig_phase = 0;
    d.gen = gen_;
    granted = d.epoch;
  } else {
    d.mig_source = d.owner;
    d.mig_target = from;
    d.mig_epoch = std::max(d.epoch, d.mig_epoch) + 1;
    d.mig_phase = 1;
    d.gen = gen_;
    granted = d.mig_epoch;
  }
  f = claim_fields(c.uuid);
  f["request"] = c.request;
  f["requester"] = host_name(from);
  f["kind"] = c.kind == proto::MsgClaim::Kind::start ? "start" : "migrate";
  f["decision"] = "grant";
  out.push_back(Audit{"claim", std::move(f), false});
  out.push_back(LogLine{Level::notice, fmt::format("{} of {} granted to {} | epoch={} members=[{}]",
                                                   c.kind == proto::MsgClaim::Kind::start ? "start" : "migration",
                                                   d.name, host_name(from), granted, members_text())});
  if (from != id_.self) {
    out.push_back(SendMsg{proto::MsgAck{from, c.request, 0}});
    return;
  }
  if (mine == claims_.end()) {
    // Delivered after we gave up waiting for it (the hook was told no long ago): give the grant back.
    if (c.kind == proto::MsgClaim::Kind::start)
      out.push_back(SendMsg{proto::MsgRelease{id_.self, c.uuid, granted, c.request, "claim delivered after its hook gave up"}});
    else
      out.push_back(SendMsg{proto::MsgMigrateEnd{id_.self, c.uuid, granted, false, "claim delivered after its hook gave up"}});
    return;
  }
  Claim& cl = mine->second;
  cl.granted = true;
  cl.epoch = granted;
  if (cl.answered) return give_up(cl, out);  // the hook was already told no
  cl.acks.insert(id_.self);
  check_stable(c.request, out);
}

void ClusterEngine::on_ack(NodeId from, const proto::MsgAck& a, Out& out) {
  if (a.requester != id_.self) return;
  auto it = claims_.find(a.request);
  if (it == claims_.end() || !it->second.granted || it->second.answered || it->second.round != a.round) return;
  it->second.acks.insert(from);
  check_stable(a.request, out);
}

void ClusterEngine::check_stable(std::uint64_t id, Out& out) {
  auto it = claims_.find(id);
  if (it == claims_.end()) return;
  Claim& c = it->second;
  if (!c.granted || c.answered || c.reconfirm || !decisive()) return;  // a minority holding it is not stable
  for (NodeId m : members_)
    if (!c.acks.count(m)) return;
  // Every member of the view holds the grant: every side of any later split carries it. Yes.
  answer_claim(c, true, "", out);
  claims_.erase(it);
}

void ClusterEngine::answer_claim(Claim& c, bool yes, const std::string& why, Out& out) {
  c.answered = true;
  const bool migrate = c.msg.kind == proto::MsgClaim::Kind::migrate;
  auto f = claim_fields(c.msg.uuid);
  f["request"] = c.in.id;
  f["answer"] = yes ? "yes" : "no";
  if (!yes) f["reason"] = why;
  if (yes && now_ > c.deadline) {
    // Never yes after D_v (I5): the hook may have given up; it is told no and the grant is given back.
    return answer_claim(c, false, "stable only after the deadline", out);
  }
  // Not synced itself: the outcome record right after it is, and one fdatasync covers both before the answer.
  out.push_back(Audit{migrate ? "handover" : "claim-answer", std::move(f), false});
  const std::string name = c.msg.name;
  if (yes) {
    yes_at_[c.msg.uuid] = now_;
    auto& run = runs_[c.msg.uuid];
    run.yes = ++run_seq_;
    run.yes_epoch = c.epoch;
    if (migrate) incoming_[c.msg.uuid] = c.epoch;
    reply(out, c.in, nullptr, Status::success, errc::ok,
          migrate ? fmt::format("incoming migration of {} granted (epoch {})", name, c.epoch)
                  : fmt::format("{} may start here (epoch {})", name, c.epoch),
          true);
  } else {
    reply(out, c.in, nullptr, Status::failure, errc::operation_failed, why, true);
    if (c.granted) give_up(c, out);
  }
}

// Our hook was answered no after the grant: nothing started here because of it, so give the grant back.
void ClusterEngine::give_up(Claim& c, Out& out) {
  const auto it = domains_.find(c.msg.uuid);
  if (it == domains_.end()) return;
  const auto& d = it->second;
  if (c.msg.kind == proto::MsgClaim::Kind::start) {
    auto l = local_domains_.find(c.msg.uuid);
    if (l != local_domains_.end() && active_state(l->second.state)) return;  // it runs here anyway: keep it
    if (d.owner == id_.self && d.epoch == c.epoch && d.mig_phase == 0)
      out.push_back(SendMsg{proto::MsgRelease{id_.self, c.msg.uuid, c.epoch, c.in.id, "hook answered no"}});
  } else if (d.mig_phase == 1 && d.mig_target == id_.self && d.mig_epoch == c.epoch) {
    out.push_back(SendMsg{proto::MsgMigrateEnd{id_.self, c.msg.uuid, c.epoch, false, "hook answered no"}});
  }
}

// After every SYNC: granted claims not yet stable ask the new view again; grants we answered no are given
// back if the merged replica still holds them.
void ClusterEngine::after_sync(Out& out) {
  std::vector<std::uint64_t> ids;
  for (const auto& [id, c] : claims_)
    if (c.granted) ids.push_back(id);
  for (const std::uint64_t id : ids) {
    auto it = claims_.find(id);
    if (it == claims_.end()) continue;
    Claim& c = it->second;
    const auto d = domains_.find(c.msg.uuid);
    const bool start = c.msg.kind == proto::MsgClaim::Kind::start;
    const bool held = d != domains_.end() &&
                      (start ? d->second.owner == id_.self && d->second.epoch == c.epoch && d->second.mig_phase == 0
                             : d->second.mig_phase == 1 && d->second.mig_target == id_.self &&
                                   d->second.mig_epoch == c.epoch);
    if (c.answered) {
      if (held) {
        give_up(c, out);  // ordered now; if it is lost again, the next SYNC finds the grant again
      } else {
        claims_.erase(it);
      }
      continue;
    }
    if (!held) {
      answer_claim(c, false, "the grant did not survive the membership change", out);
      claims_.erase(it);
      continue;
    }
    if (c.reconfirm) {
      c.reconfirm = false;
      c.acks = {id_.self};
      out.push_back(SendMsg{proto::MsgReconfirm{id_.self, c.in.id, c.msg.uuid, c.epoch, c.round}});
      check_stable(id, out);  // a view of one is stable at once
    }
  }
  release_not_running(out);
}

// Domains the replica says we own but that a libvirt listing taken after the event subscription shows
// inactive here (e.g. stopped while vguardd was down) are released: the owner's own evidence
// (safety-design.md scenario 38). A start we said yes to after that listing was asked for may not show in it
// yet, so it is never released this way (its stop event or release hook will do).
void ClusterEngine::release_not_running(Out& out) {
  if (!in_view_ || !synced_) return;
  // Evidence already seen here whose message may have been lost with a view (re-sent; a repeat is a no-op).
  for (const auto& [u, d] : domains_)
    if ((d.owner == id_.self && d.mig_phase == 0) || (d.mig_phase == 1 && d.mig_target == id_.self))
      settle_local(u, out);
  if (!hv_connected_ || listed_at_ < 0) return;
  for (const auto& [u, d] : domains_) {
    const bool incoming = d.mig_phase == 1 && d.mig_target == id_.self;
    if (!incoming && (d.owner != id_.self || d.mig_phase != 0)) continue;
    if (auto y = yes_at_.find(u); y != yes_at_.end() && (listed_at_ == 0 || y->second >= listed_at_)) continue;
    bool pending = false;
    for (const auto& [id, c] : claims_) pending |= c.msg.uuid == u;
    if (pending) continue;
    if (auto l = local_domains_.find(u); l != local_domains_.end() && active_state(l->second.state)) continue;
    if (incoming)
      out.push_back(SendMsg{proto::MsgMigrateEnd{id_.self, u, d.mig_epoch, false, "not active here (libvirt listing)"}});
    else
      out.push_back(SendMsg{proto::MsgRelease{id_.self, u, d.epoch, 0, "not active here (libvirt listing)"}});
  }
}

void ClusterEngine::on_release(NodeId from, const proto::MsgRelease& m, Out& out) {
  if (m.host != from) return;
  if (from == id_.self && m.request != 0) claims_.erase(m.request);  // our abort is ordered: settled
  auto it = domains_.find(m.uuid);
  auto f = claim_fields(m.uuid);
  f["host"] = host_name(from);
  f["release_epoch"] = m.epoch;
  f["reason"] = m.reason;
  if (it == domains_.end() || it->second.owner != from || it->second.epoch != m.epoch || it->second.mig_phase != 0) {
    f["applied"] = false;
    out.push_back(Audit{"release", std::move(f), false});
    return;
  }
  it->second.owner = 0;
  it->second.gen = gen_;
  f["applied"] = true;
  out.push_back(Audit{"release", std::move(f), false});
  out.push_back(LogLine{Level::info, fmt::format("{} released by {} ({}) | epoch={}", it->second.name,
                                                 host_name(from), m.reason, m.epoch)});
  alarmed_.erase(m.uuid);
}

void ClusterEngine::on_migrate_end(NodeId from, const proto::MsgMigrateEnd& m, Out& out) {
  auto it = domains_.find(m.uuid);
  auto f = claim_fields(m.uuid);
  f["host"] = host_name(from);
  f["mig_epoch"] = m.mig_epoch;
  f["ok"] = m.ok;
  f["reason"] = m.reason;
  const bool applies = it != domains_.end() && it->second.mig_phase == 1 && it->second.mig_target == from &&
                       it->second.mig_epoch == m.mig_epoch && m.host == from && !m.ok;
  f["applied"] = applies;
  out.push_back(Audit{"handover-end", std::move(f), false});
  if (from == id_.self)
    std::erase_if(claims_, [&](const auto& kv) { return kv.second.answered && kv.second.msg.uuid == m.uuid; });
  if (!applies) return;
  // Failed on the target's own evidence: the domain stays with its source.
  it->second.mig_phase = 0;
  it->second.gen = gen_;
  if (from == id_.self) incoming_.erase(m.uuid);
  settle_local(m.uuid, out);  // the source may have stopped meanwhile
  out.push_back(LogLine{Level::notice, fmt::format("migration of {} to {} failed ({}); owner stays {} | epoch={}",
                                                   it->second.name, host_name(from), m.reason,
                                                   host_name(it->second.owner), it->second.epoch)});
}

// The continuous hand-over rules, evaluated at every delivery that may change them (safety-design.md §5).
void ClusterEngine::handover_rules(const Uuid& u, Out& out) {
  auto it = domains_.find(u);
  if (it == domains_.end() || it->second.mig_phase == 0) return;
  auto& d = it->second;
  auto reports = [&](NodeId h, auto pred) {
    if (!members_.count(h)) return false;
    auto hr = hosts_.find(h);
    if (hr == hosts_.end() || !hr->second.facts || !hr->second.facts->reachable) return false;
    if (const auto* e = find_entry(*hr->second.facts, u)) return pred(*e);
    return pred(proto::FactsEntry{u, "", PowerState::shutoff, false});
  };
  const bool src_gone = reports(d.mig_source, [](const auto& e) { return !active_state(e.state) || e.migrated_away; }) ||
                        confirmed(d.mig_source);
  const bool src_migrated = reports(d.mig_source, [](const auto& e) { return e.migrated_away; });
  const bool tgt_running = reports(d.mig_target, [](const auto& e) { return e.state == PowerState::running; });
  const bool tgt_active = reports(d.mig_target, [](const auto& e) { return active_state(e.state); });
  auto log = [&](const char* what) {
    auto f = claim_fields(u);
    f["event"] = what;
    out.push_back(Audit{"handover", std::move(f), false});
    out.push_back(LogLine{Level::notice, fmt::format("{} of {}: {} -> {} | epoch={}", what, d.name,
                                                     host_name(d.mig_source), host_name(d.mig_target), d.epoch)});
  };
  if (d.mig_phase == 1) {
    // Switched over: the target runs it, or the source saw it leave (STOPPED/MIGRATED), or the source was
    // power-fenced while the target has it active.
    if (tgt_running || (src_migrated && tgt_active) || (confirmed(d.mig_source) && tgt_active)) {
      d.owner = d.mig_target;
      d.epoch = d.mig_epoch;
      d.mig_phase = src_gone ? 0 : 2;
      d.gen = gen_;
      log(d.mig_phase == 0 ? "migrated" : "switched over");
      if (d.mig_phase == 0) settle_local(u, out);
      return;
    }
    if (confirmed(d.mig_target)) {
      // The target was power-fenced: its copy is gone, the source keeps (or never lost) the domain.
      d.mig_phase = 0;
      d.gen = gen_;
      log("target fenced, hand-over cancelled");
      settle_local(u, out);
    }
    return;
  }
  if (d.mig_phase == 2 && src_gone) {
    d.mig_phase = 0;
    d.gen = gen_;
    log("migrated");
    settle_local(u, out);
  }
}

// One UUID active on two hosts outside a hand-over: alarm (once per host set), and the configured policy
// acts on the copy that is not the recorded owner's, on its own host only.
void ClusterEngine::check_duplicate(const Uuid& u, Out& out) {
  auto active = hosts_reporting_active(u);
  auto it = domains_.find(u);
  if (it == domains_.end()) return;
  const auto& d = it->second;
  if (d.mig_phase != 0) {
    std::erase_if(active, [&](NodeId h) { return h == d.mig_source || h == d.mig_target; });
    if (active.empty()) return;
    active.push_back(d.mig_target);
  }
  if (active.size() < 2) {
    alarmed_.erase(u);
    return;
  }
  std::string set;
  for (NodeId h : active) set += (set.empty() ? "" : ",") + host_name(h);
  if (alarmed_[u] == set) return;
  alarmed_[u] = set;
  auto f = claim_fields(u);
  f["kind"] = "duplicate";
  f["hosts"] = set;
  const char* policy = id_.guard.duplicate == GuardPolicy::Duplicate::alert   ? "alert"
                       : id_.guard.duplicate == GuardPolicy::Duplicate::pause ? "pause"
                                                                              : "destroy";
  f["policy"] = policy;
  out.push_back(Audit{"alarm", std::move(f), true});
  out.push_back(LogLine{Level::error, fmt::format("DUPLICATE: {} is active on {} (owner {}, epoch {}) | uuid={} "
                                                  "policy={}",
                                                  d.name, set, host_name(d.owner), d.epoch, u.str(), policy)});
  // The policy acts only on this host's fresh facts, on a copy that is not the owner's while the owner (a
  // member) reports its own copy active.
  if (id_.guard.duplicate == GuardPolicy::Duplicate::alert || d.owner == id_.self || d.owner == 0 ||
      std::find(active.begin(), active.end(), id_.self) == active.end() ||
      std::find(active.begin(), active.end(), d.owner) == active.end())
    return;
  const std::uint64_t op = kPolicyBit | ++next_policy_op_;
  out.push_back(Audit{"decision",
                      {{"uuid", u.str()}, {"domain", d.name}, {"decision", policy},
                       {"reason", "duplicate of the copy owned by " + host_name(d.owner)}, {"epoch", d.epoch}},
                      true});
  if (id_.guard.duplicate == GuardPolicy::Duplicate::pause)
    out.push_back(DoPause{op, u});
  else
    out.push_back(DoDestroy{op, u});
}

// Releases and failed hand-overs rest on this host's own evidence: what its libvirt and its release hook
// said, in the order it happened here.
void ClusterEngine::on_local_change(const DomainInfo& before, const DomainInfo& now, Out& out) {
  const bool was = active_state(before.state), is = active_state(now.state);
  if (!was && is) runs_[now.uuid].started = ++run_seq_;
  if (!was || is || now.migrated_away) return;
  runs_[now.uuid].stopped = ++run_seq_;
  settle_local(now.uuid, out);
}

// Did this domain stop here, in a run that belongs to our latest grant? A stop seen before our last yes is
// stale (an event can arrive after the next start's yes); the release hook after the yes always counts (a
// start that failed runs it without a start event).
bool ClusterEngine::stop_evidence(const Uuid& u) const {
  const auto it = runs_.find(u);
  if (it == runs_.end()) return false;
  const LocalRun& r = it->second;
  if (r.yes == 0) return r.stopped != 0 || r.hook_released != 0;
  if (r.hook_released > r.yes) return true;
  return r.stopped > r.yes && r.started > r.yes && r.stopped > r.started;
}

void ClusterEngine::settle_local(const Uuid& u, Out& out) {
  if (!in_view_ || !synced_) return;  // re-derived after the next SYNC
  const auto it = domains_.find(u);
  if (it == domains_.end()) return;
  const auto& d = it->second;
  for (const auto& [id, c] : claims_)
    if (c.msg.uuid == u && !c.answered) return;  // a start or hand-over of ours is being decided
  if (!stop_evidence(u)) return;
  // The release hook after the last start we saw outranks a cached "active" whose stop event is still late.
  const bool hook_after_start = runs_[u].hook_released > runs_[u].started;
  if (auto l = local_domains_.find(u);
      !hook_after_start && l != local_domains_.end() && active_state(l->second.state))
    return;
  if (d.mig_phase == 1 && d.mig_target == id_.self) {
    // Our incoming copy stopped before it ran: the migration failed.
    out.push_back(SendMsg{proto::MsgMigrateEnd{id_.self, u, d.mig_epoch, false, "incoming copy stopped"}});
    return;
  }
  if (d.owner != id_.self || d.mig_phase != 0) return;  // during a hand-over: settled when it clears
  const auto& r = runs_[u];
  out.push_back(SendMsg{proto::MsgRelease{id_.self, u, r.yes != 0 ? r.yes_epoch : d.epoch, 0, "stopped here"}});
}

void ClusterEngine::hook_release(const RequestIn& r, Out& out) {
  out.push_back(Audit{"request",
                      {{"request", r.id}, {"requester", r.requester}, {"action", "hook-release"},
                       {"target", r.request.target}},
                      false});
  if (const auto u = Uuid::parse(r.request.target)) {
    // The release hook runs once qemu is gone: that is the owner's evidence, even if libvirt's stop event has
    // not reached us yet.
    runs_[*u].hook_released = ++run_seq_;
    settle_local(*u, out);
  }
  reply(out, r, nullptr, Status::success, errc::ok, "noted");
}

void ClusterEngine::hook_reconnect(const RequestIn& r, Out& out) {
  const auto u = Uuid::parse(r.request.target);
  if (!u || !in_view_ || !synced_) {
    out.push_back(Audit{"request",
                        {{"request", r.id}, {"requester", r.requester}, {"action", "hook-reconnect"},
                         {"target", r.request.target}},
                        false});
    return reply(out, r, nullptr, Status::success, errc::ok, "no cluster map to compare with; allowed");
  }
  const auto it = domains_.find(*u);
  if (it == domains_.end() || it->second.owner == 0 || it->second.owner == id_.self ||
      (it->second.mig_phase != 0 && (it->second.mig_source == id_.self || it->second.mig_target == id_.self)) ||
      (!members_.count(it->second.owner) && !lost(it->second.owner))) {
    out.push_back(Audit{"request",
                        {{"request", r.id}, {"requester", r.requester}, {"action", "hook-reconnect"},
                         {"target", r.request.target}},
                        false});
    return reply(out, r, nullptr, Status::success, errc::ok, "owned here or by nobody else");
  }
  const auto& d = it->second;
  const bool refuse = id_.guard.reconnect == GuardPolicy::Reconnect::refuse;
  auto f = claim_fields(*u);
  f["kind"] = "reconnect-owned-elsewhere";
  f["policy"] = refuse ? "refuse" : "alert";
  out.push_back(Audit{"alarm", std::move(f), true});
  const std::string why = fmt::format("{} runs here but is owned by {} (epoch {})", d.name, host_name(d.owner), d.epoch);
  out.push_back(LogLine{Level::error, "DUPLICATE at reconnect: " + why});
  if (refuse)
    return reply(out, r, nullptr, Status::failure, errc::operation_failed,
                 why + "; refusing the reconnect (reconnect_policy = refuse)", true);
  reply(out, r, nullptr, Status::success, errc::ok, why + "; alarm raised (reconnect_policy = alert)", true);
}

void ClusterEngine::fail_remotes(Out& out, const std::string& why, std::optional<NodeId> only_host) {
  for (auto it = remote_.begin(); it != remote_.end();) {
    if (only_host && it->second.host != *only_host) {
      ++it;
      continue;
    }
    Remote r = std::move(it->second);
    it = remote_.erase(it);
    proto::DomainEntry d{r.uuid, r.name, PowerState::unknown, host_name(r.host), 0, 0};
    reply(out, r.in, &d, Status::failure, errc::operation_failed, why + "; state not confirmed");
  }
}

bool ClusterEngine::view_complete() const {
  if (id_.configured.empty() || !quorate_) return false;
  for (NodeId h : id_.configured) {
    if (confirmed(h)) continue;
    if (!members_.count(h)) return false;
    auto it = hosts_.find(h);
    if (it == hosts_.end() || !it->second.facts || !it->second.facts->reachable) return false;
  }
  return true;
}

void ClusterEngine::on_history(const FenceHistoryIn& h, Out& out) {
  if (!lost(h.host) || !synced_) {
    history_.erase(h.host);
    return;
  }
  const std::uint32_t loss = hosts_[h.host].losses;
  auto it = history_.find(h.host);
  if (it == history_.end() || it->second.loss != loss) {
    // First look after this loss: whatever is recorded now may predate the loss, so it is only a baseline.
    history_[h.host] = Baseline{loss, h.last_fenced};
    return;
  }
  if (h.last_fenced <= it->second.fenced) return;
  it->second.fenced = h.last_fenced;
  const std::string by = "pacemaker fencing history (fenced at unix time " + std::to_string(h.last_fenced) + ")";
  out.push_back(Audit{"decision",
                      {{"host", host_name(h.host)}, {"loss", loss}, {"decision", "confirm-fenced"}, {"reason", by}},
                      true});
  out.push_back(LogLine{Level::notice, host_name(h.host) + " fenced according to " + by});
  const auto& hf = hosts_[h.host].facts;
  out.push_back(SendMsg{proto::MsgConfirmFenced{h.host, loss, by, hf ? hf->incarnation : 0, hf ? hf->seq : 0}});
}

// ---------------------------------------------------------------------------------------------------
// Requests

void ClusterEngine::reply(Out& out, const RequestIn& r, const proto::DomainEntry* d, Status st, errc code,
                          std::string message, bool sync_outcome) {
  boost::json::object f{{"request", r.id}, {"action", proto::action_name(r.request.action)}};
  if (d) {
    f["domain"] = d->name;
    f["uuid"] = d->uuid.str();
    f["host"] = d->host;
  }
  f["result"] = status_word(st);
  f["reason"] = message;
  out.push_back(Audit{"outcome", std::move(f), sync_outcome || is_fence(r.request.action)});
  out.push_back(LogLine{st == Status::failure && is_fence(r.request.action) ? Level::error : Level::notice,
                        fmt::format("{} {}: {} ({}) | request={}", proto::action_name(r.request.action),
                                    d ? d->name : r.request.target, status_word(st), message, r.id)});
  proto::Response resp;
  resp.status = st;
  resp.error = static_cast<std::uint16_t>(code);
  resp.message = std::move(message);
  resp.flags = proto::kResponseCluster | (quorate_ ? proto::kResponseQuorate : 0);
  if (d && (r.request.action == Action::status || is_fence(r.request.action))) resp.domains.push_back(*d);
  out.push_back(Reply{r.id, std::move(resp)});
}

void ClusterEngine::list(const RequestIn& r, Out& out) {
  proto::Response resp;
  resp.status = Status::success;
  resp.flags = proto::kResponseCluster | (quorate_ ? proto::kResponseQuorate : 0);
  for (const auto& [u, d] : domains_) {
    if (!allowed(r.key, d.name) && !allowed(r.key, u.str())) continue;
    proto::DomainEntry e{u, d.name, PowerState::unknown, host_name(d.owner), d.epoch, 0};
    NodeId shown = d.owner;
    if (d.owner == 0) {
      // Never ran anywhere we know of: show the lowest host that has it defined.
      for (const auto& [h, rec] : hosts_)
        if (rec.facts && find_entry(*rec.facts, u)) {
          shown = h;
          break;
        }
      e.host = host_name(shown);
    }
    if (lost(d.owner)) {
      e.flags |= proto::kDomainOwnerLost;
    } else if (confirmed(d.owner)) {
      e.flags |= proto::kDomainHostFenced;
      e.state = PowerState::shutoff;
    } else {
      e.state = state_on(shown, u);
    }
    if (hosts_reporting_active(u).size() > 1 && d.mig_phase == 0) e.flags |= proto::kDomainDuplicate;
    if (d.mig_phase != 0) e.flags |= proto::kDomainMigrating;
    resp.domains.push_back(std::move(e));
  }
  resp.message = fmt::format("{} domains, {} members{}", resp.domains.size(), members_.size(),
                             quorate_ ? "" : ", no quorum");
  out.push_back(Audit{"outcome",
                      {{"request", r.id}, {"action", proto::action_name(r.request.action)}, {"result", "success"},
                       {"domains", resp.domains.size()}},
                      false});
  out.push_back(Reply{r.id, std::move(resp)});
}

void ClusterEngine::host_list(const RequestIn& r, Out& out) {
  proto::Response resp;
  resp.status = Status::success;
  resp.flags = proto::kResponseCluster | (quorate_ ? proto::kResponseQuorate : 0);
  std::set<NodeId> all = members_;
  for (const auto& [h, rec] : hosts_) all.insert(h);
  for (NodeId h : all) {
    proto::HostEntry e;
    e.id = h;
    e.name = host_name(h);
    auto it = hosts_.find(h);
    if (it != hosts_.end()) {
      e.losses = it->second.losses;
      e.confirmed_by = it->second.confirmed_by;
      e.libvirt_up = it->second.facts && it->second.facts->reachable;
    }
    e.status = h == id_.self ? 3 : members_.count(h) ? 0 : confirmed(h) ? 2 : 1;
    resp.hosts.push_back(std::move(e));
  }
  resp.message = fmt::format("{} members{}", members_.size(), quorate_ ? ", quorate" : ", NOT quorate");
  out.push_back(Reply{r.id, std::move(resp)});
}

void ClusterEngine::confirm(const RequestIn& r, Out& out) {
  // A node id names one host; a name may be reported by several (a misconfiguration): confirming the wrong
  // one would make "off" answers rest on a host that was never powered off, so an ambiguous name is refused.
  NodeId host = 0;
  std::vector<NodeId> named;
  for (const auto& [h, rec] : hosts_) {
    if (std::to_string(h) == r.request.target) host = h;
    if (host_name(h) == r.request.target) named.push_back(h);
  }
  if (host == 0 && named.size() > 1)
    return reply(out, r, nullptr, Status::failure, errc::operation_failed,
                 fmt::format("host name '{}' is reported by {} node ids; confirm by node id", r.request.target,
                             named.size()));
  if (host == 0 && named.size() == 1) host = named.front();
  if (host == 0)
    return reply(out, r, nullptr, Status::failure, errc::operation_failed, "no host '" + r.request.target + "'");
  if (members_.count(host))
    return reply(out, r, nullptr, Status::failure, errc::operation_failed,
                 host_name(host) + " is a member: only a lost host can be confirmed fenced");
  if (!lost(host))
    return reply(out, r, nullptr, Status::failure, errc::operation_failed,
                 host_name(host) + " is not lost (or already confirmed)");
  const auto& hf = hosts_[host].facts;
  proto::MsgConfirmFenced m{host, hosts_[host].losses, "vguardctl " + r.requester, hf ? hf->incarnation : 0,
                            hf ? hf->seq : 0};
  out.push_back(Audit{"request",
                      {{"request", r.id}, {"requester", r.requester}, {"action", "confirm-fenced"},
                       {"target", host_name(host)}, {"loss", m.loss}},
                      true});
  confirms_[r.id] = r;
  out.push_back(SendMsg{std::move(m)});
}

void ClusterEngine::on_request(TimeMs now, const RequestIn& r, Out& out) {
  const auto& q = r.request;
  const Action a = q.action;
  if (a == Action::hosts) return host_list(r, out);
  if (a == Action::hook_prepare || a == Action::hook_migrate || a == Action::hook_release ||
      a == Action::hook_reconnect) {
    if (r.key) return reply(out, r, nullptr, Status::denied, errc::permission_denied, "control socket only");
    if (a == Action::hook_release) return hook_release(r, out);
    if (a == Action::hook_reconnect) return hook_reconnect(r, out);
    return hook_start(r, a == Action::hook_migrate ? proto::MsgClaim::Kind::migrate : proto::MsgClaim::Kind::start,
                      out);
  }
  if (!in_view_ || !synced_) {
    // Outside a view, or before the state transfer completed, the replica is not to be trusted: only this
    // host's own domains can be acted on, and only when they are verifiably here: active in this libvirt. A
    // copy shut off here says nothing about the others (shared storage: defined on every host), so it is
    // never answered "off" without the replica (I2; scenario 23, FlappingMemberThenAClaimSucceeds).
    const bool local_target = [&] {
      for (const auto& [u, d] : local_domains_)
        if ((u.str() == q.target || d.name == q.target) && active_state(d.state)) return true;
      return false;
    }();
    if (local_target && (a == Action::status || a == Action::off || a == Action::reboot))
      return forward_local(out, local_.handle(Event{now, r}));
    out.push_back(Audit{"request",
                        {{"request", r.id}, {"requester", r.requester}, {"key", key_name(r.key)},
                         {"action", proto::action_name(a)}, {"target", q.target}},
                        false});
    return reply(out, r, nullptr, Status::failure, errc::operation_failed,
                 in_view_ ? "cluster state transfer in progress; try again" : "this host is in no cluster view");
  }
  if (a == Action::confirm_fenced) {
    if (r.key) return reply(out, r, nullptr, Status::denied, errc::permission_denied, "control socket only");
    return confirm(r, out);
  }
  out.push_back(Audit{"request",
                      {{"request", r.id}, {"requester", r.requester}, {"key", key_name(r.key)},
                       {"action", proto::action_name(a)}, {"target", q.target}},
                      false});
  if (a == Action::list || a == Action::list_status) return list(r, out);
  if (a == Action::monitor) {
    if (hv_connected_) return reply(out, r, nullptr, Status::success, errc::ok, "vguardd, libvirt and the cluster are up");
    return reply(out, r, nullptr, Status::failure, errc::hypervisor_unreachable, "libvirt connection is down");
  }

  // Resolve the target across the cluster: a UUID, or a name that must match exactly one domain.
  std::optional<Uuid> u = Uuid::parse(q.target);
  if ((q.flags & proto::kFlagTargetIsUuid) && !u)
    return reply(out, r, nullptr, Status::failure, errc::no_such_domain, "'" + q.target + "' is not a UUID");
  if (!u) {
    std::set<Uuid> matches;
    for (const auto& [id, d] : domains_)
      if (d.name == q.target) matches.insert(id);
    for (const auto& [h, rec] : hosts_)
      if (rec.facts)
        for (const auto& e : rec.facts->entries)
          if (e.name == q.target) matches.insert(e.uuid);
    if (!allowed(r.key, q.target) && matches.size() != 1)
      return reply(out, r, nullptr, Status::denied, errc::permission_denied,
                   "key '" + key_name(r.key) + "' may not act on '" + q.target + "'");
    if (matches.size() > 1)
      return reply(out, r, nullptr, Status::failure, errc::ambiguous_domain,
                   "name '" + q.target + "' matches " + std::to_string(matches.size()) + " domains; use the UUID");
    if (matches.size() == 1) u = *matches.begin();
  }
  std::string name = q.target;
  const proto::DomainRecord* rec = nullptr;
  if (u) {
    if (auto it = domains_.find(*u); it != domains_.end()) {
      rec = &it->second;
      name = rec->name;
    }
  }
  const bool ok = u ? (allowed(r.key, name) || allowed(r.key, u->str())) : allowed(r.key, q.target);
  if (!ok)
    return reply(out, r, nullptr, Status::denied, errc::permission_denied,
                 "key '" + key_name(r.key) + "' may not act on '" + q.target + "'");
  if (!u) return reply(out, r, nullptr, Status::failure, errc::no_such_domain, "no domain '" + q.target + "' in the cluster");

  if (rec && rec->mig_phase != 0) {
    // Both ends may hold a copy until the hand-over settles: no single host's libvirt speaks for it.
    proto::DomainEntry d{*u, name, PowerState::unknown, host_name(rec->owner), rec->epoch, 0};
    return reply(out, r, &d, Status::failure, errc::operation_failed,
                 fmt::format("{} is being migrated from {} to {}; try again once the hand-over settles", name,
                             host_name(rec->mig_source), host_name(rec->mig_target)));
  }
  // Which host runs it? The members reporting it active, else its recorded owner, else a member that has it
  // defined (shut off there).
  const auto active = hosts_reporting_active(*u);
  if (active.size() > 1) {
    proto::DomainEntry d{*u, name, PowerState::unknown, host_name(active[0]), rec ? rec->epoch : 0,
                         proto::kDomainDuplicate};
    return reply(out, r, &d, Status::failure, errc::operation_failed,
                 fmt::format("{} is reported active on {} and {}; refusing to guess", name, host_name(active[0]),
                             host_name(active[1])));
  }
  // A lost host whose last facts listed the domain as possibly active may still run it.
  for (const auto& [h, hr] : hosts_) {
    if (!lost(h)) continue;
    const bool maybe = (rec && rec->owner == h) || (hr.facts && active_in(*hr.facts, *u));
    if (!maybe) continue;  // even if a member reports it active too: both copies may run
    proto::DomainEntry d{*u, name, PowerState::unknown, host_name(h), rec ? rec->epoch : 0, proto::kDomainOwnerLost};
    return reply(out, r, &d, Status::failure, errc::operation_failed,
                 fmt::format("owner {} of {} is lost (left the membership, loss {}) and not confirmed fenced; "
                             "confirm with 'vguardctl host confirm-fenced {}' once it is powered off",
                             host_name(h), name, hr.losses, host_name(h)));
  }
  NodeId target = 0;
  if (!active.empty()) {
    target = active[0];
  } else if (rec && rec->owner != 0 && members_.count(rec->owner)) {
    target = rec->owner;
  } else if (rec && rec->owner != 0 && confirmed(rec->owner) && quorate_) {
    // Evidence (b): its host was power-fenced for its current loss and no member reports it active.
    proto::DomainEntry d{*u, name, PowerState::shutoff, host_name(rec->owner), rec->epoch, proto::kDomainHostFenced};
    const std::string why = host_name(rec->owner) + " was confirmed fenced by " + hosts_[rec->owner].confirmed_by;
    switch (a) {
      case Action::status: return reply(out, r, &d, Status::off, errc::ok, "off: " + why);
      case Action::off:
      case Action::reboot: return reply(out, r, &d, Status::success, errc::ok, "already off: " + why);
      default: break;  // on: start it where it is defined (below)
    }
  }
  if (target == 0 && (!active.empty() || (rec && rec->owner != 0)))
    return reply(out, r, nullptr, Status::failure, errc::operation_failed,
                 "owner of " + name + " cannot be reached from this partition");
  if (target == 0 && a != Action::on && !view_complete())
    // No host ever ran it (as far as this replica knows): "shut off where it is defined" is evidence only when
    // every configured host is here with its libvirt, or confirmed fenced (safety-design.md §1, evidence c).
    return reply(out, r, nullptr, Status::failure, errc::operation_failed,
                 name + " has no known owner and not every configured host is present, so its state cannot be "
                        "proven (configure [cluster] nodes)");
  if (target == 0) {
    for (NodeId m : members_) {
      const auto& hr = hosts_[m];
      if (hr.facts && find_entry(*hr.facts, *u)) {
        target = m;
        break;
      }
    }
  }
  if (target == 0)
    return reply(out, r, nullptr, Status::failure, errc::no_such_domain, "no member has domain '" + name + "'");
  if (target == id_.self) {
    // Our own domain: the local engine decides on libvirt's word (it audits the request itself too).
    out.pop_back();  // its own request record replaces ours
    return forward_local(out, local_.handle(Event{now, r}));
  }
  if (!quorate_)
    return reply(out, r, nullptr, Status::failure, errc::operation_failed,
                 "this partition has no quorum: refusing to act on " + name + " on " + host_name(target));
  const std::uint32_t budget =
      std::min(q.budget_ms == 0 ? policy_.default_budget_ms : q.budget_ms, policy_.max_budget_ms);
  proto::MsgFence m;
  m.requester = id_.self;
  m.request = r.id;
  m.target_host = target;
  m.uuid = *u;
  m.action = a;
  // The executing host gets a little less time, so its answer can still reach us before our deadline.
  m.budget_ms = budget > 200 ? budget - 100 : budget;
  m.key_name = key_name(r.key);
  m.epoch = rec ? rec->epoch : 0;
  out.push_back(Audit{"decision",
                      {{"request", r.id}, {"domain", name}, {"uuid", u->str()}, {"decision", "route"},
                       {"reason", "runs on " + host_name(target)}},
                      false});
  remote_[r.id] = Remote{r, target, *u, name, now + budget, rec ? rec->owner : 0, rec ? rec->epoch : 0,
                         rec ? rec->mig_epoch : 0};
  out.push_back(SendMsg{std::move(m)});
}

}  // namespace vguard::fenced
